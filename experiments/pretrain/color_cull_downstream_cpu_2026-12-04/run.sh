#!/usr/bin/env bash
# Does pretraining with the culled colour march (RenderConfig.color_cull 1e-4) fine-tune as well as the exact
# march's? The four pretraining runs of ../color_cull_cpu_2026-12-04 (demo world, tiny config, 8 epochs,
# exact / culled x pretraining seeds 0 / 1; made there if absent, ~5 min) hand their weights to the demo's
# fine-tuning (tiny detection + segmentation, 4 epochs) at 25 % and 100 % labels, fine-tuning seed 0, beside
# random init: one `nsmae sweep`, 20 runs. CPU, 2 cores, ~15 minutes.
# Usage (repository root, after `make install`): bash experiments/pretrain/color_cull_downstream_cpu_2026-12-04/run.sh [WORK]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${1:-runs/color_cull_downstream_cpu}
pretrain=$work/pretrain
bash "$here/../color_cull_cpu_2026-12-04/run.sh" "$pretrain" > "$work.pretrain.log" 2>&1 || { tail -20 "$work.pretrain.log"; exit 1; }
mkdir -p "$work"
cat > "$work/spec.yaml" <<YAML
out: $work/sweep
tasks:
  detection: {config: configs/detection/tiny.yaml}
  segmentation: {config: configs/segmentation/tiny.yaml}
inits:
  random: null
  exact_p0: $pretrain/cull0.0_seed0/version_0
  culled_p0: $pretrain/cull1.0e-4_seed0/version_0
  exact_p1: $pretrain/cull0.0_seed1/version_0
  culled_p1: $pretrain/cull1.0e-4_seed1/version_0
ratios: [0.25, 1.0]
seeds: [0]
overrides:
  data.init_args.dataroot: $pretrain/world
  trainer.accelerator: cpu
  trainer.enable_progress_bar: false
  trainer.enable_model_summary: false
  trainer.max_epochs: 4
  trainer.check_val_every_n_epoch: 4
YAML
.venv/bin/nsmae sweep "$work/spec.yaml"
cp "$work/sweep/results.csv" "$work/sweep/results.md" "$work/sweep/per_class.md" "$here/"
cp "$work/spec.yaml" "$here/spec_as_run.yaml"
cp "$work/sweep/results.png" "$here/" 2>/dev/null || true
