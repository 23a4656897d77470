"""Throughput of the NS-MAE render network: ray samples per second, forward + backward.

Measurements per sampler ("trilinear", "trilinear_compiled", "trilinear_triton", "grid_sample"),
march (`RenderConfig.march`: "dense", "packed", "packed_triton", "fused_triton", "fused_mlp_triton";
"auto" is timed as what it resolves to) and dtype (fp32, bf16), on a
paper-size volume (B = 2, Z = 40, Ny = Nx = 180, 1 + Cf = 33):

- ``pack``: `pack_samples` alone (the rays' samples listed, one host read), in torch ops
  (march "torch") and in `ray_samples_triton`'s kernels (march "triton", CUDA), with
  ``reference_error`` 0 where the kernels' samples equal the torch ones bit for bit (else 1);
- ``activation``: the density softplus on the decoder's (B Ny Nx, Z (1 + Cf)) output alone, forward +
  backward (`volume_layout.density_activation`), in torch ops (march "torch") and in its Triton kernels
  (march "triton", CUDA), ``reference_error`` the largest difference of the kernels' output and gradient
  from the torch ones (samples: voxels; both sides also time the ``* 1`` that makes each call a fresh input);
- ``sampler``: the trilinear read alone, at ray-ordered samples (random rays through
  the range, fixed step) as the renderer produces them (no march); with trilinear_triton also
  "trilinear_triton_rays", the same kernels computing the points from the rays (the render path's);
- ``composite``: the compositor alone (per-sample sigma and rgb -> depth, opacity,
  colour -> loss -> backward), the dense one including its scatter into (R, S) (no sampler);
- ``mlp``: the colour MLP alone (sampled features + each ray's encoded view direction ->
  RGB -> backward), the share of the march that is neither sampling nor compositing;
  per ``--color-mlps`` (`RenderConfig.color_mlp`: "torch" layers, "triton" kernels), which the
  march and render rows of the non-fused marches also run through;
- ``march``: the render network after its volume decoder: ray marching -> sampling ->
  colour MLP -> compositing -> loss -> backward into the volume;
- ``render``: the whole render head for PER-like rays: BEV embedding -> conv volume ->
  ray marching -> sampling -> colour MLP -> compositing -> loss -> backward.

``--kinds`` picks the measurements, ``--samplers`` x ``--marches`` the variants (or
``--pairs sampler:march,...`` exactly the listed ones), so a short GPU session can time
only the promising rows. "fused_triton" samples inside its own kernels, so it pairs only
with "trilinear_triton" (the row's name for that in-kernel sampler); it and
"fused_mlp_triton" have no ``composite`` row (their compositor is not a separate step).

Timing: warm-up iterations first (compilation, allocator), then `--repeats` timed
iterations bracketed by `torch.cuda.synchronize()`; the median is reported with the
peak memory of the timed iterations. Runs on CUDA when present, else on CPU (use small
`--rays` there). Prints a table and writes JSON to ``--out``.

    python benchmarks/render_throughput.py --out runs/render_throughput.json
    python benchmarks/render_throughput.py --out runs/quick.json --dtypes bf16 --kinds march \
        --pairs trilinear_compiled:dense,trilinear_triton:packed_triton,trilinear_triton:fused_triton,trilinear_triton:fused_mlp_triton
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bench_common import kernel_times, time_calls, triton_registers

from nsmae_lightning.atomic import atomic_write_text
from nsmae_lightning.models.ray_samples import pack_samples
from nsmae_lightning.models.rays import RayBundle, clip_to_range
from nsmae_lightning.models.rendered_rays import RenderedRays
from nsmae_lightning.models.rendering import (
    COLOR_MLPS,
    FUSED_MARCHES,
    MARCHES,
    NeRFPretrainHead,
    RenderConfig,
    march_compositor,
    resolve_color_mlp,
    resolve_render_path,
)
from nsmae_lightning.models.trilinear import metric_to_voxel, sample_volume
from nsmae_lightning.models.volume_layout import density_activation

PC_RANGE: tuple[float, ...] = (-54.0, -54.0, -5.0, 54.0, 54.0, 3.0)
DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16}
KINDS: tuple[str, ...] = ("pack", "activation", "sampler", "composite", "mlp", "march", "render")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the results")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--z-bins", type=int, default=40)
    parser.add_argument("--grid", type=int, default=180, help="Ny = Nx of the BEV embedding")
    parser.add_argument("--feature-channels", type=int, default=32)
    parser.add_argument("--embed-channels", type=int, default=256)
    parser.add_argument("--row-pad", type=int, default=0, metavar="N",
                        help="sampler rows: read the volume's 1 + Cf channels from rows of 1 + Cf + N in memory, the "
                             "N padding channels in front as RenderConfig.volume_row_bytes puts them (with --profile, "
                             "the sampler kernels' GPU ms show what row alignment costs: 33 bf16 channels are 66-byte "
                             "rows; padded to 48, every stride is a multiple of 16 elements and the features start "
                             "32-byte aligned, as Triton needs to vectorise the row loads; until the sixteenth "
                             "session the padding stood after the channels)")
    parser.add_argument("--rays", type=int, default=16384, help="rays per batch element")
    parser.add_argument("--step", type=float, default=0.8, help="metres between samples (PER)")
    parser.add_argument("--ray-order", choices=RAY_ORDERS, default="raster",
                        help="rays in cameras' raster order, as `rays.draw` lists them (default), or random (before "
                             "2026-12-03: `random_rays`)")
    parser.add_argument("--embedding", choices=EMBEDDING_LAYOUTS, default="decoder",
                        help="the render rows' BEV embedding: as `BEVDecoder` returns it (channels-last, the autocast "
                             "dtype; default) or float32 NCHW (before the ninth session, 2026-12-03)")
    parser.add_argument("--samplers", default="trilinear,trilinear_compiled,trilinear_triton,grid_sample")
    parser.add_argument("--marches", default="dense", help=f"comma-separated, of {','.join(MARCHES)}")
    parser.add_argument("--pairs", help="sampler:march,... instead of --samplers x --marches")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated, of {','.join(KINDS)}")
    parser.add_argument("--color-mlps", default="torch", help=f"comma-separated, of {','.join(COLOR_MLPS)},auto")
    parser.add_argument("--dtypes", default="fp32,bf16")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--profile", type=int, default=0, metavar="CALLS",
                        help="after timing, profile CALLS more calls per row: GPU kernel ms and the top kernels")
    parser.add_argument("--top", type=int, default=8, help="kernels and host ops listed per profiled row")
    parser.add_argument("--color-cull", type=float, default=0.0, metavar="EPS",
                        help="march / render rows: RenderConfig.color_cull (colour only at samples whose weight "
                             "exceeds EPS); the rows report the coloured fraction of the samples")
    parser.add_argument("--volume-row-bytes", type=int, default=0, metavar="BYTES",
                        help="march / render rows: RenderConfig.volume_row_bytes (the render network's volume rows "
                             "padded to a multiple of BYTES; 32: 33 bf16 channels in rows of 48)")
    parser.add_argument("--cuda-graph", action="store_true",
                        help="march / render rows (CUDA): time replays of one CUDA graph of the forward + backward "
                             "at the rays' samples packed once (the host's launches taken out of the call)")
    return parser.parse_args()


RAY_ORDERS: tuple[str, ...] = ("random", "raster")
EMBEDDING_LAYOUTS: tuple[str, ...] = ("decoder", "nchw-fp32")
CAMERAS, IMAGE_ROWS = 6, 256  # the "raster" order's yaw sectors and pitch rows


def bev_embedding(shape: tuple[int, int, int, int], device: torch.device, dtype: torch.dtype, layout: str,
                  requires_grad: bool) -> torch.Tensor:
    """A random (B, C, Ny, Nx) BEV embedding leaf laid out as ``layout`` says: "decoder" as `BEVDecoder`
    returns it under autocast (channels-last, ``dtype``), "nchw-fp32" as the earlier sessions' rows had it
    (the render head then paid a cast-and-transpose copy, 0.31 ms at the paper size on an H200)."""
    if layout not in EMBEDDING_LAYOUTS:
        raise ValueError(f"embedding layout must be one of {EMBEDDING_LAYOUTS}, got {layout!r}")
    bev = torch.randn(shape, device=device)
    if layout == "decoder":
        bev = bev.to(dtype).contiguous(memory_format=torch.channels_last)
    return bev.requires_grad_(requires_grad)


def random_rays(batch_size: int, rays_per_sample: int, device: torch.device, order: str = "random") -> RayBundle:
    """PER-like rays: origins near the ego at camera height, directions mostly horizontal.

    ``order``: "random" (each ray's direction independent of its neighbours') or "raster": the same kind
    of rays listed per batch element by camera (six 60-degree yaw sectors), image row (pitch), then
    column (yaw), as pixels drawn from six images in raster order are; neighbouring rays then cross
    neighbouring voxels (cache locality of the sampler's reads and atomics)."""
    if order not in RAY_ORDERS:
        raise ValueError(f"ray order must be one of {RAY_ORDERS}, got {order!r}")
    count = batch_size * rays_per_sample
    batch_index = torch.arange(batch_size, device=device).repeat_interleave(rays_per_sample)
    origins = torch.randn(count, 3, device=device) * torch.tensor([1.0, 1.0, 0.2], device=device)
    yaw = 2 * torch.pi * torch.rand(count, device=device)
    pitch = (torch.rand(count, device=device) - 0.7) * 0.5
    if order == "raster":
        sector = yaw.double() * CAMERAS / (2 * torch.pi)  # camera + fraction across its image
        row = ((0.15 - pitch.double()) / 0.5 * IMAGE_ROWS).floor()  # top row first
        key = (batch_index * CAMERAS + sector.floor()) * IMAGE_ROWS + row + sector.frac()
        order_index = key.argsort()
        yaw, pitch = yaw[order_index], pitch[order_index]
    directions = torch.stack([pitch.cos() * yaw.cos(), pitch.cos() * yaw.sin(), pitch.sin()], dim=-1)
    near, far = clip_to_range(origins, directions, PC_RANGE)
    zeros = torch.zeros_like(near)
    return RayBundle(
        origins=origins,
        directions=directions,
        batch_index=batch_index,
        near=near,
        far=far,
        depth_target=zeros,
        has_depth=zeros.bool(),
        rgb_target=torch.rand(count, 3, device=device),
    )


def ray_samples(rays: RayBundle, step: float, grid_size: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Voxel coordinates and batch indices of every sample the render head reads on the rays."""
    samples = pack_samples(rays.near, rays.far, step, RenderConfig.max_samples_per_ray)
    ray_index = samples.ray_index
    points = rays.origins[ray_index] + samples.t.unsqueeze(-1) * rays.directions[ray_index]
    return metric_to_voxel(points, PC_RANGE, grid_size), rays.batch_index[ray_index]


def time_iterations(step_fn: Callable[[], None], args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Median seconds per call, its host part and peak memory (MiB, CUDA only) of `step_fn`
    (bench_common.time_calls); with ``--profile`` also its GPU kernel time per call and top kernels
    (bench_common.kernel_times)."""
    timed = time_calls(step_fn, device, args.warmup, args.repeats)
    profiled = kernel_times(step_fn, device, args.profile, top=args.top) if args.profile else {}
    return {"seconds": timed["ms"] / 1000, "host_seconds": timed["host_ms"] / 1000,
            "peak_mib": timed["peak_gib"] * 1024, **profiled}


ALONG_RAYS = "trilinear_triton_rays"  # the sampler row of `triton_sample_along_rays` (points made in the kernels)


def bench_sampler(args: argparse.Namespace, sampler: str, dtype: torch.dtype, device: torch.device) -> dict[str, float]:
    """Trilinear read alone, forward + backward into the volume: at given voxel coordinates, or for
    ALONG_RAYS at the rays' samples (what the render path runs with trilinear_triton)."""
    grid_size = (args.z_bins, args.grid, args.grid)
    rays = random_rays(args.batch, args.rays, device, args.ray_order)  # first: the same rays at any --row-pad
    channels = 1 + args.feature_channels
    rows = torch.randn(args.batch, *grid_size, channels + args.row_pad, device=device, dtype=dtype, requires_grad=True)
    volume = rows[..., args.row_pad:]  # the volume itself without --row-pad
    coords, batch_index = ray_samples(rays, args.step, grid_size)
    packed = pack_samples(rays.near, rays.far, args.step, RenderConfig.max_samples_per_ray)
    upstream = torch.randn(coords.shape[0], channels, device=device, dtype=dtype)

    def sampled() -> torch.Tensor:
        if sampler == ALONG_RAYS:
            from nsmae_lightning.models.trilinear_triton import triton_sample_along_rays

            return triton_sample_along_rays(volume, rays.origins, rays.directions, rays.batch_index,
                                            packed.ray_index, packed.t, PC_RANGE)
        return sample_volume(volume, coords, batch_index, sampler)

    def step_fn() -> None:
        rows.grad = None
        sampled().backward(upstream)

    result = time_iterations(step_fn, args, device)
    return {**result, "samples": float(coords.shape[0]), "samples_per_s": coords.shape[0] / result["seconds"],
            "row_channels": float(channels + args.row_pad)}


def bench_pack(args: argparse.Namespace, kernels: bool, dtype: torch.dtype, device: torch.device) -> dict[str, float]:
    """`pack_samples` of PER-like rays alone, in torch ops or in its kernels (no backward: nothing to differentiate)."""
    rays = random_rays(args.batch, args.rays, device, args.ray_order)
    max_samples = RenderConfig.max_samples_per_ray

    def step_fn() -> None:
        pack_samples(rays.near, rays.far, args.step, max_samples, kernels=kernels)

    result = time_iterations(step_fn, args, device)
    got = pack_samples(rays.near, rays.far, args.step, max_samples, kernels=kernels)
    expected = pack_samples(rays.near, rays.far, args.step, max_samples, kernels=False)
    same = got.width == expected.width and all(torch.equal(getattr(got, name), getattr(expected, name))
                                               for name in ("ray_index", "sample_index", "t", "offsets"))
    count = got.t.shape[0]
    return {**result, "samples": float(count), "samples_per_s": count / result["seconds"],
            "reference_error": 0.0 if same else 1.0}


def bench_activation(args: argparse.Namespace, kernels: bool, dtype: torch.dtype, device: torch.device) -> dict[str, float]:
    """The density activation of a paper-size decoder output, forward + backward, in torch ops or its kernels."""
    channels = 1 + args.feature_channels
    cells, width = args.batch * args.grid * args.grid, args.z_bins * channels
    raw = torch.randn(cells, width, device=device, dtype=dtype) * 4
    upstream = torch.randn_like(raw)
    leaf = raw.clone().requires_grad_()

    def run(use_kernels: bool) -> tuple[torch.Tensor, torch.Tensor]:
        activated = density_activation(leaf * 1, channels, kernels=use_kernels)  # a fresh tensor, as the GEMM's
        (grad,) = torch.autograd.grad(activated, leaf, upstream)
        return activated.detach(), grad

    result = time_iterations(lambda: run(kernels), args, device)
    error = max(float((got.float() - expected.float()).abs().max()) for got, expected in zip(run(kernels), run(False)))
    voxels = cells * args.z_bins
    return {**result, "samples": float(voxels), "samples_per_s": voxels / result["seconds"], "reference_error": error}


def rgb_depth_loss(rendered: RenderedRays, rays: RayBundle) -> torch.Tensor:
    """A colour + depth loss of the rendered rays (what pretraining backpropagates)."""
    return ((rendered.rgb - rays.rgb_target) ** 2).sum(-1).mean() + rendered.depth.abs().mean()  # type: ignore[operator]


def bench_composite(args: argparse.Namespace, march: str, dtype: torch.dtype, device: torch.device) -> dict[str, float]:
    """The compositor alone, fwd + bwd into per-sample sigma and rgb."""
    rays = random_rays(args.batch, args.rays, device, args.ray_order)
    samples = pack_samples(rays.near, rays.far, args.step, RenderConfig.max_samples_per_ray)
    count = samples.t.shape[0]
    values = torch.rand(count, 1 + args.feature_channels, device=device, dtype=dtype, requires_grad=True)
    rgb = torch.rand(count, 3, device=device, dtype=dtype, requires_grad=True)
    compositor = march_compositor(march)
    step = args.step

    def step_fn() -> None:
        values.grad = rgb.grad = None
        rgb_depth_loss(compositor(values[:, 0], samples, step, rgb, 0.0, False), rays).backward()

    result = time_iterations(step_fn, args, device)
    return {**result, "samples": float(count), "samples_per_s": count / result["seconds"]}


def bench_mlp(args: argparse.Namespace, color_mlp: str, dtype: torch.dtype, device: torch.device) -> dict[str, float]:
    """The colour MLP alone, fwd + bwd into its weights and the sampled features."""
    config = RenderConfig(z_bins=args.z_bins, feature_channels=args.feature_channels, per_step=args.step,
                          color_mlp=color_mlp)
    network = NeRFPretrainHead(config, args.embed_channels, PC_RANGE).network.to(device)
    rays = random_rays(args.batch, args.rays, device, args.ray_order)
    samples = pack_samples(rays.near, rays.far, args.step, config.max_samples_per_ray)
    count = samples.t.shape[0]
    features = torch.randn(count, args.feature_channels, device=device, dtype=dtype, requires_grad=True)
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)

    def step_fn() -> None:
        network.zero_grad(set_to_none=True)
        features.grad = None
        with autocast:
            rgb = network.color(features, rays.directions, samples.ray_index)
        rgb.float().square().mean().backward()

    result = time_iterations(step_fn, args, device)
    return {**result, "samples": float(count), "samples_per_s": count / result["seconds"]}


def graphed(step_fn: Callable[[Any], None], leaves: list[torch.Tensor], packed: Any,
            device: torch.device) -> tuple[Callable[[], None], float]:
    """``step_fn(packed)`` captured once as a CUDA graph, its replay the new step, and how far one replay's
    gradients of ``leaves`` are from an eager call's (relative to the eager ones' largest magnitude).

    The samples are packed once outside the graph (their count is a host read, which a capture cannot
    hold); each replay runs the forward + backward's kernels without the host's launches. The captured
    call sets the gradients, so each replay writes them into the same tensors (the graph's, not accumulated).
    """
    if device.type != "cuda":
        raise SystemExit("--cuda-graph needs a CUDA device")
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):  # warm-up off the default stream (autotuning, allocator), as capture asks
        for _ in range(3):
            step_fn(packed)
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step_fn(packed)
    captured = [leaf.grad for leaf in leaves]
    graph.replay()
    replayed = [None if grad is None else grad.clone() for grad in captured]
    step_fn(packed)  # eager: new gradient tensors; the graph keeps writing its own
    error = max(float((got.float() - leaf.grad.float()).abs().max() / leaf.grad.float().abs().max().clamp_min(1e-30))
                for got, leaf in zip(replayed, leaves) if got is not None and leaf.grad is not None)
    return graph.replay, error


