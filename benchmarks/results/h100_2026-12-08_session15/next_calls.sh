# Prepared for the next GPU session (the fifteenth got one call through, call1.sh; four other starts failed
# and then new loans were paused). A machine goes back 30 s after a call, so each call below is whole; each
# with carry [".gpu"], from the checkout root, in this order:
#  1 (~8 min): call2.sh: RenderConfig.volume_row_bytes 32 against 0 in whole render calls (exact, culled)
#     and paper-config pretraining steps, then the sampler at 48-channel rows with the landed clamp:
#       bash benchmarks/results/h100_2026-12-08_session15/next_calls.sh 1
#  2 (~9 min): the culled march's coloured fraction through a real one-GPU pretraining run:
#       bash benchmarks/results/h100_2026-12-08_session15/next_calls.sh 2
#  3 (~8 min): call3.sh: z_pairs.patch (one-channel gradient blocks scattered as z pairs) and
#     compact_density.patch (the culled density pass from a compact copy of channel 0) against HEAD, then
#     the colour MLP's backward, HEAD (the same call's baseline) and the thirteenth session's two kernel copies
#     (ROWS=0 if call 1 found unpadded rows faster):
#       bash benchmarks/results/h100_2026-12-08_session15/next_calls.sh 3
# Record 1 and 3 in benchmarks/RESULTS.md; set volume_row_bytes: 32 (RenderConfig default or the GPU
# configs) only if whole render calls and steps are faster with it; apply z_pairs.patch / compact_density.patch
# only if call 3's rows are faster with it; 2 in
# experiments/pretrain/colored_fraction_<device>_<date>/.
set -u
case "${1:-1}" in
  1) bash "$(dirname "$0")/call2.sh" ;;
  2) source .gpu/activate.sh && bash experiments/pretrain/colored_fraction_gpu.sh ;;
  3) bash "$(dirname "$0")/call3.sh" ;;
  *) echo "usage: next_calls.sh 1|2|3" >&2; exit 2 ;;
esac
