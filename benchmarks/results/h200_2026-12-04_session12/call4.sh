# Twelfth session, call 4: the naive renderer again after the grid_sample fix (a bf16 volume sampled in
# float32; before it, bf16 grid coordinates put samples up to ~0.4 voxel off: ref. err 0.4-0.9), at
# 32 channels x 16,384 rays (with a profile: GPU ms) and at 131,072 rays, 32 and 8 channels (bf16).
set -u
source .gpu/activate.sh
mkdir -p $OUT
cd benchmarks
R="python render_throughput.py --dtypes bf16 --warmup 3 --repeats 10 --kinds march,render"
NAIVE="--pairs grid_sample:dense --color-mlps torch"
run() {  # name, options...
  name=$1; shift
  timeout 150 $R "$@" --out $OUT/$name.json 2>&1 | tee -a $OUT/call4.log | grep -E "^(march|render) |rror" \
    | sed "s/^/$name /" | sort -u
}
run naive_c32_r16384 $NAIVE --rays 16384 --feature-channels 32 --profile 3
run naive_c32_r131072 $NAIVE --rays 131072 --feature-channels 32
run naive_c8_r131072 $NAIVE --rays 131072 --feature-channels 8
