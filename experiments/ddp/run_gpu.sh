#!/usr/bin/env bash
# Multi-GPU DDP on one machine (issue: throughput scaling, metrics on 1 vs N GPUs, the same labelled
# subset on every rank, kill + resume), all through the real CLI; results into $WORK/results:
#   source .gpu/activate.sh && bash experiments/ddp/run_gpu.sh          (DEVICES=N, default: every GPU)
# then `python experiments/ddp/report.py $WORK/results` writes results.md and resume_loss.png there.
# Stages (STAGES, default all):
#   world      a synthetic world (SCENES x FRAMES, 1 sweep) cast on the CPUs;
#   throughput pretraining and detection fine-tuning for STEPS steps on 1 GPU and on N, batch BATCH per
#              GPU, bf16 (Throughput callback: samples/s, peak memory per rank), label ratio 0.1 (every
#              rank prints the subset's sha256);
#   metrics    the N-GPU detection run's checkpoint validated on 1 GPU and on N (devkit mAP / NDS); a
#              segmentation model fitted on N GPUs, validated on 1 and on N (BEV IoU);
#   resume     detection on N GPUs for RESUME_STEPS steps (checkpoint every CKPT_EVERY), twice (the
#              run-to-run spread), again killed (SIGKILL to the whole process group) once its KILL_AT
#              checkpoint is complete, then resumed with --ckpt_path: the continued loss curve against
#              the uninterrupted ones.
# CPU rehearsal (2 gloo processes, tiny configs, minutes):
#   ACCEL=cpu PRECISION=32-true DEVICES=2 SUFFIX=tiny EMBEDDING=configs/embedding/tiny.yaml SCENES=4 FRAMES=6 \
#   IMAGE="112 200" BATCH=1 STEPS=6 RESUME_STEPS=8 CKPT_EVERY=2 KILL_AT=4 WORKERS=0 WORK=/tmp/ddp_rehearsal \
#   bash experiments/ddp/run_gpu.sh
set -euo pipefail
WORK=${WORK:-/tmp/nsmae_ddp}
STAGES=${STAGES:-world throughput metrics resume}
ACCEL=${ACCEL:-gpu}
PRECISION=${PRECISION:-bf16-mixed}
DEVICES=${DEVICES:-$(nvidia-smi --list-gpus 2>/dev/null | wc -l)}
SUFFIX=${SUFFIX:-synthetic}
EMBEDDING=${EMBEDDING:-configs/embedding/synthetic_lite.yaml}
SCENES=${SCENES:-40}
FRAMES=${FRAMES:-12}
IMAGE=${IMAGE:-225 400}
BATCH=${BATCH:-8}
STEPS=${STEPS:-60}
RESUME_BATCH=${RESUME_BATCH:-2}
RESUME_STEPS=${RESUME_STEPS:-40}
CKPT_EVERY=${CKPT_EVERY:-10}
KILL_AT=${KILL_AT:-20}
WORKERS=${WORKERS:-4}
[ "$DEVICES" -ge 2 ] || { echo "DDP needs 2 or more devices, got DEVICES=$DEVICES"; exit 1; }

stamp() { echo "[$(date +%H:%M:%S)] $*"; }
RES="$WORK/results"
WORLD="$WORK/world"
mkdir -p "$RES"
export PYTHONUNBUFFERED=1
# NVLink multicast stays off on the lent machines (it can take a shared host's GPUs out of service):
# the image sets these; keep them set for every process this script starts.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
gpus=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | sort | uniq -c | xargs || true)
stamp "start: ${gpus:-no GPU}, $(nproc) CPUs, DEVICES=$DEVICES"
# CPU rehearsal: Lightning gives each gloo rank one thread; a single-device run with more threads sums in
# another order, which moves scores by ~1e-7 and flips boxes at the score threshold (seen: 1 of ~430
# per frame, NDS 0.07 % apart). One thread everywhere makes "1 vs N devices" compare like with like.
if [ "$ACCEL" = cpu ]; then export OMP_NUM_THREADS=1; fi

# build_cmd <subcommand> <config> <run folder> <devices> [extra CLI arguments...]: sets CMD
build_cmd() {
  local subcommand=$1 config=$2 out=$3 devices=$4
  shift 4
  local strategy=auto
  [ "$devices" -gt 1 ] && strategy=ddp
  CMD=(python -m nsmae_lightning "$subcommand" --config "$config" --model.init_args.embedding "$EMBEDDING"
       --data.init_args.dataroot "$WORLD" --data.init_args.num_workers "$WORKERS"
       --trainer.accelerator "$ACCEL" --trainer.precision "$PRECISION" --trainer.devices "$devices"
       --trainer.strategy "$strategy" --trainer.enable_progress_bar false
       --trainer.default_root_dir "$out" --trainer.logger.init_args.save_dir "$out" "$@")
}
# nsmae <same arguments>: run it, logging into <run folder>.log
nsmae() { build_cmd "$@"; mkdir -p "$(dirname "$3")"; "${CMD[@]}" > "$3.log" 2>&1; }
throughput=(--trainer.callbacks+=nsmae_lightning.tasks.throughput.Throughput --trainer.callbacks.warmup_steps 5)
short_fit=(--trainer.max_steps "$STEPS" --trainer.limit_val_batches 0 --trainer.num_sanity_val_steps 0
           --data.init_args.batch_size "$BATCH" --data.init_args.label_ratio 0.1 --trainer.log_every_n_steps 5)