def bench_head(
    args: argparse.Namespace, sampler: str, march: str, color_mlp: str, dtype: torch.dtype, device: torch.device,
    with_decoder: bool,
) -> dict[str, float]:
    """The render head fwd + bwd from the BEV embedding (``with_decoder``) or from a fixed volume.

    Besides the time, ``reference_error``: the largest difference of the loss and of every gradient
    (input and parameters) from the same head with the eager sampler and the dense march, relative
    to that reference's largest magnitude (with the torch colour MLP): the compiled / autotuned kernels checked on the device
    they are timed on (the tests check them in Triton's CPU interpreter).
    """
    config = RenderConfig(z_bins=args.z_bins, feature_channels=args.feature_channels, per_step=args.step,
                          sampler=sampler, march=march, color_mlp="torch" if color_mlp == "-" else color_mlp,
                          color_cull=args.color_cull, volume_row_bytes=args.volume_row_bytes)
    head = NeRFPretrainHead(config, args.embed_channels, PC_RANGE).to(device)
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    bev = bev_embedding((args.batch, args.embed_channels, args.grid, args.grid), device, dtype, args.embedding,
                        with_decoder)
    fixed_volume = torch.empty(0)
    if not with_decoder:
        with torch.no_grad(), autocast:
            fixed_volume = head.network.volume(bev)
        fixed_volume.requires_grad_()
    rays = random_rays(args.batch, args.rays, device, args.ray_order)
    samples = ray_samples(rays, args.step, (args.z_bins, args.grid, args.grid))[0].shape[0]

    def loss_fn(packed: Any = None) -> torch.Tensor:
        # the samples are packed first, as pretraining does (`RenderPlan`): that host wait finds the GPU idle
        if packed is None:
            packed = pack_samples(rays.near, rays.far, args.step, config.max_samples_per_ray)
        with autocast:
            volume = head.network.volume(bev) if with_decoder else fixed_volume
            return rgb_depth_loss(head.render(volume, rays, args.step, with_color=True, samples=packed), rays)

    def step_fn(packed: Any = None) -> None:
        head.zero_grad(set_to_none=True)
        bev.grad = fixed_volume.grad = None  # (accumulating into the leaf would add a volume-sized sum per call)
        loss_fn(packed).backward()

    call, graph_error = step_fn, None
    if args.cuda_graph:
        leaves = [bev if with_decoder else fixed_volume, *head.parameters()]
        packed = pack_samples(rays.near, rays.far, args.step, config.max_samples_per_ray)
        call, graph_error = graphed(step_fn, leaves, packed, device)
    result = time_iterations(call, args, device)
    result["cuda_graph"] = args.cuda_graph
    if graph_error is not None:
        result["graph_error"] = graph_error

    def loss_and_gradients(render_config: RenderConfig) -> list[torch.Tensor]:
        head.config = render_config
        loss = loss_fn()
        inputs = [bev if with_decoder else fixed_volume, *head.network.parameters()]  # the decoder's: None without it
        return [loss.detach(), *torch.autograd.grad(loss, inputs, allow_unused=True)]

    got = loss_and_gradients(config)
    expected = loss_and_gradients(dataclasses.replace(config, sampler="trilinear", march="dense", color_mlp="torch",
                                                      color_cull=0.0))  # the exact march
    error = max(float((value.float() - reference.float()).abs().max() / reference.float().abs().max().clamp_min(1e-30))
                for value, reference in zip(got, expected) if reference is not None and reference.numel())
    if args.color_cull > 0.0:  # what the timed calls coloured, as the render call reports it
        head.config = config
        with torch.no_grad(), autocast:
            volume = head.network.volume(bev) if with_decoder else fixed_volume
            packed = pack_samples(rays.near, rays.far, args.step, config.max_samples_per_ray)
            result["colored_fraction"] = head.render(volume, rays, args.step, with_color=True,
                                                     samples=packed).colored_fraction
    return {**result, "samples": float(samples), "samples_per_s": samples / result["seconds"], "reference_error": error}


