# Fifteenth session (remade in the sixteenth), for the next GPU session (one GPU, carry [".gpu"], from the
# checkout root; ~9.5 min at most). ROWS: the volume_row_bytes that call 2 found faster (default 32).
# (1) patches against HEAD, each landed only if its rows are faster:
#     z_pairs.patch: the sampler's one-channel gradient blocks (the culled march's density pass, depth-only
#     renders, the density of whole reads) scattered as z pairs, one 8-byte add per (x, y) corner instead of
#     two 4-byte ones (compiled for sm_90 with triton 3.9.0: a vector add only where a tile gives a thread two
#     elements, 128 x 4 and 256 x 8; the interpreter tests pass with it);
#     compact_density.patch (sixteenth session): the culled march's density pass reads a contiguous
#     copy of channel 0 (5 MB at the paper's size, L2-resident; one strided copy of the volume's first sector
#     of each row) instead of the volume's rows (a 32-byte sector a density);
#     the culled render network, 12.3 M samples, profiled, for HEAD, each patch and both (<= 100 s each);
# (2) the colour MLP's backward at 1.536 M rows, HEAD and the thirteenth session's two kernel copies
#     (mlp_transposed / mlp_inloop .patch; session 14's call_mlp.sh without its split rows, which the
#     fifteenth session ran), as far as the call's time goes.
source benchmarks/results/h100_2026-12-08_session15/prelude.sh /tmp/call3
HERE=benchmarks/results/h100_2026-12-08_session15
ROWS=${ROWS:-32}
variant() {  # name, patches...: runs/<name>/nsmae_lightning with the patches applied
  local name=$1; shift
  rm -rf runs/$name && mkdir -p runs/$name && cp -r nsmae_lightning runs/$name/
  for p in "$@"; do (cd runs/$name && patch -p1 -s < ../../$HERE/$p) || echo "patch $p failed for $name"; done
}
variant zpairs z_pairs.patch
variant compact compact_density.patch
variant both z_pairs.patch compact_density.patch
R="python render_throughput.py --dtypes bf16 --warmup 3 --repeats 10 --kinds render --pairs trilinear_triton:packed_triton --color-mlps triton --rays 131072 --feature-channels 32 --color-cull 1e-4 --volume-row-bytes $ROWS --profile 3 --top 12"
for v in both head compact zpairs; do run $v cull_rows${ROWS}_$v $R; done
S13=benchmarks/results/h200_2026-12-04_session13
variant transposed ../../../$S13/mlp_transposed.patch
variant inloop ../../../$S13/mlp_inloop.patch
M="python benchmarks/color_mlp_backward.py --rows 1536000 --features 32 --timeout 40"
for v in head transposed inloop; do
  path=$PWD; [ $v != head ] && path=$PWD/runs/$v
  PYTHONPATH=$path:${PYTHONPATH:-} timeout 60 $M --shapes tuned,32x2x4,32x4x2 --out $W/mlp_$v.json 2>&1 \
    | sed "s/^/$v /" | cut -c1-160; snap
done
