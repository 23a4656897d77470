"""PER / BEV / Rand rays and targets on hand-built geometry, and the NeRFPretrainHead losses."""

from __future__ import annotations

import math

import pytest
import torch

from nsmae_lightning.constants import IMAGE_MEAN, IMAGE_STD
from nsmae_lightning.models.rays import (
    RayBundle,
    bev_rays,
    clip_to_range,
    distance_images,
    draw,
    padded_points,
    perspective_rays,
    pillar_depth,
    pixel_rays,
    random_view_rays,
    virtual_cameras,
)
from nsmae_lightning.models.rendering import NeRFPretrainHead, RenderConfig

PC_RANGE = (-8.0, -8.0, -2.0, 8.0, 8.0, 2.0)
# Original image 32 x 48, then resize by 0.5 and crop 2 rows off the top: 14 x 24.
INTRINSICS = torch.tensor([[20.0, 0.0, 24.0], [0.0, 20.0, 16.0], [0.0, 0.0, 1.0]])
IMG_AUG = torch.tensor([[0.5, 0.0, 0.0, 0.0], [0.0, 0.5, 0.0, -2.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
HEIGHT, WIDTH = 14, 24


def _camera(position: tuple[float, float, float], forward_sign: float = 1.0) -> torch.Tensor:
    """cam2lidar of a camera looking along +-y (LiDAR forward), x right, y down."""
    cam2lidar = torch.eye(4)
    # Columns: camera x (right), y (down), z (forward) in the LiDAR frame.
    cam2lidar[:3, :3] = torch.tensor([[forward_sign, 0.0, 0.0], [0.0, 0.0, forward_sign], [0.0, -1.0, 0.0]])
    cam2lidar[:3, 3] = torch.tensor(position)
    return cam2lidar


def _point_at_pixel(column: int, row: int, depth: float, cam2lidar: torch.Tensor) -> torch.Tensor:
    """The LiDAR-frame point at camera depth `depth` that lands on augmented pixel [row, column]."""
    original = torch.linalg.solve(IMG_AUG, torch.tensor([float(column), float(row), depth, 1.0]))
    camera_point = depth * torch.linalg.solve(INTRINSICS, torch.tensor([original[0], original[1], 1.0]))
    return cam2lidar[:3, :3] @ camera_point + cam2lidar[:3, 3]


def distance_image(points: torch.Tensor, intrinsics: torch.Tensor, cam2lidar: torch.Tensor, img_aug: torch.Tensor,
                   height: int, width: int, use: torch.Tensor | None = None) -> torch.Tensor:
    """`distance_images` of one sample: points (P, 3), cameras (N, ...) -> (N, H, W)."""
    return distance_images(points[None], intrinsics[None], cam2lidar[None], img_aug[None], height, width,
                           None if use is None else use[None])[0]


def _batch(points: list[torch.Tensor]) -> dict[str, object]:
    """Two cameras per sample (front at the origin, back looking -y), random normalised images."""
    batch_size = len(points)
    cameras = torch.stack([_camera((0.0, 0.0, 0.0)), _camera((0.0, 0.0, 0.0), -1.0)])
    generator = torch.Generator().manual_seed(1)
    return {
        "images": torch.randn(batch_size, 2, 3, HEIGHT, WIDTH, generator=generator),
        "intrinsics": INTRINSICS.expand(batch_size, 2, 3, 3).clone(),
        "cam2lidar": cameras.expand(batch_size, 2, 4, 4).clone(),
        "img_aug": IMG_AUG.expand(batch_size, 2, 4, 4).clone(),
        "points": points,
    }


def _cloud(count: int, seed: int) -> torch.Tensor:
    """Points uniform over the range, with intensity and dt columns."""
    generator = torch.Generator().manual_seed(seed)
    xyz = torch.rand(count, 3, generator=generator) * torch.tensor([16.0, 16.0, 4.0]) - torch.tensor([8.0, 8.0, 2.0])
    return torch.cat([xyz, torch.zeros(count, 2)], dim=1)


def _head(**overrides: object) -> NeRFPretrainHead:
    config = RenderConfig(
        z_bins=4, feature_channels=4, trunk_channels=8, mlp_hidden=8, per_rays=64, bev_rays=64, rand_rays=64,
        rand_image_size=(12, 16), rand_origin_radius=1.0, **overrides,  # type: ignore[arg-type]
    )
    torch.manual_seed(0)
    return NeRFPretrainHead(config, embed_channels=6, pc_range=PC_RANGE)


def test_pixel_ray_passes_through_the_point_that_projects_to_it() -> None:
    cam2lidar = _camera((1.0, -2.0, 0.5))
    point = torch.tensor([3.0, 6.0, 1.2])
    # Project as in docs/conventions.md.
    camera_point = torch.linalg.solve(cam2lidar, torch.cat([point, torch.ones(1)]))
    uvd = INTRINSICS @ camera_point[:3]
    pixel = IMG_AUG @ torch.tensor([uvd[0] / uvd[2], uvd[1] / uvd[2], camera_point[2], 1.0])
    camera = torch.zeros(1, dtype=torch.long)
    origins, directions = pixel_rays(pixel[:2].unsqueeze(0), camera, INTRINSICS[None], cam2lidar[None], IMG_AUG[None])
    distance = (point - origins[0]).norm()
    torch.testing.assert_close(origins[0] + distance * directions[0], point, atol=1e-5, rtol=0)
    assert directions.norm(dim=-1).item() == pytest.approx(1.0)


def test_pixel_rays_use_each_pixels_own_camera() -> None:
    # Two cameras with different poses and image scalings; pixels listed out of camera order.
    cameras = torch.stack([_camera((1.0, -2.0, 0.5)), _camera((-3.0, 1.0, 0.2))])
    img_aug = torch.stack([IMG_AUG, IMG_AUG.clone()])
    img_aug[1, 0, 0] = img_aug[1, 1, 1] = 0.5
    intrinsics = torch.stack([INTRINSICS, INTRINSICS * torch.tensor([[1.2], [1.2], [1.0]])])
    points = torch.tensor([[3.0, 6.0, 1.2], [-1.0, 7.0, 0.4], [4.0, 9.0, -0.3]])
    owner = torch.tensor([1, 0, 1])
    pixels = []
    for point, index in zip(points, owner):
        camera_point = torch.linalg.solve(cameras[index], torch.cat([point, torch.ones(1)]))
        uvd = intrinsics[index] @ camera_point[:3]
        pixel = img_aug[index] @ torch.tensor([uvd[0] / uvd[2], uvd[1] / uvd[2], camera_point[2], 1.0])
        pixels.append(pixel[:2])
    origins, directions = pixel_rays(torch.stack(pixels), owner, intrinsics, cameras, img_aug)
    torch.testing.assert_close(origins, cameras[owner, :3, 3])
    hits = origins + (points - origins).norm(dim=-1, keepdim=True) * directions
    torch.testing.assert_close(hits, points, atol=1e-5, rtol=0)


def test_ray_geometry_ignores_bfloat16_autocast() -> None:
    # nuScenes-sized camera: under autocast a bfloat16 `@` would move pixels by several px
    intrinsics = torch.tensor([[[1266.4, 0.0, 816.3], [0.0, 1266.4, 491.5], [0.0, 0.0, 1.0]]])
    img_aug = torch.eye(4)[None].clone()
    img_aug[0, :2, :2] *= 0.5
    cam2lidar = _camera((0.3, 1.2, 1.6))[None]
    generator = torch.Generator().manual_seed(0)
    pixels = torch.rand(200, 2, generator=generator) * torch.tensor([800.0, 450.0])
    camera = torch.zeros(200, dtype=torch.long)
    xyz = torch.rand(500, 3, generator=generator) * torch.tensor([60.0, 60.0, 4.0]) - torch.tensor([30.0, -5.0, 2.0])
    expected_rays = pixel_rays(pixels, camera, intrinsics, cam2lidar, img_aug)
    expected_image = distance_image(xyz, intrinsics, cam2lidar, img_aug, 450, 800)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rays = pixel_rays(pixels, camera, intrinsics, cam2lidar, img_aug)
        image = distance_image(xyz, intrinsics, cam2lidar, img_aug, 450, 800)
    for got, expected in zip(rays, expected_rays):
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert torch.isfinite(expected_image).sum() > 100  # the points do land in the image
    torch.testing.assert_close(image, expected_image, rtol=0, atol=0)


def test_distance_image_keeps_nearest_point_and_ignores_points_behind() -> None:
    cam2lidar = _camera((0.5, 0.0, 0.0))
    near_point = _point_at_pixel(5, 3, 4.0, cam2lidar)
    far_same_pixel = _point_at_pixel(5, 3, 6.0, cam2lidar)
    other = _point_at_pixel(20, 10, 2.5, cam2lidar)
    behind = cam2lidar[:3, 3] - torch.tensor([0.0, 3.0, 0.0])
    points = torch.stack([far_same_pixel, near_point, other, behind])
    image = distance_image(points, INTRINSICS[None], cam2lidar[None], IMG_AUG[None], HEIGHT, WIDTH)[0]
    origin = cam2lidar[:3, 3]
    assert image[3, 5].item() == pytest.approx((near_point - origin).norm().item(), rel=1e-5)
    assert image[10, 20].item() == pytest.approx((other - origin).norm().item(), rel=1e-5)
    assert torch.isfinite(image).sum().item() == 2


def test_distance_image_mask_equals_selecting_the_points() -> None:
    generator = torch.Generator().manual_seed(3)
    points = torch.rand(300, 3, generator=generator) * torch.tensor([16.0, 16.0, 4.0]) - torch.tensor([8.0, 0.0, 2.0])
    use = torch.rand(300, generator=generator) < 0.5
    cam2lidar = _camera((0.0, 0.0, 0.0))[None]
    masked = distance_image(points, INTRINSICS[None], cam2lidar, IMG_AUG[None], HEIGHT, WIDTH, use)
    selected = distance_image(points[use], INTRINSICS[None], cam2lidar, IMG_AUG[None], HEIGHT, WIDTH)
    assert torch.isfinite(selected).sum() > 20
    assert torch.equal(masked, selected)


def test_batched_z_buffers_equal_each_sample_alone() -> None:
    generator = torch.Generator().manual_seed(4)
    clouds = [torch.rand(count, 3, generator=generator) * torch.tensor([16.0, 16.0, 4.0]) - torch.tensor([8.0, 0.0, 2.0])
              for count in (300, 120)]
    cameras = torch.stack([_camera((0.0, 0.0, 0.0)), _camera((0.5, -0.5, 0.2))])  # two cameras, as in a sample
    intrinsics, img_aug = INTRINSICS.expand(2, 2, 3, 3), IMG_AUG.expand(2, 2, 4, 4)
    cam2lidar = torch.stack([cameras, cameras.flip(0)])  # the second sample has them swapped
    xyz, present = padded_points(clouds, torch.float32)
    assert xyz.shape == (2, 300, 3) and present.sum(dim=1).tolist() == [300, 120]
    batched = distance_images(xyz, intrinsics, cam2lidar, img_aug, HEIGHT, WIDTH, present)
    for index, cloud in enumerate(clouds):
        alone = distance_image(cloud, intrinsics[index], cam2lidar[index], img_aug[index], HEIGHT, WIDTH)
        assert torch.isfinite(alone).sum() > 10
        torch.testing.assert_close(batched[index], alone, rtol=1e-6, atol=1e-6)  # padding adds nothing


def test_draw_takes_distinct_candidates_of_each_row() -> None:
    torch.manual_seed(0)
    candidate = torch.zeros(3, 50, dtype=torch.bool)
    candidate[0, ::2] = True  # 25 candidates
    candidate[1, :4] = True  # fewer than the count: all of them
    rows, columns = draw(candidate, 10)
    assert rows.bincount(minlength=3).tolist() == [10, 4, 0]
    assert bool(candidate[rows, columns].all())
    for row in range(2):
        picked = columns[rows == row]
        assert picked.unique().numel() == picked.numel()  # without replacement
    assert columns[rows == 1].tolist() == [0, 1, 2, 3]
    assert bool((columns[rows == 0].diff() > 0).all())  # index (raster) order, not the random scores' order
    every_row, every_column = draw(candidate, None)
    assert every_row.tolist() == [0] * 25 + [1] * 4 and every_column[:3].tolist() == [0, 2, 4]  # all, in order


def test_rays_of_a_batch_stay_with_their_own_sample() -> None:
    torch.manual_seed(0)
    batch = _batch([_cloud(400, 0), torch.zeros(0, 5)])  # the second sample has no LiDAR at all
    per = perspective_rays(batch, PC_RANGE, 32, "lidar", True)
    assert set(per.batch_index.tolist()) == {0} and 0 < len(per) <= 32 and bool(per.has_depth.all())
    uniform = perspective_rays(batch, PC_RANGE, 32, "uniform", True)
    assert uniform.batch_index.bincount(minlength=2).tolist()[1] > 0  # uniform rays do not need LiDAR
    assert not bool(uniform.has_depth[uniform.batch_index == 1].any())
    assert uniform.rgb_target is not None and uniform.rgb_target.shape == (len(uniform), 3)
    bev = bev_rays(batch["points"], PC_RANGE, (4, 4), 8, "lidar")  # type: ignore[arg-type]
    assert set(bev.batch_index.tolist()) == {0} and 0 < len(bev) <= 8
    rand = random_view_rays(batch["points"], PC_RANGE, 2, 16, "lidar", (12, 16), 90.0, 1.0, (0.0, 0.5), (-10.0, 10.0))  # type: ignore[arg-type]
    assert set(rand.batch_index.tolist()) <= {0} and len(rand) <= 16


def test_ray_bundle_select_by_mask_index_and_slice() -> None:
    count = 6
    bundle = RayBundle(
        origins=torch.arange(3 * count, dtype=torch.float32).view(count, 3), directions=torch.ones(count, 3),
        batch_index=torch.arange(count), near=torch.zeros(count), far=torch.arange(count, dtype=torch.float32),
        depth_target=torch.arange(count, dtype=torch.float32), has_depth=torch.ones(count, dtype=torch.bool),
        rgb_target=torch.rand(count, 3),
    )
    by_mask = bundle.select(bundle.far > 2.5)
    by_index = bundle.select(torch.tensor([3, 4, 5]))
    by_slice = bundle.select(slice(3, 6))
    for name in ("origins", "directions", "batch_index", "near", "far", "depth_target", "has_depth", "rgb_target"):
        assert torch.equal(getattr(by_mask, name), getattr(by_index, name)), name
        assert torch.equal(getattr(by_mask, name), getattr(by_slice, name)), name
    assert by_mask.batch_index.tolist() == [3, 4, 5]


def test_clip_to_range_box_intersection() -> None:
    origins = torch.tensor([[0.0, 0.0, 0.0], [-20.0, 0.0, 0.0], [0.0, 0.0, 10.0]])
    directions = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    near, far = clip_to_range(origins, directions, PC_RANGE)
    assert near[:2].tolist() == [0.0, 12.0] and far[:2].tolist() == [8.0, 28.0]
    assert far[2] <= near[2]  # above the range: misses it


def test_bev_targets_are_top_minus_highest_return_per_pillar() -> None:
    points = torch.tensor(
        [[-7.5, -7.5, -1.0], [-7.0, -7.9, 0.5], [7.9, 7.9, -1.9], [0.1, 0.1, 1.5], [0.1, 0.1, 5.0], [20.0, 0.0, 0.0]]
    )  # (6, 3); the last two lie outside the range
    depth = pillar_depth(points, PC_RANGE, (4, 4))  # 4 m pillars
    assert depth[0, 0].item() == pytest.approx(2.0 - 0.5)
    assert depth[3, 3].item() == pytest.approx(2.0 + 1.9)
    assert depth[2, 2].item() == pytest.approx(2.0 - 1.5)
    assert torch.isinf(depth).sum().item() == 13
    rays = bev_rays([torch.cat([points, torch.zeros(6, 2)], dim=1)], PC_RANGE, (4, 4), None, "lidar")
    assert len(rays) == 3 and bool(rays.has_depth.all())
    assert rays.directions.tolist() == [[0.0, 0.0, -1.0]] * 3
    for origin, target in zip(rays.origins, rays.depth_target):
        row, column = int((origin[1] + 8.0) // 4.0), int((origin[0] + 8.0) // 4.0)
        assert origin[2].item() == 2.0 and target.item() == pytest.approx(depth[row, column].item())
    assert rays.far.tolist() == [4.0] * 3
    uniform = bev_rays([torch.cat([points, torch.zeros(6, 2)], dim=1)], PC_RANGE, (4, 4), None, "uniform")
    assert len(uniform) == 16 and int(uniform.has_depth.sum()) == 3
    with pytest.raises(ValueError, match="ray mode"):
        bev_rays([points], PC_RANGE, (4, 4), None, "everywhere")


def test_virtual_cameras_are_rigid_and_look_along_yaw_pitch() -> None:
    torch.manual_seed(3)
    intrinsics, cam2lidar = virtual_cameras(5, (12, 16), 90.0, 2.0, (-1.0, 1.0), (0.0, 0.0), torch.device("cpu"))
    rotation = cam2lidar[:, :3, :3]
    torch.testing.assert_close(rotation @ rotation.transpose(1, 2), torch.eye(3).expand(5, 3, 3), atol=1e-6, rtol=0)
    assert torch.det(rotation).tolist() == pytest.approx([1.0] * 5, abs=1e-6)
    assert rotation[:, 2, 2].abs().max().item() < 1e-6  # zero pitch: forward is horizontal
    assert rotation[:, 2, 1].tolist() == pytest.approx([-1.0] * 5)  # image down = -z
    assert cam2lidar[:, :2, 3].norm(dim=-1).max().item() <= 2.0
    assert intrinsics[0, 0, 0].item() == pytest.approx(8.0 / math.tan(math.radians(45.0)))


def test_head_losses_finite_and_gradients_reach_bev_for_every_term() -> None:
    batch = _batch([_cloud(400, 0), _cloud(400, 1)])
    for setting, expected in (("A1", "loss_color"), ("B1", "loss_depth_per"), ("B2", "loss_depth_bev"),
                              ("B0", "loss_depth_rand")):
        head = _head(**{name: value for name, value in vars(RenderConfig.table_viii(setting)).items()
                        if name in ("color", "depth_per", "depth_bev", "depth_rand")})
        bev = torch.randn(2, 6, 8, 8, requires_grad=True)
        output = head(bev, batch)
        assert list(output.losses) == [expected]
        assert output.skipped == {expected: 0} and output.rays[expected] > 0
        assert torch.isfinite(output.total) and output.losses[expected].item() > 0
        output.total.backward()
        assert bev.grad is not None and bev.grad.abs().sum().item() > 0, setting


def test_head_default_weights_follow_equation_7() -> None:
    head = _head()
    output = head(torch.randn(2, 6, 8, 8), _batch([_cloud(400, 0), _cloud(400, 1)]))
    assert list(output.losses) == ["loss_color", "loss_depth_per", "loss_depth_bev", "loss_depth_rand"]
    expected = 1e4 * output.losses["loss_color"] + 1e-2 * (
        output.losses["loss_depth_per"] + output.losses["loss_depth_bev"] + output.losses["loss_depth_rand"]
    )
    torch.testing.assert_close(output.total, expected)


def test_head_skips_and_counts_missing_targets() -> None:
    # Sample 0: points only far to the side (no camera sees them, pillars exist); sample 1: empty cloud.
    side = torch.tensor([[7.5, 0.0, 0.0, 0.0, 0.0], [-7.5, 0.0, 1.0, 0.0, 0.0]])
    batch = _batch([side, torch.zeros(0, 5)])
    head = _head(ray_mode="uniform", depth_rand=False)
    bev = torch.randn(2, 6, 8, 8, requires_grad=True)
    output = head(bev, batch)
    assert output.skipped == {"loss_color": 0, "loss_depth_per": 2, "loss_depth_bev": 1}
    assert output.losses["loss_depth_per"].item() == 0.0 and torch.isfinite(output.total)
    output.total.backward()
    assert all(torch.isfinite(parameter.grad).all() for parameter in head.parameters())
    lidar_head = _head(ray_mode="lidar")
    lidar_output = lidar_head(bev, _batch([torch.zeros(0, 5), torch.zeros(0, 5)]))
    assert lidar_output.skipped == {name: 2 for name in lidar_output.losses}
    assert lidar_output.total.item() == 0.0
    lidar_output.total.backward()  # still tied to the graph, never NaN


def test_head_autocast_bfloat16_keeps_losses_float32() -> None:
    head = _head()
    bev = torch.randn(2, 6, 8, 8, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert head.network.volume(bev).dtype == torch.bfloat16
        output = head(bev, _batch([_cloud(400, 0), _cloud(400, 1)]))
    assert all(loss.dtype == torch.float32 for loss in output.losses.values())
    assert output.total.dtype == torch.float32 and torch.isfinite(output.total)
    output.total.backward()
    assert bev.grad.abs().sum().item() > 0


def test_grid_sample_option_gives_the_same_losses() -> None:
    batch = _batch([_cloud(400, 0), _cloud(400, 1)])
    bev = torch.randn(2, 6, 8, 8)
    losses = []
    for sampler in ("trilinear", "grid_sample"):
        head = _head(sampler=sampler)  # same seed: same weights
        torch.manual_seed(5)  # same rays
        losses.append(head(bev, batch).losses)
    for name in losses[0]:
        torch.testing.assert_close(losses[0][name], losses[1][name], atol=1e-5, rtol=1e-5)


def test_render_views_shapes_and_targets() -> None:
    head = _head()
    cloud = torch.cat([_point_at_pixel(8, 4, 3.0, _camera((0.0, 0.0, 0.0))), torch.zeros(2)]).unsqueeze(0)
    batch = _batch([cloud, cloud])
    views = head.render_views(torch.randn(2, 6, 8, 8), batch, sample_index=1, camera_index=0, stride=4)
    assert views["per_rgb"].shape == views["per_rgb_target"].shape == (3, 4, 6)
    assert views["per_depth"].shape == views["per_depth_target"].shape == (4, 6)
    assert views["bev_depth"].shape == views["bev_depth_target"].shape == (8, 8)
    mean = torch.tensor(IMAGE_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGE_STD).view(3, 1, 1)
    expected_rgb = (batch["images"][1, 0] * std + mean).clamp(0, 1)[:, ::4, ::4]  # type: ignore[index]
    torch.testing.assert_close(views["per_rgb_target"], expected_rgb)
    assert views["per_depth_target"][1, 2].item() == pytest.approx(cloud[0, :3].norm().item(), rel=1e-5)
    assert int((views["per_depth_target"] > 0).sum()) == 1
    assert int((views["bev_depth_target"] > 0).sum()) == 1
    assert bool(((views["per_rgb"] >= 0) & (views["per_rgb"] <= 1)).all())


def test_render_config_validation() -> None:
    with pytest.raises(ValueError, match="ray_mode"):
        RenderConfig(ray_mode="dense")
    with pytest.raises(ValueError, match="per_step"):
        RenderConfig(per_step=0.0)
    with pytest.raises(ValueError, match="no rendering target"):
        RenderConfig(color=False, depth_per=False, depth_bev=False, depth_rand=False)
    with pytest.raises(ValueError, match="Table VIII"):
        RenderConfig.table_viii("C9")
    paper = RenderConfig.paper()
    assert (paper.lambda_color, paper.lambda_depth_per, paper.per_step, paper.bev_step) == (1e4, 1e-2, 0.8, 0.2)
    with pytest.raises(ValueError, match="pc_range"):
        NeRFPretrainHead(paper, 6, (0.0, 0.0, 0.0, -1.0, 1.0, 1.0))


def test_a_plan_drawn_before_the_embedding_renders_the_same() -> None:
    head = _head()
    batch = _batch([_cloud(400, 0), _cloud(400, 1)])
    bev = torch.randn(2, 6, 8, 8)
    torch.manual_seed(3)
    drawn_inside = head(bev, batch)
    torch.manual_seed(3)
    plan = head.plan(batch, (8, 8))
    assert set(plan.views) == {"per", "bev", "rand"}
    assert all(view.samples.offsets.shape[0] == len(view.rays) + 1 for view in plan.views.values())
    from_plan = head(bev, batch, plan)
    assert drawn_inside.losses.keys() == from_plan.losses.keys()
    for name, value in drawn_inside.losses.items():
        torch.testing.assert_close(from_plan.losses[name], value, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"plan was drawn for a \(8, 8\) BEV grid"):
        head(torch.randn(2, 6, 4, 4), batch, plan)


def test_direction_encoding_is_nerfs_frequency_by_frequency() -> None:
    from nsmae_lightning.models.rendering import encode_directions

    directions = torch.nn.functional.normalize(torch.randn(9, 3), dim=-1)
    parts = [directions]
    for level in range(4):
        scaled = directions * (math.pi * 2.0**level)
        parts += [torch.sin(scaled), torch.cos(scaled)]
    assert torch.equal(encode_directions(directions, 4), torch.cat(parts, dim=-1))  # bit for bit
    assert torch.equal(encode_directions(directions, 0), directions)
