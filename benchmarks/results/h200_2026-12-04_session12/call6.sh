# Twelfth session, call 6: is the eager call's host time at 131,072 rays (11.4 ms, against ~5 ms at
# 512 - 16,384 rays) the caching allocator freeing and re-allocating large blocks (a device-wide wait)?
# The same rows with PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True.
set -u
source .gpu/activate.sh
mkdir -p $OUT
cd benchmarks
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
R="python render_throughput.py --dtypes bf16 --warmup 5 --repeats 20 --kinds march,render"
OURS="--pairs trilinear_triton:packed_triton --color-mlps triton"
run() {  # name, options...
  name=$1; shift
  timeout 150 $R "$@" --out $OUT/$name.json 2>&1 | tee -a $OUT/call6.log | grep -E "^(march|render) |rror" \
    | sed "s/^/$name /" | sort -u
}
run expandable_c8_r131072 $OURS --rays 131072 --feature-channels 8
run expandable_c32_r16384 $OURS --rays 16384 --feature-channels 32
