# Tenth session, call 4: the naive grid_sample renderer (torch MLP, dense march) beside ours on one machine
# and one call, and ours at fewer feature channels (how the time scales with bytes per sample).
set -u
source .gpu/activate.sh
mkdir -p $OUT
cd benchmarks
R="python render_throughput.py --dtypes bf16 --warmup 5 --repeats 30 --profile 3 --top 30"
timeout 150 $R --kinds sampler,render --pairs grid_sample:dense --color-mlps torch --out $OUT/naive.json 2>&1 | grep -E "^(sampler|render) " | sed "s/^/naive /"
timeout 150 $R --kinds sampler,render --pairs trilinear_triton:packed_triton --color-mlps triton --out $OUT/ours.json 2>&1 | grep -E "^(sampler|render) " | sed "s/^/ours /"
for channels in 16 8; do
  timeout 120 $R --kinds sampler,render --pairs trilinear_triton:packed_triton --color-mlps triton --feature-channels $channels \
    --out $OUT/ours_c$channels.json 2>&1 | grep -E "^(sampler|render) |rror" | sed "s/^/ours_c$channels /"
done
