#!/usr/bin/env bash
# One-minute check before the long run: the synthetic configs (pretrain, detection, segmentation)
# through the real CLI on a tiny world, two steps each (fast_dev_run), all at once; pretraining
# also under fp16 with a gradient scaler (FP16=0 skips it; CPUs have no fp16 spconv).
#   source .gpu/activate.sh && bash experiments/label_efficient/smoke_gpu.sh     (on a CPU: ACCEL=cpu PRECISION=32-true FP16=0 SUFFIX=tiny, ~1 min on 2 cores; the synthetic configs take minutes there)
set -uo pipefail
ACCEL=${ACCEL:-gpu}
PRECISION=${PRECISION:-bf16-mixed}
SUFFIX=${SUFFIX:-synthetic}
SMOKE=${SMOKE:-/tmp/nsmae_smoke}
FP16=${FP16:-1}
mkdir -p "$SMOKE"
python -m nsmae_lightning world --out "$SMOKE/world" --tiny > "$SMOKE/world.log" 2>&1 || { tail "$SMOKE/world.log"; exit 1; }
jobs=("pretrain $PRECISION" "detection $PRECISION" "segmentation $PRECISION")
[ "$FP16" = 1 ] && jobs+=("pretrain 16-mixed")
pids=()
for job in "${jobs[@]}"; do
  read -r task precision <<< "$job"
  name="${task}_${precision}"
  python -m nsmae_lightning fit --config "configs/$task/$SUFFIX.yaml" --data.init_args.dataroot "$SMOKE/world" \
    --trainer.accelerator "$ACCEL" --trainer.precision "$precision" --trainer.fast_dev_run 2 \
    --data.init_args.num_workers 2 --data.init_args.batch_size 2 --trainer.enable_progress_bar false \
    --trainer.default_root_dir "$SMOKE/$name" --trainer.logger.init_args.save_dir "$SMOKE/$name" \
    > "$SMOKE/$name.log" 2>&1 &
  pids+=($!)
done
status=0
for index in "${!jobs[@]}"; do
  if wait "${pids[$index]}"; then echo "SMOKE ${jobs[$index]} ok"; else
    echo "SMOKE ${jobs[$index]} FAILED"; tail -30 "$SMOKE/$(echo "${jobs[$index]}" | tr ' ' _).log"; status=1; fi
done
exit $status
