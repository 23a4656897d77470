"""EmbeddingNetwork and its parts: shapes per modality, LSS geometry, camera/LiDAR grid alignment,
gradients, masking hand-over, degenerate LiDAR input, autocast, configs and parameter counts."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from nsmae_lightning.models import (
    CameraConfig,
    EmbeddingConfig,
    EmbeddingNetwork,
    ImageMasker,
    ViewTransformConfig,
    VoxelMasker,
)
from nsmae_lightning.models.camera import LSSFPN, CameraEncoder
from nsmae_lightning.models.lidar import voxelize, voxelize_batch

# Hand-built camera: camera x -> LiDAR x, camera z (forward) -> LiDAR y, camera y (down) -> LiDAR -z.
CAM_ROTATION = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
INTRINSICS = torch.tensor([[40.0, 0.0, 100.0], [0.0, 40.0, 30.0], [0.0, 0.0, 1.0]])
# Original image 64 x 176 -> resize by 0.5, shift by (-3, -2) -> 32 x 88.
IMG_AUG = torch.tensor([[0.5, 0.0, 0.0, -3.0], [0.0, 0.5, 0.0, -2.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
# Feature pixel (row 2, col 7) of the 4 x 11 stride-8 map has centre (u', v') = (59.5, 19.5) -> original
# (u, v) = (125, 43); at depth bin 9 (10 m) it is camera point (6.25, 3.25, 10) = LiDAR (6.25, 10, -3.25)
# before the translation. The translation puts it at TARGET, inside LiDAR voxel (ix, iy) = (96, 104).
TARGET = torch.tensor([6.5, 8.1, -2.25])
CAM_TRANSLATION = TARGET - torch.tensor([6.25, 10.0, -3.25])


def _cam2lidar() -> torch.Tensor:
    matrix = torch.eye(4)
    matrix[:3, :3] = CAM_ROTATION
    matrix[:3, 3] = CAM_TRANSLATION
    return matrix


def make_batch(batch_size: int = 2, num_points: int = 2000, seed: int = 0) -> dict[str, Any]:
    """2 cameras of 32 x 88 and a ground-plane-ish point cloud per sample."""
    generator = torch.Generator().manual_seed(seed)
    points = []
    for _ in range(batch_size):
        xy = torch.rand(num_points, 2, generator=generator) * 24 - 12
        z = torch.rand(num_points, 1, generator=generator) * 3 - 2
        intensity = torch.rand(num_points, 1, generator=generator) * 255
        points.append(torch.cat([xy, z, intensity, torch.zeros(num_points, 1)], dim=1))
    second_camera = _cam2lidar()
    second_camera[:3, :3] = torch.tensor([[-1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, -1.0, 0.0]])  # looks back
    return {
        "images": torch.randn(batch_size, 2, 3, 32, 88, generator=generator),
        "intrinsics": INTRINSICS.expand(batch_size, 2, 3, 3).clone(),
        "img_aug": IMG_AUG.expand(batch_size, 2, 4, 4).clone(),
        "cam2lidar": torch.stack([_cam2lidar(), second_camera]).expand(batch_size, 2, 4, 4).clone(),
        "points": points,
    }


@pytest.fixture(scope="module", autouse=True)
def single_thread() -> Iterator[None]:
    """Tiny tensors on a shared 2-core machine: one thread avoids OpenMP spin-wait slowdowns (10x here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def network() -> EmbeddingNetwork:
    torch.manual_seed(0)
    return EmbeddingNetwork(EmbeddingConfig.tiny())


@pytest.mark.parametrize(
    ("modalities", "camera_channels", "lidar_channels"),
    [(["camera"], 8, None), (["lidar"], None, 16), (["camera", "lidar"], 8, 16)],
)
def test_output_shapes_per_modality(
    modalities: list[str], camera_channels: int | None, lidar_channels: int | None
) -> None:
    net = EmbeddingNetwork(EmbeddingConfig.tiny(modalities=modalities)).eval()
    with torch.no_grad():
        out = net(make_batch())
    assert out["bev"].shape == (2, net.out_channels, 16, 16) and net.out_channels == 32
    assert out["fused"].shape == (2, 16, 16, 16)
    for key, channels in (("camera_bev", camera_channels), ("lidar_bev", lidar_channels)):
        assert (out[key] is None) == (channels is None)
        if channels is not None:
            assert out[key].shape == (2, channels, 16, 16)
    assert out["image_mask"] is None and out["voxel_keep"] is None
    assert (out["voxel_coords"] is None) == ("lidar" not in modalities)
    assert torch.isfinite(out["bev"]).all()


def test_geometry_properties(network: EmbeddingNetwork) -> None:
    assert network.bev_shape == (16, 16)
    assert network.bev_cell == pytest.approx(1.6)
    assert network.num_cameras == 2
    assert network.geometry() == {
        "pc_range": [-12.8, -12.8, -5.0, 12.8, 12.8, 3.0],
        "voxel_size": [0.2, 0.2, 0.2],
        "num_cameras": 2,
        "bev_shape": [16, 16],
    }
    # Grid constants never travel in a checkpoint.
    assert not any("depth_values" in key for key in network.state_dict())


def test_frustum_points_round_trip_through_the_projection_convention(network: EmbeddingNetwork) -> None:
    batch = make_batch()
    transform = network.view_transform
    points = transform.frustum_points(batch["intrinsics"], batch["img_aug"], batch["cam2lidar"], (32, 88), (4, 11))
    assert points.shape == (2, 2, 19, 4, 11, 3)
    torch.testing.assert_close(points[0, 0, 9, 2, 7], TARGET)
    # docs/conventions.md projection: c = inv(cam2lidar) p, uvd = K c, (u, v) = uvd / d, img_aug [u, v, d, 1].
    homogeneous = torch.cat([points, torch.ones_like(points[..., :1])], dim=-1).view(2, 2, -1, 4)
    camera = torch.einsum("bnij,bnpj->bnpi", torch.linalg.inv(batch["cam2lidar"]), homogeneous)[..., :3]
    uvd = torch.einsum("bnij,bnpj->bnpi", batch["intrinsics"], camera)
    depth = camera[..., 2]
    pixel = torch.stack([uvd[..., 0] / uvd[..., 2], uvd[..., 1] / uvd[..., 2], depth, torch.ones_like(depth)], -1)
    augmented = torch.einsum("bnij,bnpj->bnpi", batch["img_aug"], pixel).view(2, 2, 19, 4, 11, 4)
    expected_u = (torch.arange(11) + 0.5) * 8 - 0.5
    expected_v = (torch.arange(4) + 0.5) * 8 - 0.5
    torch.testing.assert_close(augmented[..., 0], expected_u.expand(2, 2, 19, 4, 11), atol=1e-3, rtol=0)
    torch.testing.assert_close(augmented[..., 1], expected_v[:, None].expand(2, 2, 19, 4, 11), atol=1e-3, rtol=0)
    torch.testing.assert_close(augmented[..., 2], (1.0 + torch.arange(19.0))[:, None, None].expand(2, 2, 19, 4, 11))


def test_one_hot_depth_lands_in_the_right_bev_cell(network: EmbeddingNetwork) -> None:
    batch = make_batch()
    transform = network.view_transform
    points = transform.frustum_points(batch["intrinsics"], batch["img_aug"], batch["cam2lidar"], (32, 88), (4, 11))
    features = torch.zeros(2, 2, 19, 4, 11, 8)  # (B, N, D, fH, fW, C): one-hot depth x context
    context = torch.arange(1.0, 9.0)
    features[1, 0, 9, 2, 7] = context
    pooled = transform.splat(features, points)
    assert pooled.shape == (2, 8, 32, 32)
    # TARGET (6.5, 8.1) on the 0.8 m pre-downsample grid from -12.8 m: ix = 24, iy = 26.
    torch.testing.assert_close(pooled[1, :, 26, 24], context)
    assert pooled.sum() == pytest.approx(float(context.sum()))
    # Mass of frustum points outside the grid (the second camera looks beyond +-12.8 m at 20 m) is dropped.
    everywhere = transform.splat(torch.ones(2, 2, 19, 4, 11, 1), points)
    low, high = torch.tensor([-12.8, -12.8, -10.0]), torch.tensor([12.8, 12.8, 10.0])
    inside = ((points >= low) & (points < high)).all(-1).sum()
    assert everywhere.sum() == pytest.approx(float(inside))


def test_camera_and_lidar_bev_cells_coincide(network: EmbeddingNetwork) -> None:
    network.eval()
    # LiDAR: one point at TARGET -> voxel (x 96, y 104) -> after three stride-2 convs, BEV cell (13, 12).
    voxels = voxelize(torch.cat([TARGET, torch.tensor([100.0, 0.0])]).view(1, 5), network.config.lidar, 10)
    assert voxels.coords[0, 1:].tolist() == [104, 96]
    coords = torch.nn.functional.pad(voxels.coords, (1, 0)).int()
    with torch.no_grad():
        sparse = network.lidar.encoder.encode(voxels.features, coords, 1)
    lidar_cells = {tuple(row) for row in sparse.indices[:, 2:].tolist()}
    # Camera: the frustum sample at TARGET pools into pre-downsample cell (26, 24); downsample 2 -> (13, 12).
    batch = make_batch()
    points = network.view_transform.frustum_points(
        batch["intrinsics"], batch["img_aug"], batch["cam2lidar"], (32, 88), (4, 11)
    )
    cell = network.bev_cell / network.config.view_transform.downsample
    camera_cell = ((points[0, 0, 9, 2, 7, :2] + 12.8) / cell).floor().long() // 2  # (ix, iy)
    assert lidar_cells == {(13, 12)}
    assert (int(camera_cell[1]), int(camera_cell[0])) == (13, 12)


def _tensors(batch: dict[str, Any]) -> list[torch.Tensor]:
    """Every tensor of a batch, lists flattened, in key order."""
    return [t for key in sorted(batch) for t in (batch[key] if isinstance(batch[key], list) else [batch[key]])]


def test_gradients_reach_every_parameter_and_batch_is_untouched() -> None:
    torch.manual_seed(0)
    net = EmbeddingNetwork(EmbeddingConfig.tiny()).train()
    image_masker, voxel_masker = ImageMasker(patch_size=4, ratio=0.5).train(), VoxelMasker(ratio=0.7).train()
    batch = make_batch()
    snapshot = [tensor.clone() for tensor in _tensors(batch)]
    out = net(batch, image_masker=image_masker, voxel_masker=voxel_masker)
    out["bev"].sum().backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []
    assert torch.any(image_masker.mask_token.grad != 0)
    assert all(torch.equal(before, after) for before, after in zip(snapshot, _tensors(batch)))
    # Masks handed back for logging: exact image fraction, 70% of voxels dropped per sample.
    assert out["image_mask"].shape == (2, 2, 8, 22)
    assert out["image_mask"].float().mean().item() == 0.5
    for keep, coords in zip(out["voxel_keep"], out["voxel_coords"]):
        assert keep.shape == (coords.shape[0],)
        assert int(keep.sum()) == coords.shape[0] - round(0.7 * coords.shape[0])


def test_empty_point_cloud_and_all_voxels_masked_still_run(network: EmbeddingNetwork) -> None:
    network.train()
    batch = make_batch()
    batch["points"][0] = torch.zeros(0, 5)
    out = network(batch, voxel_masker=VoxelMasker(ratio=0.0).train())
    assert out["voxel_coords"][0].shape == (0, 3) and torch.isfinite(out["bev"]).all()
    out = network(make_batch(), voxel_masker=VoxelMasker(ratio=1.0).train())
    assert [int(k.sum()) for k in out["voxel_keep"]] == [0, 0]
    assert torch.count_nonzero(out["lidar_bev"]) == 0 and torch.isfinite(out["bev"]).all()


def test_bf16_autocast_forward(network: EmbeddingNetwork) -> None:
    network.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = network(make_batch(batch_size=1, num_points=500))
    assert out["lidar_bev"].dtype == torch.bfloat16 and out["bev"].dtype == torch.bfloat16
    assert torch.isfinite(out["bev"].float()).all()


@pytest.mark.parametrize("allow_tf32", [False, True])
def test_sparse_convs_follow_torchs_tf32_switch(network: EmbeddingNetwork, allow_tf32: bool) -> None:
    # spconv has its own TF32 switch (off by default); the encoder mirrors cudnn's, as dense convs obey it.
    from spconv import constants

    network.eval()
    saved = torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = allow_tf32
        with torch.no_grad():
            network(make_batch(batch_size=1, num_points=200))
        assert constants.SPCONV_ALLOW_TF32 is allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32 = saved


def test_voxelize_means_caps_and_coords() -> None:
    config = EmbeddingConfig.tiny().lidar  # range +-12.8 m x/y, -5..3 m z, voxels 0.2 m
    points = torch.tensor(
        [
            [0.05, 0.05, 0.05, 10.0, 0.0],  # voxel (z 25, y 64, x 64)
            [1.05, 0.05, 0.05, 40.0, 0.1],  # voxel (25, 64, 69)
            [0.15, 0.15, 0.15, 20.0, 0.0],
            [0.10, 0.10, 0.10, 90.0, 0.0],
            [50.0, 0.0, 0.0, 1.0, 0.0],  # outside the range
        ]
    )
    voxels = voxelize(points, config, max_voxels=10)
    assert voxels.coords.tolist() == [[25, 64, 64], [25, 64, 69]]  # in order of first point
    torch.testing.assert_close(voxels.features[0], points[[0, 2, 3]].mean(0))
    torch.testing.assert_close(voxels.features[1], points[1])
    capped = voxelize(points, dataclasses.replace(config, max_points_per_voxel=2), max_voxels=1)
    assert capped.coords.tolist() == [[25, 64, 64]]
    torch.testing.assert_close(capped.features[0], points[[0, 2]].mean(0))
    # points left out (past a voxel's cap, or in a voxel past max_voxels) leave no trace, non-finite ones included
    spoiled = points.clone()
    spoiled[3, 3] = float("nan")  # the first voxel's third point: past the cap of 2
    spoiled[1, 4] = float("inf")  # the second voxel's only point: past max_voxels = 1
    capped = voxelize(spoiled, dataclasses.replace(config, max_points_per_voxel=2), max_voxels=1)
    torch.testing.assert_close(capped.features[0], points[[0, 2]].mean(0))


def test_voxelize_batch_equals_each_cloud_voxelized_alone() -> None:
    config = dataclasses.replace(EmbeddingConfig.tiny().lidar, max_points_per_voxel=3)
    generator = torch.Generator().manual_seed(0)

    def cloud(count: int) -> torch.Tensor:
        # coarse positions so voxels get several points; some outside the +-12.8 m range
        xyz = torch.randint(-70, 70, (count, 3), generator=generator).float() * torch.tensor([0.2, 0.2, 0.05])
        return torch.cat([xyz, torch.rand(count, 2, generator=generator)], dim=1)

    clouds = [cloud(300), torch.zeros(0, 5), cloud(50), cloud(400)]
    for max_voxels in (1000, 40):  # no cap, and a cap two of the clouds exceed
        batch = voxelize_batch(clouds, config, max_voxels)
        alone = [voxelize(points, config, max_voxels) for points in clouds]
        assert batch.counts == [voxels.coords.shape[0] for voxels in alone]
        assert batch.counts[1] == 0 and (max_voxels > 100 or batch.counts[0] == batch.counts[3] == 40)
        expected_coords = torch.cat([torch.nn.functional.pad(v.coords, (1, 0), value=i) for i, v in enumerate(alone)])
        assert torch.equal(batch.coords, expected_coords)
        torch.testing.assert_close(batch.features, torch.cat([voxels.features for voxels in alone]))
    with pytest.raises(ValueError, match=r"points\[1\] must be"):
        voxelize_batch([cloud(3), torch.zeros(4, 2)], config, 10)
    # every point outside the range: no voxels, no error
    outside = voxelize_batch([torch.tensor([[50.0, 0.0, 0.0, 1.0, 0.0], [0.0, -40.0, 0.0, 1.0, 0.0]])], config, 10)
    assert outside.counts == [0] and outside.coords.shape == (0, 4) and outside.features.shape[0] == 0


def test_bad_batches_and_configs_raise() -> None:
    net = EmbeddingNetwork(EmbeddingConfig.tiny(modalities=["camera"]))
    batch = make_batch()
    del batch["img_aug"]
    with pytest.raises(ValueError, match="img_aug"):
        net(batch)
    batch = make_batch()
    batch["images"] = batch["images"][:, :1]
    with pytest.raises(ValueError, match=r"batch\['images'\]"):
        net(batch)
    with pytest.raises(ValueError, match="modalities"):
        EmbeddingConfig.tiny(modalities=["radar"])
    tiny = EmbeddingConfig.tiny()
    with pytest.raises(ValueError, match="camera BEV grid"):
        EmbeddingConfig(
            camera=tiny.camera,
            view_transform=ViewTransformConfig(xbound=(-12.8, 12.8, 0.4), ybound=(-12.8, 12.8, 0.4)),
            lidar=tiny.lidar,
            fuser=tiny.fuser,
            decoder=tiny.decoder,
        )
    with pytest.raises(ValueError, match="out_indices"):
        CameraConfig(out_indices=(3, 1))


def test_config_is_settable_from_yaml() -> None:
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_argument("--embedding", type=EmbeddingConfig)
    yaml = """
embedding:
  camera: {backbone: resnet18, out_indices: [1, 2, 3], neck_out_channels: 64}
  lidar: {pc_range: [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0], voxel_size: [0.1, 0.1, 0.2], max_voxels_train: 90000}
  view_transform: {xbound: [-51.2, 51.2, 0.4], ybound: [-51.2, 51.2, 0.4], dbound: [1.0, 60.0, 1.0]}
  modalities: [lidar]
"""
    config = parser.instantiate_classes(parser.parse_string(yaml)).embedding
    assert isinstance(config, EmbeddingConfig)
    assert config.camera.backbone == "resnet18" and config.lidar.max_voxels_train == 90000
    assert config.lidar.sparse_output_shape == (2, 128, 128) and config.view_transform.bev_shape == (128, 128)
    assert config.modalities == ["lidar"]


def test_paper_presets_and_parameter_counts() -> None:
    config = EmbeddingConfig.paper_256x704()
    assert config == EmbeddingConfig.paper_128x352()
    assert config.lidar.sparse_shape == (41, 1440, 1440)
    assert config.lidar.out_channels == 256 and config.view_transform.bev_shape == (180, 180)
    net = EmbeddingNetwork(config)
    assert net.out_channels == 512 and net.bev_cell == pytest.approx(0.6)
    counts = {name: sum(p.numel() for p in module.parameters()) for name, module in net.named_children()}
    print("paper embedding parameters:", counts)
    assert 27.4e6 < sum(p.numel() for p in net.camera.backbone.parameters()) < 27.6e6  # Swin-T
    assert 2.5e6 < counts["lidar"] < 3.0e6
    assert 4.0e6 < counts["decoder"] < 5.0e6
    resnet50 = CameraEncoder(CameraConfig(backbone="resnet50"))
    assert 23.4e6 < sum(p.numel() for p in resnet50.backbone.parameters()) < 23.6e6
    resnet18 = CameraEncoder(CameraConfig(backbone="resnet18"))
    assert 11.1e6 < sum(p.numel() for p in resnet18.backbone.parameters()) < 11.3e6
    with torch.no_grad():
        for encoder in (resnet18, net.camera):
            assert encoder.eval()(torch.randn(1, 3, 32, 64)).shape == (1, 256, 4, 8)


def test_fpn_equals_upsampling_in_nchw() -> None:
    """The neck upsamples a channels-last copy (CUDA's NCHW kernel is slow): same values and gradients as
    the plain NCHW upsample + concat + convolutions, and an NCHW-contiguous output."""
    torch.manual_seed(0)
    fpn = LSSFPN([8, 16], 12)
    levels = [torch.randn(2, 8, 8, 12, requires_grad=True), torch.randn(2, 16, 4, 6, requires_grad=True)]
    fused = fpn(levels)
    finer = torch.cat([levels[0], torch.nn.functional.interpolate(levels[1], size=(8, 12), mode="bilinear",
                                                                  align_corners=False)], dim=1)
    expected = fpn.fpn_convs[0](fpn.lateral_convs[0](finer))
    assert fused.is_contiguous()
    torch.testing.assert_close(fused, expected, rtol=0, atol=0)
    for got, want in zip(torch.autograd.grad(fused.sum(), levels), torch.autograd.grad(expected.sum(), levels)):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
