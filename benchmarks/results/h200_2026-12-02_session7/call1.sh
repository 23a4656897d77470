# Session 7, GPU call 1: activation kernels; pretraining/detection steps head vs base (discard slots, FPN upsample), alternating.
set -u
source .gpu/activate.sh
HEAD=$PWD; BASE=$PWD/runs/ab_base
mkdir -p $OUT/head $OUT/base
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
(cd benchmarks && python render_throughput.py --kinds activation --dtypes bf16 --profile 3 --top 20 --out $OUT/head/activation.json) 2>&1 | grep -v Warning | tail -8
P="--configs configs/pretrain/synthetic.yaml --embedding configs/embedding/synthetic_lite.yaml --batch 8 --dtypes bf16 --warmup 3 --repeats 10 --color-mlp triton"
T="--configs configs/detection/synthetic.yaml --embedding configs/embedding/synthetic_lite.yaml --batch 8 --dtypes bf16 --warmup 3 --repeats 10"
for round in 1 2; do
  for side in base head; do
    root=$([ $side = base ] && echo $BASE || echo $HEAD)
    prof=$([ $round = 1 ] && echo "--profile 3" || echo "")
    (cd $root && PYTHONPATH=$root:$PYTHONPATH python benchmarks/pretrain_step.py $P $prof --out $OUT/$side/pretrain_$round.json 2>&1 | grep -E "step .* ms" | sed "s/^/$side $round pretrain /")
    (cd $root && PYTHONPATH=$root:$PYTHONPATH python benchmarks/task_step.py $T $prof --out $OUT/$side/detection_$round.json 2>&1 | grep -E " ms" | sed "s/^/$side $round task /")
  done
done
