set -u
source .gpu/activate.sh
ROOT=$PWD
cd runs/points
timeout 200 compute-sanitizer --tool memcheck python -c "
import functools, sys
import nsmae_lightning; print(nsmae_lightning.__file__)
from nsmae_lightning.models import rendering
rendering.RenderConfig = functools.partial(rendering.RenderConfig, sampler='trilinear_triton', march='packed_triton')
sys.argv = ['x', 'raster', '256']
exec(open('$ROOT/benchmarks/results/h200_2026-12-03_session8/ncu_target.py').read())
" > $OUT/memcheck_points.txt 2>&1
echo "memcheck points rc=$?"; grep -E "nsmae_lightning/__init__|ERROR SUMMARY|Invalid|rror" $OUT/memcheck_points.txt | head -8
