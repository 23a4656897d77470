# Eleventh session, call 3: the pretraining and detection training steps with PyTorch's default CUDA AdamW
# ("foreach") against the fused one (which the tasks took on CUDA at 8715f1b, reverted after this call), alternating; host ms per step.
set -u
source .gpu/activate.sh
mkdir -p $OUT
P="--embedding configs/embedding/synthetic_lite.yaml --batch 8 --dtypes bf16 --warmup 3 --repeats 10"
for round in 1 2; do
  profile=$([ $round = 1 ] && echo "--profile 3" || echo "")
  for impl in foreach fused; do
    timeout 85 python benchmarks/pretrain_step.py --configs configs/pretrain/synthetic.yaml $P $profile --adamw $impl \
      --color-mlp triton --out $OUT/pretrain_${impl}_$round.json 2>&1 | grep "step .* ms" | sed "s/^/$impl $round /"
  done
done
for impl in foreach fused; do
  timeout 85 python benchmarks/task_step.py --configs configs/detection/synthetic.yaml $P --profile 3 --adamw $impl \
    --out $OUT/detection_${impl}.json 2>&1 | grep " train .* ms" | sed "s/^/$impl /"
done
timeout 60 python benchmarks/launch_overhead.py --out $OUT/launch_overhead.json
