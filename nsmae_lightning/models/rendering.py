"""NeRF-like render network and volume rendering for NS-MAE pretraining (paper Sec. III-E to III-H).

The render network f(x, w, e) = (sigma, c) turns the fused BEV embedding e into a
density volume and a colour-feature volume over the pc range ("channels -> Z"
reshape of a conv output), reads both at ray samples x by trilinear interpolation
(one fused channels-last gather, `trilinear.py`), and maps the sampled feature plus
the encoded view direction w to RGB with a small MLP. Density is made non-negative
with softplus *before* sampling, so samples outside the range read exactly zero.

Volume rendering (eqs. 2 and 4) marches each ray from the point where it enters the
pc range at a fixed step delta (PER 0.8 m, BEV 0.2 m): sample i sits at
`t_i = near + i * delta`, T_i = exp(-sum_{j<i} sigma_j delta),
w_i = T_i (1 - exp(-sigma_i delta)), colour = sum_i w_i c_i + (1 - sum_i w_i) * background,
depth = sum_i w_i t_i. Eq. (4) measures t from the first sample; we measure it from
the ray origin, which is the same whenever the origin lies in the range (cameras,
BEV rays from the top plane) and keeps rendered depth comparable with the LiDAR
distances of `rays.py` otherwise. Depth is *not* divided by sum_i w_i (as in eq. 4)
unless `normalize_depth` is set. Transmittance, weights, depth and losses are float32
even under autocast.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from nsmae_lightning.models.rays import (
    RAY_MODES,
    RayBundle,
    bev_rays,
    clip_to_range,
    denormalize_images,
    distance_images,
    perspective_rays,
    pillar_depth,
    pillar_rays,
    pixel_rays,
    points_in_range,
    random_view_rays,
)
from nsmae_lightning.models.color_cull import colored_samples, scatter_colors
from nsmae_lightning.models.composite_packed import composite_packed
from nsmae_lightning.models.device_constants import device_constant
from nsmae_lightning.models.ray_samples import PackedSamples, pack_samples
from nsmae_lightning.models.render_loss import LossTerm, loss_term
from nsmae_lightning.models.rendered_rays import RenderedRays, finish_rendering
from nsmae_lightning.models.trilinear import SAMPLERS, metric_to_voxel, sample_volume
from nsmae_lightning.models.trilinear_triton import culled_in_one_node
from nsmae_lightning.models.volume_layout import density_activation, padded_pitch, row_suffix, split_density

# How `NeRFPretrainHead.render` lays out and composites the samples: "dense" pads every ray to
# S samples ((R, S) grids, `nonzero`, `index_put`), "packed" keeps the ragged per-ray segments
# (torch, `composite_packed`), "packed_triton" composites them with Triton kernels (`composite_triton`),
# "fused_triton" samples, runs the colour MLP and composites colour rays in one Triton kernel each way
# (`march_fused_triton`; depth-only rays go as "packed_triton"), "fused_mlp_triton" samples with the
# configured sampler and runs the colour MLP and compositing in those kernels.
MARCHES: tuple[str, ...] = ("dense", "packed", "packed_triton", "fused_triton", "fused_mlp_triton")
FUSED_MARCHES: tuple[str, ...] = ("fused_triton", "fused_mlp_triton")
# How the colour MLP of the other marches runs: its torch layers, or `color_mlp_triton`'s kernels.
COLOR_MLPS: tuple[str, ...] = ("torch", "triton")

# `sampler: auto` / `march: auto`: the fastest measured path for the volume's device. On CUDA with
# triton that is the Triton sampler + Triton compositor (benchmarks/RESULTS.md, 2026-12-02, H200 bf16:
# render 0.107 vs 0.087 Gsamples/s for the compiled sampler's dense march, and ahead of fused_triton);
# elsewhere the eager sampler and the dense reference march.
AUTO = "auto"


def triton_is_fast(device: torch.device) -> bool:
    """Whether Triton kernels are the measured fast path on ``device``: CUDA, with the triton package."""
    from nsmae_lightning.models.trilinear_triton import triton  # None without the optional package

    return device.type == "cuda" and triton is not None


def resolve_render_path(sampler: str, march: str, device: torch.device) -> tuple[str, str]:
    """(sampler, march) with "auto" replaced by the fastest path on ``device``; other names unchanged."""
    fast = triton_is_fast(device)
    if sampler == AUTO:
        sampler = "trilinear_triton" if fast else "trilinear"
    if march == AUTO:
        march = "packed_triton" if fast else "dense"
    return sampler, march


def resolve_color_mlp(kind: str, device: torch.device) -> str:
    """The colour MLP's implementation for ``kind`` ("auto": "triton" on CUDA with triton, else "torch")."""
    if kind == AUTO:
        return "triton" if triton_is_fast(device) else "torch"
    return kind


# Table VIII rendering targets (colour, D_PER, D_BEV, D_Rand) per setting; masking is the task's.
TABLE_VIII_TARGETS: dict[str, tuple[bool, bool, bool, bool]] = {
    "A1": (True, False, False, False),
    "A2": (True, False, False, False),
    "B0": (False, False, False, True),
    "B1": (False, True, False, False),
    "B2": (False, False, True, False),
    "B3": (False, True, True, False),
    "B4": (False, True, True, True),
    "default": (True, True, True, True),
}


