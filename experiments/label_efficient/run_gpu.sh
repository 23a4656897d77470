#!/usr/bin/env bash
# The headline experiment end to end on one GPU machine, meant to run detached from the device call:
#   source .gpu/activate.sh && mkdir -p /tmp/nsmae && \
#     setsid nohup bash experiments/label_efficient/run_gpu.sh > /tmp/nsmae/pipeline.log 2>&1 < /dev/null &
# then `bash experiments/label_efficient/collect.sh` (in later calls) packs what exists into $OUT.
#
# Stages, all under $WORK (a frozen copy of the checkout in $WORK/src runs everything):
#   1) the synthetic world (SCENES x FRAMES keyframes, IMAGE cameras, 1 sweep) cast on the CPUs, while
#   2) only when asked, benchmarks on the GPU: BENCH=1 the experiment's configs (configs/*/$SUFFIX.yaml
#      with the EMBEDDING network) at its batch, PROFILE=1 a torch.profiler report of them,
#      RENDER_BENCH=1 render_throughput (bf16), PAPER_BENCH=1 the paper configs (pretrain_step,
#      task_step at batch 2), SMOKE_FP16=1 fp16 pretraining through the CLI; by default the runs are
#      sized from the committed H200 numbers in $PLAN_BENCH;
#   3) plan_epochs.py turns the measured step times into epochs for PRETRAIN_SECONDS and SWEEP_SECONDS;
#   4) NS-MAE pretraining (configs/pretrain/$SUFFIX.yaml + EMBEDDING) on every training frame, no labels;
#   5) the sweep experiments/label_efficient/synthetic.yaml for SEEDS (16 runs per seed, PARALLEL at once
#      on the GPU; PRIOR_RESULTS=results.csv of an earlier session skips the runs it has);
#   6) results.{csv,md,png}, per-class tables (sweep_per_class.py), curves, render grids into $WORK/results.
# STOP_AFTER=bench ends after stage 2. A follow-up sweep on the same world and pretraining (stages 1 and 4
# are skipped once done in $WORK) takes SWEEP_TASKS / SWEEP_RATIOS (subsets of the spec's), SEEDS,
# FT_EPOCHS_FIXED (a schedule ablation instead of fitting SWEEP_SECONDS), SWEEP_OUT and SWEEP_RES
# (its run folder and results folder), SWEEP_INITS (e.g. only nsmae), PRETRAIN_DIR + PRETRAIN_ARGS (a
# pretraining variant: extra `nsmae fit` arguments, its own folder); see followup_gpu.sh.
# The default EMBEDDING is the one-session headline network (configs/embedding/synthetic_lite.yaml).
# CPU rehearsal (tiny sizes, minutes): SUFFIX=tiny EMBEDDING=configs/embedding/tiny.yaml ACCEL=cpu PRECISION=32-true SCENES=4 FRAMES=4 \
#   IMAGE="112 200" BATCH=2 PARALLEL=2 BENCH=1 SEEDS=0 PRETRAIN_SECONDS=60 SWEEP_SECONDS=200 WORK=/tmp/rehearsal \
#   bash experiments/label_efficient/run_gpu.sh
set -euo pipefail
WORK=${WORK:-/tmp/nsmae}
SUFFIX=${SUFFIX:-synthetic}
ACCEL=${ACCEL:-gpu}
PRECISION=${PRECISION:-bf16-mixed}
SCENES=${SCENES:-100}
FRAMES=${FRAMES:-12}
IMAGE=${IMAGE:-225 400}
VAL_FRACTION=${VAL_FRACTION:-0.15}
WORLD_WORKERS=${WORLD_WORKERS:-12}
BATCH=${BATCH:-8}
PARALLEL=${PARALLEL:-4}
SEEDS=${SEEDS:-0 1}
EMBEDDING=${EMBEDDING:-configs/embedding/synthetic_lite.yaml}
# Step times that size the runs: committed H200 measurements of the one-session configs, unless
# BENCH=1 measures them again here (stage 2, ~3 minutes; PAPER_BENCH=1 adds the paper configs, ~4).
PLAN_BENCH=${PLAN_BENCH:-benchmarks/results/h200_2026-12-01_session2/7dee01e}
BENCH=${BENCH:-0}
BENCH_DTYPES=${BENCH_DTYPES:-bf16}
PAPER_BENCH=${PAPER_BENCH:-0}
RENDER_BENCH=${RENDER_BENCH:-0}
# what render_throughput.py times (e.g. --pairs trilinear_compiled:packed_triton --kinds march)
RENDER_ARGS=${RENDER_ARGS:---warmup 2 --repeats 5 --dtypes bf16}
PROFILE=${PROFILE:-0}
SMOKE_FP16=${SMOKE_FP16:-0}
PRETRAIN_SECONDS=${PRETRAIN_SECONDS:-300}
SWEEP_SECONDS=${SWEEP_SECONDS:-950}
SHARING=${SHARING:-1.0}
CAP_FACTOR=${CAP_FACTOR:-1.5}
RUN_OVERHEAD=${RUN_OVERHEAD:-25}
PRETRAIN_WORKERS=${PRETRAIN_WORKERS:-12}
FT_WORKERS=${FT_WORKERS:-2}
# results.csv of an earlier session (same world, same recipe): its finished runs are skipped
PRIOR_RESULTS=${PRIOR_RESULTS:-}
SWEEP_SPEC=${SWEEP_SPEC:-experiments/label_efficient/synthetic.yaml}
SWEEP_TASKS=${SWEEP_TASKS:-}
SWEEP_RATIOS=${SWEEP_RATIOS:-}
SWEEP_OUT=${SWEEP_OUT:-runs/label_efficient_synthetic}
FT_EPOCHS_FIXED=${FT_EPOCHS_FIXED:-}
SWEEP_INITS=${SWEEP_INITS:-random nsmae}
# a pretraining variant (masking ratio, targets, lambdas: extra CLI arguments) in its own folder
PRETRAIN_DIR=${PRETRAIN_DIR:-runs/pretrain_synthetic}
PRETRAIN_ARGS=${PRETRAIN_ARGS:-}