if [[ " $STAGES " == *" world "* ]] && [ ! -f "$WORLD/.done" ]; then
  # shellcheck disable=SC2086
  python -m nsmae_lightning world --out "$WORLD" --scenes "$SCENES" --frames "$FRAMES" --image-size $IMAGE \
    --sweeps 1 --workers "$(nproc)" > "$RES/world.log" 2>&1
  touch "$WORLD/.done"
  stamp "world: $(tail -1 "$RES/world.log")"
fi

if [[ " $STAGES " == *" throughput "* ]]; then
  for task in pretrain detection; do
    for devices in 1 "$DEVICES"; do
      out="$RES/throughput/${task}_${devices}dev"
      [ -f "$out/version_0/throughput.json" ] && continue
      nsmae fit "configs/$task/$SUFFIX.yaml" "$out" "$devices" "${short_fit[@]}" "${throughput[@]}" \
        || { stamp "throughput $task on $devices failed"; tail -30 "$out.log"; exit 1; }
      stamp "throughput $task on $devices: $(python -c "import json,sys; r=json.load(open(sys.argv[1])); print(f\"{r['samples_per_s']:.1f} samples/s\")" "$out/version_0/throughput.json")"
    done
  done
fi

# validate_both <task> <checkpoint>: the checkpoint validated on 1 device and on DEVICES
validate_both() {
  for devices in 1 "$DEVICES"; do
    nsmae validate "configs/$1/$SUFFIX.yaml" "$RES/metrics/$1_validate_${devices}dev" "$devices" \
      --ckpt_path "$2" --data.init_args.batch_size "$BATCH" || { stamp "$1 validate on $devices failed"; exit 1; }
  done
}

if [[ " $STAGES " == *" metrics "* ]]; then
  validate_both detection "$(ls "$RES/throughput/detection_${DEVICES}dev"/version_0/checkpoints/*.ckpt | tail -1)"
  seg_fit="$RES/metrics/segmentation_fit_${DEVICES}dev"
  nsmae fit "configs/segmentation/$SUFFIX.yaml" "$seg_fit" "$DEVICES" "${short_fit[@]}" \
    || { stamp "segmentation fit failed"; tail -30 "$seg_fit.log"; exit 1; }
  validate_both segmentation "$(ls "$seg_fit"/version_0/checkpoints/*.ckpt | tail -1)"
  stamp "metrics: validated on 1 and $DEVICES devices"
fi

if [[ " $STAGES " == *" resume "* ]]; then
  resume_fit=(--trainer.max_steps "$RESUME_STEPS" --trainer.limit_val_batches 0 --trainer.num_sanity_val_steps 0
              --data.init_args.batch_size "$RESUME_BATCH" --trainer.log_every_n_steps 1
              --trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint
              --trainer.callbacks.every_n_train_steps "$CKPT_EVERY" --trainer.callbacks.save_top_k -1)
  config="configs/detection/$SUFFIX.yaml"
  # twice uninterrupted: the run-to-run spread (GPU kernels are not bitwise deterministic) is the yardstick
  for name in uninterrupted uninterrupted_again; do
    nsmae fit "$config" "$RES/resume/$name" "$DEVICES" "${resume_fit[@]}" \
      --trainer.callbacks.dirpath "$RES/resume/${name}_ckpt" || { stamp "$name run failed"; exit 1; }
  done
  # the interrupted twin, in a session of its own (setsid execs in place: $! leads the group of all ranks)
  killed="$RES/resume/interrupted"
  build_cmd fit "$config" "$killed" "$DEVICES" "${resume_fit[@]}" --trainer.callbacks.dirpath "${killed}_ckpt"
  setsid "${CMD[@]}" > "$killed.log" 2>&1 &
  leader=$!
  target="${killed}_ckpt/epoch=*-step=${KILL_AT}.ckpt"
  # Lightning writes checkpoints in place: once the next one appears, the KILL_AT one is complete.
  next_one="${killed}_ckpt/epoch=*-step=$((KILL_AT + CKPT_EVERY)).ckpt"
  for _ in $(seq 3000); do compgen -G "$next_one" > /dev/null && break; kill -0 "$leader" 2> /dev/null || break; sleep 0.1; done
  kill -KILL -- "-$leader" 2> /dev/null || true
  wait "$leader" 2> /dev/null || true
  saved=$(compgen -G "$target" | head -1) || { stamp "no checkpoint at step $KILL_AT"; exit 1; }
  stamp "killed the interrupted run after $(basename "$saved") ($(grep -c . "$killed.log") log lines)"
  nsmae fit "$config" "${killed}_resumed" "$DEVICES" "${resume_fit[@]}" --trainer.callbacks.dirpath "${killed}_resumed_ckpt" \
    --ckpt_path "$saved" || { stamp "resumed run failed"; exit 1; }
  echo "$saved" > "$RES/resume/killed_at.txt"
  stamp "resume: done"
fi
stamp "done"