@dataclass
class RenderConfig:
    """Every knob of the render head; the defaults are the paper's settings (Sec. IV-A).

    Attributes:
        z_bins: Z of the density / feature volumes over the range height.
        feature_channels: Cf, colour-feature channels per voxel.
        trunk_channels: width of the conv layers before the volume projection.
        trunk_layers: 3x3 conv + ReLU layers before the volume projection.
        mlp_hidden: hidden width of the colour MLP.
        mlp_layers: hidden layers of the colour MLP.
        use_view_dir: feed the encoded view direction to the colour MLP.
        view_dir_frequencies: sin/cos frequencies of the direction encoding (0 = raw).
        color: render colour on PER rays (Table VIII "C").
        depth_per: PER depth loss (D^PER).
        depth_bev: BEV depth loss (D^BEV).
        depth_rand: random-view depth loss (D^Rand).
        lambda_color: weight of the colour loss (paper 1e4).
        lambda_depth_per: weight of D^PER (paper 1e-2).
        lambda_depth_bev: weight of D^BEV (paper 1e-2).
        lambda_depth_rand: weight of D^Rand (paper's depth weight 1e-2).
        per_step: delta of PER rays in metres (paper 0.8).
        bev_step: delta of BEV rays in metres (paper 0.2).
        rand_step: delta of random-view rays in metres.
        max_samples_per_ray: cap on samples per ray (longer rays are cut).
        normalize_depth: divide rendered depth by sum_i w_i (eq. 4 does not).
        background: grey level behind the range for colour (eq. 2 has none: 0).
        ray_mode: "lidar" (rays only through pixels / pillars hit by LiDAR, as UniPAD)
            or "uniform" (over all pixels / pillars).
        per_rays: PER rays per batch element and step (over all its cameras).
        bev_rays: BEV rays per batch element and step.
        rand_rays: random-view rays per batch element and step.
        rand_cameras: virtual cameras per batch element and step.
        rand_image_size: (H, W) of the virtual cameras.
        rand_fov_deg: horizontal field of view of the virtual cameras.
        rand_origin_radius: virtual camera centres lie within this radius of the LiDAR.
        rand_height_range: (low, high) z of the virtual camera centres.
        rand_pitch_range_deg: (low, high) pitch of the virtual cameras (up positive).
        sampler: "trilinear" (fused channels-last sampler), "trilinear_compiled" (the
            same through torch.compile, for GPUs), "trilinear_triton" (Triton kernels,
            CUDA), "grid_sample" (baseline) or "auto" (`resolve_render_path`: the Triton
            sampler on CUDA with triton, else "trilinear").
        march: sample layout and compositor, one of MARCHES: "dense" (the reference),
            "packed" (ragged segments, torch), "packed_triton" (ragged segments,
            Triton compositor, CUDA) or "fused_triton" (colour rays: sampling, colour
            MLP and compositing fused in Triton kernels, which ignore `sampler`; needs
            mlp_layers == 2; depth-only rays as "packed_triton"), "fused_mlp_triton" (as
            "fused_triton", but the kernels read the `sampler`'s values); all render the
            same samples to the same values; "auto" (`resolve_render_path`): "packed_triton"
            on CUDA with triton, else "dense".
        color_mlp: how the colour MLP runs on the samples: "torch" (layers as written), "triton"
            (`color_mlp_triton`: one forward and one backward kernel, CUDA; needs mlp_layers == 2)
            or "auto" ("triton" on CUDA with triton, else "torch"); the same function either way.
            The fused marches run their own MLP and ignore it.
        color_cull: compositing weight at or below which a sample's colour is not evaluated (its colour
            features not sampled, the colour MLP not run; it still absorbs): 0 evaluates every sample,
            exactly; > 0 (e.g. 1e-4) changes a ray's colour by at most color_cull per culled sample and
            leaves depth and opacity exact (`color_cull`). Training only: in eval mode (validation,
            rendered images) every sample is coloured, so runs with and without it are scored alike.
            Not with the fused marches.
        render_chunk_rays: rays per chunk when rendering full images for logging.
        volume_row_bytes: pad each voxel's 1 + Cf channels in the render network's volume to a multiple of
            this many bytes (in the volume's dtype; 0: no padding): 32 gives 33 bf16 channels rows of 48
            (96 bytes, whole 32-byte sectors) instead of 66 bytes that straddle sectors; the padding is zero,
            not read, and leads each row, so that the 32 features after the density fill two whole sectors
            (the Triton sampler reads them with 16-byte loads). The same function and parameters either way.
    """

    z_bins: int = 40
    feature_channels: int = 32
    trunk_channels: int = 128
    trunk_layers: int = 2
    mlp_hidden: int = 64
    mlp_layers: int = 2
    use_view_dir: bool = True
    view_dir_frequencies: int = 4
    color: bool = True
    depth_per: bool = True
    depth_bev: bool = True
    depth_rand: bool = True
    lambda_color: float = 1e4
    lambda_depth_per: float = 1e-2
    lambda_depth_bev: float = 1e-2
    lambda_depth_rand: float = 1e-2
    per_step: float = 0.8
    bev_step: float = 0.2
    rand_step: float = 0.8
    max_samples_per_ray: int = 256
    normalize_depth: bool = False
    background: float = 0.0
    ray_mode: str = "lidar"
    per_rays: int = 4096
    bev_rays: int = 4096
    rand_rays: int = 2048
    rand_cameras: int = 2
    rand_image_size: tuple[int, int] = field(default=(64, 176))
    rand_fov_deg: float = 90.0
    rand_origin_radius: float = 5.0
    rand_height_range: tuple[float, float] = field(default=(-1.0, 1.0))
    rand_pitch_range_deg: tuple[float, float] = field(default=(-15.0, 10.0))
    sampler: str = "trilinear"
    march: str = "dense"
    color_mlp: str = "torch"
    color_cull: float = 0.0
    render_chunk_rays: int = 8192
    volume_row_bytes: int = 0

    def __post_init__(self) -> None:
        if self.ray_mode not in RAY_MODES:
            raise ValueError(f"RenderConfig.ray_mode must be one of {RAY_MODES}, got {self.ray_mode!r}")
        if self.sampler not in (*SAMPLERS, AUTO):
            raise ValueError(f"RenderConfig.sampler must be one of {(*SAMPLERS, AUTO)}, got {self.sampler!r}")
        if self.march not in (*MARCHES, AUTO):
            raise ValueError(f"RenderConfig.march must be one of {(*MARCHES, AUTO)}, got {self.march!r}")
        if self.color_mlp not in (*COLOR_MLPS, AUTO):
            raise ValueError(f"RenderConfig.color_mlp must be one of {(*COLOR_MLPS, AUTO)}, got {self.color_mlp!r}")
        if self.color_mlp == "triton":
            from nsmae_lightning.models.color_mlp_triton import color_mlp_problem  # triton is optional

            problem = color_mlp_problem(self.mlp_layers, self.mlp_hidden, self.feature_channels)
            if problem is not None:
                raise ValueError(problem)
        if not 0.0 <= self.color_cull < 1.0:
            raise ValueError(f"RenderConfig.color_cull must be in [0, 1), got {self.color_cull}")
        if self.color_cull > 0.0 and self.march in FUSED_MARCHES:
            raise ValueError(f"RenderConfig.color_cull needs a march that runs the colour MLP apart "
                             f"(dense, packed, packed_triton), not {self.march!r}")
        if self.march in FUSED_MARCHES:
            from nsmae_lightning.models.march_fused_triton import fused_march_problem  # triton is optional

            problem = fused_march_problem(self.mlp_layers, self.mlp_hidden, self.feature_channels)
            if problem is not None:
                raise ValueError(problem)
        positive = {
            "z_bins": self.z_bins,
            "feature_channels": self.feature_channels,
            "trunk_channels": self.trunk_channels,
            "mlp_hidden": self.mlp_hidden,
            "per_step": self.per_step,
            "bev_step": self.bev_step,
            "rand_step": self.rand_step,
            "max_samples_per_ray": self.max_samples_per_ray,
            "per_rays": self.per_rays,
            "bev_rays": self.bev_rays,
            "rand_rays": self.rand_rays,
            "rand_cameras": self.rand_cameras,
            "render_chunk_rays": self.render_chunk_rays,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"RenderConfig.{name} must be positive, got {value}")
        if self.volume_row_bytes < 0 or self.volume_row_bytes % 8:
            raise ValueError(f"RenderConfig.volume_row_bytes must be 0 or a positive multiple of 8 (whole elements of "
                             f"any float dtype), got {self.volume_row_bytes}")
        if not (self.color or self.depth_per or self.depth_bev or self.depth_rand):
            raise ValueError("RenderConfig enables no rendering target (color, depth_per, depth_bev, depth_rand)")

    @classmethod
    def paper(cls) -> RenderConfig:
        """The paper's default setting: C + D^PER + D^BEV + D^Rand, lambdas 1e4 / 1e-2, deltas 0.8 / 0.2."""
        return cls()

    @classmethod
    def table_viii(cls, setting: str) -> RenderConfig:
        """The rendering targets of a Table VIII row ("A1".."B4", "default"); masking is set elsewhere."""
        if setting not in TABLE_VIII_TARGETS:
            raise ValueError(f"unknown Table VIII setting {setting!r}; expected one of {sorted(TABLE_VIII_TARGETS)}")
        color, depth_per, depth_bev, depth_rand = TABLE_VIII_TARGETS[setting]
        return cls(color=color, depth_per=depth_per, depth_bev=depth_bev, depth_rand=depth_rand)


