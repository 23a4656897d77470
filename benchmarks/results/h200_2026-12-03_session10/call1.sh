# Next GPU session, call 1 (after prepare_next.sh; carry .gpu and runs): (1) the render rows with the
# embedding as BEVDecoder returns it (default) and as before (nchw-fp32), profiled; (2) the sampler along
# rays as points first (runs/points) against HEAD: sampler and render rows, two rounds alternating;
# (3) ncu of one march step's Triton kernels on the Triton render path (sampler fwd / bwd, MLP fwd / bwd,
# compositor, join); (4) the pretraining and detection steps, one round. ~8 minutes.
set -u
source .gpu/activate.sh
mkdir -p $OUT
for embedding in decoder nchw-fp32; do
  (cd benchmarks && timeout 120 python render_throughput.py --dtypes bf16 --kinds render --samplers trilinear_triton \
    --pairs auto:auto --color-mlps triton --embedding $embedding --warmup 5 --repeats 30 --profile 3 --top 40 \
    --out $OUT/render_$embedding.json) 2>&1 | grep -E "^render " | sed "s/^/$embedding /"
done
KINDS=sampler,render EXTRA="--samplers trilinear_triton --profile 3 --top 40" OUT=$OUT/points_ab \
  timeout 300 bash benchmarks/render_ab.sh runs/points 2 | sed "s/^base/points/"
timeout 200 ncu --profile-from-start off --kernel-name "regex:^_(forward|backward|join|count|list)_kernel" \
  --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats --section MemoryWorkloadAnalysis \
  python runs/ncu_target.py raster 16384 > $OUT/ncu_march.txt 2>&1
echo "ncu rc=$?"; grep -E "^  _.*\(|Duration|Registers Per|Achieved Occupancy|L1/TEX Hit|L2 Hit|Compute \(SM\)" \
  $OUT/ncu_march.txt | cut -c1-110 | head -80
P="--embedding configs/embedding/synthetic_lite.yaml --batch 8 --dtypes bf16 --warmup 3 --repeats 10 --profile 3"
for round in 1; do
  timeout 90 python benchmarks/pretrain_step.py --configs configs/pretrain/synthetic.yaml $P --color-mlp triton \
    --out $OUT/pretrain_$round.json 2>&1 | grep "step .* ms"
  timeout 90 python benchmarks/task_step.py --configs configs/detection/synthetic.yaml $P --out $OUT/detection_$round.json \
    2>&1 | grep " train .* ms"
done
