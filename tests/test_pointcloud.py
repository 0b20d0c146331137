"""Depth -> point cloud: exact geometry on synthetic scenes, masks, outlier removal, centring, errors."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from mofo_core.camera import fov_intrinsics
from mofo_core.geometry.pointcloud import depth_edge_mask, depth_to_points, outlier_mask


def _pixel_of(points: np.ndarray, fx: float, fy: float, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
    """Invert the back-projection: (x, -y, -z) -> integer (row, col)."""
    z = -points[:, 2].astype(np.float64)
    u = points[:, 0] * fx / z + cx - 0.5
    v = -points[:, 1] * fy / z + cy - 0.5
    return np.rint(v).astype(int), np.rint(u).astype(int)


# --------------------------------------------------------------------------------------------- intrinsics


def test_fov_intrinsics_horizontal_fov():
    fx, fy, cx, cy = fov_intrinsics(8, 6, 90.0)
    assert fx == pytest.approx(4.0) and fy == fx  # W / (2 tan 45°)
    assert (cx, cy) == (4.0, 3.0)
    fx65, _, _, _ = fov_intrinsics(512, 256)  # default 65°, uses the width
    assert fx65 == pytest.approx(512 / (2 * math.tan(math.radians(32.5))))
    assert fx65 == pytest.approx(401.840, abs=1e-3)  # 256 / tan(32.5°)


@pytest.mark.parametrize("fov", [0.0, 180.0, -10.0, 200.0, float("nan")])
def test_fov_out_of_range(fov):
    with pytest.raises(ValueError, match=r"fov_deg must be in \(0, 180\)"):
        fov_intrinsics(8, 8, fov)


def test_fov_bad_size():
    with pytest.raises(ValueError, match="positive pixel counts"):
        fov_intrinsics(0, 8)


# --------------------------------------------------------------------------------------------- geometry


def test_fronto_parallel_plane_exact_geometry():
    d, w, h = 2.5, 8, 6
    depth = np.full((h, w), d, dtype=np.float32)
    pts, cols = depth_to_points(depth, fov_deg=90.0)
    assert pts.dtype == np.float32 and cols.dtype == np.uint8
    assert pts.shape == (h * w, 3) and cols.shape == (h * w, 3)
    np.testing.assert_array_equal(pts[:, 2], -d)  # camera looks down -Z
    # fov 90°: f = W/2, so the outermost pixel centres sit at x = ±d (W-1)/W and y = ±d (H-1)/W.
    assert pts[:, 0].min() == pytest.approx(-d * (w - 1) / w) and pts[:, 0].max() == pytest.approx(d * (w - 1) / w)
    assert pts[:, 1].min() == pytest.approx(-d * (h - 1) / w) and pts[:, 1].max() == pytest.approx(d * (h - 1) / w)
    # Row-major order: the first point is the top-left pixel, which is left (-x) and up (+y).
    np.testing.assert_allclose(pts[0], [-d * 7 / 8, d * 5 / 8, -d], rtol=1e-6)
    np.testing.assert_allclose(pts[-1], [d * 7 / 8, -d * 5 / 8, -d], rtol=1e-6)
    # x steps by d / f per column.
    np.testing.assert_allclose(np.diff(pts[:w, 0]), d / 4.0, rtol=1e-6)
    np.testing.assert_array_equal(cols, 255)  # no colours -> white


def test_explicit_intrinsics_use_fy_for_y():
    depth = np.full((4, 4), 1.0)
    pts, _ = depth_to_points(depth, intrinsics=(2.0, 4.0, 2.0, 2.0), fov_deg=10.0)  # fov ignored
    np.testing.assert_allclose(pts[:4, 0], [-0.75, -0.25, 0.25, 0.75])  # (u + 0.5 - 2) / 2
    np.testing.assert_allclose(pts[::4, 1], [0.375, 0.125, -0.125, -0.375])  # -(v + 0.5 - 2) / 4


def test_integer_depth_is_accepted():
    pts, _ = depth_to_points(np.full((3, 3), 7, dtype=np.uint16), edge_rtol=0)
    np.testing.assert_array_equal(pts[:, 2], -7.0)


# --------------------------------------------------------------------------------------------- masks


def _box_scene():
    h, w = 10, 12
    depth = np.full((h, w), 4.0, dtype=np.float32)  # far wall
    depth[3:7, 4:8] = 1.0  # near 4x4 square
    rows, cols = np.mgrid[0:h, 0:w]
    colors = np.stack([rows * 10, cols * 10, np.where(depth < 2, 255, 0)], axis=-1).astype(np.uint8)
    return depth, colors


def _edge_by_hand(depth: np.ndarray, rtol: float) -> np.ndarray:
    """Independent edge mask: explicit 3x3 loop with reflected borders."""
    p = np.pad(depth, 1, mode="symmetric")  # scipy's 'reflect' is numpy's 'symmetric'
    out = np.zeros(depth.shape, bool)
    for r in range(depth.shape[0]):
        for c in range(depth.shape[1]):
            win = p[r : r + 3, c : c + 3]
            out[r, c] = win.max() - win.min() > rtol * max(depth[r, c], 1e-6)
    return out


def test_box_scene_edge_ring_removed_exactly():
    depth, colors = _box_scene()
    edge = depth_edge_mask(depth, 0.04)
    np.testing.assert_array_equal(edge, _edge_by_hand(depth, 0.04))
    # Near square border (16 - 2x2 inner = 12) + far ring around it (6x6 - 4x4 = 20) = 32 pixels.
    assert edge.sum() == 32
    ring = np.zeros_like(edge)
    ring[2:8, 3:9] = True  # the square grown by one pixel ...
    ring[4:6, 5:7] = False  # ... minus its 2x2 interior
    np.testing.assert_array_equal(edge, ring)

    pts, cols = depth_to_points(depth, colors, fov_deg=65.0)
    assert len(pts) == depth.size - 32 == 88
    z = -pts[:, 2]
    assert (z == 1.0).sum() == 4 and (z == 4.0).sum() == 84
    # Every colour lands on the point of its own pixel.
    fx, fy, cx, cy = fov_intrinsics(12, 10, 65.0)
    rows, cs = _pixel_of(pts, fx, fy, cx, cy)
    np.testing.assert_array_equal(cols, colors[rows, cs])
    np.testing.assert_array_equal(depth[rows, cs], z)
    assert not edge[rows, cs].any()
    assert (cols[z == 1.0, 2] == 255).all() and (cols[z == 4.0, 2] == 0).all()


def test_edge_rtol_zero_keeps_every_valid_pixel():
    depth, colors = _box_scene()
    pts, cols = depth_to_points(depth, colors, edge_rtol=0)
    assert len(pts) == depth.size
    np.testing.assert_array_equal(cols, colors.reshape(-1, 3))  # row-major order


def test_invalid_pixels_dropped_and_poison_their_neighbours():
    depth = np.full((7, 7), 2.0)
    depth[1, 1], depth[1, 5], depth[5, 1], depth[5, 5] = 0.0, -1.0, np.inf, np.nan
    pts, _ = depth_to_points(depth, edge_rtol=0)
    assert len(pts) == 49 - 4 and np.isfinite(pts).all()
    # With the edge mask on the raw map, the zero, negative and inf pixels also remove their 8 neighbours
    # (the inf pixel itself is not an "edge": inf > rtol * inf is false, but it is invalid anyway).
    edge = depth_edge_mask(depth, 0.04)
    for r, c in [(1, 1), (1, 5), (5, 1)]:
        ring = edge[r - 1 : r + 2, c - 1 : c + 2].copy()
        assert ring.sum() - ring[1, 1] == 8
    assert edge[1, 1] and edge[1, 5] and not edge[5, 1]
    assert edge[3, 3] == False  # noqa: E712  (untouched centre)
    pts, _ = depth_to_points(depth)
    assert np.isfinite(pts).all() and len(pts) <= 49 - 3 * 9 - 1


# --------------------------------------------------------------------------------------------- SOR


def _sor_by_hand(points: np.ndarray, k: int, std_ratio: float) -> np.ndarray:
    d = np.linalg.norm(points[:, None, :].astype(np.float64) - points[None, :, :], axis=-1)
    mean_nn = np.sort(d, axis=1)[:, 1:k].mean(axis=1)
    return mean_nn <= mean_nn.mean() + std_ratio * mean_nn.std()


def test_sor_removes_injected_outlier():
    depth = np.full((12, 12), 2.0)
    depth[6, 6] = 40.0  # a flying pixel far behind the plane
    pts_all, _ = depth_to_points(depth, edge_rtol=0)
    assert (pts_all[:, 2] == -40.0).sum() == 1
    pts, cols = depth_to_points(depth, edge_rtol=0, sor=True)
    assert (pts[:, 2] == -40.0).sum() == 0
    keep = _sor_by_hand(pts_all, 6, 1.0)
    assert not keep[6 * 12 + 6]
    np.testing.assert_array_equal(pts, pts_all[keep])
    np.testing.assert_array_equal(outlier_mask(pts_all), keep)
    assert len(cols) == len(pts)


def test_sor_skipped_for_five_points_or_fewer():
    depth = np.zeros((4, 4))
    depth[0, :4] = [1.0, 1.0, 1.0, 1.0]
    depth[3, 3] = 50.0
    pts, _ = depth_to_points(depth, edge_rtol=0, sor=True)
    assert len(pts) == 5  # N <= 5: nothing removed, even the far point
    assert outlier_mask(np.zeros((5, 3))).all()


# --------------------------------------------------------------------------------------------- centring, cap


def test_median_centring_vs_camera_origin():
    depth, colors = _box_scene()
    cam, cam_cols = depth_to_points(depth, colors)
    med, med_cols = depth_to_points(depth, colors, center="median")
    np.testing.assert_array_equal(cam_cols, med_cols)
    np.testing.assert_allclose(np.median(med, axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(med, cam - np.median(cam, axis=0), atol=1e-6)
    assert np.median(cam[:, 2]) == -4.0  # the camera-frame cloud keeps its depth


def test_max_points_seeded_subset():
    depth, colors = _box_scene()
    full, full_cols = depth_to_points(depth, colors, edge_rtol=0)
    sub, sub_cols = depth_to_points(depth, colors, edge_rtol=0, max_points=25)
    idx = np.random.default_rng(0).choice(len(full), 25, replace=False)
    np.testing.assert_array_equal(sub, full[idx])
    np.testing.assert_array_equal(sub_cols, full_cols[idx])
    again, _ = depth_to_points(depth, colors, edge_rtol=0, max_points=25)
    np.testing.assert_array_equal(sub, again)
    same, _ = depth_to_points(depth, colors, edge_rtol=0, max_points=10_000)  # not exceeded: untouched
    np.testing.assert_array_equal(same, full)


# --------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"depth": np.ones((1, 4, 4))}, "2-D"),
        ({"depth": np.ones(16)}, "2-D"),
        ({"colors": np.zeros((4, 5, 3), np.uint8)}, "colors must be"),
        ({"colors": np.zeros((4, 4, 4), np.uint8)}, "drop alpha"),
        ({"colors": np.zeros((4, 4, 3), np.float32)}, "astype"),
        ({"fov_deg": 180.0}, "fov_deg"),
        ({"fov_deg": 0.0}, "fov_deg"),
        ({"depth": np.zeros((4, 4))}, "no finite positive pixel"),
        ({"depth": np.full((4, 4), np.nan)}, "no finite positive pixel"),
        ({"center": "mean"}, "center"),
        ({"max_points": 0}, "max_points"),
        ({"edge_rtol": -0.1}, "edge_rtol"),
        ({"intrinsics": (1.0, 1.0, 2.0)}, "intrinsics"),
        ({"intrinsics": (0.0, 1.0, 2.0, 2.0)}, "positive focal"),
        ({"sor_k": 1}, "sor_k"),
        ({"depth": np.ones((4, 4), dtype=bool)}, "real numbers"),
    ],
)
def test_bad_inputs_raise(kwargs, match):
    args = {"depth": np.ones((4, 4))} | kwargs
    depth = args.pop("depth")
    colors = args.pop("colors", None)
    with pytest.raises(ValueError, match=match):
        depth_to_points(depth, colors, **args)


def test_everything_on_an_edge_gives_an_empty_cloud(caplog):
    checker = np.where(np.indices((6, 6)).sum(0) % 2 == 0, 1.0, 3.0)  # valid but all discontinuity
    with caplog.at_level(logging.WARNING, logger="mofo_core.geometry.pointcloud"):
        pts, cols = depth_to_points(checker, np.zeros((6, 6, 3), np.uint8), sor=True, center="median")
    assert pts.shape == (0, 3) and pts.dtype == np.float32
    assert cols.shape == (0, 3) and cols.dtype == np.uint8
    assert "raise edge_rtol or pass 0" in caplog.text
    assert len(depth_to_points(checker, edge_rtol=0)[0]) == 36
