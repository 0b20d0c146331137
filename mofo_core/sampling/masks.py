"""Region masks for editing: pixel masks at image size -> token masks on the 16 x 16 patch grid.

A mask is a float map in [0, 1]: 1 = regenerate (the modality follows its sigma list there), 0 = keep (held to
the given latent). The RGB latent (FLUX.2 VAE, 16x downscale) and the depth tokens (16 x 16 pixel patches) share
one grid, so one pixel mask gives the token mask of either modality: the mean of its 16 x 16 pixels.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import LATENT_COMPRESSION

log = logging.getLogger(__name__)


def check_mask(mask: Tensor, name: str) -> Tensor:
    """(H, W) or (B, H, W) finite values in [0, 1] (bool allowed) -> fp32 (B, H, W)."""
    mask = torch.as_tensor(mask)
    if mask.ndim == 2:
        mask = mask[None]
    if mask.ndim != 3:
        raise ValueError(f"{name} must be (H, W) or (B, H, W), got {tuple(mask.shape)}")
    mask = mask.float()
    if not bool(torch.isfinite(mask).all()) or bool((mask < 0).any()) or bool((mask > 1).any()):
        raise ValueError(f"{name} values must be in [0, 1] (1 = regenerate, 0 = keep)")
    return mask


def resize_mask(mask: Tensor, height: int, width: int) -> Tensor:
    """(B, H, W) -> (B, height, width), bilinear (area when shrinking), values stay in [0, 1]."""
    if tuple(mask.shape[1:]) == (height, width):
        return mask
    shrink = height <= mask.shape[1] and width <= mask.shape[2]
    mode = "area" if shrink else "bilinear"
    kw = {} if shrink else {"align_corners": False}
    return F.interpolate(mask[:, None], (height, width), mode=mode, **kw)[:, 0].clamp(0.0, 1.0)


def feather_mask(mask: Tensor, radius: int) -> Tensor:
    """Soft falloff of `radius` pixels OUTSIDE the mask (the masked area stays >= its value): max(mask, blur)."""
    if radius <= 0:
        return mask
    # two box blurs of width ~radius approximate a smooth (triangular) falloff over `radius` pixels
    k = max(1, radius // 2) * 2 + 1
    x = mask[:, None]
    for _ in range(2):
        x = F.avg_pool2d(F.pad(x, (k // 2,) * 4, mode="replicate"), k, stride=1)
    return torch.maximum(mask, x[:, 0].clamp(0.0, 1.0))


def token_mask(mask: Tensor, height: int, width: int, *, feather: int = 0, name: str = "mask") -> Tensor:
    """Pixel mask (1 or B, 16 height, 16 width) or grid mask (1 or B, height, width) -> (1 or B, height * width, 1).

    height, width: the latent grid. feather: pixels of soft falloff outside the mask (pixel masks only).
    """
    mask = check_mask(mask, name)
    px = (height * LATENT_COMPRESSION, width * LATENT_COMPRESSION)
    if tuple(mask.shape[1:]) == px:
        mask = feather_mask(mask, feather)
        grid = F.avg_pool2d(mask[:, None], LATENT_COMPRESSION)[:, 0]  # (B, h, w): masked share of each patch
    elif tuple(mask.shape[1:]) == (height, width):
        if feather:
            raise ValueError(f"{name} is at the latent grid size ({height}x{width}); feather needs a pixel mask")
        grid = mask
    else:
        raise ValueError(
            f"{name} is {mask.shape[1]}x{mask.shape[2]} but the image is {px[0]}x{px[1]} pixels "
            f"(latent grid {height}x{width}); resize the mask to the image size"
        )
    return grid.reshape(grid.shape[0], height * width, 1).clamp(0.0, 1.0)


def fit_mask(mask: Tensor, height: int, width: int, name: str = "mask") -> tuple[Tensor, str | None]:
    """(B, H, W) mask resized to (height, width) pixels; the second value is a warning when it had to be."""
    mask = check_mask(mask, name)
    if tuple(mask.shape[1:]) == (height, width):
        return mask, None
    msg = (f"{name} is {mask.shape[2]}x{mask.shape[1]} but the image is {width}x{height}: resized to fit "
           "(stretched; give a mask of the image's size to place it exactly)")
    log.warning(msg)
    return resize_mask(mask, height, width), msg


def load_mask(path: str | os.PathLike) -> Tensor:
    """(H, W) float mask from an image file: white = regenerate. An image with transparency uses its alpha
    instead, transparent = regenerate (as ComfyUI's LoadImage turns alpha into MASK)."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"mask {p} does not exist")
    try:
        with Image.open(p) as im:
            im.load()
            if "A" in im.getbands() or (im.mode == "P" and "transparency" in im.info):
                alpha = np.asarray(im.convert("RGBA"), dtype=np.float32)[..., 3] / 255.0
                if alpha.min() < 1.0:
                    return torch.from_numpy(1.0 - alpha)
            if im.mode in ("I;16", "I"):  # 16-bit grey
                return torch.from_numpy(np.asarray(im, dtype=np.float32) / 65535.0).clamp(0.0, 1.0)
            return torch.from_numpy(np.asarray(im.convert("L"), dtype=np.float32) / 255.0)
    except UnidentifiedImageError as e:
        raise ValueError(f"{p} is not a readable image ({e}); a mask is a PNG: white = regenerate") from e
