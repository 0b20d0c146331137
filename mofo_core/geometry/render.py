"""A small CPU point splatter: a picture of a point cloud from an orbiting camera (node previews, docs)."""

from __future__ import annotations

import math

import numpy as np


def render_points(
    points: np.ndarray,
    colors: np.ndarray,
    *,
    size: tuple[int, int] = (384, 512),
    yaw_deg: float = 30.0,
    pitch_deg: float = 15.0,
    fov_deg: float = 50.0,
    background: tuple[int, int, int] = (31, 31, 36),
    splat: int = 2,
) -> np.ndarray:
    """uint8 (H, W, 3) view of points (N, 3) in glTF axes (+Y up, -Z forward) with uint8 colours (N, 3).

    The camera orbits the cloud's median by yaw (around +Y) and pitch, looks at it, and is placed far
    enough to see the whole cloud; nearer points win (z-buffer by sort). Empty clouds give the background.
    """
    h, w = size
    img = np.empty((h, w, 3), np.uint8)
    img[:] = background
    if len(points) == 0:
        return img
    p = points.astype(np.float64)
    c = np.median(p, axis=0)
    radius = max(float(np.percentile(np.linalg.norm(p - c, axis=1), 98)), 1e-6)
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    ry = np.array([[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]])
    rx = np.array([[1, 0, 0], [0, math.cos(pitch), -math.sin(pitch)], [0, math.sin(pitch), math.cos(pitch)]])
    q = (p - c) @ (rx @ ry).T  # (N, 3) in a frame rotated about the cloud centre
    f = 0.5 * w / math.tan(math.radians(fov_deg) / 2)
    dist = radius / math.sin(math.radians(fov_deg) / 2) * 1.1
    z = dist - q[:, 2]  # camera on +Z looking down -Z: distance in front of it
    keep = z > 1e-6
    u = (w / 2 + f * q[keep, 0] / z[keep]).astype(np.int64)
    v = (h / 2 - f * q[keep, 1] / z[keep]).astype(np.int64)
    zk, ck = z[keep], colors[keep]
    order = np.argsort(-zk)  # far first, near last: later writes win
    for dy in range(splat):
        for dx in range(splat):
            uu, vv = u[order] + dx, v[order] + dy
            ok = (uu >= 0) & (uu < w) & (vv >= 0) & (vv < h)
            img[vv[ok], uu[ok]] = ck[order][ok]
    return img
