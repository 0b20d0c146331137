"""The synthetic room behind the shipped example inputs (assets/): ray-cast from a pinhole camera at 1.5 m.

mofo_depth_example.png   its depth, stored as 8-bit disparity (near = bright), as most depth nodes write it.
mofo_edit_example.png    its picture (flat-shaded RGB) with the ball cut out of the alpha channel: ComfyUI's LoadImage
                         turns the transparent part into MASK = 1, the region the edit workflows regenerate.
Both are drawn from the same rays, so they are pixel-aligned (the depth fix-up workflow uses the pair).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# surface ids: floor, ceiling, left wall, right wall, back wall, table top, table front, ball
COLORS = np.array([[150, 105, 70], [235, 232, 225], [150, 175, 150], [215, 200, 175], [170, 195, 215],
                   [110, 70, 45], [90, 55, 35], [200, 40, 40]], dtype=np.float64)
BALL = 7


def room(size: int = 512):
    """(depth z (size, size) along the rays, surface id per pixel, unit normals (size, size, 3))."""
    f = 0.5 * size / np.tan(np.radians(65.0) / 2)
    v, u = np.mgrid[0:size, 0:size] + 0.5
    d = np.stack([(u - size / 2) / f, -(v - size / 2) / f, -np.ones_like(u)], -1)  # rays, camera at 1.5 m
    z = np.full(u.shape, np.inf)
    ids = np.full(u.shape, -1)
    normal = np.zeros(u.shape + (3,))

    def hit(t, k, n):
        closer = t < z
        np.minimum(z, t, out=z)
        ids[closer] = k
        normal[closer] = n[closer] if np.ndim(n) == 3 else n

    def plane(k, axis, value, n, lo=None):
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (value - (1.5 if axis == 1 else 0.0)) / d[..., axis]
        p = d * t[..., None] + np.array([0, 1.5, 0])
        ok = t > 0
        for ax, (a, b) in (lo or {}).items():
            ok &= (p[..., ax] >= a) & (p[..., ax] <= b)
        hit(np.where(ok, t, np.inf), k, np.array(n, dtype=np.float64))

    plane(0, 1, 0.0, [0, 1, 0])  # floor
    plane(1, 1, 2.8, [0, -1, 0])  # ceiling
    plane(2, 0, -2.2, [1, 0, 0])  # left wall
    plane(3, 0, 2.4, [-1, 0, 0])  # right wall
    plane(4, 2, -6.0, [0, 0, 1])  # back wall
    plane(5, 1, 0.75, [0, 1, 0], {0: (-1.6, -0.2), 2: (-3.6, -2.4)})  # table top
    plane(6, 2, -2.4, [0, 0, 1], {0: (-1.6, -0.2), 1: (0.0, 0.75)})  # table front
    c, r = np.array([1.0, 0.45, -3.0]), 0.45  # ball on the floor
    o = np.array([0, 1.5, 0]) - c
    b = (d * o).sum(-1)
    disc = b**2 - (d * d).sum(-1) * ((o * o).sum() - r * r)
    t = (-b - np.sqrt(np.maximum(disc, 0))) / (d * d).sum(-1)
    ball_n = (d * t[..., None] + np.array([0, 1.5, 0]) - c) / r
    hit(np.where((disc > 0) & (t > 0), t, np.inf), BALL, ball_n)
    return z, ids, normal


def write_depth_example(path: Path, size: int = 512) -> None:
    from PIL import Image

    z, _, _ = room(size)
    disp = 1.0 / z
    img = (255 * (disp - disp.min()) / (disp.max() - disp.min())).round().astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img, "L").save(path, optimize=True)


def edit_mask(size: int = 512, grow: int = 10) -> np.ndarray:
    """(size, size) float mask: the ball grown by `grow` pixels (1 = regenerate)."""
    import torch

    _, ids, _ = room(size)
    m = torch.from_numpy((ids == BALL).astype(np.float32))[None, None]
    m = torch.nn.functional.max_pool2d(m, 2 * grow + 1, stride=1, padding=grow)
    return m[0, 0].numpy()


def write_edit_example(path: Path, size: int = 512) -> None:
    """Flat-shaded picture of the room (a few grey levels per surface, so it compresses well), ball cut out."""
    from PIL import Image

    z, ids, n = room(size)
    light = np.array([0.4, 0.8, 0.45]) / np.linalg.norm([0.4, 0.8, 0.45])
    shade = 0.55 + 0.45 * np.clip((n * light).sum(-1), 0, 1) * np.clip(2.5 / z, 0.4, 1.0)
    shade = np.round(shade * 12) / 12  # banded: a small PNG
    rgb = np.clip(COLORS[ids] * shade[..., None], 0, 255).round().astype(np.uint8)
    alpha = ((1.0 - edit_mask(size)) * 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(path, optimize=True)
