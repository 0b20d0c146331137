"""The pinhole camera every 3D tool here assumes: centred, square pixels, a horizontal field of view (65 degrees by
default, the reference's guess: the model knows none), or explicit intrinsics (fx, fy, cx, cy) in pixels."""

from __future__ import annotations

import math

from .config import DEFAULT_FOV_DEG

Intrinsics = tuple[float, float, float, float]  # (fx, fy, cx, cy) in pixels


def fov_intrinsics(width: int, height: int, fov_deg: float = DEFAULT_FOV_DEG) -> Intrinsics:
    """Pinhole intrinsics of a centred camera with a horizontal field of view.

    Args:
        width: image width W [px].
        height: image height H [px].
        fov_deg: horizontal field of view [deg], in (0, 180).

    Returns:
        (fx, fy, cx, cy) [px] with fx = fy = W / (2 tan(fov / 2)) and the principal point (W/2, H/2).

    Raises:
        ValueError: a non-positive size or a field of view outside (0, 180).
    """
    if int(width) != width or int(height) != height or width < 1 or height < 1:
        raise ValueError(f"width and height must be positive pixel counts, got {width}x{height}")
    fov = float(fov_deg)
    if not (0.0 < fov < 180.0):
        raise ValueError(f"fov_deg must be in (0, 180) degrees (horizontal field of view), got {fov_deg}")
    t = math.tan(math.radians(fov) / 2.0)
    if not (t > 0 and math.isfinite(width / (2.0 * t))):
        raise ValueError(f"fov_deg {fov_deg} is too small: the focal length overflows; use a few degrees or more")
    f = width / (2.0 * t)
    return f, f, width / 2.0, height / 2.0


def resolve_intrinsics(width: int, height: int, fov_deg: float, intrinsics: Intrinsics | None) -> Intrinsics:
    """`intrinsics` checked, or the centred camera of `fov_deg` when it is None."""
    if intrinsics is None:
        return fov_intrinsics(width, height, fov_deg)
    if len(intrinsics) != 4:
        raise ValueError(f"intrinsics must be (fx, fy, cx, cy) in pixels, got {intrinsics!r}")
    fx, fy, cx, cy = (float(v) for v in intrinsics)
    if not all(math.isfinite(v) for v in (fx, fy, cx, cy)) or fx <= 0 or fy <= 0:
        raise ValueError(f"intrinsics need finite values and positive focal lengths, got {intrinsics!r}")
    return fx, fy, cx, cy
