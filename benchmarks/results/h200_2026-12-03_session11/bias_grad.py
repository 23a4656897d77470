"""Eleventh session: the trunk convolutions' bias gradient (aten::sum over a channels-last
(2, 128, 180, 180) bf16 gradient, 0.13 ms in the render profile) against other ways to sum it."""
import torch
from torch.profiler import ProfilerActivity, profile

g = torch.randn(2, 128, 180, 180, device="cuda", dtype=torch.bfloat16).to(memory_format=torch.channels_last)
rows = g.permute(0, 2, 3, 1).reshape(-1, 128)  # a view: channels-last memory is (N H W, C)
ones = torch.ones(1, rows.shape[0], device="cuda", dtype=torch.bfloat16)
ways = {
    "sum((0,2,3)) as autograd does": lambda: g.sum((0, 2, 3)),
    "rows.sum(0)": lambda: rows.sum(0),
    "rows.float().sum(0)": lambda: rows.float().sum(0),
    "ones @ rows (bf16 mm, fp32 accumulate)": lambda: (ones @ rows)[0],
}
reference = g.float().sum((0, 2, 3))
for name, way in ways.items():
    for _ in range(5):
        way()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(20):
            out = way()
        torch.cuda.synchronize()
    gpu_ms = sum(e.device_time_total for e in prof.events() if e.device_type.name == "CUDA") / 1000 / 20
    error = float((out.float() - reference).abs().max() / reference.abs().max())
    print(f"{name:42} {gpu_ms:7.4f} GPU ms   rel. error {error:.1e}")
