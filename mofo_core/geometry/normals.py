"""Camera-space surface normals from a depth map, and their normal-map pictures.

Points are back-projected as the point cloud does (`pointcloud.fov_intrinsics`: a centred pinhole with a
horizontal field of view, pixel centres at +0.5), in the glTF / OpenGL camera frame: +X right, +Y up, +Z towards
the viewer (the camera looks down -Z). Each pixel's normal is the cross product of a horizontal and a vertical
tangent. Each tangent is a one-sided difference to the left or right (up or down) neighbour, whichever lies
closer in depth, so a normal at a depth edge is computed from its own surface only and never mixes the
foreground with the background behind it ("robust at edges"). A side whose neighbour is invalid or differs by
more than `edge_rtol` (relative) from the pixel is not used; a pixel with no usable side in a direction gets no
normal (0, 0, 0). Normals are flipped, if needed, to face the camera.

Normal-map colours (RGB = (n' + 1) / 2 of a re-signed normal n'):

* "controlnet" (the default): the ControlNet 1.1 normal model's convention, which it learned from Bae et al.'s
  estimator trained on ScanNet; the ControlNet 1.1 README states it as "blue is front, red is left, green is top"
  (lllyasviel/ControlNet-v1-1-nightly, README, "ControlNet 1.1 Normal"). Here R = -X (left), G = +Y (up),
  B = +Z (towards the viewer): a wall facing the camera is (128, 128, 255).
* "opengl": R = +X (right), G = +Y (up), B = +Z, the usual OpenGL / Blender / glTF normal-map convention.
* "directx": R = +X, G = -Y (down), B = +Z, the DirectX / Unreal convention.
Pixels without a normal are black (0, 0, 0).
"""

from __future__ import annotations

import math

import numpy as np

from ..camera import Intrinsics, resolve_intrinsics
from ..config import DEFAULT_FOV_DEG
from .pointcloud import _check_inputs

CONVENTIONS = {  # sign applied to (X, Y, Z) before (n + 1) / 2
    "controlnet": (-1.0, 1.0, 1.0),
    "opengl": (1.0, 1.0, 1.0),
    "directx": (1.0, -1.0, 1.0),
}
DEFAULT_NORMAL_RTOL = 0.1  # a 10 % depth jump to the neighbour means "another surface"


def backproject(depth: np.ndarray, fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """(H, W) planar depth -> (H, W, 3) float64 points in the glTF camera frame (x, -y, -z)."""
    h, w = depth.shape
    u = np.arange(w, dtype=np.float64) + 0.5
    v = np.arange(h, dtype=np.float64) + 0.5
    z = depth.astype(np.float64)
    x = (u[None, :] - cx) * z / fx
    y = (v[:, None] - cy) * z / fy
    return np.stack([x, -y, -z], axis=-1)


def _tangent(p: np.ndarray, z: np.ndarray, ok: np.ndarray, axis: int, rtol: float) -> tuple[np.ndarray, np.ndarray]:
    """One-sided tangent along `axis` (1 = columns, 0 = rows) towards the neighbour closer in depth.

    Returns the (H, W, 3) tangent (pointing towards +column / +row) and an (H, W) bool of where it exists."""
    fwd_p, bwd_p = np.zeros_like(p), np.zeros_like(p)
    fwd_dz, bwd_dz = np.full(z.shape, np.inf), np.full(z.shape, np.inf)
    sl = [slice(None)] * 2
    lo, hi = list(sl), list(sl)
    lo[axis], hi[axis] = slice(None, -1), slice(1, None)
    lo, hi = tuple(lo), tuple(hi)
    with np.errstate(invalid="ignore"):
        d = np.abs(z[hi] - z[lo])  # between each pixel and its next neighbour along the axis
        pair = ok[hi] & ok[lo] & (d <= rtol * np.minimum(z[hi], z[lo]))
    fwd_p[lo] = p[hi] - p[lo]
    fwd_dz[lo] = np.where(pair, d, np.inf)
    bwd_p[hi] = p[hi] - p[lo]
    bwd_dz[hi] = np.where(pair, d, np.inf)
    use_fwd = fwd_dz <= bwd_dz
    t = np.where(use_fwd[..., None], fwd_p, bwd_p)
    return t, np.isfinite(np.minimum(fwd_dz, bwd_dz))


def depth_to_normals(
    depth: np.ndarray,
    *,
    fov_deg: float = DEFAULT_FOV_DEG,
    intrinsics: Intrinsics | None = None,
    edge_rtol: float = DEFAULT_NORMAL_RTOL,
) -> np.ndarray:
    """Unit camera-space normals of a depth map (the module docstring gives the frame and the edge rule).

    Args:
        depth: (H, W) planar depth, any positive unit; <= 0 or non-finite = no depth.
        fov_deg: horizontal field of view [deg], in (0, 180); ignored when `intrinsics` is given.
        intrinsics: (fx, fy, cx, cy) [px], overriding the field of view.
        edge_rtol: a neighbour whose depth differs by more than this fraction is on another surface and is not
            used; must be > 0 (steep surfaces seen at a grazing angle need more than flat ones).

    Returns:
        (H, W, 3) float32 unit normals (+X right, +Y up, +Z towards the camera); (0, 0, 0) where none exists.

    Raises:
        ValueError: a bad shape, dtype or option, or no finite positive depth.
    """
    d = _check_inputs(depth, None)
    h, w = d.shape
    fx, fy, cx, cy = resolve_intrinsics(w, h, fov_deg, intrinsics)
    if not (math.isfinite(edge_rtol) and edge_rtol > 0):
        raise ValueError(f"edge_rtol must be a finite number > 0 (e.g. {DEFAULT_NORMAL_RTOL}), got {edge_rtol}")
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(d) & (d > 0)
    if not ok.any():
        raise ValueError("depth has no finite positive pixel; no normals to compute (check the depth map)")
    z = np.where(ok, d, 0.0).astype(np.float64)
    p = backproject(z, fx, fy, cx, cy)  # (H, W, 3)
    tu, has_u = _tangent(p, z, ok, 1, edge_rtol)  # towards +column: screen right
    tv, has_v = _tangent(p, z, ok, 0, edge_rtol)  # towards +row: screen down
    n = np.cross(tv, tu)  # down x right = towards the viewer for a surface facing the camera
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    good = ok & has_u & has_v & (norm[..., 0] > 0)
    n = np.where(good[..., None], n / np.maximum(norm, 1e-300), 0.0)
    facing_away = (n * p).sum(-1) > 0  # a visible surface faces the camera: n . (camera - p) >= 0
    n[facing_away] *= -1
    return n.astype(np.float32)


def normals_to_image(normals: np.ndarray, convention: str = "controlnet") -> np.ndarray:
    """(..., 3) unit normals (glTF camera frame) -> float32 RGB in [0, 1] in the given convention; zero normals
    (no normal) become black."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {sorted(CONVENTIONS)}, got {convention!r}")
    n = np.asarray(normals, dtype=np.float32)
    if n.shape[-1] != 3:
        raise ValueError(f"normals must end in a 3-vector axis, got shape {n.shape}")
    rgb = (n * np.asarray(CONVENTIONS[convention], np.float32) + 1.0) * 0.5
    rgb[~np.any(n != 0, axis=-1)] = 0.0
    return np.clip(rgb, 0.0, 1.0)
