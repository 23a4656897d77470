"""Session 8: which colour-MLP backward config faults (call 3: illegal address in its autotuning, march context).
Prints each autotune trial (kernel, config index) and synchronizes after it; EXCLUDE="i,j" drops those configs."""
import os, sys, torch
from triton.runtime import autotuner
from nsmae_lightning.models import color_mlp_triton as cmt
excluded = {int(i) for i in os.environ.get("EXCLUDE", "").split(",") if i}
cmt._backward_tuned.configs = [c for i, c in enumerate(cmt._backward_tuned.configs) if i not in excluded]
index = {id(c): i for i, c in enumerate(cmt._BACKWARD_TUNING)}
original = autotuner.Autotuner._bench
def bench(self, *args, config, **kwargs):
    name = getattr(self.base_fn, "__module__", "?") + "." + self.base_fn.__name__
    print("TRIAL", name, index.get(id(config), "-"), config, flush=True)
    result = original(self, *args, config=config, **kwargs)
    torch.cuda.synchronize()
    print("OK", name, index.get(id(config), "-"), flush=True)
    return result
autotuner.Autotuner._bench = bench
sys.argv = ["ncu_target.py", "raster", "16384"]
exec(open("runs/ncu_target.py").read())
print("NO FAULT with excluded", sorted(excluded), "best", cmt._backward_tuned.best_config, flush=True)
