"""Fitting images and depth maps to a generation size, and back (letterbox, stretch, resize)."""

from __future__ import annotations

import numpy as np
import torch


def letterbox_box(h: int, w: int, target_h: int, target_w: int) -> tuple[int, int, int, int]:
    """(top, left, new_h, new_w): the input scaled to fit target keeping its aspect, centred (reference app)."""
    s = min(target_h / h, target_w / w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    return (target_h - nh) // 2, (target_w - nw) // 2, nh, nw


def resize_image(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """uint8 (H, W, 3) resize: box filter when shrinking (the reference's INTER_AREA), bicubic when growing."""
    from PIL import Image

    if img.shape[:2] == (h, w):
        return img
    shrink = h <= img.shape[0] and w <= img.shape[1]
    f = Image.Resampling.BOX if shrink else Image.Resampling.BICUBIC
    return np.asarray(Image.fromarray(img).resize((w, h), f))


def resize_depth(depth: np.ndarray, h: int, w: int) -> np.ndarray:
    """(H, W) float resize: bilinear where all neighbours are valid depth, nearest elsewhere (no inf smearing)."""
    if depth.shape == (h, w):
        return depth.astype(np.float32)
    t = torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))[None, None]
    valid = (torch.isfinite(t) & (t > 0)).float()
    lin = torch.nn.functional.interpolate(torch.where(valid > 0, t, 0.0), (h, w), mode="bilinear", align_corners=False)
    wgt = torch.nn.functional.interpolate(valid, (h, w), mode="bilinear", align_corners=False)
    near = torch.nn.functional.interpolate(t, (h, w), mode="nearest")
    out = torch.where(wgt > 0.999, lin / wgt.clamp(min=1e-6), near)
    return out[0, 0].numpy()


def size_for(shape: tuple[int, ...], long_side: int) -> tuple[int, int]:
    """(H, W), multiples of 16, with the input's aspect and the long side = long_side."""
    h, w = shape[:2]
    s = long_side / max(h, w)
    return max(16, int(round(h * s / 16)) * 16), max(16, int(round(w * s / 16)) * 16)


def nearest_depth(depth: np.ndarray, h: int, w: int) -> np.ndarray:
    """Nearest-neighbour resize (the reference's INTER_NEAREST for depth)."""
    if depth.ndim != 2:
        raise ValueError(f"depth must be (H, W), got {depth.shape}")
    if depth.shape == (h, w):
        return depth.astype(np.float32)
    rows = np.minimum((np.arange(h) + 0.5) * depth.shape[0] / h, depth.shape[0] - 1).astype(int)
    cols = np.minimum((np.arange(w) + 0.5) * depth.shape[1] / w, depth.shape[1] - 1).astype(int)
    return depth[rows][:, cols].astype(np.float32)


def fit_image(image: np.ndarray, h: int, w: int, mode: str = "letterbox"):
    """uint8 (H0, W0, 3) -> ((h, w, 3) canvas, content box or None). letterbox: aspect kept, black bars
    (the reference app); stretch: resized to (h, w) as the reference CLI does."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be uint8 (H, W, 3) RGB, got {image.dtype} {image.shape}")
    if mode == "stretch":
        return resize_image(image, h, w), None
    if mode != "letterbox":
        raise ValueError(f"fit must be 'letterbox' or 'stretch', got {mode!r}")
    top, left, nh, nw = letterbox_box(*image.shape[:2], h, w)
    canvas = np.zeros((h, w, 3), np.uint8)
    canvas[top : top + nh, left : left + nw] = resize_image(image, nh, nw)
    return canvas, (top, left, nh, nw)


def unfit_depth(depth: np.ndarray, box, size: tuple[int, int]) -> np.ndarray:
    """Crop a fitted depth map to its content box (no bars) and resize it to the original (H0, W0)."""
    if box is not None:
        top, left, nh, nw = box
        depth = depth[top : top + nh, left : left + nw]
    return resize_depth(depth, *size)