def bench_render(
    args: argparse.Namespace, sampler: str, march: str, color_mlp: str, dtype: torch.dtype, device: torch.device
) -> dict[str, float]:
    """The whole render head: volume decoder, marching, sampling, MLP, compositing."""
    return bench_head(args, sampler, march, color_mlp, dtype, device, with_decoder=True)


def bench_march(
    args: argparse.Namespace, sampler: str, march: str, color_mlp: str, dtype: torch.dtype, device: torch.device
) -> dict[str, float]:
    """The render head after its volume decoder (gradients stop at the volume)."""
    return bench_head(args, sampler, march, color_mlp, dtype, device, with_decoder=False)


def _split(values: str, allowed: tuple[str, ...], flag: str) -> list[str]:
    """A comma-separated option, checked against what it may name."""
    chosen = [value for value in values.split(",") if value]
    unknown = sorted(set(chosen) - set(allowed))
    if unknown:
        raise SystemExit(f"{flag}: unknown {unknown}; expected some of {list(allowed)}")
    return chosen


Row = tuple[str, str, str, str, Callable[..., dict[str, float]]]


def planned_rows(args: argparse.Namespace, device: torch.device) -> list[Row]:
    """(kind, sampler, march, color_mlp, bench(dtype, device)) of every row to time, in order; "-" where it
    does not apply (the fused marches run their own colour MLP).

    "auto" (sampler, march or colour MLP) is timed as the path it resolves to on ``device``.
    """
    kinds = _split(args.kinds, KINDS, "--kinds")
    color_mlps = list(dict.fromkeys(resolve_color_mlp(kind, device)
                                    for kind in _split(args.color_mlps, (*COLOR_MLPS, "auto"), "--color-mlps")))
    if args.pairs:
        named = [tuple(pair.split(":", 1)) for pair in args.pairs.split(",") if pair]
        if any(len(pair) != 2 for pair in named):
            raise SystemExit(f"--pairs takes sampler:march,..., got {args.pairs!r}")
    else:
        named = [(sampler, march) for sampler in args.samplers.split(",") for march in args.marches.split(",")]
    pairs = list(dict.fromkeys(resolve_render_path(sampler, march, device) for sampler, march in named))
    samplers = list(dict.fromkeys(sampler for sampler, _ in pairs))
    marches = _split(",".join(dict.fromkeys(march for _, march in pairs)), MARCHES, "--marches / --pairs")
    fused = sorted({sampler for sampler, march in pairs if march == "fused_triton"} - {"trilinear_triton"})
    if fused:
        raise SystemExit(f"march fused_triton samples in its own kernels: pair it with trilinear_triton, got {fused}")
    plan: list[Row] = []
    implementations = ["torch", "triton"] if device.type == "cuda" else ["torch"]  # torch ops, their kernels
    for kind, bench_kernels in (("pack", bench_pack), ("activation", bench_activation)):
        if kind in kinds:
            plan += [(kind, "-", name, "-", lambda d, v, k=name == "triton", b=bench_kernels: b(args, k, d, v))
                     for name in implementations]
    if "composite" in kinds:
        plan += [("composite", "-", march, "-", lambda d, v, m=march: bench_composite(args, m, d, v))
                 for march in marches if march not in FUSED_MARCHES]  # no separate compositor
    if "mlp" in kinds:
        plan += [("mlp", "-", "-", mlp, lambda d, v, c=mlp: bench_mlp(args, c, d, v)) for mlp in color_mlps]
    if "sampler" in kinds:
        along = [ALONG_RAYS] if "trilinear_triton" in samplers else []  # and the render path's variant of it
        plan += [("sampler", sampler, "-", "-", lambda d, v, s=sampler: bench_sampler(args, s, d, v))
                 for sampler in [*samplers, *along]]
    for kind, bench in (("march", bench_march), ("render", bench_render)):
        if kind in kinds:
            plan += [(kind, sampler, march, mlp, lambda d, v, s=sampler, m=march, c=mlp, b=bench: b(args, s, m, c, d, v))
                     for sampler, march in pairs for mlp in (["-"] if march in FUSED_MARCHES else color_mlps)]
    return plan


