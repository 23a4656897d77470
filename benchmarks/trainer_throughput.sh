#!/usr/bin/env bash
# Pretraining throughput through the real CLI (`nsmae fit`: data loading, logging, gradient clipping and
# the optimizer included), where benchmarks/pretrain_step.py times the step alone on a fixed batch:
#   source .gpu/activate.sh && bash benchmarks/trainer_throughput.sh NAME="extra CLI args" ...
# e.g.  bash benchmarks/trainer_throughput.sh default= triton_mlp="--model.init_args.render.color_mlp triton"
# Each NAME runs configs/pretrain/synthetic.yaml (+ EMBEDDING) for STEPS steps without validation, with the
# Throughput callback (median step time from one step's end to the next, after WARMUP steps); the wall
# time of the whole command (start-up, compilation, autotuning) is written beside it. Results:
# $WORK/results/<NAME>.json (throughput.json + wall_s) and <NAME>.log; `python benchmarks/results_table.py`
# does not read them: they are small enough to quote.
# A synthetic world (SCENES x FRAMES keyframes, IMAGE cameras, 1 sweep) is cast first unless $WORK/world exists.
# CPU rehearsal: ACCEL=cpu PRECISION=32-true EMBEDDING=configs/embedding/tiny.yaml SCENES=2 FRAMES=4 IMAGE="112 200" \
#   BATCH=2 STEPS=4 WARMUP=1 WORKERS=0 WORK=/tmp/tt bash benchmarks/trainer_throughput.sh default=
set -euo pipefail
WORK=${WORK:-/tmp/nsmae_trainer}
ACCEL=${ACCEL:-gpu}
PRECISION=${PRECISION:-bf16-mixed}
EMBEDDING=${EMBEDDING:-configs/embedding/synthetic_lite.yaml}
SCENES=${SCENES:-24}
FRAMES=${FRAMES:-12}
IMAGE=${IMAGE:-225 400}
BATCH=${BATCH:-8}
STEPS=${STEPS:-100}
WARMUP=${WARMUP:-10}
WORKERS=${WORKERS:-12}
[ "$#" -ge 1 ] || { echo "usage: $0 NAME=\"extra CLI args\" ..."; exit 2; }
RES="$WORK/results"
WORLD="$WORK/world"
mkdir -p "$RES"
export PYTHONUNBUFFERED=1
stamp() { echo "[$(date +%H:%M:%S)] $*"; }

if [ ! -f "$WORLD/.done" ]; then
  # shellcheck disable=SC2086
  python -m nsmae_lightning world --out "$WORLD" --scenes "$SCENES" --frames "$FRAMES" --image-size $IMAGE \
    --sweeps 1 --workers "$(nproc)" > "$RES/world.log" 2>&1
  touch "$WORLD/.done"
  stamp "world: $(tail -1 "$RES/world.log")"
fi

for variant in "$@"; do
  name=${variant%%=*}
  extra=${variant#*=}
  out="$WORK/runs/$name"
  rm -rf "$out"
  start=$(date +%s.%N)
  # shellcheck disable=SC2086
  if python -m nsmae_lightning fit --config configs/pretrain/synthetic.yaml --model.init_args.embedding "$EMBEDDING" \
      --data.init_args.dataroot "$WORLD" --data.init_args.batch_size "$BATCH" --data.init_args.num_workers "$WORKERS" \
      --trainer.accelerator "$ACCEL" --trainer.precision "$PRECISION" --trainer.max_steps "$STEPS" \
      --trainer.limit_val_batches 0 --trainer.num_sanity_val_steps 0 --trainer.enable_progress_bar false \
      --trainer.callbacks+=nsmae_lightning.tasks.throughput.Throughput --trainer.callbacks.warmup_steps "$WARMUP" \
      --trainer.default_root_dir "$out" --trainer.logger.init_args.save_dir "$out" $extra > "$RES/$name.log" 2>&1; then
    wall=$(python -c "import time; print(round(time.time() - $start, 1))")
    report=$(find "$out" -name throughput.json | head -1)
    python - "$report" "$wall" "$extra" "$RES/$name.json" <<'EOF'
import json, sys
from pathlib import Path
from nsmae_lightning.atomic import atomic_write_text
report, wall, extra, target = sys.argv[1:]
data = json.loads(Path(report).read_text())
data.update(wall_s=float(wall), extra_args=extra)
atomic_write_text(Path(target), json.dumps(data, indent=2) + "\n")
print(f"{target}: median step {data['median_step_s'] * 1e3:.1f} ms, mean {data['mean_step_s'] * 1e3:.1f} ms, "
      f"{data['samples_per_s']:.1f} samples/s, wall {data['wall_s']} s")
EOF
  else
    stamp "$name failed (see $RES/$name.log)"; tail -5 "$RES/$name.log"
  fi
done
