# CPU (no GPU): registers and spills of the colour MLP backward at mlp_configs.py's launch shapes, compiled for sm_90 by
# benchmarks/triton_compile_check.py (run from the checkout root: python benchmarks/results/h200_2026-12-03_session9/mlp_configs_compile.py)
import sys, triton
sys.argv = ["x", "--kernels", "color_mlp"]
sys.path.insert(0, "benchmarks")
import triton_compile_check as cc
from nsmae_lightning.models import color_mlp_triton as cmt
SHAPES = ((32, 2, 4, None), (32, 4, 4, 128), (32, 2, 8, 128), (16, 2, 8, 128), (32, 4, 3, 168), (64, 8, 2, 128), (32, 2, 6, 168), (64, 4, 2, None), (32, 4, 4, 160))
cmt._BACKWARD_TUNING[:] = [triton.Config({"BLOCK_M": r, "PROGRAMS_PER_SM": p}, num_warps=w, maxnreg=n) for r, w, p, n in SHAPES]
cmt._TUNING[:] = []
cc.main()
