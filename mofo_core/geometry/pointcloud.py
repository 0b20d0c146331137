"""Depth map -> coloured point cloud (pinhole back-projection, depth-edge mask, optional outlier removal).

Follows the reference's point-cloud export (`Duisterhof/modality-forcing: scripts/_common.py`,
`write_point_cloud`, and `flux_rgbd/pointcloud.py`; reference-spec.md §9): a centred pinhole with a
horizontal field of view (65° by default), pixel centres at +0.5, planar z-depth, points in the glTF /
three.js frame (x, -y, -z), depth-edge pixels dropped before back-projection, optional statistical
outlier removal, and a seeded random subset when a cap on the point count is given. One deliberate
default differs: the reference subtracts the per-axis median (losing the camera pose); here the camera
stays at the origin unless `center="median"` is asked for.

scipy is imported only inside the functions that need it.
"""

from __future__ import annotations

import logging
import math
from typing import Literal

import numpy as np

from ..camera import Intrinsics, resolve_intrinsics
from ..config import DEFAULT_FOV_DEG
from ..depth.maps import check_depth_map

log = logging.getLogger(__name__)

DEFAULT_EDGE_RTOL = 0.04
REFERENCE_MAX_POINTS = 1_200_000  # the reference's cap (never reached at 512² or 1024²)
_EDGE_DEPTH_FLOOR = 1e-6  # keeps the relative edge threshold positive at zero / negative depth

def depth_edge_mask(depth: np.ndarray, rtol: float = DEFAULT_EDGE_RTOL) -> np.ndarray:
    """True on depth-discontinuity pixels: max3x3 - min3x3 > rtol * max(depth, 1e-6).

    The 3x3 filters use scipy's default 'reflect' border and run on the raw map, invalid values
    included, as the reference does; so a NaN or inf pixel can mark its neighbours as edges too.

    Args:
        depth: (H, W) float depth.
        rtol: relative depth jump that counts as an edge (0.04 = 4 %).

    Returns:
        (H, W) bool mask.
    """
    from scipy.ndimage import maximum_filter, minimum_filter

    local_range = maximum_filter(depth, size=3, mode="reflect") - minimum_filter(depth, size=3, mode="reflect")
    with np.errstate(invalid="ignore"):  # inf - inf and NaN comparisons are expected on invalid pixels
        return local_range > rtol * np.maximum(depth, _EDGE_DEPTH_FLOOR)


def outlier_mask(points: np.ndarray, k: int = 6, std_ratio: float = 1.0) -> np.ndarray:
    """True on inliers of a statistical outlier test (Open3D `remove_statistical_outlier` style).

    Each point's mean distance to its k - 1 nearest other points is compared with the mean + std_ratio
    * std of those distances over the cloud; points at or below it are inliers.

    Args:
        points: (N, 3) positions.
        k: neighbours queried per point, the point itself included (the reference: 6).
        std_ratio: threshold in standard deviations; smaller removes more.

    Returns:
        (N,) bool mask; all True when N < k (too few points to judge).
    """
    n = len(points)
    if n < k:
        return np.ones(n, dtype=bool)
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(points).query(points, k=k, workers=-1)  # (N, k), column 0 is the point itself
    mean_dist = dist[:, 1:].mean(axis=1)
    return mean_dist <= mean_dist.mean() + std_ratio * float(mean_dist.std())


def _check_inputs(depth: np.ndarray, colors: np.ndarray | None) -> np.ndarray:
    """Validate depth (and colours against it); return depth as a float array."""
    d = check_depth_map(depth)
    if d.dtype.kind != "f":
        d = d.astype(np.float64)
    if colors is not None:
        c = np.asarray(colors)
        if c.shape != (*d.shape, 3):
            raise ValueError(
                f"colors must be (H, W, 3) RGB matching depth {d.shape}, got {c.shape}; resize the image to "
                "the depth size (and drop alpha) first"
            )
        if c.dtype != np.uint8:
            raise ValueError(
                f"colors must be uint8 RGB, got dtype {c.dtype}; convert floats in [0, 1] with "
                "(colors * 255).round().astype(np.uint8)"
            )
    return d


