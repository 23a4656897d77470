# Prepared for the next GPU session (not run yet): what the culled colour march (RenderConfig.color_cull)
# does where it matters, and the pretraining-step table afresh. ~8 device-minutes; writes 8 files (the most a call brings back). From the
# repository root: bash <this file>
set -u
source .gpu/activate.sh
mkdir -p $OUT
cd benchmarks
R="python render_throughput.py --dtypes bf16 --warmup 3 --repeats 10 --kinds march,render"
OURS="--pairs trilinear_triton:packed_triton --color-mlps triton --rays 131072 --feature-channels 32"
# 1. the paper's 32 channels at 12.3 M samples per call: exact vs culled (eager)
for cull in 0 1e-4; do
  timeout 100 $R $OURS --color-cull $cull --out $OUT/render_c32_r131072_cull$cull.json 2>&1 \
    | grep -E "^(march|render) |rror" | sort -u | sed "s/^/cull $cull /"
done
# 2. whole pretraining steps (one-GPU synthetic config, batch 8, and the 256x704 paper config at batch 2),
#    exact vs culled, alternating, two rounds
P="python pretrain_step.py --dtypes bf16 --warmup 3 --repeats 10"
for round in 1 2; do
  for cull in 0 1e-4; do
    timeout 120 $P --configs configs/pretrain/synthetic.yaml --embedding configs/embedding/synthetic_lite.yaml \
      --batch 8 --color-cull $cull --out $OUT/pretrain_synthetic_cull${cull}_$round.json 2>&1 | grep -E "step|rror"
  done
done
# 3. the table afresh (last measured 2026-12-01): both paper configs, batch 2, fp32 and bf16; then
#    256x704 bf16 culled
timeout 200 python pretrain_step.py --warmup 3 --repeats 10 --out $OUT/pretrain_paper.json 2>&1 | grep -E "step|rror"
timeout 120 $P --configs configs/pretrain/nsmae_bevfusion_256x704.yaml --batch 2 --color-cull 1e-4 \
  --out $OUT/pretrain_256x704_cull1e-4.json 2>&1 | grep -E "step|rror"
