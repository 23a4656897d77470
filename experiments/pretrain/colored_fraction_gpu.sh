#!/usr/bin/env bash
# The culled colour march's coloured fraction through a real one-GPU pretraining run (the paper's render
# geometry: 180 x 180 x 40 voxels over 54 m): the GPU twin of colored_fraction_cpu_2026-12-04, whose
# miniature went from 0.8 to ~1.0 coloured once its volume took shape. Inside one device call (~9 min):
#   source .gpu/activate.sh && OUT=$OUT bash experiments/pretrain/colored_fraction_gpu.sh
# 1) a 30-scene world (10 keyframes, six 225 x 400 cameras, 1 sweep), cast on the CPUs;
# 2) configs/pretrain/synthetic.yaml (paper render geometry, one-GPU network), bf16, batch 8,
#    render.color_cull 1e-4, for PRETRAIN_MINUTES (default 5), train/colored_fraction logged every 5 steps;
# 3) metrics.csv, fraction.png and table.md (colored_fraction_cpu_2026-12-04/report.py) into $OUT.
# CPU rehearsal (a minute): ACCEL=cpu PRECISION=32-true SCENES=3 IMAGE="64 112" CONFIG=configs/pretrain/tiny.yaml \
#   MAX_TIME=00:00:00:40 WORKERS=2 OUT=/tmp/cf_out WORK=/tmp/cf_work bash experiments/pretrain/colored_fraction_gpu.sh
set -euo pipefail
OUT=${OUT:-/tmp/out}
WORK=${WORK:-/tmp/nsmae}
MAX_TIME=${MAX_TIME:-00:00:$(printf %02d "${PRETRAIN_MINUTES:-5}"):00}
ACCEL=${ACCEL:-gpu}
PRECISION=${PRECISION:-bf16-mixed}
SCENES=${SCENES:-30}
IMAGE=${IMAGE:-225 400}
CONFIG=${CONFIG:-configs/pretrain/synthetic.yaml}
WORKERS=${WORKERS:-16}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT" "$WORK"
start=$(date +%s)
# shellcheck disable=SC2086  # IMAGE is two numbers
python -m nsmae_lightning world --out "$WORK/world" --scenes "$SCENES" --frames 10 --image-size $IMAGE --sweeps 1 \
  --workers "$WORKERS" | tail -1
echo "world: $(( $(date +%s) - start )) s"
python -m nsmae_lightning fit --config "$CONFIG" \
  --data.init_args.dataroot "$WORK/world" --data.init_args.num_workers "$(( WORKERS < 12 ? WORKERS : 12 ))" \
  --trainer.accelerator "$ACCEL" --trainer.devices 1 --trainer.precision "$PRECISION" \
  --trainer.max_epochs 1000 --trainer.max_time "$MAX_TIME" \
  --trainer.limit_val_batches 4 --trainer.log_every_n_steps 5 --trainer.enable_progress_bar false \
  --model.init_args.render.color_cull 1.0e-4 \
  --trainer.default_root_dir "$WORK/pretrain" --trainer.logger.init_args.save_dir "$WORK/pretrain" \
  > "$WORK/pretrain.log" 2>&1 || { tail -60 "$WORK/pretrain.log"; exit 1; }
tail -3 "$WORK/pretrain.log"
cp "$(ls "$WORK"/pretrain/version_*/metrics.csv | tail -1)" "$OUT/metrics_seed0.csv"
python "$here/colored_fraction_cpu_2026-12-04/report.py" "$OUT"