def depth_to_points(
    depth: np.ndarray,
    colors: np.ndarray | None = None,
    *,
    fov_deg: float = DEFAULT_FOV_DEG,
    intrinsics: Intrinsics | None = None,
    edge_rtol: float = DEFAULT_EDGE_RTOL,
    sor: bool = False,
    sor_k: int = 6,
    sor_std: float = 1.0,
    center: Literal["camera", "median"] = "camera",
    max_points: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Back-project a depth map to a coloured point cloud in the glTF frame (+Y up, camera looking down -Z).

    Pixel (row v, column u) with planar depth z maps to x = (u + 0.5 - cx) z / fx and
    y = (v + 0.5 - cy) z / fy, written as (x, -y, -z). Kept pixels: depth finite and > 0, and, when
    edge_rtol > 0, not on a depth edge (`depth_edge_mask`). Steps after back-projection, in the reference's
    order: outlier removal (if `sor`), random subset (if `max_points` is exceeded), centring.
    Points come out in row-major pixel order unless a subset is drawn. If the edge mask removes every
    pixel (very noisy depth), the cloud is empty (N = 0) and a warning is logged.

    Args:
        depth: (H, W) planar depth, any positive unit (the output is in the same unit).
        colors: (H, W, 3) uint8 RGB aligned with depth, or None (points come out white).
        fov_deg: horizontal field of view [deg], in (0, 180); ignored when `intrinsics` is given.
        intrinsics: (fx, fy, cx, cy) [px], overriding the field of view.
        edge_rtol: relative depth jump over a 3x3 window that marks an edge pixel; 0 disables the mask.
        sor: drop statistical outliers (`outlier_mask`); skipped when there are fewer than `sor_k` points.
        sor_k: neighbours per point for the outlier test, the point itself included.
        sor_std: outlier threshold in standard deviations.
        center: "camera" keeps the camera at the origin; "median" subtracts the per-axis median of the
            points, as the reference does.
        max_points: if set and exceeded, keep a random subset of this size (np.random.default_rng(0),
            without replacement). The reference uses 1,200,000 (`REFERENCE_MAX_POINTS`).

    Returns:
        points: (N, 3) float32, in depth units.
        colors: (N, 3) uint8 RGB.

    Raises:
        ValueError: bad shapes, dtypes or options, or no finite positive depth pixel at all.
    """
    d = _check_inputs(depth, colors)
    height, width = d.shape
    fx, fy, cx, cy = resolve_intrinsics(width, height, fov_deg, intrinsics)
    if not (math.isfinite(edge_rtol) and edge_rtol >= 0):
        raise ValueError(f"edge_rtol must be >= 0 (0 disables the edge mask), got {edge_rtol}")
    if center not in ("camera", "median"):
        raise ValueError(f"center must be 'camera' or 'median', got {center!r}")
    if int(sor_k) != sor_k or sor_k < 2:
        raise ValueError(f"sor_k must be an integer >= 2 (the point itself plus neighbours), got {sor_k}")
    if not (math.isfinite(sor_std) and sor_std >= 0):
        raise ValueError(f"sor_std must be a finite number >= 0, got {sor_std}")
    if max_points is not None and (int(max_points) != max_points or max_points < 1):
        raise ValueError(f"max_points must be a positive integer or None (no cap), got {max_points}")

    with np.errstate(invalid="ignore"):
        valid = np.isfinite(d) & (d > 0)
    if not valid.any():
        raise ValueError("depth has no finite positive pixel; nothing to back-project (check the depth map)")
    if edge_rtol > 0:
        valid &= ~depth_edge_mask(d, edge_rtol)
        if not valid.any():
            # Valid but noisy depth (e.g. random weights): a legitimate, empty result rather than an error.
            log.warning(
                "every valid pixel lies on a depth edge at edge_rtol=%s; the point cloud is empty "
                "(raise edge_rtol or pass 0 to keep them)",
                edge_rtol,
            )

    rows, cols = np.nonzero(valid)  # row-major pixel order
    if not sor and max_points is not None and len(rows) > max_points:
        # the subset the cap below would draw (same generator, same index order), taken before back-projection
        # so that a huge photo never holds its full cloud in memory
        idx = np.random.default_rng(0).choice(len(rows), int(max_points), replace=False)
        rows, cols = rows[idx], cols[idx]
    z = d[rows, cols].astype(np.float64)
    x = (cols + 0.5 - cx) * z / fx
    y = (rows + 0.5 - cy) * z / fy
    points = np.stack([x, -y, -z], axis=-1).astype(np.float32)  # (N, 3), glTF frame
    if colors is None:
        rgb = np.full((len(points), 3), 255, dtype=np.uint8)
    else:
        rgb = np.asarray(colors)[rows, cols]  # (N, 3)

    if sor:
        keep = outlier_mask(points, k=int(sor_k), std_ratio=float(sor_std))
        log.debug("outlier removal dropped %d of %d points", int((~keep).sum()), len(points))
        points, rgb = points[keep], rgb[keep]
    if max_points is not None and len(points) > max_points:
        idx = np.random.default_rng(0).choice(len(points), int(max_points), replace=False)
        points, rgb = points[idx], rgb[idx]
    if center == "median" and len(points):
        points -= np.median(points, axis=0, keepdims=True)
    return points, rgb
