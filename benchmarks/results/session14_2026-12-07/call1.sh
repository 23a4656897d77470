# Fourteenth session, call 1 (one GPU, carry [".gpu"], from the checkout root; ~6 min). The device time left
# after failed starts allows about one call: the thirteenth session's prepared call2.sh, trimmed, and this
# session's culled sampler, most wanted first (a call cut short keeps what finished: results.tgz is rewritten
# after every step):
# (1) the culled render network at 32 channels, 131,072 rays (12.3 M samples), profiled, with the culled
#     march's two sampling passes in one autograd node (`trilinear_triton.triton_sample_culled`, HEAD) and as
#     before (`slices`: volume[..., :1] and volume[..., 1:] sampled apart, two whole-volume gradients), and
#     with the weights tested by `packed_weights` (`torchweights`: a dozen torch kernels, float64 prefix sum)
#     instead of one kernel (`composite_triton.weights_above`, HEAD);
# (2) the Triton sampler alone at 33-channel rows (66 bytes in bf16: no 16-byte vector loads), padded to 40
#     (80 bytes) and at 32 channels (64 bytes), profiled: what the row alignment costs;
# (3) the exact render network at 32 channels, profiled (where 12.3 M samples' time goes without culling);
# (4) the colour MLP's backward, HEAD in one launch and split in two (BACKWARD_PARTS (1, 2)), then the two
#     kernel copies (mlp_transposed / mlp_inloop .patch) at the 32-row shapes (the 64/128-row wgmma shapes
#     dropped: they spill, and the ninth session saw 64 x 4 fault).
set -u
source .gpu/activate.sh
mkdir -p $OUT
W=/tmp/call1 && rm -rf $W && mkdir -p $W  # the raw files; $OUT gets them as one results.tgz after every step
snap() { tar czf $OUT/results.tgz -C $W .; }
show() {  # the profiled rows of a render_throughput JSON: wall, GPU ms and the top kernels
  python benchmarks/results/session14_2026-12-07/show_profile.py "$1"
  snap
}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
S=benchmarks/results/h200_2026-12-04_session13
for v in transposed inloop slices torchweights; do
  rm -rf runs/$v && mkdir -p runs/$v && cp -r nsmae_lightning runs/$v/
done
for v in transposed inloop; do (cd runs/$v && patch -p1 -s < ../../$S/mlp_$v.patch) || echo "patch $v failed"; done
sed -i 's/if along_rays and feature_channels & (feature_channels - 1) == 0:/if False:/' \
  runs/slices/nsmae_lightning/models/rendering.py
sed -i 's/if triton is not None and (density.is_cuda or interpreting()):/if False:/' \
  runs/torchweights/nsmae_lightning/models/color_cull.py
grep -c "if False:" runs/slices/nsmae_lightning/models/rendering.py runs/torchweights/nsmae_lightning/models/color_cull.py
R="python render_throughput.py --dtypes bf16 --warmup 3 --repeats 10 --kinds render --pairs trilinear_triton:packed_triton --color-mlps triton --rays 131072 --profile 3 --top 16"
(cd benchmarks && timeout 100 $R --feature-channels 32 --color-cull 1e-4 --out $W/profile_c32_cull.json 2>&1 \
  | grep -E "^render |rror"); show $W/profile_c32_cull.json
(cd benchmarks && PYTHONPATH=$PWD/../runs/slices:$PYTHONPATH timeout 100 $R --feature-channels 32 --color-cull 1e-4 \
  --out $W/profile_c32_cull_slices.json 2>&1 | grep -E "^render |rror"); show $W/profile_c32_cull_slices.json
(cd benchmarks && PYTHONPATH=$PWD/../runs/torchweights:$PYTHONPATH timeout 100 $R --feature-channels 32 \
  --color-cull 1e-4 --out $W/profile_c32_cull_torchweights.json 2>&1 | grep -E "^render |rror")
show $W/profile_c32_cull_torchweights.json
# the sampler alone (fwd + bwd at the rays' samples), profiled: 33-channel rows of 66 bytes, padded to 40
# (80 bytes, 16-aligned), and 32-channel rows (31 features, 64 bytes)
for v in "32 0" "32 7" "31 0"; do set -- $v
  (cd benchmarks && timeout 60 python render_throughput.py --dtypes bf16 --warmup 3 --repeats 10 --kinds sampler \
    --samplers trilinear_triton --rays 131072 --feature-channels $1 --row-pad $2 --profile 3 --top 8 \
    --out $W/profile_sampler_c$1_pad$2.json 2>&1 | grep -E "^sampler |rror"); show $W/profile_sampler_c$1_pad$2.json
done
(cd benchmarks && timeout 100 $R --feature-channels 32 --out $W/profile_c32_exact.json 2>&1 | grep -E "^render |rror")
show $W/profile_c32_exact.json
M="python benchmarks/color_mlp_backward.py --rows 1536000 --features 32 --timeout 40"
timeout 70 $M --shapes tuned,32x2x4,32x4x2 --out $W/mlp_base.json 2>&1 | sed "s/^/base /" | cut -c1-160; snap
timeout 80 $M --shapes tuned,32x4x2,32x4x3,32x2x4 --parts 1,2 --out $W/mlp_split.json 2>&1 | sed "s/^/split /" \
  | cut -c1-160; snap
for v in transposed inloop; do
  PYTHONPATH=$PWD/runs/$v:$PYTHONPATH timeout 70 $M --shapes tuned,32x2x4,32x4x2 --out $W/mlp_$v.json 2>&1 \
    | sed "s/^/$v /" | cut -c1-160; snap
done