HEADER = (f"{'kind':9} {'sampler':20} {'march':16} {'mlp':6} {'dtype':5} {'samples':>10} {'ms':>9} {'host ms':>8} {'Msamples/s':>11} "
          f"{'peak MiB':>9} {'ref. err':>9} {'GPU ms':>8}")


def format_row(row: dict[str, object]) -> str:
    """One line of the printed table."""
    label = f"{row['kind']:9} {row['sampler']:20} {row['march']:16} {row['color_mlp']:6} {row['dtype']:5}"
    if "error" in row:
        return f"{label} {row['error']}"
    return (f"{label} {int(row['samples']):>10} {row['seconds'] * 1e3:>9.2f} "  # type: ignore[operator]
            f"{row.get('host_seconds', float('nan')) * 1e3:>8.2f} "  # type: ignore[operator]
            f"{row['samples_per_s'] / 1e6:>11.1f} {row['peak_mib']:>9.0f} "  # type: ignore[operator]
            + (f"{row['reference_error']:>9.1e}" if "reference_error" in row else f"{'-':>9}")
            + (f" {row['gpu_ms']:>8.2f}" if "gpu_ms" in row else "")
            + (f"  graph err {row['graph_error']:.1e}" if "graph_error" in row else "")
            + (f"  coloured {row['colored_fraction']:.3f}" if "colored_fraction" in row else ""))


