"""Depth maps in memory: what counts as one, which pixels carry depth, and the pictures made from them.

The disparity preview is the reference's (`Duisterhof/modality-forcing: scripts/_common.py`: 1 / depth,
normalised between the 5th and 95th percentiles, near = bright); magma is matplotlib's colormap;
`image_to_depth` converts from the IMAGE tensors of ComfyUI's depth and ControlNet nodes (B, H, W, 3) in
[0, 1], near = white.
"""

from __future__ import annotations

import numpy as np
import torch

_PERCENTILES = (5.0, 95.0)  # disparity normalisation range of the reference preview

# matplotlib's "magma" colormap (256 entries; data by Nathaniel J. Smith, Stefan van der Walt and Eric
# Firing, CC0, in matplotlib's `lib/matplotlib/_cm_listed.py` `_magma_data`), sampled once from
# matplotlib 3.11.2 as uint8(255 * rgb), i.e. truncated like the reference's `(cm.magma(x)[..., :3] * 255)
# .astype(np.uint8)`. 256 RGB triples, 16 per line, as hex.
_MAGMA_HEX = (
    "00000300000400000601000701010901010b02020d02020f03031104031304041505041706051907051b08061d09071f"
    "0a07220b08240c09260d0a280e0a2a0f0b2c100c2f110c31120d33140d35150e38160e3a170f3c180f3f1a10411b1044"
    "1c10461e10491f114b20114d2211502311522511552611572811592a115c2b115e2d10602f1062301065321067341068"
    "350f6a370f6c390f6e3b0f6f3c0f713e0f72400f73420f74430f75450f76470f774810784a10794b10794d117a4f117b"
    "50127b52127c53137c55137d57147d58157e5a157e5b167e5d177e5e177f60187f61187f63197f651a80661a80681b80"
    "691c806b1c806c1d806e1e816f1e81711f81731f817420817621817721817922817a22817c23817e24817f2481812581"
    "8225818426818526818727818928818a28818c29808d29808f2a80912a80922b80942b80952c80972c7f992d7f9a2d7f"
    "9c2e7f9e2e7e9f2f7ea12f7ea3307ea4307da6317da7317da9327cab337cac337bae347bb0347bb1357ab3357ab53679"
    "b63679b83778b93778bb3877bd3977be3976c03a75c23a75c33b74c53c74c63c73c83d72ca3e72cb3e71cd3f70ce4070"
    "d0416fd1426ed3426dd4436dd6446cd7456bd9466ada4769dc4869dd4968de4a67e04b66e14c66e24d65e44e64e55063"
    "e65162e75262e85461ea5560eb5660ec585fed595fee5b5eee5d5def5e5df0605df1615cf2635cf3655cf3675bf4685b"
    "f56a5bf56c5bf66e5bf6705bf7715bf7735cf8755cf8775cf9795cf97b5df97d5dfa7f5efa805efa825ffb8460fb8660"
    "fb8861fb8a62fc8c63fc8e63fc9064fc9265fc9366fd9567fd9768fd9969fd9b6afd9d6bfd9f6cfda16efda26ffda470"
    "fea671fea873feaa74feac75feae76feaf78feb179feb37bfeb57cfeb77dfeb97ffebb80febc82febe83fec085fec286"
    "fec488fec689fec78bfec98dfecb8efdcd90fdcf92fdd193fdd295fdd497fdd698fdd89afdda9cfddc9dfddd9ffddfa1"
    "fde1a3fce3a5fce5a6fce6a8fce8aafceaacfcecaefceeb0fcf0b1fcf1b3fcf3b5fcf5b7fbf7b9fbf9bbfbfabdfbfcbf"
)


def check_depth_map(depth) -> np.ndarray:
    """The array of a 2-D real-valued (H, W) map, unconverted; a ValueError naming the fix otherwise."""
    d = np.asarray(depth)
    if d.ndim != 2:
        raise ValueError(
            f"depth must be a 2-D (H, W) map, got shape {d.shape}; drop batch/channel axes, e.g. depth[0] or "
            "depth.squeeze()"
        )
    if d.dtype.kind not in "fiu":
        raise ValueError(f"depth must hold real numbers, got dtype {d.dtype}")
    return d


def as_depth(depth: np.ndarray) -> np.ndarray:
    """Check for a 2-D real-valued map; return it as float32."""
    return check_depth_map(depth).astype(np.float32, copy=False)


def valid_pixels(d: np.ndarray) -> np.ndarray:
    """Finite and positive: the pixels that carry depth."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(d) & (d > 0)


def depth_to_disparity_vis(depth: np.ndarray) -> np.ndarray:
    """Disparity preview in [0, 1] (near = 1), robustly normalised as in the reference.

    disp = 1 / depth on finite positive pixels; (disp - p5) / max(p95 - p5, 1e-8) clipped to [0, 1], where
    p5 and p95 are percentiles of the valid disparities; invalid pixels are 0. Same dtypes as the reference:
    disparity in float32, the normalisation against float64 percentiles.

    Args:
        depth: (H, W) depth, any positive unit.

    Returns:
        (H, W) float64 in [0, 1]; all zeros when no pixel is valid (the caller decides what to do).
    """
    d = as_depth(depth)
    valid = valid_pixels(d)
    disp = np.zeros_like(d)  # float32
    if not valid.any():
        return disp.astype(np.float64)
    with np.errstate(over="ignore", divide="ignore"):
        disp[valid] = 1.0 / d[valid]
    np.minimum(disp, np.finfo(np.float32).max, out=disp)  # 1 / subnormal overflows float32: nearest, not NaN
    lo, hi = np.percentile(disp[valid], _PERCENTILES).astype(np.float64)
    vis = np.clip((disp - lo) / max(hi - lo, 1e-8), 0, 1)
    vis[~valid] = 0.0
    return vis.astype(np.float64, copy=False)


def magma(x: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to matplotlib's magma colours.

    Same lookup as matplotlib's 256-entry ListedColormap: index floor(256 x), with 1.0 mapped to the last
    entry; values outside [0, 1] take the end colours.

    Args:
        x: array of any shape (typically (H, W)), values in [0, 1].

    Returns:
        uint8 RGB of shape x.shape + (3,).

    Raises:
        ValueError: x holds NaN or is not real-valued.
    """
    v = np.asarray(x)
    if v.dtype.kind not in "fiu":
        raise ValueError(f"magma needs real values in [0, 1], got dtype {v.dtype}")
    if v.dtype.kind == "f" and np.isnan(v).any():
        raise ValueError("magma input contains NaN; replace it first, e.g. np.nan_to_num(x, nan=0.0)")
    table = np.frombuffer(bytes.fromhex("".join(_MAGMA_HEX)), dtype=np.uint8).reshape(256, 3)
    with np.errstate(invalid="ignore"):  # inf * 256 is fine; clipped below
        idx = np.clip(np.floor(v.astype(np.float64) * 256), 0, 255).astype(np.intp)
    return table[idx]


def image_to_depth(image: torch.Tensor, near_is_bright: bool) -> torch.Tensor:
    """IMAGE (B, H, W, C) from any depth node -> (B, H, W) relative depth (> 0; 0 where undefined)."""
    g = image[..., :3].float().mean(-1)  # (B, H, W)
    if not near_is_bright:
        return g
    # disparity-like: depth = 1 / disparity; a zero disparity (infinitely far or empty) is left invalid
    return torch.where(g > 0, 1.0 / g.clamp(min=1e-6), torch.zeros_like(g))
