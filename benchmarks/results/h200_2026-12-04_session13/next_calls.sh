# Prepared for the next GPU session (the thirteenth session's call 2 lost its machine; nothing of it came back).
# Two device calls, each with carry [".gpu"], from the checkout root:
#  A (~5 min): the colour MLP's backward at wgmma-sized launch shapes for HEAD and two kernel copies, and a
#     profile of the culled 32-channel render network at 12.3 M samples:
#       source .gpu/activate.sh && bash benchmarks/results/h200_2026-12-04_session13/call2.sh
#  B (~9 min): the culled march's coloured fraction through a real one-GPU pretraining run (paper render
#     geometry), its metrics.csv, fraction.png and table.md into $OUT:
#       source .gpu/activate.sh && OUT=$OUT bash experiments/pretrain/colored_fraction_gpu.sh
# Record A in benchmarks/RESULTS.md (a faster backward shape goes into color_mlp_triton._BACKWARD_TUNING only
# with its gradient error equal to HEAD's), B in experiments/pretrain/colored_fraction_h200_<date>/.
set -u
case "${1:-A}" in
  A) bash "$(dirname "$0")/call2.sh" ;;
  B) source .gpu/activate.sh && bash experiments/pretrain/colored_fraction_gpu.sh ;;
  *) echo "usage: next_calls.sh A|B" >&2; exit 2 ;;
esac
