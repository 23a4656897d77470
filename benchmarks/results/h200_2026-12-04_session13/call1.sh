# Thirteenth session, call 1 ran the twelfth session's prepared script unchanged, from the checkout root:
#   bash benchmarks/results/h200_2026-12-04_session12/next_call.sh
# (culled vs exact at 32 channels / 131,072 rays, whole pretraining steps with and without culling, the paper
# pretraining-step table, 256x704 culled); its eight JSON files are in call1/.
bash "$(dirname "$0")/../h200_2026-12-04_session12/next_call.sh"
