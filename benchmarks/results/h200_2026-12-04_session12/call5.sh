# Twelfth session, call 5: ours called eagerly (as pretraining calls it: host launches included) at the
# workloads where call 2 replayed graphs: 131,072 rays per element at 8 and 32 channels, 65,536 at 8.
set -u
source .gpu/activate.sh
mkdir -p $OUT
cd benchmarks
R="python render_throughput.py --dtypes bf16 --warmup 5 --repeats 20 --kinds march,render"
OURS="--pairs trilinear_triton:packed_triton --color-mlps triton"
run() {  # name, options...
  name=$1; shift
  timeout 150 $R "$@" --out $OUT/$name.json 2>&1 | tee -a $OUT/call5.log | grep -E "^(march|render) |rror" \
    | sed "s/^/$name /" | sort -u
}
run ours_eager_c8_r131072 $OURS --rays 131072 --feature-channels 8
run ours_eager_c8_r65536 $OURS --rays 65536 --feature-channels 8
run ours_eager_c32_r131072 $OURS --rays 131072 --feature-channels 32
