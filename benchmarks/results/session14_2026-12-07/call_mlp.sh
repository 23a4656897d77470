# Fourteenth session, call C (one GPU, carry [".gpu"], from the checkout root; ~4 min; not run in the
# fourteenth session): the colour MLP's backward at 1.536 M rows, 32 features, HEAD in one launch and split in
# two (BACKWARD_PARTS (1, 2), each part autotuned as training would), then the thirteenth session's two kernel
# copies (mlp_transposed / mlp_inloop .patch) at the 32-row shapes (its 64/128-row wgmma shapes are dropped:
# they spill, and the ninth session saw 64 x 4 fault). Each shape runs in its own process.
set -u
source .gpu/activate.sh
mkdir -p $OUT
W=/tmp/callC && rm -rf $W && mkdir -p $W
snap() { tar czf $OUT/results.tgz -C $W .; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
S13=benchmarks/results/h200_2026-12-04_session13
for v in transposed inloop; do
  rm -rf runs/$v && mkdir -p runs/$v && cp -r nsmae_lightning runs/$v/
  (cd runs/$v && patch -p1 -s < ../../$S13/mlp_$v.patch) || echo "patch $v failed"
done
M="python benchmarks/color_mlp_backward.py --rows 1536000 --features 32 --timeout 40"
timeout 70 $M --shapes tuned,32x2x4,32x4x2 --out $W/mlp_head.json 2>&1 | sed "s/^/head /" | cut -c1-160; snap
timeout 80 $M --shapes tuned,32x4x2,32x4x3,32x2x4 --parts 1,2 --out $W/mlp_split.json 2>&1 | sed "s/^/split /" \
  | cut -c1-160; snap
for v in transposed inloop; do
  PYTHONPATH=$PWD/runs/$v:${PYTHONPATH:-} timeout 70 $M --shapes tuned,32x2x4,32x4x2 --out $W/mlp_$v.json 2>&1 \
    | sed "s/^/$v /" | cut -c1-160; snap
done
