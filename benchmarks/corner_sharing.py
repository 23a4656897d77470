"""How many of the sampler backward's atomic adds a block-level pre-reduction could save, counted on CPU.

The Triton sampler's backward adds each sample's gradient to its 8 trilinear corners with float32
atomics (8 x 33 channels per sample). Samples handled by one program could first sum the contributions
that land on the same voxel, so that each distinct corner gets one add. This script counts, for the
render benchmark's rays (`render_throughput.random_rays`, raster order) and samples (`ray_samples`), the
distinct (batch element, corner voxel) pairs per block of consecutive samples, as a fraction of 8 x the
block's samples: the share of atomic adds such a pre-reduction would keep (1.0: it saves nothing).

    python benchmarks/corner_sharing.py --blocks 1,32,64,128,256,1024
"""

from __future__ import annotations

import argparse

import torch

from render_throughput import RAY_ORDERS, random_rays, ray_samples

CORNER_OFFSETS = torch.tensor([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)])


def corner_keys(coords: torch.Tensor, batch_index: torch.Tensor) -> torch.Tensor:
    """(M, 8) int64 key of each sample's trilinear corner voxels, unique per (batch element, voxel)."""
    corners = coords.floor().long()[:, None, :] + CORNER_OFFSETS[None]
    # one more than the largest corner index per axis, so that distinct voxels get distinct keys
    span = int(corners.max()) + 2
    return ((batch_index[:, None] * span + corners[..., 0] + 1) * span + corners[..., 1] + 1) * span + corners[..., 2] + 1


def kept_fraction(keys: torch.Tensor, block: int) -> float:
    """Distinct corner keys per block of ``block`` consecutive samples over 8 x the samples (the last,
    partial block dropped)."""
    whole = keys.shape[0] // block * block
    if whole == 0:
        raise ValueError(f"block {block} is larger than the {keys.shape[0]} samples")
    ordered = keys[:whole].reshape(-1, block * keys.shape[1]).sort(dim=1).values
    distinct = 1 + (ordered[:, 1:] != ordered[:, :-1]).sum(dim=1)
    return distinct.sum().item() / ordered.numel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--rays", type=int, default=16384, help="rays per batch element")
    parser.add_argument("--grid", type=int, default=180)
    parser.add_argument("--z-bins", type=int, default=40)
    parser.add_argument("--step", type=float, default=0.8)
    parser.add_argument("--ray-order", choices=RAY_ORDERS, default="raster")
    parser.add_argument("--blocks", default="1,32,64,128,256,1024")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    rays = random_rays(args.batch, args.rays, torch.device("cpu"), args.ray_order)
    coords, batch_index = ray_samples(rays, args.step, (args.z_bins, args.grid, args.grid))
    keys = corner_keys(coords, batch_index)
    print(f"{keys.shape[0]} samples, {args.ray_order} rays; atomic adds kept by a pre-reduction per block:")
    for block in (int(value) for value in args.blocks.split(",")):
        print(f"  block of {block:5d} samples: {kept_fraction(keys, block):.3f}")
    print(f"  all samples at once:      {keys.unique().numel() / keys.numel():.3f}")


if __name__ == "__main__":
    main()
