# Session 7, GPU call 2: the activation kernels with int32 indices; render_ab (3 alternating rounds); CLI smoke.
set -u
source .gpu/activate.sh
mkdir -p $OUT
(cd benchmarks && python render_throughput.py --kinds activation --dtypes bf16 --profile 3 --top 8 --out $OUT/activation.json) 2>&1 | grep "^activation" | awk '!seen[$0]++'
OUT=$OUT/ab bash benchmarks/render_ab.sh runs/ab_base 3 2>&1 | grep -v Warn
bash experiments/label_efficient/smoke_gpu.sh 2>&1 | grep SMOKE
