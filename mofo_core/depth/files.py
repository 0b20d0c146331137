"""Depth maps on disk: 16-bit PNG, float32 .npy and EXR writers, a magma disparity preview, and a loader.

The preview follows the reference's `depth_magma.png` (`Duisterhof/modality-forcing: flux_rgbd/runner.py`,
`FluxRGBDRunner.save`; reference-spec.md §8): disparity 1/depth on finite positive pixels, normalised
between its 5th and 95th percentiles, clipped to [0, 1], invalid pixels 0, then matplotlib's magma
(near = bright). The loader accepts what the reference's `scripts/_common.py` `read_depth_map` accepts
(.npy, 16-bit PNG/TIFF read as-is) plus EXR, but refuses input it only warned about (8-bit, colour).

Every writer goes through `export.atomic_path` (temporary file, then rename). Pillow and OpenEXR are
imported inside the functions that use them.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import MissingDependencyError
from .maps import as_depth, depth_to_disparity_vis, magma, valid_pixels

log = logging.getLogger(__name__)

PNG_SCALE_KEY = "mofo_depth_scale"  # PNG tEXt key: depth = png_value / scale
PNG16_MAX = 65535
_EXR_CHANNELS = ("Z", "Y", "R")  # channel names tried, in order, when an EXR holds several
_EIGHT_BIT_MSG = (
    "this is an 8-bit image: depth needs 16-bit PNG/TIFF, EXR or .npy; for an 8-bit disparity map use disparity=True"
)

def _openexr():
    """Import the OpenEXR bindings (>= 3.2, numpy API) or say how to install them."""
    try:
        import OpenEXR
    except ImportError as e:
        raise MissingDependencyError(
            "EXR depth files need the OpenEXR python bindings (>= 3.2): pip install OpenEXR"
        ) from e
    if not hasattr(OpenEXR, "File"):
        raise MissingDependencyError(
            "the installed OpenEXR bindings are older than 3.2 (no OpenEXR.File); pip install -U OpenEXR"
        )
    return OpenEXR


def save_magma_png(path: str | os.PathLike, depth: np.ndarray) -> Path:
    """Write the magma disparity preview of a depth map as an 8-bit RGB PNG.

    Unlike the reference, which skips the file (but still returns its path) when no pixel is valid,
    this always writes it: an all-invalid map gives a uniform magma(0) image and a logged warning.

    Args:
        path: output path; its folder must exist. Always PNG, whatever the suffix.
        depth: (H, W) depth, any positive unit.

    Returns:
        `path` as a `Path`.
    """
    from PIL import Image

    d = as_depth(depth)
    if not valid_pixels(d).any():
        log.warning("depth has no finite positive pixel; %s will be a blank preview", path)
    vis = depth_to_disparity_vis(d)
    rgb = magma(vis)  # (H, W, 3) uint8
    target = Path(path)
    with atomic_path(target) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")
    return target


# ---------------------------------------------------------------------------------------------------------
# Writers
# ---------------------------------------------------------------------------------------------------------


def save_depth_png16(path: str | os.PathLike, depth: np.ndarray, max_depth: float | None = None) -> dict:
    """Write depth as a 16-bit grayscale PNG, linearly scaled so the largest valid depth (or `max_depth`) is 65535.

    png = round(depth * scale) with scale = 65535 / max valid depth; invalid pixels (non-finite or <= 0)
    are 0, and so are depths below 0.5 / scale, which round to 0. The scale is also stored in the PNG's
    tEXt chunk under "mofo_depth_scale", which `load_depth` uses to recover depth = png / scale.

    Args:
        path: output path; its folder must exist. Always PNG, whatever the suffix.
        depth: (H, W) depth, any positive unit.
        max_depth: the depth stored as 65535 (default: this map's largest); one value for every frame of a
            sequence (`depth_range.png16_max_depths`) keeps their PNG values comparable. Deeper pixels clip.

    Returns:
        {"path": Path, "scale": float (png units per depth unit), "max_depth": float (depth units)}.

    Raises:
        ValueError: depth is not 2-D or has no finite positive pixel, or max_depth is not a positive number.
    """
    from PIL import Image, PngImagePlugin

    d = as_depth(depth)
    valid = valid_pixels(d)
    if not valid.any():
        raise ValueError("depth has no finite positive pixel; nothing to store in a 16-bit PNG")
    if max_depth is not None and not (np.isfinite(max_depth) and max_depth > 0):
        raise ValueError(f"max_depth must be a finite depth > 0 (or None: this map's largest), got {max_depth}")
    max_depth = float(d[valid].max()) if max_depth is None else float(max_depth)
    scale = PNG16_MAX / max_depth
    png = np.zeros(d.shape, dtype=np.uint16)
    png[valid] = np.clip(np.round(d[valid].astype(np.float64) * scale), 0, PNG16_MAX).astype(np.uint16)
    info = PngImagePlugin.PngInfo()
    info.add_text(PNG_SCALE_KEY, repr(scale))
    target = Path(path)
    with atomic_path(target) as tmp:
        Image.fromarray(png).save(tmp, format="PNG", pnginfo=info)  # uint16 (H, W) -> mode "I;16"
    return {"path": target, "scale": scale, "max_depth": max_depth}


def save_depth_npy(path: str | os.PathLike, depth: np.ndarray) -> Path:
    """Write depth as a float32 (H, W) .npy, values unchanged (inf / negative kept, like the reference).

    Args:
        path: output path; its folder must exist. Written exactly there (no ".npy" is appended).
        depth: (H, W) depth.

    Returns:
        `path` as a `Path`.
    """
    d = as_depth(depth)
    target = Path(path)
    with atomic_path(target) as tmp, open(tmp, "xb") as f:
        np.save(f, d, allow_pickle=False)
    return target


def save_depth_exr(path: str | os.PathLike, depth: np.ndarray) -> Path:
    """Write depth as a single-channel ("Z") float32 EXR, ZIP-compressed, values unchanged.

    Args:
        path: output path; its folder must exist.
        depth: (H, W) depth.

    Returns:
        `path` as a `Path`.

    Raises:
        MissingDependencyError: the OpenEXR bindings are not installed (pip install OpenEXR).
    """
    exr = _openexr()
    d = np.ascontiguousarray(as_depth(depth))
    header = {"compression": exr.ZIP_COMPRESSION, "type": exr.scanlineimage}
    target = Path(path)
    with atomic_path(target) as tmp:
        exr.File(header, {"Z": d}).write(str(tmp))
    return target


# ---------------------------------------------------------------------------------------------------------
# Loader
# ---------------------------------------------------------------------------------------------------------


def _one_channel(a: np.ndarray, path: Path) -> np.ndarray:
    """(H, W) as is; (H, W, C) -> one channel if all C are equal, else an error."""
    if a.ndim == 2:
        return a
    if a.ndim == 3 and a.shape[2] >= 1:
        if all(np.array_equal(a[..., 0], a[..., c], equal_nan=True) for c in range(1, a.shape[2])):
            return a[..., 0]
        raise ValueError(
            f"{path} has {a.shape[2]} different channels (a colour image, maybe a colour-mapped depth "
            "preview); pass the raw single-channel depth (.npy, 16-bit PNG/TIFF or EXR)"
        )
    raise ValueError(f"{path} holds an array of shape {a.shape}; depth must be (H, W)")


def _npy_fits(path: Path) -> None:
    """The header's shape and dtype must fit the bytes the file holds: a hostile or truncated header that declares
    terabytes is refused before numpy allocates them (np.load would raise MemoryError)."""
    fmt = np.lib.format
    try:
        with open(path, "rb") as f:
            major, _ = fmt.read_magic(f)
            read = fmt.read_array_header_1_0 if major == 1 else fmt.read_array_header_2_0
            shape, _, dtype = read(f)
            have = path.stat().st_size - f.tell()
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(f"cannot read {path} as .npy ({e}); re-save it with np.save(path, depth.astype(np.float32))"
                         ) from e
    need = math.prod(shape) * dtype.itemsize
    if need > have:
        raise ValueError(f"{path} declares a {dtype} array of shape {shape} ({need:,} bytes) but holds {have:,}: "
                         "the file is truncated or damaged; save the depth map again")


def _read_npy(path: Path) -> np.ndarray:
    _npy_fits(path)
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(
            f"cannot read {path} as .npy ({e}); re-save it with np.save(path, depth.astype(np.float32))"
        ) from e
    if not isinstance(a, np.ndarray) or a.dtype.kind not in "fiu":
        raise ValueError(f"{path} must hold a real-valued (H, W) array, got {getattr(a, 'dtype', type(a))}")
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]  # (1, H, W)
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] <= 4)):
        # e.g. a (2, H, W) stack of maps (channels first): never read it as an (H, W, C) image with W "channels"
        raise ValueError(f"{path} holds an array of shape {a.shape}; depth must be (H, W) -- one map per .npy: save "
                         "each map on its own, e.g. np.save(path, depth[0])")
    if a.size == 0:
        raise ValueError(f"{path} holds an empty array of shape {a.shape}")
    return a  # (H, W) or (H, W, C <= 4): channels checked by _one_channel


def _png_ihdr(path: Path) -> tuple[int, int] | None:
    """(bit depth, colour type) from a PNG header, or None if the file is not a PNG."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return head[24], head[25]


def _read_image(path: Path) -> tuple[np.ndarray, bool, float | None]:
    """Read a PNG/TIFF with Pillow; return (array, is_8_bit, tEXt depth scale or None)."""
    from PIL import Image, UnidentifiedImageError

    ihdr = _png_ihdr(path)
    if ihdr is not None and ihdr[0] == 16 and ihdr[1] != 0:
        # Pillow decodes 16-bit colour / grey+alpha PNGs to 8 bits per channel; refuse rather than truncate.
        raise ValueError(
            f"{path} is a 16-bit colour or grey+alpha PNG, which would be read at 8 bits; save depth as a "
            "single-channel (grayscale) 16-bit PNG, .npy or EXR"
        )
    try:
        with Image.open(path) as img:  # Pillow refuses decompression bombs (> 2 x MAX_IMAGE_PIXELS) itself
            img.load()
            mode = img.mode
            bits = img.tag_v2.get(258) if hasattr(img, "tag_v2") else None  # TIFF BitsPerSample
            text = dict(getattr(img, "text", None) or {})
            if mode == "P":
                img = img.convert("RGBA")
                mode = "RGBA"
            a = np.asarray(img)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as e:
        raise ValueError(f"cannot read {path} as an image ({e}); check that the file is a valid PNG/TIFF") from e
    if mode in ("RGB", "RGBA", "LA", "L", "1") and bits is not None and max(bits) > 8:
        raise ValueError(
            f"{path} is a {max(bits)}-bit multi-channel TIFF, which would be read at 8 bits; save depth as a "
            "single-channel 16-bit TIFF, .npy or EXR"
        )
    if mode in ("RGBA", "LA"):
        a = a[..., :-1]  # alpha carries no depth
    if mode not in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F", "L", "1", "RGB", "RGBA", "LA"):
        raise ValueError(f"{path} has unsupported image mode {mode!r}; save depth as .npy, 16-bit PNG/TIFF or EXR")
    scale = None
    if PNG_SCALE_KEY in text:
        try:
            scale = float(text[PNG_SCALE_KEY])
        except ValueError:
            scale = None
        if scale is not None and not (np.isfinite(scale) and scale > 0):
            scale = None
        if scale is None:
            log.warning("%s: ignoring malformed %s=%r", path, PNG_SCALE_KEY, text[PNG_SCALE_KEY])
    return a, mode in ("L", "1", "RGB", "RGBA", "LA"), scale


def _read_exr(path: Path) -> np.ndarray:
    exr = _openexr()
    try:
        f = exr.File(str(path), separate_channels=True)
        channels = {name: np.array(ch.pixels) for name, ch in f.channels().items()}
    except Exception as e:  # the bindings raise plain RuntimeError / ValueError on bad files
        raise ValueError(f"cannot read {path} as EXR ({e}); check that the file is a valid OpenEXR image") from e
    if len(channels) == 1:
        return next(iter(channels.values()))
    for name in _EXR_CHANNELS:
        if name in channels:
            others = [c for c in "GB" if c in channels]
            if name == "R" and others:  # R with G and / or B: only a grey image is one depth map
                return _one_channel(np.stack([channels[c] for c in ["R", *others]], axis=-1), path)
            return channels[name]
    raise ValueError(
        f"{path} has channels {sorted(channels)} and none is named {'/'.join(_EXR_CHANNELS)}; "
        "save the depth as a single channel (e.g. with save_depth_exr)"
    )


def load_depth(path: str | os.PathLike, *, disparity: bool = False, nan_ok: bool = False) -> np.ndarray:
    """Load a depth map as float32 (H, W).

    Formats, chosen by suffix:
        .npy: a real-valued (H, W) array, values as stored.
        .png / .tif / .tiff: 16-bit (or 32-bit int / float TIFF) single-channel images, values as stored;
            a PNG written by `save_depth_png16` is divided by its stored scale, giving back depth.
        .exr: the only channel, else the first of Z, Y, R present.
    Multi-channel input is accepted only when all its channels are equal (alpha is ignored). 8-bit images
    are refused unless disparity=True. Invalid depth (0, negative, inf) is kept as stored.

    Args:
        path: depth file.
        disparity: the file holds disparity (inverse depth); it is converted to depth = 1 / disparity on
            finite positive pixels (others become 0). The result is relative: its scale is whatever the
            disparity's was (for an 8-bit map, depth 1 means disparity 1 of 255).
        nan_ok: keep NaN pixels (robust encoding treats them as no depth) instead of refusing the map.

    Returns:
        (H, W) float32 depth.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: unsupported suffix, unreadable file, 8-bit image without disparity=True, differing
            channels, an empty map, a stored PNG scale that does not give finite depth, or NaN in the map
            (unless nan_ok).
        MissingDependencyError: an EXR file without the OpenEXR bindings installed.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"depth file {str(p)!r} does not exist; check the path")
    suffix = p.suffix.lower()
    eight_bit, scale = False, None
    if suffix == ".npy":
        a = _read_npy(p)
    elif suffix in (".png", ".tif", ".tiff"):
        a, eight_bit, scale = _read_image(p)
    elif suffix == ".exr":
        a = _read_exr(p)
    else:
        raise ValueError(f"unsupported depth file {p.name!r}; use .npy, 16-bit .png/.tif/.tiff or .exr")
    a = _one_channel(np.asarray(a), p)
    if eight_bit and not disparity:
        raise ValueError(f"{p}: {_EIGHT_BIT_MSG}")
    if a.size == 0:
        raise ValueError(f"{p} holds an empty {a.shape[0]}x{a.shape[1]} map; depth needs at least one pixel")
    d = a.astype(np.float32)
    n_nan = int(np.isnan(d).sum())
    if n_nan and not nan_ok:
        raise ValueError(
            f"depth contains NaN at {n_nan} pixels of {p}; replace them with 0 (no depth), e.g. "
            "np.nan_to_num(depth, nan=0.0), and save again (or use robust depth: --robust-depth)"
        )
    if scale is not None:
        if disparity:
            raise ValueError(
                f"{p} was written by save_depth_png16 and holds depth, not disparity; load it with disparity=False"
            )
        with np.errstate(over="ignore", under="ignore", divide="ignore"):
            scaled = (d.astype(np.float64) / scale).astype(np.float32)
        stored = d > 0
        if not (np.isfinite(scaled[stored]).all() and (scaled[stored] > 0).all()):
            raise ValueError(
                f"{p}: its {PNG_SCALE_KEY}={scale!r} turns the 16-bit values into infinite or zero depth; the "
                f"stored scale is corrupt (save_depth_png16 writes 65535 / max depth); remove the {PNG_SCALE_KEY} "
                "text chunk to read the raw values"
            )
        d = scaled
    if disparity:
        valid = valid_pixels(d)
        out = np.zeros_like(d)
        out[valid] = 1.0 / d[valid]
        d = out
    return d