stamp() { echo "[$(date +%H:%M:%S)] $*"; }
mkdir -p "$WORK/results/bench"
if [ ! -d "$WORK/src" ]; then
  mkdir -p "$WORK/src"
  tar cf - --exclude=./.gpu --exclude=./.git --exclude=./data --exclude=./runs --exclude=./.venv . | tar xf - -C "$WORK/src"
fi
cd "$WORK/src"
export PYTHONPATH="$WORK/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
RES="$WORK/results"
SWEEP_RES=${SWEEP_RES:-$RES}
stamp "start: $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo no GPU), $(nproc) CPUs"

# 1) world, in the background
if [ ! -f data/synthetic-nuscenes/.done ] && [ "${STOP_AFTER:-}" != bench ]; then
  # shellcheck disable=SC2086
  (python -m nsmae_lightning world --out data/synthetic-nuscenes --scenes "$SCENES" --frames "$FRAMES" \
     --image-size $IMAGE --sweeps 1 --workers "$WORLD_WORKERS" --set val_fraction="$VAL_FRACTION" \
     --preview "$RES/world_preview.png" > "$RES/world.log" 2>&1 && touch data/synthetic-nuscenes/.done) &
  world_pid=$!
fi

# 2) benchmarks (GPU) while the world is cast: the experiment's configs at its batch (bf16: they size
#    the runs), then the paper configs; all done before pretraining takes the GPU.
bench() { python "benchmarks/$1" "${@:2}" >> "$RES/bench/bench.log" 2>&1 || stamp "benchmark $1 failed (see bench.log)"; }
benchmarks() {
  if [ "$BENCH" = 1 ] && [ ! -f "$RES/bench/task_$SUFFIX.json" ]; then
    bench pretrain_step.py --out "$RES/bench/pretrain_$SUFFIX.json" --configs "configs/pretrain/$SUFFIX.yaml" \
      --embedding "$EMBEDDING" --batch "$BATCH" --dtypes "$BENCH_DTYPES" --warmup 2 --repeats 5
    bench task_step.py --out "$RES/bench/task_$SUFFIX.json" --embedding "$EMBEDDING" --batch "$BATCH" \
      --dtypes "$BENCH_DTYPES" --warmup 2 --repeats 5 \
      --configs "configs/detection/$SUFFIX.yaml" "configs/segmentation/$SUFFIX.yaml"
    stamp "experiment-config benchmarks done"
  fi
  if [ "$PROFILE" = 1 ] && [ ! -f "$RES/bench/profile_$SUFFIX.txt" ]; then
    bench profile_step.py --out "$RES/bench/profile_$SUFFIX.txt" --embedding "$EMBEDDING" --batch "$BATCH" \
      --dtype bf16 --warmup 3 --steps 3 \
      --configs "configs/pretrain/$SUFFIX.yaml" "configs/detection/$SUFFIX.yaml" "configs/segmentation/$SUFFIX.yaml"
    stamp "profile done"
  fi
  if [ "$RENDER_BENCH" = 1 ] && [ ! -f "$RES/bench/render_throughput.json" ]; then
    # shellcheck disable=SC2086
    bench render_throughput.py --out "$RES/bench/render_throughput.json" $RENDER_ARGS
    stamp "render throughput done"
  fi
  if [ "$PAPER_BENCH" = 1 ] && [ ! -f "$RES/bench/task_step.json" ]; then
    bench pretrain_step.py --out "$RES/bench/pretrain_step.json" --warmup 2 --repeats 5
    bench task_step.py --out "$RES/bench/task_step.json" --dtypes "$BENCH_DTYPES" --warmup 2 --repeats 5
    stamp "paper-config benchmarks done"
  fi
  if [ "$SMOKE_FP16" = 1 ] && [ ! -f "$RES/smoke_fp16.log" ]; then
    # fp16 (gradient scaler) pretraining through the CLI, two steps on a tiny world
    smoke=0
    python -m nsmae_lightning world --out "$WORK/smoke_world" --tiny > /dev/null 2>&1 && \
      timeout 240 python -m nsmae_lightning fit --config "configs/pretrain/$SUFFIX.yaml" --model.init_args.embedding "$EMBEDDING" \
        --data.init_args.dataroot "$WORK/smoke_world" --trainer.accelerator "$ACCEL" --trainer.precision 16-mixed \
        --trainer.fast_dev_run 2 --data.init_args.num_workers 2 --data.init_args.batch_size 2 \
        --trainer.enable_progress_bar false --trainer.default_root_dir "$WORK/smoke_fp16" \
        --trainer.logger.init_args.save_dir "$WORK/smoke_fp16" > "$RES/smoke_fp16.log" 2>&1 || smoke=$?
    stamp "fp16 pretraining smoke: exit $smoke, $(tail -1 "$RES/smoke_fp16.log")"
  fi
}
if [ "$BENCH$PAPER_BENCH$RENDER_BENCH$PROFILE$SMOKE_FP16" != 00000 ]; then benchmarks; fi
if [ "$BENCH" = 1 ]; then
  pretrain_bench="$RES/bench/pretrain_$SUFFIX.json" task_bench="$RES/bench/task_$SUFFIX.json"