@dataclass
class RenderOutput:
    """What the pretraining head returns for one batch.

    Attributes:
        losses: unweighted L_k of the enabled terms (loss_color, loss_depth_per,
            loss_depth_bev, loss_depth_rand), float32 scalars.
        total: sum_k lambda_k L_k (eq. 7).
        skipped: per enabled term, batch elements that had no valid target (int64 scalar tensors).
        rays: per enabled term, rays that carried a target (int64 scalar tensors).
        colored_fraction: the share of the colour view's samples whose colour was evaluated, when
            `RenderConfig.color_cull` left some out (training); None otherwise.
    """

    losses: dict[str, Tensor]
    total: Tensor
    skipped: dict[str, Tensor]
    rays: dict[str, Tensor]
    colored_fraction: float | None = None


@dataclass
class RenderView:
    """One view's rays for a step, with their packed samples at the view's step."""

    rays: RayBundle
    samples: PackedSamples
    step: float


@dataclass
class RenderPlan:
    """The rays of every enabled view of one batch ("per", "bev", "rand"), drawn before rendering.

    Drawing rays and counting their samples waits on the device (which pixels and pillars
    LiDAR hit, how many samples each ray gets); `NeRFPretrainHead.plan` is therefore called
    before the embedding's forward is queued (`PretrainTask`), when those waits are short,
    instead of between the embedding and the rendering, where each would wait for the whole
    queued forward.
    """

    views: dict[str, RenderView]
    bev_shape: tuple[int, int]


