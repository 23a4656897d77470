"""Experiment (session 7): the Triton colour MLP's persistent backward at more programs per SM (H200, bf16)."""
import sys, time, torch
sys.path.insert(0, "benchmarks")
from render_throughput import random_rays, PC_RANGE
from nsmae_lightning.models import march_fused_triton as mft, color_mlp_triton as cmt
from nsmae_lightning.models.ray_samples import pack_samples
from nsmae_lightning.models.rendering import RenderConfig, NeRFPretrainHead
dev = torch.device("cuda")
config = RenderConfig(z_bins=40, feature_channels=32, per_step=0.8, color_mlp="triton")
net = NeRFPretrainHead(config, 256, PC_RANGE).network.to(dev)
rays = random_rays(2, 16384, dev)
s = pack_samples(rays.near, rays.far, 0.8, config.max_samples_per_ray)
f = torch.randn(s.t.shape[0], 32, device=dev, dtype=torch.bfloat16, requires_grad=True)
def step():
    net.zero_grad(set_to_none=True); f.grad = None
    with torch.autocast("cuda", dtype=torch.bfloat16):
        rgb = net.color(f, rays.directions, s.ray_index)
    rgb.float().square().mean().backward()
for pps in (2, 4, 8, 16, 2):
    mft.PROGRAMS_PER_SM = pps
    cmt._backward_tuned.cache.clear()
    for _ in range(5): step()
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(10): step()
        torch.cuda.synchronize()
    k = {e.key: e.device_time_total / 10 / 1000 for e in prof.key_averages() if e.key.startswith("_")}
    print(f"programs/SM {pps:2d}  rows {f.shape[0]}  kernels ms {k}  best {cmt._backward_tuned.best_config}", flush=True)
