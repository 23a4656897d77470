# Session 8, GPU call 3: is call 2's illegal address under ncu real? plain run, memcheck on a small case, ncu retry; smoke.
set -u
source .gpu/activate.sh
mkdir -p $OUT
python runs/ncu_target.py raster 16384 2>&1 | tail -8; echo "plain rc=$?"
which compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer
timeout 150 compute-sanitizer --tool memcheck --print-limit 5 python runs/ncu_target.py raster 256 > $OUT/memcheck.txt 2>&1; echo "memcheck rc=$?"; grep -E "ERROR SUMMARY|Invalid|at 0x|by thread|mlp backward best" $OUT/memcheck.txt | head -20
timeout 150 ncu --profile-from-start off --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats --section MemoryWorkloadAnalysis python runs/ncu_target.py raster 16384 > $OUT/ncu_march.txt 2>&1; echo "ncu rc=$?"
grep -E "mlp backward best|^  [_a-z].*\(|Duration|Registers Per|Achieved Occupancy|Memory Throughput|L1/TEX Hit|L2 Hit|Compute \(SM\)|DRAM Throughput|Warp Cycles Per Issued|rror" $OUT/ncu_march.txt | cut -c1-150 | head -120
timeout 150 bash experiments/label_efficient/smoke_gpu.sh 2>&1 | grep SMOKE
