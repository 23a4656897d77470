"""Session 8: one march step (sampler along rays, colour MLP, compositor; fwd + bwd) inside a CUDA profiler
range after warm-up (autotuning done), for `ncu --profile-from-start off`; prints the MLP backward's config timings."""
import sys
import torch
sys.path.insert(0, "benchmarks")
from render_throughput import random_rays, rgb_depth_loss, PC_RANGE
from nsmae_lightning.models import color_mlp_triton as cmt
from nsmae_lightning.models.ray_samples import pack_samples
from nsmae_lightning.models.rendering import RenderConfig, NeRFPretrainHead
dev = torch.device("cuda")
torch.manual_seed(0)
config = RenderConfig(z_bins=40, feature_channels=32, per_step=0.8, color_mlp="triton")
head = NeRFPretrainHead(config, 256, PC_RANGE).to(dev)
bev = torch.randn(2, 256, 180, 180, device=dev)
with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
    volume = head.network.volume(bev)
volume.requires_grad_()
rays = random_rays(2, int(sys.argv[2]) if len(sys.argv) > 2 else 16384, dev, sys.argv[1] if len(sys.argv) > 1 else "raster")
def step():
    volume.grad = None
    packed = pack_samples(rays.near, rays.far, 0.8, config.max_samples_per_ray)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = rgb_depth_loss(head.render(volume, rays, 0.8, with_color=True, samples=packed), rays)
    loss.backward()
for _ in range(5):
    step()
torch.cuda.synchronize()
for tuned_config, timing in (getattr(cmt._backward_tuned, "configs_timings", None) or {}).items():
    print("mlp backward config", tuned_config, timing)
print("mlp backward best", cmt._backward_tuned.best_config)
torch.cuda.cudart().cudaProfilerStart()
step()
torch.cuda.synchronize()
torch.cuda.cudart().cudaProfilerStop()
