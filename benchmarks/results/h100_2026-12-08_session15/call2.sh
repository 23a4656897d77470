# Fifteenth session, call 2 (one GPU, carry [".gpu"], from the checkout root; ~8 min, cut where the call's time ends): the render network's
# volume with rows padded to 32 bytes (RenderConfig.volume_row_bytes 32: 33 bf16 channels in rows of 48),
# which call 1 (call1.sh) suggested: the sampler alone read 48-channel rows in 1.53 GPU ms against 3.89
# for 33-channel ones at 12.3 M samples (H100). Most wanted first; $OUT/results.tgz rewritten after every step.
# Since the sixteenth session the padding leads each row and the sampler reads the features from channel 1
# (`trilinear_triton.aligned_features`): compiled for sm_90 a culled march's feature pass then takes 16
# 16-byte loads a tile instead of 128 two-byte ones (56 registers instead of 211; triton_compile_check.py
# --kernels sampler --shift); the whole-volume read is the aligned one of padding after the channels.
# (1) the render network at 32 channels, 131,072 rays (12.3 M samples), exact, rows 0 / 32 bytes, profiled;
# (2) the same culled (color_cull 1e-4);
# (3) one-GPU pretraining steps of the 256x704 paper config, bf16, batch 2, rows 0 / 32;
# (4) the sampler alone at 48-channel rows with the clamp (sampler_clamped.patch, landed after call 1: 16-byte
#     loads at such rows; call 1 timed these rows without it).
source benchmarks/results/h100_2026-12-08_session15/prelude.sh /tmp/call2
R="python render_throughput.py --dtypes bf16 --warmup 3 --repeats 10 --kinds render --pairs trilinear_triton:packed_triton --color-mlps triton --rays 131072 --feature-channels 32 --profile 3 --top 12"
run head exact_rows0 $R --volume-row-bytes 0
run head exact_rows32 $R --volume-row-bytes 32
run head cull_rows32 $R --volume-row-bytes 32 --color-cull 1e-4
run head cull_rows0 $R --volume-row-bytes 0 --color-cull 1e-4
P="python benchmarks/pretrain_step.py --dtypes bf16 --warmup 3 --repeats 10 --configs configs/pretrain/nsmae_bevfusion_256x704.yaml --batch 2"
for rows in 0 32; do
  timeout 120 $P --volume-row-bytes $rows --out $W/pretrain_rows${rows}_1.json 2>&1 | grep -E "step |rror"; snap
done

S="python render_throughput.py --dtypes bf16 --warmup 3 --repeats 10 --kinds sampler --samplers trilinear_triton --rays 131072 --profile 3 --top 6"
run head sampler_c32_pad15 $S --feature-channels 32 --row-pad 15
