# Fourteenth session, call A (one GPU, carry [".gpu"], from the checkout root; ~6 min; not run in the
# fourteenth session: no machine started). Most wanted first (a call cut short keeps what finished:
# results.tgz is rewritten after every step):
# (1) the culled render network at 32 channels, 131,072 rays (12.3 M samples), profiled: HEAD (the culled
#     march's two sampling passes in one autograd node, `trilinear_triton.triton_sample_culled`, and the weight
#     test in one kernel, `composite_triton.weights_above`) against `slices` (volume[..., :1] and
#     volume[..., 1:] sampled apart: two whole-volume gradients) and `torchweights` (the weights tested by
#     `packed_weights`: a dozen torch kernels with a float64 prefix sum);
# (2) the Triton sampler alone, profiled, at 33-channel rows (66 bytes in bf16), padded to 48 (96 bytes, every
#     stride a multiple of 16 elements) and at 32 channels (31 features, 64 bytes), for HEAD and `clamped`
#     (sampler_clamped.patch: outside corners' indices clamped instead of their offsets zeroed by a select,
#     which keeps the strides' divisibility: compiled for sm_90, 16-byte row loads at 32 / 48-channel rows,
#     one bf16 a load at 33 as before);
# (3) the exact render network at 32 channels, profiled, HEAD and clamped.
set -u
source .gpu/activate.sh
mkdir -p $OUT
W=/tmp/callA && rm -rf $W && mkdir -p $W  # the raw files; $OUT gets them as one results.tgz after every step
snap() { tar czf $OUT/results.tgz -C $W .; }
show() {  # the profiled rows of a render_throughput JSON: wall, GPU ms and the top kernels
  python benchmarks/results/session14_2026-12-07/show_profile.py "$1"
  snap
}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
HERE=benchmarks/results/session14_2026-12-07
for v in slices torchweights clamped; do
  rm -rf runs/$v && mkdir -p runs/$v && cp -r nsmae_lightning runs/$v/
done
sed -i 's/if along_rays and culled_in_one_node(volume.shape\[-1\]):/if False:/' \
  runs/slices/nsmae_lightning/models/rendering.py
sed -i 's/        if kernel:/        if False:/' \
  runs/torchweights/nsmae_lightning/models/color_cull.py
(cd runs/clamped && patch -p1 -s < ../../$HERE/sampler_clamped.patch) || echo "patch clamped failed"
grep -c "if False:" runs/slices/nsmae_lightning/models/rendering.py runs/torchweights/nsmae_lightning/models/color_cull.py
grep -c "tl.minimum(tl.maximum(ix" runs/clamped/nsmae_lightning/models/trilinear_triton.py
R="python render_throughput.py --dtypes bf16 --warmup 3 --repeats 10 --kinds render --pairs trilinear_triton:packed_triton --color-mlps triton --rays 131072 --profile 3 --top 16"
run() {  # variant ("head" = the checkout), output name, render_throughput arguments...
  local v=$1 name=$2; shift 2
  local path=$PWD; [ $v != head ] && path=$PWD/runs/$v
  (cd benchmarks && PYTHONPATH=$path:${PYTHONPATH:-} timeout 100 "$@" --out $W/$name.json 2>&1 | grep -E "^(render|sampler) |rror")
  show $W/$name.json
}
run head cull_head $R --feature-channels 32 --color-cull 1e-4
run slices cull_slices $R --feature-channels 32 --color-cull 1e-4
run torchweights cull_torchweights $R --feature-channels 32 --color-cull 1e-4
S="python render_throughput.py --dtypes bf16 --warmup 3 --repeats 10 --kinds sampler --samplers trilinear_triton --rays 131072 --profile 3 --top 8"
for v in head clamped; do
  run $v sampler_c32_pad0_$v $S --feature-channels 32 --row-pad 0
  run $v sampler_c32_pad15_$v $S --feature-channels 32 --row-pad 15
  run $v sampler_c31_pad0_$v $S --feature-channels 31 --row-pad 0
done
run head exact_head $R --feature-channels 32
run clamped exact_clamped $R --feature-channels 32
