"""Files under ComfyUI's output folder, named the ComfyUI way (prefix_00001_.ext, subfolders, %date%)."""

from __future__ import annotations

from pathlib import Path

import folder_paths
import torch

from ..mofo_core import save_depth_exr, save_depth_npy, save_depth_png16

DEPTH_WRITERS = {
    "png16": (".png", save_depth_png16),
    "exr": (".exr", save_depth_exr),
    "npy": (".npy", save_depth_npy),
}


def output_paths(prefix: str, count: int, ext: str, h: int = 0, w: int = 0) -> list[tuple[Path, dict]]:
    """`count` fresh output paths and their UI entries {"filename", "subfolder", "type": "output"}."""
    folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(
        prefix, folder_paths.get_output_directory(), w, h
    )
    out = []
    for i in range(count):
        fname = f"{name}_{counter + i:05}_{ext}"
        out.append((Path(folder) / fname, {"filename": fname, "subfolder": subfolder, "type": "output"}))
    return out


def save_depth_files(depth: torch.Tensor, prefix: str, fmt: str, max_depths=None) -> list[dict]:
    """max_depths: png16 only, one `save_depth_png16` max_depth per map (None: its own largest depth)."""
    if fmt not in DEPTH_WRITERS:
        raise ValueError(f"format must be one of {sorted(DEPTH_WRITERS)}")
    ext, write = DEPTH_WRITERS[fmt]
    d = depth.float().cpu().numpy()
    targets = output_paths(prefix, d.shape[0], ext, d.shape[1], d.shape[2])
    for i, ((path, _), x) in enumerate(zip(targets, d)):
        if fmt == "png16" and max_depths is not None:
            write(path, x, max_depths[i])
        else:
            write(path, x)
    return [entry for _, entry in targets]