else
  pretrain_bench="$PLAN_BENCH/pretrain_${SUFFIX}_lite.json" task_bench="$PLAN_BENCH/task_${SUFFIX}_lite.json"
fi
if [ "${STOP_AFTER:-}" = bench ]; then stamp "STOP_AFTER=bench: done"; exit 0; fi
if [ -n "${world_pid:-}" ]; then wait "$world_pid" || { stamp "world failed"; tail -20 "$RES/world.log"; exit 1; }; fi
stamp "world: $(tail -2 "$RES/world.log" | head -1)"

# 3) size the runs
train_frames=$(python - <<'PY'
import json
from nuscenes.nuscenes import NuScenes
from nuscenes.utils.splits import get_scenes_of_split
nusc = NuScenes("v1.0-trainval", "data/synthetic-nuscenes", verbose=False)
names = set(get_scenes_of_split("train", nusc))
print(sum(scene["nbr_samples"] for scene in nusc.scene if scene["name"] in names))
PY
)
# the sweep's grid: the spec's tasks and ratios, or the SWEEP_TASKS / SWEEP_RATIOS subsets of them
read -r tasks ratios <<< "$(python - <<PY
import yaml
spec = yaml.safe_load(open("$SWEEP_SPEC"))
tasks = "$SWEEP_TASKS".split() or list(spec["tasks"])
ratios = "$SWEEP_RATIOS".split() or [str(ratio) for ratio in spec["ratios"]]
unknown = [task for task in tasks if task not in spec["tasks"]]
assert not unknown, f"SWEEP_TASKS {unknown} are not tasks of $SWEEP_SPEC"
print(",".join(tasks), ",".join(ratios))
PY
)"
read -r -a seeds <<< "$SEEDS"
read -r -a inits <<< "$SWEEP_INITS"
runs=$(( $(tr ',' '\n' <<< "$tasks" | wc -l) * ${#inits[@]} * $(tr ',' '\n' <<< "$ratios" | wc -l) * ${#seeds[@]} ))
plan=$(python experiments/label_efficient/plan_epochs.py --pretrain-bench "$pretrain_bench" \
  --task-bench "$task_bench" --config-part "$SUFFIX" --train-frames "$train_frames" --batch "$BATCH" \
  --pretrain-seconds "$PRETRAIN_SECONDS" --sweep-seconds "$SWEEP_SECONDS" --runs "$runs" --parallel "$PARALLEL" \
  --sharing "$SHARING" --cap-factor "$CAP_FACTOR" --run-overhead "$RUN_OVERHEAD" --tasks ${tasks//,/ } \
  ${FT_EPOCHS_FIXED:+--ft-epochs "$FT_EPOCHS_FIXED"})
eval "$plan"
# an explicit FT_EPOCHS / PRETRAIN_EPOCHS file in $WORK wins (set from a later device call)
[ -f "$WORK/pretrain_epochs" ] && PRETRAIN_EPOCHS=$(cat "$WORK/pretrain_epochs")
mkdir -p "$SWEEP_RES"
stamp "train frames $train_frames; $runs runs ($tasks; ratios $ratios; seeds $SEEDS); plan: $plan" | tee "$SWEEP_RES/plan.txt"

# 4) NS-MAE pretraining
common=(--trainer.accelerator "$ACCEL" --trainer.precision "$PRECISION" --trainer.enable_progress_bar false)
pretrain_res="$RES"; [ "$PRETRAIN_DIR" != runs/pretrain_synthetic ] && pretrain_res="$SWEEP_RES"
if [ ! -f "$PRETRAIN_DIR/.done" ]; then
  # shellcheck disable=SC2086
  python -m nsmae_lightning fit --config "configs/pretrain/$SUFFIX.yaml" "${common[@]}" $PRETRAIN_ARGS \
    --model.init_args.embedding "$EMBEDDING" \
    --data.init_args.dataroot data/synthetic-nuscenes --data.init_args.batch_size "$BATCH" \
    --data.init_args.num_workers "$PRETRAIN_WORKERS" --trainer.max_epochs "$PRETRAIN_EPOCHS" \
    --trainer.max_time "$PRETRAIN_MAX_TIME" \
    --trainer.limit_val_batches 4 --trainer.log_every_n_steps 10 \
    --trainer.default_root_dir "$PRETRAIN_DIR" --trainer.logger.init_args.save_dir "$PRETRAIN_DIR" \
    > "$pretrain_res/pretrain.log" 2>&1 || { stamp "pretraining failed"; tail -40 "$pretrain_res/pretrain.log"; exit 1; }
  touch "$PRETRAIN_DIR/.done"
fi
python -m nsmae_lightning curves "$PRETRAIN_DIR" --out "$pretrain_res/pretrain_curves.png" >> "$pretrain_res/pretrain.log" 2>&1 || true
version=$(ls -d "$PRETRAIN_DIR"/version_* | sort -V | tail -1)
cp "$version/metrics.csv" "$pretrain_res/pretrain_metrics.csv"
cp "$version/config.yaml" "$pretrain_res/pretrain_config.yaml"
mkdir -p "$pretrain_res/renders" && cp "$version"/renders/*.png "$pretrain_res/renders/" 2>/dev/null || true
stamp "pretraining done ($PRETRAIN_DIR): $(grep -E 'max_epochs|Time limit' "$pretrain_res/pretrain.log" | tail -1)"

# 5) the sweep
[ -f "$WORK/ft_epochs" ] && FT_EPOCHS=$(cat "$WORK/ft_epochs")
spec_file="$SWEEP_RES/sweep_spec.yaml"
python - "$spec_file" <<PY
import sys, yaml
spec = yaml.safe_load(open("$SWEEP_SPEC"))
spec["tasks"] = {name: spec["tasks"][name] for name in "$tasks".split(",")}
for task in spec["tasks"].values():
    task["config"] = task["config"].replace("/synthetic.yaml", "/$SUFFIX.yaml")
spec["ratios"] = [float(ratio) for ratio in "$ratios".split(",")]
spec["inits"] = {name: "$PRETRAIN_DIR" if spec["inits"][name] else None for name in "$SWEEP_INITS".split()}
spec["seeds"] = [int(seed) for seed in "$SEEDS".split()]
spec["out"] = "$SWEEP_OUT"
spec["overrides"].update({
    "trainer.accelerator": "$ACCEL", "trainer.precision": "$PRECISION", "trainer.max_epochs": $FT_EPOCHS,
    "trainer.check_val_every_n_epoch": $FT_EPOCHS, "trainer.max_time": "$FT_MAX_TIME",
    "model.init_args.embedding": "$EMBEDDING",
    "data.init_args.batch_size": $BATCH, "data.init_args.num_workers": $FT_WORKERS,
})
yaml.safe_dump(spec, open(sys.argv[1], "w"), sort_keys=False)
PY
if [ -n "$PRIOR_RESULTS" ] && [ ! -f "$SWEEP_OUT/results.csv" ]; then
  mkdir -p "$SWEEP_OUT" && cp "$PRIOR_RESULTS" "$SWEEP_OUT/results.csv"
fi
stamp "sweep: seeds $SEEDS, $FT_EPOCHS epochs per run, $PARALLEL at once -> $SWEEP_OUT"
python -m nsmae_lightning sweep "$spec_file" --out "$SWEEP_OUT" --parallel "$PARALLEL" \
  --runs-per-gpu "$PARALLEL" > "$SWEEP_RES/sweep.log" 2>&1 || stamp "sweep finished with failed runs (see sweep.log)"

# 6) results
for name in results.csv results.md results.png per_class.md; do
  cp "$SWEEP_OUT/$name" "$SWEEP_RES/" 2>/dev/null || true
done
python -m nsmae_lightning.sweep_per_class "$SWEEP_OUT" --detection-out "$SWEEP_RES/detection" \
  --segmentation-out "$SWEEP_RES/segmentation" > "$SWEEP_RES/per_class.log" 2>&1 || stamp "per-class tables failed"
stamp "done: $SWEEP_OUT"
