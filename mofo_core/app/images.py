"""Reading RGB images for image -> depth."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def load_image(path: str | os.PathLike) -> np.ndarray:
    """uint8 (H, W, 3) RGB from any format Pillow reads; alpha is dropped, grey is expanded."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image {p} does not exist")
    try:
        with Image.open(p) as im:
            im.load()
            if im.mode not in ("RGB", "RGBA", "L", "LA", "P", "I;16", "I", "F"):
                raise ValueError(f"{p.name}: unsupported image mode {im.mode}")
            if im.mode in ("I;16", "I", "F"):
                raise ValueError(f"{p.name} is a single-channel high-bit image (a depth map?); "
                                 "image -> depth needs an 8-bit RGB image (use d2i for depth maps)")
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except UnidentifiedImageError as e:
        raise ValueError(f"{p} is not a readable image ({e}); use PNG, JPEG, WebP or TIFF") from e
    except Image.DecompressionBombError as e:
        raise ValueError(f"{p} is too large to open safely ({e}); downscale it (the model works at ~512 px)") from e
    except OSError as e:  # truncated or corrupt data
        raise ValueError(f"{p} could not be decoded ({e}); the file is truncated or damaged: save it again") from e