def composite(
    sigma: Tensor, t: Tensor, step: float, rgb: Tensor | None, background: float, normalize_depth: bool
) -> RenderedRays:
    """Discrete volume rendering (eqs. 2 and 4) in float32, whatever autocast says.

    Args:
        sigma: (R, S) non-negative densities (0 for padding samples past the ray's end).
        t: (R, S) distance of each sample from the ray origin.
        step: delta between samples.
        rgb: (R, S, 3) colours, or None.
        background: colour seen through the leftover transmittance.
        normalize_depth: divide depth by the opacity sum_i w_i.

    Returns:
        Rendered depth, opacity and colour.
    """
    with torch.autocast(device_type=sigma.device.type, enabled=False):
        optical_depth = sigma.float() * step  # (R, S)
        accumulated = torch.cumsum(optical_depth, dim=-1)
        transmittance = torch.exp(-(accumulated - optical_depth))  # exclusive sum: T_i
        weights = transmittance * (1.0 - torch.exp(-optical_depth))
        depth = (weights * t.float()).sum(dim=-1)
        color = (weights.unsqueeze(-1) * rgb.float()).sum(dim=-2) if rgb is not None else None
        return finish_rendering(weights.sum(dim=-1), depth, color, background, normalize_depth)


def composite_dense(
    sigma: Tensor, samples: PackedSamples, step: float, rgb: Tensor | None, background: float, normalize_depth: bool
) -> RenderedRays:
    """The dense march's compositor (march "dense", the reference of the packed ones): the packed
    samples scattered into (R, S) grids, padding with zero density, then `composite`.

    Args and returns as `composite_packed.composite_packed`.
    """
    rays = samples.offsets.shape[0] - 1
    where = (samples.ray_index, samples.sample_index)
    t = samples.t.new_zeros(rays, samples.width).index_put(where, samples.t)
    dense_sigma = sigma.new_zeros(rays, samples.width).index_put(where, sigma)
    dense_rgb = None if rgb is None else rgb.new_zeros(rays, samples.width, 3).index_put(where, rgb)
    return composite(dense_sigma, t, step, dense_rgb, background, normalize_depth)


def march_compositor(march: str) -> Callable[..., RenderedRays]:
    """The compositor of a march (one of MARCHES; fused_triton's depth-only rays use the Triton one)."""
    if march == "dense":
        return composite_dense
    if march == "packed":
        return composite_packed
    if march not in MARCHES:
        raise ValueError(f"march must be one of {MARCHES}, got {march!r}")
    from nsmae_lightning.models.composite_triton import composite_triton  # triton is optional

    return composite_triton


def encode_directions(directions: Tensor, frequencies: int) -> Tensor:
    """(M, 3) unit directions -> (M, 3 * (1 + 2 * frequencies)) [d, sin(2^k pi d), cos(2^k pi d)] for k < frequencies.

    All frequencies at once (5 kernels, not 3 per frequency + 2): the same products and values.
    """
    scales = device_constant([math.pi * 2.0**level for level in range(frequencies)], directions.device,
                             directions.dtype)
    scaled = directions[:, None, :] * scales[None, :, None]  # (M, K, 3)
    waves = torch.stack([torch.sin(scaled), torch.cos(scaled)], dim=2)  # (M, K, 2, 3): sin_k, cos_k per level
    return torch.cat([directions, waves.flatten(1)], dim=-1)


