# Tenth session, call 5: march 'fused_triton' reading each ray's voxel-frame row (this checkout) against
# its in-kernel metric-to-voxel mapping (runs/fused_base = 7d502e5); then memcheck of the new kernels.
set -u
source .gpu/activate.sh
mkdir -p $OUT
KINDS=march,render EXTRA="--pairs trilinear_triton:fused_triton --profile 3 --top 20" OUT=$OUT/fused_ab \
  timeout 240 bash benchmarks/render_ab.sh runs/fused_base 1 | sed "s/^base/fused_base/"
timeout 150 compute-sanitizer --tool memcheck python -c "
import functools, sys
from nsmae_lightning.models import rendering
rendering.RenderConfig = functools.partial(rendering.RenderConfig, sampler='trilinear_triton', march='fused_triton')
sys.argv = ['x', 'raster', '256']
exec(open('benchmarks/results/h200_2026-12-03_session8/ncu_target.py').read())
" > $OUT/memcheck_fused.txt 2>&1
echo "memcheck fused rc=$?"; grep -E "ERROR SUMMARY|Invalid|rror" $OUT/memcheck_fused.txt | head -8
