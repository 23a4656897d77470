# Twelfth session, call 3: the CUDA-graph rows again with `graph_error` (one replay's gradients against an
# eager call's), ours at 32 channels x 16,384 rays and 8 channels x 131,072 rays; and the naive renderer
# (grid_sample, dense march, torch MLP; eager: GPU-bound) at 131,072 rays, 32 and 8 channels, for the
# same-workload ratio.
set -u
source .gpu/activate.sh
mkdir -p $OUT
cd benchmarks
R="python render_throughput.py --dtypes bf16 --warmup 5 --repeats 20 --kinds march,render"
OURS="--pairs trilinear_triton:packed_triton --color-mlps triton --cuda-graph"
NAIVE="--pairs grid_sample:dense --color-mlps torch"
run() {  # name, options...
  name=$1; shift
  timeout 150 $R "$@" --out $OUT/$name.json 2>&1 | tee -a $OUT/call3.log | grep -E "^(march|render) |rror" \
    | sed "s/^/$name /" | sort -u
}
run ours_c32_r16384 $OURS --rays 16384 --feature-channels 32
run ours_c8_r131072 $OURS --rays 131072 --feature-channels 8
run naive_c8_r131072 $NAIVE --rays 131072 --feature-channels 8
run naive_c32_r131072 $NAIVE --rays 131072 --feature-channels 32
