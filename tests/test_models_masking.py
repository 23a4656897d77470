"""ImageMasker and VoxelMasker: exact masked counts, token gradient, eval no-op, range bands, no in-place edits."""

from __future__ import annotations

import pytest
import torch

from nsmae_lightning.models.masking import ImageMasker, VoxelMasker


def _images() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(2, 3, 3, 32, 88)  # (B, N, 3, H, W)


def test_image_masker_masks_exact_count_per_image_with_the_token() -> None:
    images = _images()
    original = images.clone()
    masker = ImageMasker(patch_size=4, ratio=0.5).train()
    with torch.no_grad():
        masker.mask_token.copy_(torch.arange(48.0).view(3, 4, 4))
    masked, mask = masker(images)
    assert mask.shape == (2, 3, 8, 22) and mask.dtype == torch.bool
    assert mask.sum(dim=(2, 3)).tolist() == [[88, 88, 88], [88, 88, 88]]  # 176 patches / 2
    torch.testing.assert_close(images, original)  # input untouched
    patches = masked.view(2, 3, 3, 8, 4, 22, 4).permute(0, 1, 3, 5, 2, 4, 6)  # (B, N, rows, cols, 3, s, s)
    original_patches = original.view(2, 3, 3, 8, 4, 22, 4).permute(0, 1, 3, 5, 2, 4, 6)
    torch.testing.assert_close(patches[mask], masker.mask_token.detach().expand(int(mask.sum()), 3, 4, 4))
    torch.testing.assert_close(patches[~mask], original_patches[~mask])
    # Fresh draw per image: six images do not share one pattern.
    flat = mask.view(6, -1)
    assert len({tuple(row.tolist()) for row in flat}) == 6


def test_image_masker_rounds_ratio_and_gets_token_gradient() -> None:
    masker = ImageMasker(patch_size=8, ratio=0.3).train()  # 4 x 11 = 44 patches -> round(13.2) = 13
    masked, mask = masker(_images())
    assert mask.sum(dim=(2, 3)).flatten().tolist() == [13] * 6
    masked.sum().backward()
    # Every token pixel is pasted once into each of the 6 * 13 masked patches.
    torch.testing.assert_close(masker.mask_token.grad, torch.full((3, 8, 8), 78.0))


def test_image_masker_eval_is_noop_and_zero_init() -> None:
    images = _images()
    masker = ImageMasker(patch_size=4).eval()
    assert torch.count_nonzero(masker.mask_token) == 0
    masked, mask = masker(images)
    assert masked is images
    assert mask.shape == (2, 3, 8, 22) and not mask.any()


def test_image_masker_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="multiples of 5"):
        ImageMasker(patch_size=5)(_images())
    with pytest.raises(ValueError, match="ratio"):
        ImageMasker(patch_size=4, ratio=1.5)


def test_voxel_masker_uniform_keeps_exact_fraction() -> None:
    centers = torch.rand(1000, 3) * 100 - 50
    masker = VoxelMasker(ratio=0.9).train()
    kept = masker(centers)
    assert kept.shape == (100,) and kept.dtype == torch.long
    assert torch.equal(kept, kept.unique())  # ascending, no repeats
    assert int(kept.min()) >= 0 and int(kept.max()) < 1000
    assert masker(torch.rand(7, 3)).shape == (1,)  # 0.9 * 7 = 6.3 -> 6 dropped -> 1 kept
    assert VoxelMasker(ratio=0.5).train()(torch.rand(7, 3)).shape == (3,)  # round(3.5) = 4 dropped -> 3


def test_voxel_masker_ratio_range_draws_per_call() -> None:
    torch.manual_seed(0)
    masker = VoxelMasker(ratio=(0.7, 0.9)).train()
    counts = {masker(torch.zeros(1000, 3)).shape[0] for _ in range(10)}
    assert all(100 <= count <= 300 for count in counts)
    assert len(counts) > 1


