"""Depth map <-> depth tokens: unit-mean, mip-NeRF 360 contract, 16x16 patchify to 256 channels.

Reference: `Duisterhof/modality-forcing: flux_rgbd/depth/preprocess.py` with
`DepthConfig(("unit_mean", "contract"), patch_size=16, depth_value_scale=1.0)`. Depth is relative
(positive = farther); decoding recovers it up to the unit-mean scale. The default path is the
reference's exactly. `robust=True` opts into two fixes: unit_mean over finite positive pixels only
(zeros / NaN / inf no longer corrupt the whole map) and a clamped inverse contract (no inf or
negative depth when the model predicts c >= 2).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from einops import rearrange
from torch import Tensor

from ..config import DEPTH_PATCH

log = logging.getLogger(__name__)

# Largest contracted value decoded when robust: c = 2 - 1/d, so 1.999 decodes to depth 1000 x mean.
_C_MAX = 2.0 - 1e-3


def contract(d: Tensor) -> Tensor:
    """d if |d| <= 1 else sign(d) * (2 - 1/|d|), elementwise (the 1-D mip-NeRF 360 contract)."""
    mag = d.abs()
    safe = mag.clamp(min=1e-12)
    return d * torch.where(mag <= 1.0, torch.ones_like(mag), (2.0 - 1.0 / safe) / safe)


def inverse_contract(c: Tensor, *, robust: bool = False) -> Tensor:
    """c / (2 sqrt(m) - m) with m = max(c^2, 1); robust clamps c to [0, 2 - 1e-3] first."""
    if robust:
        c = c.clamp(0.0, _C_MAX)
    m = torch.clamp(c.square(), min=1.0)
    return c / (2.0 * m.sqrt() - m)


def _grid(n_tokens: int, height: int, width: int) -> tuple[int, int]:
    """Latent grid (h, w) from either the grid itself or the pixel size (the two cannot be confused)."""
    if height * width == n_tokens:
        return height, width
    if height % DEPTH_PATCH == 0 and width % DEPTH_PATCH == 0:
        h, w = height // DEPTH_PATCH, width // DEPTH_PATCH
        if h * w == n_tokens:
            return h, w
    raise ValueError(
        f"{n_tokens} depth tokens do not fit a {height}x{width} grid or a {height}x{width} image "
        f"({DEPTH_PATCH}x{DEPTH_PATCH} pixels per token)"
    )


_MAX_DEPTH_VALUE = 1e30  # beyond this, float32 sums for the unit mean overflow on large maps


def check_depth_map(depth, *, robust: bool = False) -> None:
    """What `encode_depth` would refuse (and values it would silently turn into garbage), checked in float64 on
    an (H, W) or (B, H, W) array: cheap, so callers run it before any weights load.

    Raises:
        ValueError: an empty map; no finite positive pixel; NaN / inf without robust; a mean that is not positive
            (mostly negative depth) without robust; values so large that the float32 unit mean overflows.
    """
    d = np.asarray(depth.cpu() if isinstance(depth, Tensor) else depth, dtype=np.float64)
    if d.size == 0:
        raise ValueError(f"the depth map is empty (shape {d.shape}); it needs at least one pixel")
    finite = np.isfinite(d)
    with np.errstate(invalid="ignore"):
        valid = finite & (d > 0)
    per_map = valid.reshape(-1, *d.shape[-2:]).any(axis=(1, 2)) if d.ndim >= 2 else valid.reshape(1, -1).any(1)
    if not per_map.all():
        which = "" if per_map.size == 1 else f" (batch element(s) {np.flatnonzero(~per_map).tolist()})"
        raise ValueError(f"the depth map{which} has no finite positive pixel (all zero, negative, inf or NaN): "
                         "nothing to condition on; check the file (a disparity map? then pass disparity / --disparity)")
    if not robust and not finite.all():
        raise ValueError(f"the depth map holds NaN or inf at {int((~finite).sum())} pixels; use robust depth "
                         "(--robust-depth, robust_depth=True), which treats them as no depth, or clean the map")
    if float(np.abs(d[finite]).max()) > _MAX_DEPTH_VALUE:
        raise ValueError(f"the depth map holds values up to {float(np.abs(d[finite]).max()):.3g}, beyond "
                         f"{_MAX_DEPTH_VALUE:.0e}; rescale it (depth is relative, any unit works)")
    if not robust and not float(d.mean()) > 0:
        raise ValueError("the depth map's mean is not positive (mostly negative depth), so unit-mean normalisation "
                         "would flip it; use robust depth (--robust-depth), which ignores pixels <= 0, or fix the map")


def encode_depth(depth: Tensor, *, robust: bool = False) -> Tensor:
    """Depth (B, H, W), any positive scale -> tokens (B, H/16 * W/16, 256) in fp32.

    As in the reference, the unit mean is taken over the whole tensor (every pixel of every batch
    element). robust=True normalises each map by the mean of its own finite positive pixels and
    fills invalid pixels with 0 (the contracted value of "no depth").
    """
    if depth.ndim != 3:
        raise ValueError(f"depth must be (B, H, W), got shape {tuple(depth.shape)}")
    _, height, width = depth.shape
    if height % DEPTH_PATCH or width % DEPTH_PATCH:
        raise ValueError(
            f"depth size {height}x{width} is not a multiple of {DEPTH_PATCH}; resize or crop it first"
        )
    d = depth.float()
    valid = torch.isfinite(d) & (d > 0)
    counts = valid.flatten(1).sum(1)  # (B,)
    if bool((counts == 0).any()):
        bad = [i for i, n in enumerate(counts.tolist()) if n == 0]
        raise ValueError(f"depth map(s) {bad} have no finite positive pixel; nothing to encode")
    if not robust:  # the reference's unit mean over the whole tensor needs finite values with a positive mean
        if not bool(torch.isfinite(d).all()):
            raise ValueError(
                "depth contains NaN or inf; clean it first or use robust encoding (robust=True), "
                "which ignores invalid pixels"
            )
        if not bool(d.mean() > 0):  # negative pixels outweigh the rest: the unit mean would flip or blow up the map
            raise ValueError(f"depth has a mean of {float(d.mean()):.4g} (negative values): depth must be positive; "
                             "use robust encoding (robust=True), which ignores pixels <= 0, or fix the map")
    invalid = int(valid.numel() - counts.sum())
    if invalid:
        log.warning("%d of %d depth pixels (%.1f%%) are <= 0, NaN or inf%s", invalid, valid.numel(),
                    100.0 * invalid / valid.numel(),
                    ": encoded as 'no depth'" if robust else " (kept as they are and in the unit mean: use robust "
                    "to encode them as 'no depth' and normalise over valid pixels only)")
    if robust:
        mean = torch.where(valid, d, torch.zeros_like(d)).flatten(1).sum(1) / counts  # (B,)
        d = torch.where(valid, d / mean.clamp(min=1e-12)[:, None, None], torch.zeros_like(d))
    else:
        d = d / d.mean().clamp(min=1e-12)
    c = contract(d)
    return rearrange(c, "b (h p1) (w p2) -> b (h w) (p1 p2)", p1=DEPTH_PATCH, p2=DEPTH_PATCH)


def decode_depth(tokens: Tensor, height: int, width: int, *, robust: bool = False) -> Tensor:
    """Tokens (B, N, 256) -> relative depth (B, H, W) fp32.

    height, width: the latent grid (N = height * width) or the output size in pixels. Without robust
    the output is the reference's and may hold inf (c = 2) or negative values (c > 2 or c < 0).
    """
    if tokens.ndim != 3 or tokens.shape[-1] != DEPTH_PATCH * DEPTH_PATCH:
        raise ValueError(f"depth tokens must be (B, N, {DEPTH_PATCH ** 2}), got {tuple(tokens.shape)}")
    h, w = _grid(tokens.shape[1], height, width)
    c = rearrange(tokens.float(), "b (h w) (p1 p2) -> b (h p1) (w p2)", h=h, w=w, p1=DEPTH_PATCH)
    return inverse_contract(c, robust=robust)
