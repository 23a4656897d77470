# Fifteenth session, for the next GPU session (one GPU, carry [".gpu"], from the checkout root; ~6 min):
# (1) z_pairs.patch against HEAD: the sampler's one-channel gradient blocks (the culled march's density pass,
#     depth-only renders, the last of 33 channels) scattered as z pairs, one 8-byte add per (x, y) corner
#     instead of two 4-byte ones (compiled for sm_90 with triton 3.9.0: a vector add only where a tile gives a
#     thread two elements, 128 x 4 and 256 x 8; the interpreter tests pass with it): the sampler alone at 33
#     channels and the culled render network, 12.3 M samples, profiled; land it only if both are faster;
# (2) the colour MLP's backward, HEAD and the thirteenth session's two kernel copies (session 14's call_mlp.sh).
source benchmarks/results/h100_2026-12-08_session15/prelude.sh /tmp/call3
HERE=benchmarks/results/h100_2026-12-08_session15
rm -rf runs/zpairs && mkdir -p runs/zpairs && cp -r nsmae_lightning runs/zpairs/
(cd runs/zpairs && patch -p1 -s < ../../$HERE/z_pairs.patch) || echo "patch z_pairs failed"
S="python render_throughput.py --dtypes bf16 --warmup 3 --repeats 10 --kinds sampler --samplers trilinear_triton --rays 131072 --feature-channels 32 --profile 3 --top 6"
R="python render_throughput.py --dtypes bf16 --warmup 3 --repeats 10 --kinds render --pairs trilinear_triton:packed_triton --color-mlps triton --rays 131072 --feature-channels 32 --color-cull 1e-4 --profile 3 --top 12"
for v in head zpairs; do run $v sampler_$v $S; done
for v in zpairs head; do run $v cull_$v $R; done
OUT=$OUT/mlp timeout -k 5 250 bash $S14/call_mlp.sh
