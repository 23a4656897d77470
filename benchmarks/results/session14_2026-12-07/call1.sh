# Fourteenth session, call 1 (one GPU, carry [".gpu"], from the checkout root; ~7 min). The device time left
# after failed starts (~20 min) allows about one call: the thirteenth session's prepared call2.sh, trimmed, and
# this session's culled sampler:
# (1) the culled render network at 32 channels, 131,072 rays (12.3 M samples), profiled, with the culled
#     march's two sampling passes in one autograd node (`trilinear_triton.triton_sample_culled`, HEAD) and as
#     before (`slices`: volume[..., :1] and volume[..., 1:] sampled apart, two whole-volume gradients);
# (2) the exact render network at 32 and 31 feature channels, profiled (volume rows of 33 vs 32 channels:
#     64-byte rows allow 16-byte vector loads, 66-byte rows do not): what the row alignment costs;
# (3) the Triton sampler alone at 33-channel rows, padded to 40 and at 32 channels, profiled (the same question);
# (4) the colour MLP's backward, HEAD in one launch and split in two (BACKWARD_PARTS (1, 2)), then the two
#     kernel copies (mlp_transposed / mlp_inloop .patch) at the 32-row shapes (the 64/128-row wgmma shapes
#     dropped: they spill, and the ninth session saw 64 x 4 fault).
set -u
source .gpu/activate.sh
mkdir -p $OUT
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
S=benchmarks/results/h200_2026-12-04_session13
for v in transposed inloop slices; do
  rm -rf runs/$v && mkdir -p runs/$v && cp -r nsmae_lightning runs/$v/
done
for v in transposed inloop; do (cd runs/$v && patch -p1 -s < ../../$S/mlp_$v.patch) || echo "patch $v failed"; done
sed -i 's/if along_rays and feature_channels & (feature_channels - 1) == 0:/if False:/' \
  runs/slices/nsmae_lightning/models/rendering.py
grep -c "if False:" runs/slices/nsmae_lightning/models/rendering.py
R="python render_throughput.py --dtypes bf16 --warmup 3 --repeats 10 --kinds render --pairs trilinear_triton:packed_triton --color-mlps triton --rays 131072 --profile 3 --top 16"
(cd benchmarks && timeout 100 $R --feature-channels 32 --color-cull 1e-4 --out $OUT/profile_c32_cull.json 2>&1 \
  | grep -E "^render |rror")
(cd benchmarks && PYTHONPATH=$PWD/../runs/slices:$PYTHONPATH timeout 100 $R --feature-channels 32 --color-cull 1e-4 \
  --out $OUT/profile_c32_cull_slices.json 2>&1 | grep -E "^render |rror")
for c in 32 31; do
  (cd benchmarks && timeout 100 $R --feature-channels $c --out $OUT/profile_c${c}_exact.json 2>&1 | grep -E "^render |rror")
done
# the sampler alone (fwd + bwd at the rays' samples), profiled: 33-channel rows of 66 bytes, padded to 40
# (80 bytes, 16-aligned), and 32-channel rows (31 features, 64 bytes)
for v in "32 0" "32 7" "31 0"; do set -- $v
  (cd benchmarks && timeout 60 python render_throughput.py --dtypes bf16 --warmup 3 --repeats 10 --kinds sampler \
    --samplers trilinear_triton --rays 131072 --feature-channels $1 --row-pad $2 --profile 3 --top 8 \
    --out $OUT/profile_sampler_c$1_pad$2.json 2>&1 | grep -E "^sampler |rror")
done
M="python benchmarks/color_mlp_backward.py --rows 1536000 --features 32 --timeout 40"
timeout 70 $M --shapes tuned,32x2x4,32x4x2 --out $OUT/mlp_base.json 2>&1 | sed "s/^/base /" | cut -c1-160
timeout 80 $M --shapes tuned,32x4x2,32x4x3,32x2x4 --parts 1,2 --out $OUT/mlp_split.json 2>&1 | sed "s/^/split /" \
  | cut -c1-160
for v in transposed inloop; do
  PYTHONPATH=$PWD/runs/$v:$PYTHONPATH timeout 70 $M --shapes tuned,32x2x4,32x4x2 --out $OUT/mlp_$v.json 2>&1 \
    | sed "s/^/$v /" | cut -c1-160
done
for f in $OUT/profile_*.json; do
  python - $f <<'PY'
import json, sys
for row in json.load(open(sys.argv[1]))["rows"]:
    print(sys.argv[1].split("/")[-1], row["kind"], "wall_ms", round(row["seconds"] * 1e3, 2), "gpu_ms", row.get("gpu_ms"),
          "coloured", row.get("colored_fraction"), "kernels", row.get("kernels_per_call"))
    for name, ms in row.get("top_gpu_ops", [])[:14]:
        print("   op", f"{ms:8.3f}", name[:110])
PY
done
