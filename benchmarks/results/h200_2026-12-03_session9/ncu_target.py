"""Session 9: the eighth session's march step for ncu (`../h200_2026-12-03_session8/ncu_target.py`) on the
Triton render path: that script left `RenderConfig`'s defaults (the torch sampler, the dense march).
Run from the checkout root: python runs/ncu_target.py raster 16384 (a copy of this file in runs/)."""
import functools
from nsmae_lightning.models import rendering
rendering.RenderConfig = functools.partial(rendering.RenderConfig, sampler="trilinear_triton", march="packed_triton")
exec(open("benchmarks/results/h200_2026-12-03_session8/ncu_target.py").read())
