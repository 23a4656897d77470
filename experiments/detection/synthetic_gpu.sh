#!/usr/bin/env bash
# Detection fine-tuning on the 40-scene synthetic world from random init and from the NS-MAE
# checkpoint of experiments/pretrain/synthetic_gpu.sh (same machine, same $WORK), one GPU:
#   source .gpu/activate.sh && bash experiments/detection/synthetic_gpu.sh
# Network: configs/detection/bevfusion_128x352.yaml (paper embedding, CenterPoint head), bf16-mixed,
# 4 samples per step, EPOCHS epochs one-cycle; validation = devkit DetectionEval on the val scenes.
set -euo pipefail
OUT=${OUT:-/tmp/out}
WORK=${WORK:-/tmp/nsmae}
EPOCHS=${EPOCHS:-6}
CKPT=$(ls "$WORK"/pretrain/version_*/checkpoints/*.ckpt | tail -1)
for init in random nsmae; do
  pretrained=null; [ $init = nsmae ] && pretrained=$CKPT
  python -m nsmae_lightning fit --config configs/detection/bevfusion_128x352.yaml \
    --data.init_args.dataroot "$WORK/world40" --data.init_args.batch_size 4 --data.init_args.num_workers 12 \
    --trainer.devices 1 --trainer.strategy auto --trainer.precision bf16-mixed \
    --trainer.max_epochs "$EPOCHS" --trainer.check_val_every_n_epoch "$EPOCHS" --trainer.max_time 00:00:04:00 \
    --trainer.log_every_n_steps 10 --trainer.enable_progress_bar false \
    --model.init_args.pretrained "$pretrained" --model.init_args.lr 2.0e-4 \
    --trainer.default_root_dir "$WORK/det_$init" --trainer.logger.init_args.save_dir "$WORK/det_$init" \
    > "$WORK/det_$init.log" 2>&1 || { tail -60 "$WORK/det_$init.log"; exit 1; }
  grep -E "pretrained embedding|Time limit" "$WORK/det_$init.log" || true
  summary=$(ls "$WORK"/det_$init/version_*/nuscenes_eval/*/metrics_summary.json | tail -1)
  cp "$summary" "$OUT/metrics_summary_$init.json"
  cp "$(ls "$WORK"/det_$init/version_*/metrics.csv | tail -1)" "$OUT/metrics_$init.csv"
  python - "$summary" "$init" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]:7s} mAP {s['mean_ap']:.4f} NDS {s['nd_score']:.4f} " + " ".join(f"{k} {v:.3f}" for k, v in s['mean_dist_aps'].items()))
PY
done
