# Session 8, GPU call 4: find the faulting colour-MLP backward config (plain runs, trial by trial), exclude, repeat.
set -u
source .gpu/activate.sh
mkdir -p $OUT
EX=""
for attempt in 1 2 3 4; do
  EXCLUDE=$EX python runs/which_config.py > $OUT/which_$attempt.txt 2>&1
  grep -E "color_mlp|NO FAULT|rror" $OUT/which_$attempt.txt | cut -c1-160 | head -20
  grep -q "NO FAULT" $OUT/which_$attempt.txt && break
  bad=$(grep "TRIAL nsmae_lightning.models.color_mlp_triton" $OUT/which_$attempt.txt | tail -1 | awk '{print $3}')
  echo "attempt $attempt: fault in config $bad"; EX="$EX${EX:+,}$bad"
done
