# Session 9, GPU call 3: a second round of call 2's render A/B (6ff4610 vs the candidate), and ncu of every
# Triton-named kernel of one march step (call 2's ncu listed one launch per kernel name: which ones ran?).
set -u
source .gpu/activate.sh
mkdir -p $OUT
KINDS=sampler,march,render EXTRA="--samplers trilinear_triton --ray-order raster --profile 3 --top 40" OUT=$OUT/ab \
  timeout 240 bash benchmarks/render_ab.sh runs/ab_base 1
timeout 150 ncu --profile-from-start off --kernel-name regex:^_ --launch-count 40 --section SpeedOfLight --section LaunchStats \
  --section Occupancy python runs/ncu_target.py raster 16384 > $OUT/ncu_march_all.txt 2>&1
echo "ncu rc=$?"; grep -E "^==PROF==|^  [^ ].*\(.*\)x\(|Duration|Registers Per|Achieved Occupancy" $OUT/ncu_march_all.txt | cut -c1-110 | head -90
