#!/usr/bin/env bash
# Does pretraining learn as well with the culled colour march (RenderConfig.color_cull = 1e-4)?
# The demo's world and tiny pretraining (configs/pretrain/tiny.yaml, 8 epochs of 40 steps), validated
# every epoch on 2 batches, color_cull 0 (exact) vs 1e-4, seeds 0 and 1; each final checkpoint then
# validated on every val frame with the EXACT march (color_cull 0), so both are scored alike. CPU, 2 cores,
# ~10 minutes.
# Usage (repository root, after `make install`): bash experiments/pretrain/color_cull_cpu_2026-12-04/run.sh [WORK]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${1:-runs/color_cull_cpu}
world=$work/world
[ -f "$world/v1.0-trainval/sample.json" ] || .venv/bin/nsmae world --out "$world" --scenes 10 --frames 10 --seed 0 \
  --image-size 112 200 --sweeps 1 --set lidar_azimuth_resolution=0.6 val_fraction=0.2 --workers 2
for seed in 0 1; do
  for cull in 0.0 1.0e-4; do
    run=$work/cull${cull}_seed$seed
    [ -f "$run/exact_val/version_0/metrics.csv" ] && continue
    start=$(date +%s)
    .venv/bin/nsmae fit --config configs/pretrain/tiny.yaml --data.init_args.dataroot "$world" \
      --seed_everything $seed --model.init_args.render.color_cull $cull \
      --trainer.accelerator cpu --trainer.enable_progress_bar false --trainer.enable_model_summary false \
      --trainer.max_epochs 8 --trainer.check_val_every_n_epoch 1 --trainer.limit_val_batches 2 \
      --trainer.default_root_dir "$run" --trainer.logger.init_args.save_dir "$run" > "$run.log" 2>&1
    echo "cull $cull seed $seed: $(( $(date +%s) - start )) s of training"
    cp "$run/version_0/metrics.csv" "$here/metrics_cull${cull}_seed$seed.csv"
    checkpoint=$(ls "$run"/version_0/checkpoints/*.ckpt | tail -1)
    .venv/bin/nsmae validate --config configs/pretrain/tiny.yaml --data.init_args.dataroot "$world" \
      --model.init_args.render.color_cull 0.0 --ckpt_path "$checkpoint" \
      --trainer.accelerator cpu --trainer.enable_progress_bar false --trainer.enable_model_summary false \
      --trainer.default_root_dir "$run/exact_val" --trainer.logger.init_args.save_dir "$run/exact_val" \
      > "$run.validate.log" 2>&1
    cp "$run/exact_val/version_0/metrics.csv" "$here/exact_val_cull${cull}_seed$seed.csv"
  done
done
.venv/bin/python "$here/report.py" "$here"
