#!/usr/bin/env bash
# Follow-up of the headline sweep (synthetic_h200_2026-12-01_session3): BEV segmentation at 1 % labels,
# the one cell where NS-MAE init did not beat random init (12.2 vs 12.8 mIoU, 2 seeds, inside random
# init's seed spread). Two questions, on the same world and NS-MAE recipe as the headline:
#   A) seeds: is the 1 % gap noise? Seeds $SEEDS_A (the headline had 0 and 1), 128 steps as before.
#   B) steps: does a longer schedule change the order? Seeds $SEEDS_B, $EPOCHS_B epochs (4 x 128 steps).
# Both from random and from NS-MAE init.
#   C) only when ABLATIONS is set: pretraining variants (masking ratio, targets, lambdas), each pretrained
#      into its own folder and fine-tuned from NS-MAE init only (seeds $SEEDS_B, 128 steps; ~5.5 minutes
#      each), e.g. ABLATIONS="mask70=--model.init_args.voxel_mask_ratio 0.7;nocolor=--model.init_args.render.color false". Runs detached like run_gpu.sh (whose stages it reuses: the
# world and the pretraining are made once, in $WORK), e.g.
#   source .gpu/activate.sh && mkdir -p /tmp/nsmae && \
#     (setsid nohup bash experiments/label_efficient/followup_gpu.sh > /tmp/nsmae/pipeline.log 2>&1 < /dev/null &)
# then poll with collect.sh. Results: $WORK/results/followup_{seeds,steps}/ (results.csv/md, per_class.md).
# Extra environment (RENDER_BENCH=1, sizes, ...) passes through to run_gpu.sh; benchmarks run once
# (the second sweep finds their JSON).
# The headline pretrained with the compiled sampler and the dense march (configs/pretrain/synthetic.yaml's
# setting then; `auto` since 2026-12-02, the same function through other kernels): HEADLINE_RENDER repeats
# that in every pretraining here, ablations included (PRETRAIN_ARGS replaces it for the main one).
set -euo pipefail
export WORK=${WORK:-/tmp/nsmae}
HEADLINE_RENDER="--model.init_args.render.sampler trilinear_compiled --model.init_args.render.march dense"
export PRETRAIN_ARGS=${PRETRAIN_ARGS:-$HEADLINE_RENDER}
SEEDS_A=${SEEDS_A:-2 3 4}
EPOCHS_A=${EPOCHS_A:-1}  # the headline's schedule (1 epoch = 128 steps), not one fitted to SWEEP_SECONDS
SEEDS_B=${SEEDS_B:-0 1}
EPOCHS_B=${EPOCHS_B:-4}
script=experiments/label_efficient/run_gpu.sh
SWEEP_TASKS=segmentation SWEEP_RATIOS=0.01 SEEDS="$SEEDS_A" FT_EPOCHS_FIXED="$EPOCHS_A" SWEEP_OUT=runs/followup_seeds \
  SWEEP_RES="$WORK/results/followup_seeds" bash "$script"
SWEEP_TASKS=segmentation SWEEP_RATIOS=0.01 SEEDS="$SEEDS_B" FT_EPOCHS_FIXED="$EPOCHS_B" SWEEP_OUT=runs/followup_steps \
  SWEEP_RES="$WORK/results/followup_steps" bash "$script"
IFS=';' read -r -a ablations <<< "${ABLATIONS:-}"
for ablation in "${ablations[@]}"; do
  name=${ablation%%=*}
  SWEEP_TASKS=segmentation SWEEP_RATIOS=0.01 SEEDS="$SEEDS_B" SWEEP_INITS=nsmae FT_EPOCHS_FIXED="$EPOCHS_A" \
    PRETRAIN_DIR="runs/pretrain_$name" PRETRAIN_ARGS="$HEADLINE_RENDER ${ablation#*=}" SWEEP_OUT="runs/ablation_$name" \
    SWEEP_RES="$WORK/results/ablation_$name" bash "$script"
done
echo "[$(date +%H:%M:%S)] follow-up done"
