#!/usr/bin/env bash
# One-minute check before the long run: the synthetic configs (pretrain, detection, segmentation)
# through the real CLI on a tiny world, two steps each (fast_dev_run), all three at once.
#   source .gpu/activate.sh && bash experiments/label_efficient/smoke_gpu.sh     (ACCEL=cpu PRECISION=32-true on a CPU)
set -uo pipefail
ACCEL=${ACCEL:-gpu}
PRECISION=${PRECISION:-bf16-mixed}
SUFFIX=${SUFFIX:-synthetic}
SMOKE=${SMOKE:-/tmp/nsmae_smoke}
mkdir -p "$SMOKE"
python -m nsmae_lightning world --out "$SMOKE/world" --tiny > "$SMOKE/world.log" 2>&1 || { tail "$SMOKE/world.log"; exit 1; }
pids=()
for task in pretrain detection segmentation; do
  python -m nsmae_lightning fit --config "configs/$task/$SUFFIX.yaml" --data.init_args.dataroot "$SMOKE/world" \
    --trainer.accelerator "$ACCEL" --trainer.precision "$PRECISION" --trainer.fast_dev_run 2 \
    --data.init_args.num_workers 2 --data.init_args.batch_size 2 --trainer.enable_progress_bar false \
    --trainer.default_root_dir "$SMOKE/$task" --trainer.logger.init_args.save_dir "$SMOKE/$task" \
    > "$SMOKE/$task.log" 2>&1 &
  pids+=($!)
done
status=0
for index in 0 1 2; do
  task=$(echo pretrain detection segmentation | cut -d' ' -f$((index + 1)))
  if wait "${pids[$index]}"; then echo "SMOKE $task ok"; else echo "SMOKE $task FAILED"; tail -30 "$SMOKE/$task.log"; status=1; fi
done
exit $status
