# Thirteenth session, call 2: (1) the colour MLP's backward at wgmma-sized launch shapes (64 / 128 rows, 4 / 8
# warps; `triton_compile_check.py` with the device's triton 3.6.0 compiles them to wgmma) for three kernel
# copies: base = HEAD; transposed = the first layer's weight gradient accumulated as dW1f (hidden x features,
# M = 64: wgmma-sized) instead of its transpose; inloop = transposed + the weights loaded in every block
# (wgmma reads B from shared memory, so holding them in registers may no longer pay); split = HEAD's backward in
# two launches (`color_mlp_triton.BACKWARD_PARTS`, fewer live registers each). Each shape in its own
# process (a faulting shape is a failed row). (2) A profile of the culled render network at 32 channels,
# 131,072 rays (12.3 M samples), where its time goes. From the checkout root (the variant copies are made
# here: carrying them took the call past its 64 MiB).
set -u
source .gpu/activate.sh
mkdir -p $OUT
S=benchmarks/results/h200_2026-12-04_session13
for v in base transposed inloop; do
  rm -rf runs/$v && mkdir -p runs/$v && cp -r nsmae_lightning runs/$v/
  if [ $v != base ]; then (cd runs/$v && patch -p1 -s < ../../$S/mlp_$v.patch) || echo "patch $v failed"; fi
done
M="python benchmarks/color_mlp_backward.py --rows 1536000 --features 32 --timeout 40"
# most wanted first (a call cut by its time limit keeps what finished; the 64- and 128-row shapes last: the ninth
# session saw 64 x 4 fault, and this call's first attempt lost its machine during them): HEAD in one launch,
# HEAD split in two (BACKWARD_PARTS (1, 2), each part autotuned as training does), the culled profile, the
# copies at 32 rows, then every copy at the wgmma-sized shapes
for v in base transposed inloop; do
  [ $v = transposed ] && {
    timeout 80 $M --shapes tuned,32x4x2,32x4x3,32x2x4 --parts 1,2 --out $OUT/mlp_split.json 2>&1 | sed "s/^/split /" | cut -c1-150
    (cd benchmarks && timeout 100 python render_throughput.py --dtypes bf16 --warmup 3 --repeats 10 --kinds render \
      --pairs trilinear_triton:packed_triton --color-mlps triton --rays 131072 --feature-channels 32 --color-cull 1e-4 \
      --profile 3 --top 16 --out $OUT/profile_c32_r131072_cull.json 2>&1 | grep -E "^render |rror")
  }
  PYTHONPATH=$PWD/runs/$v:$PYTHONPATH timeout 70 $M --shapes tuned,32x2x4,32x4x2 --out $OUT/mlp_$v.json 2>&1 \
    | sed "s/^/$v /" | cut -c1-150
done
for v in base transposed inloop; do
  PYTHONPATH=$PWD/runs/$v:$PYTHONPATH timeout 70 $M --shapes 64x4x1,64x4x2,128x8x1 --out $OUT/mlp_${v}_wide.json 2>&1 \
    | sed "s/^/$v /" | cut -c1-150
done
python - $OUT/profile_c32_r131072_cull.json <<'PY'
import json, sys
for row in json.load(open(sys.argv[1]))["rows"]:
    print(row["kind"], "gpu_ms", row.get("gpu_ms"), "kernels", row.get("kernels_per_call"))
    for name, ms in row.get("top_gpu_ops", [])[:14]:
        print("   op", f"{ms:8.3f}", name[:110])
PY
