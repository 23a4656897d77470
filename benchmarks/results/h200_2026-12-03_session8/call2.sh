# Session 8, GPU call 2: A/B base 0c57961 (random ray order, per-block MLP weights) vs head (raster order, hoisted
# MLP weights); the pretraining step both sides; ncu of one march step's kernels.
set -u
source .gpu/activate.sh
mkdir -p $OUT
BASE=$PWD/runs/ab_base
ARGS="--dtypes bf16 --kinds mlp,march,render --color-mlps triton --pairs auto:auto --warmup 5 --repeats 30 --profile 3 --top 40"
for round in 1 2; do
  (cd $BASE/benchmarks && PYTHONPATH=$BASE:$PYTHONPATH python render_throughput.py $ARGS --out $OUT/base_render_$round.json) 2>&1 | grep -E "^(mlp|march|render) " | awk '!seen[$0]++' | sed "s/^/base $round /"
  (cd benchmarks && python render_throughput.py $ARGS --out $OUT/head_render_$round.json) 2>&1 | grep -E "^(mlp|march|render) " | awk '!seen[$0]++' | sed "s/^/head $round /"
done
(cd benchmarks && python render_throughput.py $ARGS --ray-order random --out $OUT/head_random_render.json) 2>&1 | grep -E "^(mlp|march|render) " | awk '!seen[$0]++' | sed "s/^/head-random /"
P="--configs configs/pretrain/synthetic.yaml --embedding configs/embedding/synthetic_lite.yaml --batch 8 --dtypes bf16 --warmup 3 --repeats 10 --color-mlp triton --profile 3"
(cd $BASE && PYTHONPATH=$BASE:$PYTHONPATH python benchmarks/pretrain_step.py $P --out $OUT/base_pretrain.json) 2>&1 | grep "step .* ms" | sed "s/^/base /"
python benchmarks/pretrain_step.py $P --out $OUT/head_pretrain.json 2>&1 | grep "step .* ms" | sed "s/^/head /"
timeout 200 ncu --profile-from-start off --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats --section MemoryWorkloadAnalysis python runs/ncu_target.py > $OUT/ncu_march.txt 2>&1
grep -E "mlp backward|^  [_a-z].*\(|Duration|Registers Per|Achieved Occupancy|Memory Throughput|L1/TEX Hit|L2 Hit|Compute \(SM\)|DRAM Throughput|Warp Cycles Per Issued" $OUT/ncu_march.txt | cut -c1-150 | head -150
