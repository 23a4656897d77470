#!/usr/bin/env bash
# How much colour does the culled march (RenderConfig.color_cull) leave out as pretraining proceeds?
# The demo's world and tiny pretraining (configs/pretrain/tiny.yaml) with color_cull 1e-4 for 24 epochs of 40
# steps, seeds 0 and 1, logging train/colored_fraction every step; then the coloured fraction at epsilons
# 1e-5..1e-2 on every val frame (colored_fraction.py) for the untrained network and each final checkpoint.
# Then the same pretraining with the exact march (color_cull 0), a checkpoint every 4 epochs, each checkpoint's
# fraction measured alike: whether the culled runs' fraction is culling's own doing. CPU, 2 cores, ~15 minutes.
# Usage (repository root, after `make install`): bash experiments/pretrain/colored_fraction_cpu_2026-12-04/run.sh [WORK]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${1:-runs/colored_fraction_cpu}
world=$work/world
[ -f "$world/v1.0-trainval/sample.json" ] || .venv/bin/nsmae world --out "$world" --scenes 10 --frames 10 --seed 0 \
  --image-size 112 200 --sweeps 1 --set lidar_azimuth_resolution=0.6 val_fraction=0.2 --workers 2
fraction() { .venv/bin/python "$here/colored_fraction.py" --config configs/pretrain/tiny.yaml --dataroot "$world" "$@"; }
for seed in 0 1; do
  [ -f "$here/fraction_untrained_seed$seed.json" ] || fraction --seed $seed --out "$here/fraction_untrained_seed$seed.json"
  run=$work/seed$seed
  if [ ! -f "$here/metrics_seed$seed.csv" ]; then
    start=$(date +%s)
    .venv/bin/nsmae fit --config configs/pretrain/tiny.yaml --data.init_args.dataroot "$world" \
      --seed_everything $seed --model.init_args.render.color_cull 1.0e-4 \
      --trainer.accelerator cpu --trainer.enable_progress_bar false --trainer.enable_model_summary false \
      --trainer.max_epochs 24 --trainer.check_val_every_n_epoch 4 --trainer.limit_val_batches 2 \
      --trainer.default_root_dir "$run" --trainer.logger.init_args.save_dir "$run" > "$run.log" 2>&1
    echo "seed $seed: $(( $(date +%s) - start )) s of training"
    cp "$run/version_0/metrics.csv" "$here/metrics_seed$seed.csv"
  fi
  checkpoint=$(ls "$run"/version_0/checkpoints/*.ckpt | tail -1)
  fraction --seed $seed --checkpoint "$checkpoint" --out "$here/fraction_trained_seed$seed.json"
done
for seed in 0 1; do
  run=$work/exact_seed$seed
  if [ ! -f "$here/metrics_exact_seed$seed.csv" ]; then
    .venv/bin/nsmae fit --config configs/pretrain/tiny.yaml --data.init_args.dataroot "$world" \
      --seed_everything $seed --model.init_args.render.color_cull 0.0 \
      --trainer.accelerator cpu --trainer.enable_progress_bar false --trainer.enable_model_summary false \
      --trainer.max_epochs 24 --trainer.check_val_every_n_epoch 4 --trainer.limit_val_batches 2 \
      --trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint --trainer.callbacks.every_n_epochs 4 \
      --trainer.callbacks.save_top_k -1 \
      --trainer.default_root_dir "$run" --trainer.logger.init_args.save_dir "$run" > "$run.log" 2>&1
    cp "$run/version_0/metrics.csv" "$here/metrics_exact_seed$seed.csv"
  fi
  for checkpoint in "$run"/version_0/checkpoints/epoch=*.ckpt; do
    step=$(basename "$checkpoint" .ckpt | sed 's/.*step=//')
    out=$here/fraction_exact_seed${seed}_step$step.json
    [ -f "$out" ] || fraction --seed $seed --checkpoint "$checkpoint" --out "$out"
  done
done
.venv/bin/python "$here/report.py" "$here"
