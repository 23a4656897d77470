# Next GPU session, call 1 (after prepare_next.sh): (1) the landed colour-MLP kernel under memcheck in a march;
# (2) which autotune config of the hoisted-weights kernel faults (each trial synchronised; excluded; repeated);
# (3) ncu of one march step's kernels (landed code); (4) the BEV decoder channels-last against HEAD:
# pretraining and detection steps, profiled (one round each; ~7 minutes in all).
set -u
source .gpu/activate.sh
mkdir -p $OUT
timeout 150 compute-sanitizer --tool memcheck --print-limit 5 python runs/ncu_target.py raster 256 > $OUT/memcheck_head.txt 2>&1
echo "memcheck head rc=$?"; grep -E "ERROR SUMMARY|at _|mlp backward best" $OUT/memcheck_head.txt | head -8
EX=""
for attempt in 1 2 3 4; do
  EXCLUDE=$EX PYTHONPATH=$PWD/runs/hoisted:$PYTHONPATH python runs/which_config.py > $OUT/which_$attempt.txt 2>&1
  grep -E "color_mlp|NO FAULT|rror" $OUT/which_$attempt.txt | cut -c1-160 | head -20
  grep -q "NO FAULT" $OUT/which_$attempt.txt && break
  bad=$(grep "TRIAL nsmae_lightning.models.color_mlp_triton" $OUT/which_$attempt.txt | tail -1 | awk '{print $3}')
  echo "attempt $attempt: fault in config $bad"; EX="$EX${EX:+,}$bad"
done
timeout 150 ncu --profile-from-start off --section SpeedOfLight --section Occupancy --section LaunchStats \
  --section WarpStateStats --section MemoryWorkloadAnalysis python runs/ncu_target.py raster 16384 > $OUT/ncu_march.txt 2>&1
echo "ncu rc=$?"; grep -E "^  [_a-z].*\(|Duration|Registers Per|Achieved Occupancy|L1/TEX Hit|L2 Hit|DRAM Throughput" \
  $OUT/ncu_march.txt | cut -c1-120 | head -60
P="--embedding configs/embedding/synthetic_lite.yaml --batch 8 --dtypes bf16 --warmup 3 --repeats 10 --profile 3"
for side in head nhwc; do
  root=$([ $side = head ] && echo $PWD || echo $PWD/runs/nhwc)
  (cd $root && PYTHONPATH=$root:$PYTHONPATH python $OLDPWD/benchmarks/pretrain_step.py --configs configs/pretrain/synthetic.yaml $P --color-mlp triton --out $OUT/${side}_pretrain_$RANDOM.json) 2>&1 | grep "step .* ms" | sed "s/^/$side /"
  (cd $root && PYTHONPATH=$root:$PYTHONPATH python $OLDPWD/benchmarks/task_step.py --configs configs/detection/synthetic.yaml $P --out $OUT/${side}_detection_$RANDOM.json) 2>&1 | grep " train .* ms" | sed "s/^/$side /"
done
