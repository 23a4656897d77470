#!/usr/bin/env bash
# Pack what the detached run_gpu.sh has produced so far into $OUT (the device call's return folder):
# results.tar.gz (results/, every run's metrics.csv, config, label split, devkit summary, last BEV plot;
# no checkpoints) plus the table, plot and curves as loose files; prints the logs' tails.
WORK=${WORK:-/tmp/nsmae}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
cd "$WORK/src" 2>/dev/null || { echo "no $WORK/src yet"; exit 0; }
# BEV plots: the newest of each (task folder, init) pair, so both inits' predictions come back
runs=$(find runs -name metrics.csv -o -name results.csv -o -name config.yaml -o -name label_split.json -o -name metrics_summary.json \
         -o -name 'run.log' -o -name hparams.yaml 2>/dev/null
       for init in $(find runs -path '*/bev/*.png' 2>/dev/null | sed -E 's#/r[^/]+/s[0-9]+/.*##' | sort -u); do
         find "$init" -path '*/bev/*.png' | sort | tail -1
       done)
# shellcheck disable=SC2086
tar czf "$OUT/results.tar.gz" -C "$WORK" results $(cd "$WORK" && for f in $runs; do echo "src/$f"; done) 2>/dev/null
for name in results.md results.png pretrain_curves.png world_preview.png; do
  [ -f "$WORK/results/$name" ] && cp "$WORK/results/$name" "$OUT/"
done
ls -la "$OUT"
echo "--- pipeline.log"; tail -25 "$WORK/pipeline.log" 2>/dev/null
echo "--- sweep.log"; grep -v '^\s*$' "$WORK/results/sweep.log" 2>/dev/null | tail -15
for table in "$WORK"/results/*/results.md; do
  [ -f "$table" ] && { echo "--- $table"; cat "$table"; }
done
