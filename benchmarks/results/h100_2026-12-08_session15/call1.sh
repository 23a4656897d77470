# Fifteenth session: the fourteenth session's calls A and C in one device call (the device lets a machine go
# after 30 idle seconds, and a fresh start costs minutes): A (call1.sh) capped at 390 s, then C
# (call_mlp.sh) in what is left. From the checkout root, carry [".gpu"]; results under $OUT/A and $OUT/C
# (each a results.tgz rewritten after every step).
set -u
S14=benchmarks/results/session14_2026-12-07  # the fourteenth session's scripts
OUT=$OUT/A timeout -k 5 390 bash $S14/call1.sh
echo "== call A ended (rc $?) at ${SECONDS}s"
OUT=$OUT/C timeout -k 5 190 bash $S14/call_mlp.sh
echo "== call C ended (rc $?) at ${SECONDS}s"
