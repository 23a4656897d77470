# Session 7, GPU call 3: render/march rows with the activation kernels on (profile), one more A/B round, pretraining step profile, smoke.
set -u
source .gpu/activate.sh
mkdir -p $OUT
(cd benchmarks && python render_throughput.py --dtypes bf16 --kinds march,render --color-mlps triton --pairs auto:auto --warmup 3 --repeats 10 --profile 3 --top 40 --out $OUT/render_profile.json) 2>&1 | grep -E "^(march|render) " | awk '!seen[$0]++'
OUT=$OUT/ab bash benchmarks/render_ab.sh runs/ab_base 2 2>&1 | grep -v Warn
python benchmarks/pretrain_step.py --configs configs/pretrain/synthetic.yaml --embedding configs/embedding/synthetic_lite.yaml --batch 8 --dtypes bf16 --warmup 3 --repeats 10 --color-mlp triton --profile 3 --out $OUT/pretrain.json 2>&1 | grep "step .* ms"
bash experiments/label_efficient/smoke_gpu.sh 2>&1 | grep SMOKE
