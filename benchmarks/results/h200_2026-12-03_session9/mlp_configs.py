"""Session 9 prep: the colour MLP's backward at more launch shapes, timed by its autotuner in a march step
(`ncu_target.py`). Why: at 255 registers a thread only 8 warps fit an SM, and 4 warps a SM ran 1.19 ms
against 0.73 at 8 (session 9, call 1): register caps (``maxnreg``, spilling more) buy more resident warps.
Each trial is synchronised and printed (a faulting config is the last TRIAL without OK); EXCLUDE="i,j" drops
configs by index. Run from the checkout root: python runs/mlp_configs.py (this file and ncu_target.py in runs/)."""
import os
import sys

import torch
import triton
from triton.runtime import autotuner

from nsmae_lightning.models import color_mlp_triton as cmt

SHAPES = ((32, 2, 4, None), (32, 4, 4, 128), (32, 2, 8, 128), (16, 2, 8, 128), (32, 4, 3, 168), (64, 8, 2, 128),
          (32, 2, 6, 168))  # rows, warps, programs per SM, register cap (None: the compiler's 255)
configs = [triton.Config({"BLOCK_M": rows, "PROGRAMS_PER_SM": programs}, num_warps=warps, maxnreg=cap)
           for rows, warps, programs, cap in SHAPES]
excluded = {int(i) for i in os.environ.get("EXCLUDE", "").split(",") if i}
cmt._backward_tuned.configs = [config for i, config in enumerate(configs) if i not in excluded]
index = {id(config): i for i, config in enumerate(configs)}
original = autotuner.Autotuner._bench


def bench(self, *args, config, **kwargs):
    name = self.base_fn.__module__ + "." + self.base_fn.__name__
    print("TRIAL", name, index.get(id(config), "-"), config, flush=True)
    result = original(self, *args, config=config, **kwargs)
    torch.cuda.synchronize()
    print("OK", name, index.get(id(config), "-"), result, flush=True)
    return result


autotuner.Autotuner._bench = bench
sys.argv = ["ncu_target.py", "raster", "16384"]
exec(open("runs/ncu_target.py").read())
print("NO FAULT with excluded", sorted(excluded), "best", cmt._backward_tuned.best_config, flush=True)
