# Session 8, GPU call 1: colour-MLP backward ablations and configs, ray order random vs raster, registers, ncu if present.
set -u
source .gpu/activate.sh
mkdir -p $OUT
nvidia-smi -L; which ncu nsys 2>&1 | head -3; ls /usr/local/cuda*/bin 2>/dev/null | grep -E "ncu|nsys" | head
python runs/mlp_ablate.py 2>&1 | grep -v Warn | tee $OUT/mlp_ablate.txt | cut -c1-220
for order in random raster; do
  (cd benchmarks && python render_throughput.py --dtypes bf16 --kinds sampler,march,render --samplers trilinear_triton --pairs auto:auto --color-mlps triton --ray-order $order --warmup 3 --repeats 10 --profile 3 --top 40 --out $OUT/render_$order.json) 2>&1 | grep -E "^(sampler|march|render) " | awk '!seen[$0]++'
done
if which ncu >/dev/null 2>&1; then
  (cd benchmarks && timeout 150 ncu --kernel-name _backward_kernel --launch-skip 30 --launch-count 1 --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats python render_throughput.py --dtypes bf16 --kinds mlp --color-mlps triton --warmup 3 --repeats 3 --out /tmp/x.json) > $OUT/ncu_mlp.txt 2>&1; tail -80 $OUT/ncu_mlp.txt
fi
