#!/usr/bin/env bash
# Same-call A/B of the render rows: a base checkout (e.g. `git archive <commit>` unpacked into an
# ignored folder such as runs/ab_base, taken along with `carry`) against this one, alternating so
# both see the same machine state; the wall times of separate calls differ by ~15 %.
#   source .gpu/activate.sh && bash benchmarks/render_ab.sh runs/ab_base [ROUNDS]
# EXTRA="--rays 64 --grid 24 --warmup 0 --repeats 1" MLP=torch PYTHON=$PWD/.venv/bin/python
# rehearses it on a CPU.
# Writes $OUT/{base,head}/render_<round>.json (OUT defaults to runs/render_ab) and prints each row.
set -euo pipefail
BASE=$(cd "$1" && pwd)
ROUNDS=${2:-3}
OUT=${OUT:-runs/render_ab}
OUT=$(mkdir -p "$OUT" && cd "$OUT" && pwd)
HEAD=$(pwd)
ARGS=(--dtypes bf16 --kinds "${KINDS:-march,render}" --color-mlps "${MLP:-triton}" --pairs auto:auto --warmup 5 --repeats 30 ${EXTRA:-})
for round in $(seq "$ROUNDS"); do
  for side in base head; do
    root=$([ "$side" = base ] && echo "$BASE" || echo "$HEAD")
    (cd "$root/benchmarks" && PYTHONPATH="$root:${PYTHONPATH:-}" "${PYTHON:-python}" render_throughput.py "${ARGS[@]}" \
       --out "$OUT/$side/render_$round.json") | grep -E "^(sampler|march|render) " | awk '!seen[$0]++' | sed "s/^/$side $round  /"
  done
done