class RenderNetwork(nn.Module):
    """f(x, w, e) = (sigma, c): BEV embedding -> density + feature volumes -> colour MLP.

    Args:
        embed_channels: C of the fused BEV embedding.
        config: sizes (z_bins, feature_channels, trunk_*, mlp_*, view-direction switches).
    """

    def __init__(self, embed_channels: int, config: RenderConfig) -> None:
        super().__init__()
        self.z_bins = config.z_bins
        self.feature_channels = config.feature_channels
        self.use_view_dir = config.use_view_dir
        self.view_dir_frequencies = config.view_dir_frequencies
        self.color_kernel = config.color_mlp
        self.row_bytes = config.volume_row_bytes
        if self.color_kernel == AUTO:  # "auto" never picks kernels that cannot run this MLP shape
            from nsmae_lightning.models.color_mlp_triton import color_mlp_problem  # triton is optional

            if color_mlp_problem(config.mlp_layers, config.mlp_hidden, config.feature_channels) is not None:
                self.color_kernel = "torch"
        trunk: list[nn.Module] = []
        channels = embed_channels
        for _ in range(config.trunk_layers):
            trunk += [nn.Conv2d(channels, config.trunk_channels, 3, padding=1), nn.ReLU(inplace=True)]
            channels = config.trunk_channels
        self.trunk = nn.Sequential(*trunk)
        self.to_volume = nn.Conv2d(channels, (1 + config.feature_channels) * config.z_bins, 1)
        direction_channels = 3 * (1 + 2 * config.view_dir_frequencies) if config.use_view_dir else 0
        mlp: list[nn.Module] = []
        width = config.feature_channels + direction_channels
        for _ in range(config.mlp_layers):
            mlp += [nn.Linear(width, config.mlp_hidden), nn.ReLU(inplace=True)]
            width = config.mlp_hidden
        mlp.append(nn.Linear(width, 3))
        self.color_mlp = nn.Sequential(*mlp)

    def volume(self, bev: Tensor) -> Tensor:
        """Fused channels-last volume: channel 0 = density (softplus), 1.. = colour features.

        The convolutions run channels-last (cuDNN's NHWC kernels, no layout conversions); the
        last, 1x1 one is a GEMM over the BEV cells whose output channels are taken z-major
        (its parameters keep the channel order c * Z + z of ``to_volume``: the same function and
        checkpoints), so it writes the volume in the storage order (B, Ny, Nx, Z, P) and the
        (B, Z, Ny, Nx, C) result is a permuted view of it (`volume_layout`), with no copy either way.
        P = C unless ``volume_row_bytes`` pads the rows: then the GEMM's first P - C output channels of
        each z have zero weights and `volume_layout.row_suffix` views the last C, so that the features
        after the density start on a 32-byte boundary (`trilinear_triton.aligned_features`: the sampler
        reads them with 16-byte loads). Under autocast the volume has the
        autocast dtype (density included).

        Args:
            bev: (B, C, Ny, Nx) fused BEV embedding.

        Returns:
            (B, Z, Ny, Nx, 1 + Cf), strides of a (B, Ny, Nx, Z, P) tensor.
        """
        batch_size, _, size_y, size_x = bev.shape
        channels = 1 + self.feature_channels
        trunk = self.trunk(bev.contiguous(memory_format=torch.channels_last))  # (B, T, Ny, Nx)
        autocast = torch.is_autocast_enabled(bev.device.type)
        dtype = torch.get_autocast_dtype(bev.device.type) if autocast else trunk.dtype
        pitch = padded_pitch(channels, dtype.itemsize, self.row_bytes)
        # row z * P + pad + c = to_volume's channel c * Z + z for c < C; pad = P - C zero rows lead each z
        weight = self.to_volume.weight.view(channels, self.z_bins, -1).transpose(0, 1)  # (Z, C, T)
        bias = self.to_volume.bias.view(channels, self.z_bins).T  # (Z, C)
        pad = pitch - channels
        if pad:  # only then: an unpadded volume adds no pad ops (fwd + bwd) to the host-bound step
            weight = nn.functional.pad(weight, (0, 0, pad, 0))
            bias = nn.functional.pad(bias, (pad, 0))
        weight, bias = weight.reshape(pitch * self.z_bins, -1), bias.reshape(-1)
        cells = trunk.permute(0, 2, 3, 1).reshape(-1, trunk.shape[1])  # (B Ny Nx, T): channels-last, no copy
        # a 2-D GEMM's output is no view (linear on 4-D returns one): the activation can write it in place;
        # its Triton kernels on CUDA (H200, bf16, paper size: 0.24 vs 0.34 GPU ms fwd+bwd, RESULTS.md 7th session)
        activated = density_activation(torch.addmm(bias, cells, weight.T), pitch,
                                       kernels=triton_is_fast(bev.device), position=pad)  # (B Ny Nx, Z * P)
        if pad:
            return row_suffix(activated, (batch_size, self.z_bins, size_y, size_x, channels))
        # views whose backward takes the gradient in any layout (a sum of views' too)
        return activated.view(batch_size, size_y, size_x, self.z_bins, channels).permute(0, 3, 1, 2, 4)

    def ray_bias(self, directions: Tensor) -> Tensor:
        """(R, 3) unit ray directions -> (R, H) float32 p_r = W1e enc(d_r) + b1, the first layer's per-ray
        part (b1 alone without view directions); autocast off, differentiable in W1e and b1."""
        first = self.color_mlp[0]
        with torch.autocast(device_type=directions.device.type, enabled=False):
            bias = first.bias.float().expand(directions.shape[0], -1)
            if not self.use_view_dir:
                return bias
            encoded = encode_directions(directions.float(), self.view_dir_frequencies)
            return bias + encoded @ first.weight[:, self.feature_channels :].float().T

    def color(self, features: Tensor, directions: Tensor, ray_index: Tensor | None = None) -> Tensor:
        """(M, Cf) sampled features + unit view directions -> (M, 3) RGB in [0, 1].

        ``directions`` are (M, 3) per sample, or (R, 3) per ray with ``ray_index`` (M,)
        naming each sample's ray. Per ray, the first layer's direction part is constant
        along the ray: W1 [f, enc(d)] + b1 = W1f f + (W1e enc(d_r) + b1), the bracket
        computed once per ray, so the per-sample product has K = Cf inputs (32: aligned,
        no concatenated (M, Cf + 27) copy) instead of Cf + 27. The same function; the
        parameters (and checkpoints) are those of the concatenated layer. With ``ray_index``
        and color_mlp "triton" (or "auto" on CUDA) the layers run in `color_mlp_triton`'s kernels.
        """
        if ray_index is not None and resolve_color_mlp(self.color_kernel, features.device) == "triton":
            from nsmae_lightning.models.color_mlp_triton import color_mlp_triton  # triton is optional

            return color_mlp_triton(features, directions, ray_index, self)
        if not self.use_view_dir:
            return torch.sigmoid(self.color_mlp(features))
        encoded = encode_directions(directions, self.view_dir_frequencies).to(features.dtype)
        if ray_index is None:
            return torch.sigmoid(self.color_mlp(torch.cat([features, encoded], dim=-1)))
        first = self.color_mlp[0]
        per_ray = nn.functional.linear(encoded, first.weight[:, self.feature_channels :], first.bias)  # (R, H)
        # index_select, not per_ray[ray_index]: its backward is a scatter-add; advanced indexing's
        # is a sort-based index_put_ on CUDA (pytorch/pytorch#15245), over every sample here
        hidden = torch.addmm(per_ray.index_select(0, ray_index), features, first.weight[:, : self.feature_channels].T)
        return torch.sigmoid(self.color_mlp[1:](hidden))


