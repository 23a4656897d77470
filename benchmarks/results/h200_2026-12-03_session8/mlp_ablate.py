"""Experiment (session 8): where the Triton colour MLP's backward spends its 0.93 ms (H200, bf16).

Times the production backward kernel per forced config, then a copy of it with parts switched off
(ablations, wrong gradients: timing only) and two candidate rewrites (weights loaded once per
program in both layouts, no register transposes of weights), checked against the production gradients."""
import json, os, sys, time
import torch, triton, triton.language as tl
sys.path.insert(0, "benchmarks")
from render_throughput import random_rays, PC_RANGE
from bench_common import triton_registers
from nsmae_lightning.models import march_fused_triton as mft, color_mlp_triton as cmt
from nsmae_lightning.models.march_fused_triton import _dot, mlp_constants
from nsmae_lightning.models.ray_samples import pack_samples
from nsmae_lightning.models.rendering import RenderConfig, NeRFPretrainHead
OUT_LANES = cmt.OUT_LANES

@triton.jit
def _bw(features, feature_stride, ray_index, ray_bias, w1, w2, b2, w3, b3, grad_color,
        grad_features, grad_bias, grad_w1, grad_w2, grad_b2, grad_w3, grad_b3, rows_total,
        FEATURES: tl.constexpr, FEATURE_LANES: tl.constexpr, HIDDEN: tl.constexpr,
        HIDDEN_LANES: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr,
        BLOCK_M: tl.constexpr, HOIST: tl.constexpr, DO_BIAS: tl.constexpr, DO_WGRAD: tl.constexpr,
        DO_GRADX: tl.constexpr, BIAS_ROWS: tl.constexpr):
    compute = w1.dtype.element_ty
    feature = tl.arange(0, FEATURE_LANES)
    hidden = tl.arange(0, HIDDEN_LANES)
    out = tl.arange(0, OUT_LANES)
    slot = tl.arange(0, BLOCK_M)
    feature_ok = feature < FEATURES
    hidden_ok = hidden < HIDDEN
    out_ok = out < 3
    acc_w1 = tl.zeros((FEATURE_LANES, HIDDEN_LANES), dtype=tl.float32)
    acc_w2 = tl.zeros((HIDDEN_LANES, HIDDEN_LANES), dtype=tl.float32)
    acc_w3 = tl.zeros((HIDDEN_LANES, OUT_LANES), dtype=tl.float32)
    acc_b2 = tl.zeros((HIDDEN_LANES,), dtype=tl.float32)
    acc_b3 = tl.zeros((OUT_LANES,), dtype=tl.float32)
    # weights in both layouts (HOIST: once per program, not per block; no register transposes either way)
    w1t = tl.load(w1 + hidden[None, :] * FEATURES + feature[:, None], mask=feature_ok[:, None] & hidden_ok[None, :], other=0.0)
    w1n = tl.load(w1 + hidden[:, None] * FEATURES + feature[None, :], mask=hidden_ok[:, None] & feature_ok[None, :], other=0.0)
    w2t = tl.load(w2 + hidden[None, :] * HIDDEN + hidden[:, None], mask=hidden_ok[:, None] & hidden_ok[None, :], other=0.0)
    w2n = tl.load(w2 + hidden[:, None] * HIDDEN + hidden[None, :], mask=hidden_ok[:, None] & hidden_ok[None, :], other=0.0)
    w3t = tl.load(w3 + out[None, :] * HIDDEN + hidden[:, None], mask=hidden_ok[:, None] & out_ok[None, :], other=0.0)
    w3n = tl.load(w3 + out[:, None] * HIDDEN + hidden[None, :], mask=out_ok[:, None] & hidden_ok[None, :], other=0.0)
    bias2 = tl.load(b2 + hidden, mask=hidden_ok, other=0.0).to(tl.float32)
    bias3 = tl.load(b3 + out, mask=out_ok, other=0.0).to(tl.float32)
    for block in range(tl.program_id(0), tl.cdiv(rows_total, BLOCK_M), tl.num_programs(0)):
        rows = block * BLOCK_M + slot
        valid = rows < rows_total
        if not HOIST:
            w1t = tl.load(w1 + hidden[None, :] * FEATURES + feature[:, None], mask=feature_ok[:, None] & hidden_ok[None, :], other=0.0)
            w1n = tl.load(w1 + hidden[:, None] * FEATURES + feature[None, :], mask=hidden_ok[:, None] & feature_ok[None, :], other=0.0)
            w2t = tl.load(w2 + hidden[None, :] * HIDDEN + hidden[:, None], mask=hidden_ok[:, None] & hidden_ok[None, :], other=0.0)
            w2n = tl.load(w2 + hidden[:, None] * HIDDEN + hidden[None, :], mask=hidden_ok[:, None] & hidden_ok[None, :], other=0.0)
            w3t = tl.load(w3 + out[None, :] * HIDDEN + hidden[:, None], mask=hidden_ok[:, None] & out_ok[None, :], other=0.0)
            w3n = tl.load(w3 + out[:, None] * HIDDEN + hidden[None, :], mask=out_ok[:, None] & hidden_ok[None, :], other=0.0)
        x = tl.load(features + rows[:, None].to(tl.int64) * feature_stride + feature[None, :],
                    mask=valid[:, None] & feature_ok[None, :], other=0.0).to(compute)
        ray = tl.load(ray_index + rows, mask=valid, other=0)
        bias1 = tl.load(ray_bias + ray[:, None].to(tl.int64) * HIDDEN + hidden[None, :],
                        mask=valid[:, None] & hidden_ok[None, :], other=0.0)
        h1 = tl.maximum(_dot(x, w1t, PRECISION, UPCAST) + bias1, 0.0).to(compute)
        h2 = tl.maximum(_dot(h1, w2t, PRECISION, UPCAST) + bias2[None, :], 0.0).to(compute)
        color = tl.sigmoid(_dot(h2, w3t, PRECISION, UPCAST) + bias3[None, :])
        upstream = tl.load(grad_color + rows[:, None].to(tl.int64) * 3 + out[None, :],
                           mask=valid[:, None] & out_ok[None, :], other=0.0).to(tl.float32)
        dz3 = upstream * color * (1.0 - color)
        acc_b3 += tl.sum(dz3, axis=0)
        dz3 = dz3.to(compute)
        if DO_WGRAD:
            acc_w3 += _dot(tl.trans(h2), dz3, PRECISION, UPCAST)
        dz2 = tl.where(h2 > 0.0, _dot(dz3, w3n, PRECISION, UPCAST), 0.0)
        acc_b2 += tl.sum(dz2, axis=0)
        dz2 = dz2.to(compute)
        if DO_WGRAD:
            acc_w2 += _dot(tl.trans(h1), dz2, PRECISION, UPCAST)
        dz1 = tl.where(h1 > 0.0, _dot(dz2, w2n, PRECISION, UPCAST), 0.0).to(compute)
        if DO_WGRAD:
            acc_w1 += _dot(tl.trans(x), dz1, PRECISION, UPCAST)
        if DO_GRADX:
            grad_x = _dot(dz1, w1n, PRECISION, UPCAST)
            tl.store(grad_features + rows[:, None].to(tl.int64) * FEATURES + feature[None, :],
                     grad_x.to(grad_features.dtype.element_ty), mask=valid[:, None] & feature_ok[None, :])
        if DO_BIAS:
            if BIAS_ROWS:  # every row's dz1 added on its own (no one-hot product)
                tl.atomic_add(grad_bias + ray[:, None].to(tl.int64) * HIDDEN + hidden[None, :], dz1.to(tl.float32),
                              mask=valid[:, None] & hidden_ok[None, :], sem="relaxed")
            else:
                previous = tl.load(ray_index + rows - 1, mask=valid & (slot > 0), other=-1)
                run = tl.cumsum((ray != previous).to(tl.int32), axis=0) - 1
                run = tl.where(valid, run, BLOCK_M)
                member = slot[:, None] == run[None, :]
                run_sum = _dot(tl.where(member, 1.0, 0.0).to(compute), dz1, PRECISION, UPCAST)
                run_ray = tl.max(tl.where(member, ray.to(tl.int32)[None, :], -1), axis=1)
                tl.atomic_add(grad_bias + run_ray[:, None].to(tl.int64) * HIDDEN + hidden[None, :], run_sum,
                              mask=(run_ray >= 0)[:, None] & hidden_ok[None, :], sem="relaxed")
    tl.atomic_add(grad_w1 + hidden[None, :] * FEATURES + feature[:, None], acc_w1, mask=feature_ok[:, None] & hidden_ok[None, :], sem="relaxed")
    tl.atomic_add(grad_w2 + hidden[None, :] * HIDDEN + hidden[:, None], acc_w2, mask=hidden_ok[:, None] & hidden_ok[None, :], sem="relaxed")
    tl.atomic_add(grad_w3 + out[None, :] * HIDDEN + hidden[:, None], acc_w3, mask=hidden_ok[:, None] & out_ok[None, :], sem="relaxed")
    tl.atomic_add(grad_b2 + hidden, acc_b2, mask=hidden_ok, sem="relaxed")
    tl.atomic_add(grad_b3 + out, acc_b3, mask=out_ok, sem="relaxed")


