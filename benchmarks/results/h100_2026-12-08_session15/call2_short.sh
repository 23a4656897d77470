# Fifteenth session: call2.sh cut to its first rows (device time left for ~3 minutes of work): the render
# network at 32 channels, 12.3 M samples, exact with volume rows of 0 / 32 bytes, then culled with 32 / 0.
# From the checkout root, carry [".gpu"]; $OUT/results.tgz rewritten after every step.
set -u
source .gpu/activate.sh
mkdir -p $OUT
W=/tmp/call2 && rm -rf $W && mkdir -p $W
snap() { tar czf $OUT/results.tgz -C $W .; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
S14=benchmarks/results/session14_2026-12-07
R="python render_throughput.py --dtypes bf16 --warmup 3 --repeats 10 --kinds render --pairs trilinear_triton:packed_triton --color-mlps triton --rays 131072 --feature-channels 32 --profile 3 --top 12"
run() {  # output name, render_throughput arguments...
  local name=$1; shift
  (cd benchmarks && timeout 100 "$@" --out $W/$name.json 2>&1 | grep -E "^(render|sampler) |rror")
  python $S14/show_profile.py $W/$name.json; snap
}
run exact_rows0 $R --volume-row-bytes 0
run exact_rows32 $R --volume-row-bytes 32
run cull_rows32 $R --volume-row-bytes 32 --color-cull 1e-4
run cull_rows0 $R --volume-row-bytes 0 --color-cull 1e-4