class NeRFPretrainHead(nn.Module):
    """Renders PER / BEV / Rand views from the fused BEV embedding and returns eq. (7).

    Args:
        config: the render knobs (RenderConfig.paper() for the paper's settings).
        embed_channels: C of the BEV embedding it receives.
        pc_range: (x0, y0, z0, x1, y1, z1) the embedding covers.
    """

    def __init__(self, config: RenderConfig, embed_channels: int, pc_range: Sequence[float]) -> None:
        super().__init__()
        if len(pc_range) != 6 or any(pc_range[axis] >= pc_range[axis + 3] for axis in range(3)):
            raise ValueError(f"pc_range must be (x0, y0, z0, x1, y1, z1) with lower < upper, got {pc_range}")
        self.config = config
        self.pc_range = tuple(float(value) for value in pc_range)
        self.network = RenderNetwork(embed_channels, config)

    def _sample(self, volume: Tensor, points: Tensor, batch_index: Tensor, sampler: str) -> Tensor:
        """(M, 3) metric points -> (M, C) volume values with the named sampler."""
        coords = metric_to_voxel(points.float(), self.pc_range, volume.shape[1:4])
        return sample_volume(volume, coords, batch_index, sampler)

    def render(
        self, volume: Tensor, rays: RayBundle, step: float, with_color: bool, samples: PackedSamples | None = None
    ) -> RenderedRays:
        """March the rays through the volume and composite them.

        Args:
            volume: (B, Z, Ny, Nx, C) from `RenderNetwork.volume` (C = 1 suffices
                without colour).
            rays: the rays (origins, directions, near, far, batch_index are used).
            step: delta between samples.
            with_color: evaluate the colour MLP and composite RGB.
            samples: the rays' packed samples at ``step`` (`pack_samples`), if made already.

        Returns:
            Rendered depth, opacity and (if asked) colour per ray.
        """
        config = self.config
        sampler, march = resolve_render_path(config.sampler, config.march, volume.device)
        # every march reads the same samples (those with t < far, at most max_samples_per_ray a ray)
        if samples is None:
            samples = pack_samples(rays.near, rays.far, step, config.max_samples_per_ray)
        ray_index = samples.ray_index
        # the Triton sampler makes the points from the rays in one small kernel where the geometry is data
        along_rays = sampler == "trilinear_triton" and not (
            rays.origins.requires_grad or rays.directions.requires_grad or samples.t.requires_grad)

        def sampled(split: bool, channels: Tensor = volume, kept: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
            """(M, C) ``channels`` (the volume or a channel slice of it) at the samples (those ``kept``, if
            given) with the configured sampler, or with ``split`` their density (M,) and features (M, C - 1)
            (`split_density`; the Triton sampler writes them apart)."""
            rows, t = (ray_index, samples.t) if kept is None else (ray_index[kept], samples.t[kept])
            if along_rays:
                from nsmae_lightning.models.trilinear_triton import triton_sample_along_rays

                return triton_sample_along_rays(channels, rays.origins, rays.directions, rays.batch_index, rows, t,
                                                self.pc_range, split=split)
            points = rays.origins[rows] + t.unsqueeze(-1) * rays.directions[rows]
            values = self._sample(channels, points, rays.batch_index[rows], sampler)
            return split_density(values) if split else values

        if with_color and march in FUSED_MARCHES:
            from nsmae_lightning.models.march_fused_triton import fused_color_march  # triton is optional

            # fused_triton samples inside its kernels; fused_mlp_triton reads the sampler's values
            values = None if march == "fused_triton" else sampled(split=False)
            return fused_color_march(volume, rays, samples, step, self.network, self.pc_range, config.background,
                                     config.normalize_depth, values=values)
        colors = None
        colored_fraction = None
        if with_color and config.color_cull > 0.0 and self.training:  # density everywhere, colour where w_i > cull
            def choose(density: Tensor) -> Tensor:  # with the weights the compositor will compute
                return colored_samples(density, samples, step, config.color_cull, kernel=march == "packed_triton")

            if along_rays and culled_in_one_node(volume.shape[-1]):  # both passes in one autograd node
                from nsmae_lightning.models.trilinear_triton import triton_sample_culled

                density, features, kept = triton_sample_culled(volume, rays.origins, rays.directions, rays.batch_index,
                                                               ray_index, samples.t, self.pc_range, choose)
            else:
                density = sampled(split=False, channels=volume[..., :1])[:, 0]
                kept = choose(density)
                features = sampled(split=False, channels=volume[..., 1:], kept=kept)
            colors = scatter_colors(self.network.color(features, rays.directions, ray_index[kept]), kept,
                                    ray_index.shape[0])
            colored_fraction = kept.shape[0] / max(ray_index.shape[0], 1)  # both sizes known: no wait
        elif with_color:
            density, features = sampled(split=True)
            colors = self.network.color(features, rays.directions, ray_index)  # (M, 3)
        else:
            density = sampled(split=False)[:, 0]
        compositor = march_compositor(march)
        rendered = compositor(density, samples, step, colors, config.background, config.normalize_depth)
        rendered.colored_fraction = colored_fraction
        return rendered

    def _zero(self, bev: Tensor) -> Tensor:
        """A float32 zero that touches bev and every parameter (a skipped term stays in the graph)."""
        anchor = bev.float().sum() + sum(parameter.float().sum() for parameter in self.parameters())
        return anchor * 0.0

    def plan(self, batch: dict[str, object], bev_shape: Sequence[int]) -> RenderPlan:
        """Draw the rays of every enabled view and pack their samples (see `RenderPlan`).

        Args:
            batch: the UNMASKED batch (images, intrinsics, cam2lidar, img_aug, points).
            bev_shape: (Ny, Nx) of the BEV embedding the rays will be rendered from.
        """
        config = self.config
        points: list[Tensor] = batch["points"]  # type: ignore[assignment]
        bev_shape = (int(bev_shape[0]), int(bev_shape[1]))
        drawn: dict[str, tuple[RayBundle, float]] = {}
        if config.color or config.depth_per:
            drawn["per"] = (perspective_rays(batch, self.pc_range, config.per_rays, config.ray_mode, config.color),
                            config.per_step)
        if config.depth_bev:
            drawn["bev"] = (bev_rays(points, self.pc_range, bev_shape, config.bev_rays, config.ray_mode),
                            config.bev_step)
        if config.depth_rand:
            rays = random_view_rays(
                points,
                self.pc_range,
                config.rand_cameras,
                config.rand_rays,
                config.ray_mode,
                config.rand_image_size,
                config.rand_fov_deg,
                config.rand_origin_radius,
                config.rand_height_range,
                config.rand_pitch_range_deg,
            )
            drawn["rand"] = (rays, config.rand_step)
        views = {name: RenderView(rays, pack_samples(rays.near, rays.far, step, config.max_samples_per_ray), step)
                 for name, (rays, step) in drawn.items()}
        return RenderPlan(views=views, bev_shape=bev_shape)

    def forward(self, bev: Tensor, batch: dict[str, object], plan: RenderPlan | None = None) -> RenderOutput:
        """Render every enabled view and compute the reconstruction losses.

        Args:
            bev: (B, C, Ny, Nx) fused BEV embedding of the masked input.
            batch: the UNMASKED batch (images, intrinsics, cam2lidar, img_aug, points).
            plan: the batch's rays from `plan` (drawn here if None).

        Returns:
            Losses, their weighted total, skip counts and ray counts.
        """
        config = self.config
        batch_size = bev.shape[0]
        points: list[Tensor] = batch["points"]  # type: ignore[assignment]
        if len(points) != batch_size:
            raise ValueError(f"batch has {len(points)} point clouds but the BEV embedding has {batch_size} samples")
        if plan is None:
            plan = self.plan(batch, bev.shape[-2:])
        elif plan.bev_shape != tuple(bev.shape[-2:]):
            raise ValueError(f"the render plan was drawn for a {plan.bev_shape} BEV grid, the embedding is "
                             f"{tuple(bev.shape[-2:])}")
        volume = self.network.volume(bev)
        density = volume[..., :1].contiguous()  # depth-only views read one channel
        zero = self._zero(bev)
        terms: dict[str, tuple[LossTerm, float]] = {}

        def depth_term(rays: RayBundle, rendered: RenderedRays) -> LossTerm:
            return loss_term(
                rendered.depth, rays.depth_target, rays.has_depth, rays.batch_index, batch_size, 1, zero
            )

        def rendered(name: str, with_color: bool) -> tuple[RayBundle, RenderedRays]:
            view = plan.views[name]
            return view.rays, self.render(volume if with_color else density, view.rays, view.step, with_color,
                                          view.samples)

        if "per" in plan.views:
            rays, per = rendered("per", config.color)
            if config.color:
                all_rays = torch.ones_like(rays.has_depth)
                color_term = loss_term(
                    per.rgb, rays.rgb_target, all_rays, rays.batch_index, batch_size, 2, zero  # type: ignore[arg-type]
                )
                terms["loss_color"] = (color_term, config.lambda_color)
            if config.depth_per:
                terms["loss_depth_per"] = (depth_term(rays, per), config.lambda_depth_per)
        if "bev" in plan.views:
            terms["loss_depth_bev"] = (depth_term(*rendered("bev", False)), config.lambda_depth_bev)
        if "rand" in plan.views:
            terms["loss_depth_rand"] = (depth_term(*rendered("rand", False)), config.lambda_depth_rand)
        total = sum((term.value * weight for term, weight in terms.values()), start=zero)
        return RenderOutput(
            losses={name: term.value for name, (term, _) in terms.items()},
            total=total,
            skipped={name: term.skipped for name, (term, _) in terms.items()},
            rays={name: term.rays for name, (term, _) in terms.items()},
            colored_fraction=per.colored_fraction if "per" in plan.views and config.color else None,
        )

    def _render_chunked(self, volume: Tensor, rays: RayBundle, step: float, with_color: bool) -> RenderedRays:
        """Render many rays in chunks of `render_chunk_rays` (for full images)."""
        chunk = self.config.render_chunk_rays
        parts = [
            self.render(volume, rays.select(slice(start, start + chunk)), step, with_color)
            for start in range(0, len(rays), chunk)
        ]
        return RenderedRays(
            depth=torch.cat([part.depth for part in parts]),
            opacity=torch.cat([part.opacity for part in parts]),
            rgb=torch.cat([part.rgb for part in parts]) if with_color else None,  # type: ignore[misc]
        )

    def _full_bundle(self, origins: Tensor, directions: Tensor) -> RayBundle:
        """Every ray of an image, clipped but not dropped (rays missing the range get no samples)."""
        near, far = clip_to_range(origins, directions, self.pc_range)
        no_target = torch.zeros_like(near)
        return RayBundle(
            origins=origins,
            directions=directions,
            batch_index=torch.zeros_like(near, dtype=torch.int64),
            near=near,
            far=far,
            depth_target=no_target,
            has_depth=no_target.bool(),
        )

    @torch.no_grad()
    def render_views(
        self, bev: Tensor, batch: dict[str, object], sample_index: int = 0, camera_index: int = 0, stride: int = 4
    ) -> dict[str, Tensor]:
        """Full rendered vs target images for logging (no gradients).

        Args:
            bev: (B, C, Ny, Nx) fused BEV embedding.
            batch: the unmasked batch.
            sample_index: batch element to render.
            camera_index: camera of the PER view.
            stride: pixel stride of the PER images.

        Returns:
            per_rgb / per_rgb_target (3, h, w) in [0, 1], per_depth / per_depth_target
            (h, w), bev_depth / bev_depth_target (Ny, Nx); depth targets are 0 where
            no LiDAR point exists.
        """
        volume = self.network.volume(bev[sample_index : sample_index + 1])
        images: Tensor = batch["images"]  # type: ignore[assignment]
        height, width = images.shape[-2:]
        intrinsics = batch["intrinsics"][sample_index, camera_index]  # type: ignore[index]
        cam2lidar = batch["cam2lidar"][sample_index, camera_index]  # type: ignore[index]
        img_aug = batch["img_aug"][sample_index, camera_index]  # type: ignore[index]
        rows = torch.arange(0, height, stride, device=bev.device)
        columns = torch.arange(0, width, stride, device=bev.device)
        grid_v, grid_u = torch.meshgrid(rows, columns, indexing="ij")  # (h, w)
        pixels = torch.stack([grid_u, grid_v], dim=-1).reshape(-1, 2).to(images.dtype)
        count = pixels.shape[0]
        camera = torch.zeros(count, dtype=torch.long, device=bev.device)
        origins, directions = pixel_rays(pixels, camera, intrinsics[None], cam2lidar[None], img_aug[None])
        per = self._render_chunked(volume, self._full_bundle(origins, directions), self.config.per_step, True)
        xyz = batch["points"][sample_index][:, :3].to(images.dtype)  # type: ignore[index]
        xyz = xyz[points_in_range(xyz, self.pc_range)]
        distances = distance_images(xyz[None], intrinsics[None, None], cam2lidar[None, None], img_aug[None, None], height, width)[0]
        nearest = -nn.functional.max_pool2d(-distances, stride, ceil_mode=True)[0]  # (h, w)
        size_y, size_x = bev.shape[-2:]
        cells = torch.arange(size_y * size_x, device=bev.device)
        bev_rendered = self._render_chunked(
            volume[..., :1].contiguous(),
            self._full_bundle(*pillar_rays(cells, self.pc_range, (size_y, size_x))),
            self.config.bev_step,
            False,
        )
        bev_target = pillar_depth(xyz.float(), self.pc_range, (size_y, size_x))
        shape = grid_v.shape
        return {
            "per_rgb": per.rgb.T.reshape(3, *shape),  # type: ignore[union-attr]
            "per_rgb_target": denormalize_images(images[sample_index, camera_index])[:, ::stride, ::stride],
            "per_depth": per.depth.view(shape),
            "per_depth_target": torch.nan_to_num(nearest, posinf=0.0),
            "bev_depth": bev_rendered.depth.view(size_y, size_x),
            "bev_depth_target": torch.nan_to_num(bev_target, posinf=0.0),
        }
