# Eleventh session, call 2: cProfile of the render step's host time at 512 rays (GPU ~1.5 ms, wall ~5.3 ms:
# host-bound), ours (Triton sampler, packed Triton march, Triton MLP), render network and march apart.
set -u
source .gpu/activate.sh
mkdir -p $OUT
P="python benchmarks/results/h200_2026-12-03_session11/host_profile.py"
A="--dtypes bf16 --warmup 5 --repeats 50 --pairs trilinear_triton:packed_triton --color-mlps triton --rays 512"
timeout 120 $P $OUT/host_render.txt $A --kinds render --out $OUT/render.json 2>&1 | grep -E "^render |rror"
timeout 120 $P $OUT/host_march.txt $A --kinds march --out $OUT/march.json 2>&1 | grep -E "^march |rror"
