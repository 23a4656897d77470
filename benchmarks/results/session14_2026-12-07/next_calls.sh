# Prepared for the next GPU session (the fourteenth session got no machine: ten tries over 90 minutes were
# refused or failed to start, and took its 30 device-minutes). Three device calls, each with carry [".gpu"],
# from the checkout root, in this order:
#  A (~6 min): call1.sh: the culled 32-channel render network at 12.3 M samples with this session's single
#     culled-sampler node and weight kernel against their predecessors (slices, torchweights); the sampler
#     at padded volume rows with HEAD and sampler_clamped.patch; the exact render network, both, profiled:
#       bash benchmarks/results/session14_2026-12-07/next_calls.sh A
#     (it sources .gpu/activate.sh itself; everything comes back as $OUT/results.tgz plus the printed rows)
#  B (~9 min): the culled march's coloured fraction through a real one-GPU pretraining run (paper render
#     geometry), its metrics.csv, fraction.png and table.md into $OUT:
#       bash benchmarks/results/session14_2026-12-07/next_calls.sh B
#  C (~4 min): call_mlp.sh: the colour MLP's backward, HEAD, split in two launches, and two kernel copies:
#       bash benchmarks/results/session14_2026-12-07/next_calls.sh C
# Record A and C in benchmarks/RESULTS.md (land sampler_clamped.patch only if the 33-channel rows are no
# slower with it; revert a culled change that measures slower; a backward shape goes into
# color_mlp_triton._BACKWARD_TUNING only with HEAD's gradient error), B in
# experiments/pretrain/colored_fraction_<device>_<date>/.
set -u
case "${1:-A}" in
  A) bash "$(dirname "$0")/call1.sh" ;;
  B) source .gpu/activate.sh && bash experiments/pretrain/colored_fraction_gpu.sh ;;
  C) bash "$(dirname "$0")/call_mlp.sh" ;;
  *) echo "usage: next_calls.sh A|B|C" >&2; exit 2 ;;
esac
