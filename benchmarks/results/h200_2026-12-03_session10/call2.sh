# Next GPU session, call 2 (after prepare_next.sh and call 1): the colour MLP's backward at register-capped
# launch shapes (mlp_configs.py; a faulting config is excluded and the trial repeated, up to 3 attempts); the
# sampler's backward reducing in bf16 (runs/bf16red, timing and reference error) against HEAD. ~6 minutes.
set -u
source .gpu/activate.sh
mkdir -p $OUT
EX=""
for attempt in 1 2; do
  EXCLUDE=$EX timeout 150 python runs/mlp_configs.py > $OUT/mlp_configs_$attempt.txt 2>&1
  grep -E "^OK .*color_mlp_triton._backward|mlp backward|NO FAULT|rror" $OUT/mlp_configs_$attempt.txt | cut -c1-200 | head -20
  grep -q "NO FAULT" $OUT/mlp_configs_$attempt.txt && break
  bad=$(grep "TRIAL nsmae_lightning.models.color_mlp_triton._backward_kernel" $OUT/mlp_configs_$attempt.txt | tail -1 | awk '{print $3}')
  echo "attempt $attempt: fault in config $bad"; EX="$EX${EX:+,}$bad"
done
# memcheck of the points-first sampler inside a march step (runs/points first on the path)
PYTHONPATH=$PWD/runs/points:$PYTHONPATH timeout 150 compute-sanitizer --tool memcheck python -c "import nsmae_lightning, sys; print(nsmae_lightning.__file__); sys.argv=['x','raster','256']; exec(open('runs/ncu_target.py').read())" > $OUT/memcheck_points.txt 2>&1
echo "memcheck points rc=$?"; grep -E "nsmae_lightning/__init__|ERROR SUMMARY|Invalid" $OUT/memcheck_points.txt | head -5
KINDS=sampler,render EXTRA="--samplers trilinear_triton --profile 3 --top 40" OUT=$OUT/bf16red_ab \
  timeout 200 bash benchmarks/render_ab.sh runs/bf16red 1 | sed "s/^base/bf16red/"
