# Twelfth session, call 1: the render network's wall with the host's launches taken out (--cuda-graph:
# the forward + backward captured once, replayed per call) beside eager calls, for ours (Triton sampler,
# packed Triton march, Triton MLP) at 512 / 16,384 / 65,536 rays per element and the naive renderer
# (grid_sample, dense march, torch MLP) at 16,384 rays; 32 feature channels, bf16, march and render rows.
set -u
source .gpu/activate.sh
mkdir -p $OUT
python -c "import triton, torch; print('triton', triton.__version__, 'torch', torch.__version__)"
cd benchmarks
R="python render_throughput.py --dtypes bf16 --warmup 5 --repeats 30 --kinds march,render"
OURS="--pairs trilinear_triton:packed_triton --color-mlps triton"
NAIVE="--pairs grid_sample:dense --color-mlps torch"
for rays in 512 16384 65536; do
  timeout 100 $R $OURS --rays $rays --out $OUT/ours_r${rays}_eager.json 2>&1 | tee $OUT/ours_r${rays}_eager.log | grep -E "^(march|render) |rror" | sed "s/^/ours_r${rays}_eager /"
  timeout 100 $R $OURS --rays $rays --cuda-graph --out $OUT/ours_r${rays}_graph.json 2>&1 | tee $OUT/ours_r${rays}_graph.log | grep -E "^(march|render) |rror|Error" | sed "s/^/ours_r${rays}_graph /"
done
timeout 100 $R $NAIVE --cuda-graph --out $OUT/naive_r16384_graph.json 2>&1 | tee $OUT/naive_r16384_graph.log | grep -E "^(march|render) |rror" | sed "s/^/naive_r16384_graph /"
