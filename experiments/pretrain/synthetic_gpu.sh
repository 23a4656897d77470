#!/usr/bin/env bash
# NS-MAE pretraining on a 40-scene synthetic world, one GPU, inside one device call:
#   source .gpu/activate.sh && bash experiments/pretrain/synthetic_gpu.sh   (OUT=<folder for results>)
# 1) smoke: the tiny configs through the real CLI on the GPU (pretrain, detection, segmentation);
# 2) world: 40 scenes x 10 keyframes, 9 sweeps, six 450x800 cameras, seed 0;
# 3) pretraining with the paper's 128x352 / 1-sweep network (configs/pretrain/nsmae_bevfusion_128x352.yaml),
#    bf16-mixed, 4 samples per step, for PRETRAIN_MINUTES; curves + render grids into $OUT.
set -euo pipefail
OUT=${OUT:-/tmp/out}
WORK=${WORK:-/tmp/nsmae}
MINUTES=${PRETRAIN_MINUTES:-5}
mkdir -p "$OUT" "$WORK"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python -m nsmae_lightning world --out "$WORK/tiny" --tiny > /dev/null
for task in pretrain detection segmentation; do
  python -m nsmae_lightning fit --config configs/$task/tiny.yaml --data.init_args.dataroot "$WORK/tiny" \
    --trainer.accelerator gpu --trainer.precision bf16-mixed --trainer.fast_dev_run 2 \
    --trainer.enable_progress_bar false --trainer.default_root_dir "$WORK/smoke_$task" > "$WORK/smoke_$task.log" 2>&1 \
    || { tail -40 "$WORK/smoke_$task.log"; exit 1; }
  echo "smoke $task ok"
done
start=$(date +%s)
python -m nsmae_lightning world --out "$WORK/world40" --scenes 40 --frames 10 --workers 16 --preview "$OUT/world_preview.png" | tail -2
echo "world: $(( $(date +%s) - start )) s"
python -m nsmae_lightning fit --config configs/pretrain/nsmae_bevfusion_128x352.yaml \
  --data.init_args.dataroot "$WORK/world40" --data.init_args.batch_size 4 --data.init_args.num_workers 12 \
  --trainer.devices 1 --trainer.strategy auto --trainer.precision bf16-mixed \
  --trainer.max_epochs 1000 --trainer.max_time "00:00:$(printf %02d "$MINUTES"):00" \
  --trainer.limit_val_batches 6 --trainer.log_every_n_steps 5 --trainer.enable_progress_bar false \
  --model.init_args.schedule constant --model.init_args.lr 2.0e-4 \
  --trainer.default_root_dir "$WORK/pretrain" --trainer.logger.init_args.save_dir "$WORK/pretrain" \
  > "$WORK/pretrain.log" 2>&1 || { tail -60 "$WORK/pretrain.log"; exit 1; }
tail -5 "$WORK/pretrain.log"
python -m nsmae_lightning curves "$WORK/pretrain" --out "$OUT/pretrain_curves.png"
cp "$(ls "$WORK"/pretrain/version_*/metrics.csv | tail -1)" "$OUT/pretrain_metrics.csv"
renders=$(ls "$WORK"/pretrain/version_*/renders/*.png | sort)
cp "$(echo "$renders" | head -1)" "$OUT/renders_first_epoch.png"
cp "$(echo "$renders" | tail -1)" "$OUT/renders_last_epoch.png"
ls -la "$WORK"/pretrain/version_*/checkpoints/