def main():
    cpu = not torch.cuda.is_available()  # a CPU smoke run in the interpreter (TRITON_INTERPRET=1): tiny, untimed
    dev = torch.device("cpu" if cpu else "cuda")
    config = RenderConfig(z_bins=40, feature_channels=32, per_step=0.8, color_mlp="triton")
    net = NeRFPretrainHead(config, 256, PC_RANGE).network.to(dev)
    rays = random_rays(2, 8 if cpu else 16384, dev)
    s = pack_samples(rays.near, rays.far, 0.8, config.max_samples_per_ray)
    rows = s.t.shape[0]
    first, second, last = mft.color_layers(net.color_mlp)
    bf = torch.bfloat16
    feats = torch.randn(rows, 32, device=dev, dtype=bf)
    ray_bias = torch.randn(rays.directions.shape[0], 64, device=dev) * 0.5
    weights = [w.detach().to(bf).contiguous() for w in (first.weight[:, :32], second.weight, second.bias, last.weight, last.bias)]
    grad_color = torch.randn(rows, 3, device=dev, dtype=bf)
    ray_index = s.ray_index.contiguous()
    consts = mlp_constants(32, 64, bf)
    sms = 1 if cpu else torch.cuda.get_device_properties(dev).multi_processor_count

    def buffers():
        gf = torch.empty(rows, 32, device=dev, dtype=bf)
        shapes = [ray_bias.shape, *(w.shape for w in weights)]
        return gf, [torch.zeros(sh, device=dev) for sh in shapes]

    def run(kernel, block, warps, pps, extra, bufs, stages=None):
        gf, grads = bufs
        grid = (min(triton.cdiv(rows, block), sms * pps),)
        kw = dict(num_warps=warps)
        if stages is not None:
            kw["num_stages"] = stages
        if cpu:
            kw = {}
        kernel[grid](feats, feats.stride(0), ray_index, ray_bias, *weights, grad_color, gf, *grads, rows,
                     **consts, BLOCK_M=block, **extra, **kw)

    def timeit(fn, n=30):
        if cpu:
            fn(); return 0.0
        for _ in range(5): fn()
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(n): fn()
        end.record(); torch.cuda.synchronize()
        return start.elapsed_time(end) / n

    results = []
    ref = buffers(); run(cmt._backward_kernel, 16 if cpu else 32, 4, 2, {}, ref)
    def check(bufs):
        gf, grads = bufs
        errs = [((gf.float() - ref[0].float()).abs().max() / ref[0].float().abs().max()).item()]
        for a, b in zip(grads, ref[1]):
            errs.append(((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item())
        return max(errs)

    bufs = buffers()
    for block, warps in ((16, 2),) if cpu else ((16, 1), (16, 2), (32, 1), (32, 2), (32, 4), (32, 8), (64, 2), (64, 4), (64, 8), (128, 4), (128, 8)):
        for pps in (1,) if cpu else (1, 2, 4):
            try:
                ms = timeit(lambda: run(cmt._backward_kernel, block, warps, pps, {}, bufs))
            except Exception as error:  # noqa: BLE001 (an experiment: record and go on)
                ms = f"error {type(error).__name__}: {str(error)[:120]}"
            results.append({"kernel": "production", "block": block, "warps": warps, "pps": pps, "ms": ms})
            print(results[-1], flush=True)
    base = dict(HOIST=False, DO_BIAS=True, DO_WGRAD=True, DO_GRADX=True, BIAS_ROWS=False)
    variants = {
        "copy (no weight transposes)": {},
        "hoisted weights": {"HOIST": True},
        "ablate bias grad": {"DO_BIAS": False},
        "ablate weight grads": {"DO_WGRAD": False},
        "ablate grad_x": {"DO_GRADX": False},
        "ablate all three": {"DO_BIAS": False, "DO_WGRAD": False, "DO_GRADX": False},
        "bias grad per row atomics": {"BIAS_ROWS": True},
        "hoisted + bias per row": {"HOIST": True, "BIAS_ROWS": True},
    }
    for name, change in variants.items():
        extra = {**base, **change}
        for block, warps, pps in ((16, 1, 2),) if cpu else ((32, 4, 2), (32, 2, 4), (64, 4, 2), (64, 8, 2), (128, 8, 1)):
            try:
                trial = buffers(); run(_bw, block, warps, pps, extra, trial)
                err = check(trial)
                ms = timeit(lambda: run(_bw, block, warps, pps, extra, bufs))
            except Exception as error:  # noqa: BLE001
                ms, err = f"error {type(error).__name__}: {str(error)[:120]}", None
            results.append({"kernel": name, "block": block, "warps": warps, "pps": pps, "ms": ms, "max_rel_err_vs_production": err})
            print(results[-1], flush=True)
    regs = triton_registers(["nsmae_lightning.models.color_mlp_triton"])
    for name, value in (("_bw", _bw),):
        for cache in getattr(value, "device_caches", {}).values():
            for key, kernel in cache[0].items():
                regs.append({"kernel": "ablate._bw", "key": str(key)[:300], "n_regs": kernel.n_regs, "n_spills": kernel.n_spills,
                             "num_warps": kernel.metadata.num_warps})
    out = os.environ.get("OUT", ".")
    with open(f"{out}/mlp_ablate.json", "w") as f:
        json.dump({"rows": rows, "device": "cpu" if cpu else torch.cuda.get_device_name(), "results": results, "registers": regs}, f, indent=1)
    for r in regs: print(r)

main()