def main() -> None:
    args = parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    report: dict[str, object] = {"device": device_name, "torch": torch.__version__,
                                 "args": {k: str(v) for k, v in vars(args).items()}, "rows": []}
    rows: list[dict[str, object]] = report["rows"]  # type: ignore[assignment]
    plan = planned_rows(args, device)
    for dtype_name in _split(args.dtypes, tuple(DTYPES), "--dtypes"):
        for kind, sampler, march, color_mlp, bench in plan:
            try:
                measured = bench(DTYPES[dtype_name], device)
            except (RuntimeError, ValueError, torch.OutOfMemoryError) as error:  # keep the other rows
                measured = {"error": f"{type(error).__name__}: {str(error).splitlines()[0]}"}
            row = {"kind": kind, "sampler": sampler, "march": march, "color_mlp": color_mlp, "dtype": dtype_name,
                   **measured}
            rows.append(row)
            print(format_row(row), flush=True)
            report["triton_kernels"] = triton_registers()  # the variants compiled so far
            # after every row: a run cut by a time limit keeps what it measured
            atomic_write_text(args.out, json.dumps(report, indent=2))
            if device.type == "cuda":
                torch.cuda.empty_cache()
    print(HEADER)
    for row in rows:
        print(format_row(row))


if __name__ == "__main__":
    main()
