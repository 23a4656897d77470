# Twelfth session, call 8 (the session's last device minutes): the culled colour march
# (RenderConfig.color_cull = 1e-4: colour features and MLP only where the compositing weight exceeds it),
# eager, ours at 32 channels x 16,384 rays, then 8 channels x 131,072 rays; the volume is the render
# network's own from a random embedding (pretraining's start), its coloured fraction reported.
set -u
source .gpu/activate.sh
mkdir -p $OUT
cd benchmarks
R="python render_throughput.py --dtypes bf16 --warmup 3 --repeats 10 --kinds march,render --color-cull 1e-4"
OURS="--pairs trilinear_triton:packed_triton --color-mlps triton"
timeout 80 $R $OURS --rays 16384 --feature-channels 32 --out $OUT/cull_c32_r16384.json 2>&1 | tee $OUT/call8.log \
  | grep -E "^(march|render) |rror" | sort -u
timeout 80 $R $OURS --rays 131072 --feature-channels 8 --out $OUT/cull_c8_r131072.json 2>&1 | tee -a $OUT/call8.log \
  | grep -E "^(march|render) |rror" | sort -u