def test_voxel_masker_range_aware_bands() -> None:
    # 100 voxels at 10 m, 100 at 40 m, 100 at 60 m (horizontal distance; z is ignored).
    distances = torch.cat([torch.full((100,), 10.0), torch.full((100,), 40.0), torch.full((100,), 60.0)])
    angles = torch.rand(300) * 6.28
    centers = torch.stack([distances * torch.cos(angles), distances * torch.sin(angles), torch.randn(300)], dim=1)
    masker = VoxelMasker(ratio=0.9, mode="range_aware").train()
    assert masker.band_ratios(0.9) == pytest.approx([0.9, 0.7, 0.5])
    kept = masker(centers)
    near, mid, far = (int(((kept >= lo) & (kept < lo + 100)).sum()) for lo in (0, 100, 200))
    assert (near, mid, far) == (10, 30, 50)


def test_voxel_masker_band_edges_are_inclusive_below() -> None:
    centers = torch.tensor([[30.0, 0.0, 0.0]] * 5 + [[0.0, 30.5, 0.0]] * 5)
    masker = VoxelMasker(ratio=1.0, mode="range_aware", band_ratio_step=1.0).train()
    assert masker(centers).tolist() == [5, 6, 7, 8, 9]  # 30 m is near (all dropped), 30.5 m is mid (all kept)


def test_voxel_masker_eval_and_empty() -> None:
    masker = VoxelMasker(ratio=0.9)
    assert masker.eval()(torch.rand(5, 3)).tolist() == [0, 1, 2, 3, 4]
    assert masker.train()(torch.zeros(0, 3)).shape == (0,)
    with pytest.raises(ValueError, match="mode"):
        VoxelMasker(mode="random")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ratio"):
        VoxelMasker(ratio=(0.9, 0.7))


def test_voxel_masker_keep_mask_masks_each_sample_on_its_own() -> None:
    torch.manual_seed(0)
    # sample 0: 1000 voxels, sample 1: none, sample 2: 7 voxels, interleaved in the batch order
    sample = torch.cat([torch.zeros(1000, dtype=torch.long), torch.full((7,), 2)])[torch.randperm(1007)]
    centers = torch.rand(1007, 3) * 100 - 50
    keep = VoxelMasker(ratio=0.9).train().keep_mask(centers, sample, 3)
    assert keep.dtype == torch.bool and keep.shape == (1007,)
    assert [int(keep[sample == index].sum()) for index in range(3)] == [100, 0, 1]  # round(6.3) = 6 of 7 dropped
    # range-aware: the bands of each sample (10 / 40 / 60 m, 100 voxels each) keep 10 / 30 / 50
    distances = torch.cat([torch.full((100,), 10.0), torch.full((100,), 40.0), torch.full((100,), 60.0)]).repeat(2)
    angles = torch.rand(600) * 6.28
    ring = torch.stack([distances * torch.cos(angles), distances * torch.sin(angles), torch.zeros(600)], dim=1)
    keep = VoxelMasker(ratio=0.9, mode="range_aware").train().keep_mask(ring, torch.arange(600) // 300, 2)
    kept = [int(keep[start:start + 100].sum()) for start in range(0, 600, 100)]
    assert kept == [10, 30, 50, 10, 30, 50]
    # drawn ratios differ per sample, and eval keeps everything
    torch.manual_seed(1)
    keep = VoxelMasker(ratio=(0.1, 0.9)).train().keep_mask(torch.zeros(4000, 3), torch.arange(4000) // 1000, 4)
    assert len({int(keep[start:start + 1000].sum()) for start in range(0, 4000, 1000)}) > 1
    assert bool(VoxelMasker(ratio=0.9).eval().keep_mask(centers, sample, 3).all())


def test_ranks_in_groups_counts_within_each_group_in_the_given_order() -> None:
    from nsmae_lightning.models.group_ranks import ranks_in_groups

    group = torch.tensor([1, 0, 1, 0, 0, 2])
    sizes = torch.tensor([3, 2, 1])
    stable = torch.argsort(group, stable=True)  # input order inside each group
    assert ranks_in_groups(stable, group, sizes).tolist() == [0, 0, 1, 1, 2, 0]
    reversed_inside = torch.tensor([4, 3, 1, 2, 0, 5])  # group 0 as 4, 3, 1; group 1 as 2, 0
    assert ranks_in_groups(reversed_inside, group, sizes).tolist() == [1, 2, 0, 1, 0, 0]
