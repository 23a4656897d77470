# Session 9, GPU call 2 (from the checkout root, scripts in runs/, runs/ab_base = git archive 6ff4610 minus
# tests / docs / results): the landed candidate (colour-MLP backward with hoisted weights minus the faulting
# 64 x 4 config, the sampler's per-ray voxel rows, the decoder channels-last) under memcheck in a march,
# the render rows against 6ff4610 (profiled), ncu of the march's Triton kernels, the pretraining step, the CLI smoke.
set -u
source .gpu/activate.sh
mkdir -p $OUT
timeout 150 compute-sanitizer --tool memcheck --print-limit 5 python runs/ncu_target.py raster 256 > $OUT/memcheck_head.txt 2>&1
echo "memcheck rc=$?"; grep -E "ERROR SUMMARY|mlp backward best" $OUT/memcheck_head.txt | head -4
KINDS=sampler,march,render EXTRA="--samplers trilinear_triton --ray-order raster --profile 3 --top 40" OUT=$OUT/ab \
  timeout 240 bash benchmarks/render_ab.sh runs/ab_base 1
timeout 100 ncu --profile-from-start off --kernel-name regex:^_ --section SpeedOfLight --section Occupancy --section LaunchStats \
  --section WarpStateStats --section MemoryWorkloadAnalysis python runs/ncu_target.py raster 16384 > $OUT/ncu_march.txt 2>&1
echo "ncu rc=$?"; grep -E "^  _.*\(|Duration|Registers Per|Achieved Occupancy|L1/TEX Hit|L2 Hit|Compute \(SM\)|Memory Throughput  " \
  $OUT/ncu_march.txt | cut -c1-110 | head -60
timeout 90 python benchmarks/pretrain_step.py --configs configs/pretrain/synthetic.yaml --embedding configs/embedding/synthetic_lite.yaml \
  --batch 8 --dtypes bf16 --warmup 3 --repeats 10 --profile 3 --color-mlp triton --out $OUT/head_pretrain.json 2>&1 | grep "step .* ms"
timeout 120 bash experiments/label_efficient/smoke_gpu.sh 2>&1 | grep SMOKE
