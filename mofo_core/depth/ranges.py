"""One normalisation for a whole batch of depth maps, so the frames of an image sequence do not flicker.

The depth pictures (`depth_io.depth_to_disparity_vis`: disparity, 5th-95th percentile, near = bright) and the
16-bit PNGs (`depth_io.save_depth_png16`: largest depth = 65535) are normalised per image by default: each frame
gets its own range, so the same wall can change brightness from frame to frame. Here the range can instead be:

* "image": per image (today's default; the reference's preview);
* "batch": one range over the valid pixels of every map in the batch (the percentiles of all their disparities,
  or the batch's largest depth);
* "fixed": a range given in depth units (near / far for pictures, a maximum depth for 16-bit PNGs), e.g. 0.5 and
  10 for metric depth in metres; the same for every run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from .maps import _PERCENTILES, depth_to_disparity_vis, magma

MODES = ("image", "batch", "fixed")


def _stack(depths) -> list[np.ndarray]:
    maps = [np.asarray(d) for d in depths]
    if not maps or any(m.ndim != 2 for m in maps):
        raise ValueError("depths must be a non-empty (B, H, W) array or a sequence of (H, W) maps")
    return maps


def _valid(d: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.isfinite(d) & (d > 0)


def _disparity(d: np.ndarray, valid: np.ndarray) -> np.ndarray:
    disp = np.zeros(d.shape, np.float32)
    with np.errstate(over="ignore", divide="ignore"):
        disp[valid] = 1.0 / d[valid].astype(np.float32)
    return np.minimum(disp, np.finfo(np.float32).max)  # 1 / subnormal overflows: nearest, not inf


def _check_fixed(near: float | None, far: float | None) -> tuple[float, float]:
    if near is None or far is None or not (math.isfinite(near) and math.isfinite(far) and 0 < near < far):
        raise ValueError(f"the fixed range needs 0 < near < far (depth units, e.g. 0.5 and 10 m), got {near}, {far}")
    return float(near), float(far)


def disparity_vis_batch(depths, mode: str = "image", *, near: float | None = None,
                        far: float | None = None) -> np.ndarray:
    """Disparity pictures in [0, 1] (near = 1) of a batch, normalised per image, over the batch, or to a range.

    Args:
        depths: (B, H, W) depth, or a sequence of (H, W) maps of any sizes.
        mode: "image", "batch" or "fixed" (see the module docstring).
        near, far: the fixed range in depth units (mode "fixed"): depth `near` -> 1, `far` -> 0, clipped.

    Returns:
        (B, H, W) float64 in [0, 1] (a list of (H, W) arrays if the maps differ in size); invalid pixels 0.

    Raises:
        ValueError: an unknown mode, a bad fixed range, or no valid pixel in the whole batch (mode "batch").
    """
    maps = _stack(depths)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "image":
        out = [depth_to_disparity_vis(d) for d in maps]
    else:
        valids = [_valid(d) for d in maps]
        disps = [_disparity(d, v) for d, v in zip(maps, valids)]
        if mode == "batch":
            pool = np.concatenate([dp[v] for dp, v in zip(disps, valids)])
            if not pool.size:
                raise ValueError("no depth map of the batch has a finite positive pixel; nothing to normalise")
            lo, hi = np.percentile(pool, _PERCENTILES).astype(np.float64)
        else:
            n, f = _check_fixed(near, far)
            lo, hi = 1.0 / f, 1.0 / n
        out = []
        for dp, v in zip(disps, valids):
            vis = np.clip((dp - lo) / max(hi - lo, 1e-8), 0, 1).astype(np.float64)
            vis[~v] = 0.0
            out.append(vis)
    return np.stack(out) if len({o.shape for o in out}) == 1 else out


def png16_max_depths(depths: Sequence[np.ndarray] | np.ndarray, mode: str = "image",
                     max_depth: float | None = None) -> list[float | None]:
    """The `max_depth` to give `save_depth_png16` for each map: None (its own, mode "image"), the batch's largest
    valid depth ("batch"), or `max_depth` ("fixed")."""
    maps = _stack(depths)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "image":
        return [None] * len(maps)
    if mode == "fixed":
        if max_depth is None or not (math.isfinite(max_depth) and max_depth > 0):
            raise ValueError(f"the fixed 16-bit range needs a max_depth > 0 (depth units), got {max_depth}")
        return [float(max_depth)] * len(maps)
    tops = [float(d[_valid(d)].max()) for d in maps if _valid(d).any()]
    if not tops:
        raise ValueError("no depth map of the batch has a finite positive pixel; nothing to store")
    return [max(tops)] * len(maps)


RANGE_MODES = {"per image": "image", "batch": "batch", "fixed range": "fixed"}  # widget label -> ranges mode


def depth_to_image(depth: torch.Tensor, colormap: str = "grey", normalize: str = "per image", *, near=None,
                   far=None) -> torch.Tensor:
    """(B, H, W) relative depth -> IMAGE (B, H, W, 3) float32 in [0, 1]: ControlNet convention, near = white,
    robust min-max of the disparity per image or over the batch, or a fixed near / far range (`ranges`); invalid
    pixels black. colormap "grey" or "magma"."""
    if normalize not in RANGE_MODES:
        raise ValueError(f"normalize must be one of {list(RANGE_MODES)}, got {normalize!r}")
    if colormap not in ("grey", "magma"):
        raise ValueError(f"colormap must be grey or magma, got {colormap!r}")
    out = []
    for vis in disparity_vis_batch(depth.float().cpu().numpy(), RANGE_MODES[normalize], near=near, far=far):
        rgb = magma(vis) / 255.0 if colormap == "magma" else np.repeat(vis[..., None], 3, axis=-1)  # (H, W, 3)
        out.append(torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)))
    return torch.stack(out)
