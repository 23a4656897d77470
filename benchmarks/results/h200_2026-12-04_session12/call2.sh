# Twelfth session, call 2: how the render network's wall scales with samples per call once the host's
# launches are out (--cuda-graph), at 32 / 16 / 8 feature channels, 65,536 and 131,072 rays per element
# (ours: Triton sampler, packed Triton march, Triton MLP; bf16; march and render rows).
set -u
source .gpu/activate.sh
mkdir -p $OUT
cd benchmarks
R="python render_throughput.py --dtypes bf16 --warmup 5 --repeats 20 --kinds march,render --cuda-graph"
OURS="--pairs trilinear_triton:packed_triton --color-mlps triton"
for channels in 32 16 8; do
  for rays in 65536 131072; do
    name=c${channels}_r${rays}
    timeout 100 $R $OURS --rays $rays --feature-channels $channels --out $OUT/$name.json 2>&1 | tee -a $OUT/call2.log \
      | grep -E "^(march|render) |rror" | sed "s/^/$name /" | sort -u
  done
done
