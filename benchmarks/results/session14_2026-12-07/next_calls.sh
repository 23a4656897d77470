# Prepared for the next GPU session (the fourteenth session got no machine: ten tries over 90 minutes were
# refused or failed to start, and took its 30 device-minutes). Two device calls, each with carry [".gpu"],
# from the checkout root:
#  A (~7 min): call1.sh: the culled 32-channel render network at 12.3 M samples with this session's single
#     culled-sampler node and weight kernel against their predecessors (slices, torchweights), the sampler at
#     padded volume rows, the exact render network profiled, and the colour MLP's backward (HEAD, split, and
#     the thirteenth session's two kernel copies):
#       bash benchmarks/results/session14_2026-12-07/call1.sh
#     (it sources .gpu/activate.sh itself; everything comes back as $OUT/results.tgz plus the printed rows)
#  B (~9 min): the culled march's coloured fraction through a real one-GPU pretraining run (paper render
#     geometry), its metrics.csv, fraction.png and table.md into $OUT:
#       source .gpu/activate.sh && OUT=$OUT bash experiments/pretrain/colored_fraction_gpu.sh
# Record A in benchmarks/RESULTS.md (land nothing that is slower; a backward shape goes into
# color_mlp_triton._BACKWARD_TUNING only with HEAD's gradient error), B in
# experiments/pretrain/colored_fraction_h200_<date>/.
set -u
case "${1:-A}" in
  A) bash "$(dirname "$0")/call1.sh" ;;
  B) source .gpu/activate.sh && bash experiments/pretrain/colored_fraction_gpu.sh ;;
  *) echo "usage: next_calls.sh A|B" >&2; exit 2 ;;
esac
