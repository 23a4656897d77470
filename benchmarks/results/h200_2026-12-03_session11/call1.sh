# Eleventh session, call 1: where the render network's host time goes (host ms per call; the host floor
# at 512 rays; Triton's launch paths), the naive renderer beside ours at 32 / 16 / 8 feature channels
# for the march (from the volume) and the render network (from the embedding), and the bias gradient sum.
set -u
source .gpu/activate.sh
mkdir -p $OUT
python -c "import triton, torch; print('triton', triton.__version__, 'torch', torch.__version__)"
timeout 60 python benchmarks/launch_overhead.py --out $OUT/launch_overhead.json
timeout 60 python benchmarks/results/h200_2026-12-03_session11/bias_grad.py | tee $OUT/bias_grad.txt
cd benchmarks
R="python render_throughput.py --dtypes bf16 --warmup 5 --repeats 30 --kinds march,render"
for channels in 32 16 8; do
  timeout 100 $R --pairs trilinear_triton:packed_triton --color-mlps triton --feature-channels $channels \
    --out $OUT/ours_c$channels.json 2>&1 | grep -E "^(march|render) |rror" | sed "s/^/ours_c$channels /"
  timeout 100 $R --pairs grid_sample:dense --color-mlps torch --feature-channels $channels \
    --out $OUT/naive_c$channels.json 2>&1 | grep -E "^(march|render) |rror" | sed "s/^/naive_c$channels /"
done
timeout 80 $R --pairs trilinear_triton:packed_triton --color-mlps triton --rays 512 --profile 3 \
  --out $OUT/ours_floor.json 2>&1 | grep -E "^(march|render) |rror" | sed "s/^/ours_512rays /"
