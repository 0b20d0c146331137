"""Command line for the depth tools, on files, without the model: `python -m mofo_core {mesh,align,normals} ...`.

    python -m mofo_core mesh --depth run/depth.npy --image run/rgb.png --output room.glb [--max-faces 200000]
    python -m mofo_core align --depth run/depth.npy --distance 0.75 --at 412,300 --output metric.npy
    python -m mofo_core align --depth run/depth.npy --reference moge_depth.exr --output metric.exr
    python -m mofo_core normals --depth run/depth.npy --output normals.png [--raw normals.npy]

Each prints the written paths, and a one-line summary on stderr (align: the fit and its error).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from pathlib import Path

from ..config import DEFAULT_FOV_DEG

log = logging.getLogger(__name__)
COMMANDS = ("mesh", "align", "normals")
_LOSSES = ("huber", "tukey", "l2")  # = align.LOSSES (not imported: --help stays numpy-free)
_CONVENTIONS = ("controlnet", "opengl", "directx")  # = normals.CONVENTIONS


def _depth_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--depth", required=True, help=".npy, 16-bit PNG/TIFF or EXR depth map (e.g. a run's depth.npy)")
    p.add_argument("--disparity", action="store_true", help="the depth file holds disparity (near = bright)")
    p.add_argument("--fov-deg", type=float, default=DEFAULT_FOV_DEG, help="horizontal field of view of the camera")
    p.add_argument("--verbose", action="store_true", help="log what happens")


def add_commands(sub, formatter) -> None:
    """Add the mesh / align / normals sub-commands to the CLI's sub-parsers."""
    m = sub.add_parser("mesh", formatter_class=formatter, help="depth (+ image) file -> triangle mesh; no model")
    _depth_args(m)
    m.add_argument("--image", default=None, help="colours / texture (resized to the depth's size if needed)")
    m.add_argument("--output", required=True, help="mesh file: .glb (textured), .ply (vertex colours) or .obj")
    m.add_argument("--edge-rtol", type=float, default=0.04, help="relative depth jump that cuts the mesh (0: none)")
    m.add_argument("--max-faces", type=int, default=0, help="face budget by grid subsampling (0: every pixel)")
    m.add_argument("--no-texture", action="store_true", help="vertex colours instead of an embedded texture")

    a = sub.add_parser("align", formatter_class=formatter,
                       help="relative depth -> metric: fit to a reference depth, or a stated distance; no model")
    _depth_args(a)
    a.add_argument("--output", required=True, help="aligned depth: .npy, .exr or .png (16-bit, scale in the file)")
    a.add_argument("--reference", default=None, help="reference depth file (e.g. metric depth from MoGe / DA3)")
    a.add_argument("--reference-disparity", action="store_true", help="the reference file holds disparity")
    a.add_argument("--distance", type=float, default=None, help="stated distance of --at / the --mask region")
    a.add_argument("--at", default=None, help="X,Y: the pixel (column, row) at --distance (default: the centre)")
    a.add_argument("--measure", choices=("planar", "ray"), default="planar",
                   help="--distance is planar depth, or along the pixel's ray")
    a.add_argument("--mask", default=None, help="PNG, white = the region at --distance / the pixels to fit on")
    a.add_argument("--shift", action="store_true", help="fit scale + shift (default: scale only)")
    a.add_argument("--space", choices=("depth", "disparity"), default="depth", help="fit in depth or in 1 / depth")
    a.add_argument("--loss", choices=_LOSSES, default="huber", help="robust weights (huber / tukey) or l2")
    a.add_argument("--report", default=None, help="also write the fit report as JSON to this file")

    n = sub.add_parser("normals", formatter_class=formatter, help="depth file -> camera-space normal map; no model")
    _depth_args(n)
    n.add_argument("--output", required=True, help="normal-map picture (8-bit RGB PNG)")
    n.add_argument("--convention", choices=_CONVENTIONS, default="controlnet",
                   help="controlnet: R = left, G = up, B = towards the camera; opengl: R = right; directx: G = down")
    n.add_argument("--edge-rtol", type=float, default=0.1, help="a neighbour this much nearer / farther is not used")
    n.add_argument("--raw", default=None, help="also write the float normals (H, W, 3; +X right, +Y up, +Z towards "
                   "the camera) to this .npy")


def _load(a):
    from ..depth.files import load_depth

    return load_depth(a.depth, disparity=a.disparity)


def _resized_rgb(path: str, hw):
    import numpy as np
    from PIL import Image

    from .images import load_image

    rgb = load_image(path)
    if rgb.shape[:2] != tuple(hw):
        rgb = np.asarray(Image.fromarray(rgb).resize((hw[1], hw[0]), Image.BILINEAR))
    return rgb


def _mask(path: str, hw):
    import torch

    from ..sampling.masks import load_mask

    m = load_mask(path)
    if tuple(m.shape) != tuple(hw):
        m = torch.nn.functional.interpolate(m[None, None], size=tuple(hw), mode="nearest")[0, 0]
    return (m > 0.5).numpy()


def _check_output(path: str, suffixes: tuple[str, ...]) -> Path:
    p = Path(path)
    if p.suffix.lower() not in suffixes:
        raise ValueError(f"--output {p.name!r}: use {' / '.join(suffixes)}")
    if not p.parent.is_dir():
        raise ValueError(f"--output folder {str(p.parent)!r} does not exist; create it first")
    return p


def run_mesh(a, say: Callable[[str], None]) -> list[Path]:
    from ..geometry.mesh import depth_to_mesh
    from ..geometry.mesh_export import write_mesh

    out = _check_output(a.output, (".glb", ".ply", ".obj"))
    depth = _load(a)
    rgb = _resized_rgb(a.image, depth.shape) if a.image else None
    texture = rgb is not None and not a.no_texture and out.suffix.lower() != ".ply"
    mesh = depth_to_mesh(depth, rgb, fov_deg=a.fov_deg, edge_rtol=a.edge_rtol, max_faces=a.max_faces or None,
                         texture=texture)
    say(f"mesh: {mesh.face_count} faces, {len(mesh.vertices)} vertices (grid stride {mesh.stride})")
    return write_mesh(out, mesh, texture=texture)


def run_align(a, say: Callable[[str], None]) -> list[Path]:
    from ..depth import files as depth_io
    from ..depth.align import fit_depth, scale_to_distance

    out = _check_output(a.output, (".npy", ".exr", ".png"))
    depth = _load(a)
    mask = _mask(a.mask, depth.shape) if a.mask else None
    if (a.reference is None) == (a.distance is None):
        raise ValueError("give exactly one of --reference FILE (fit to a depth map) or --distance D (a stated "
                         "distance, with --at X,Y or --mask)")
    if a.reference is not None:
        ref = depth_io.load_depth(a.reference, disparity=a.reference_disparity, nan_ok=True)
        if ref.shape != depth.shape:
            import torch

            ref = torch.nn.functional.interpolate(torch.from_numpy(ref)[None, None], size=depth.shape,
                                                  mode="nearest")[0, 0].numpy()
        aligned, report = fit_depth(depth, ref, mask, shift=a.shift, space=a.space, loss=a.loss)
    else:
        at = None
        if mask is None:
            at = (depth.shape[1] // 2, depth.shape[0] // 2)
            if a.at:
                try:
                    at = tuple(int(v) for v in a.at.split(","))
                    assert len(at) == 2
                except (ValueError, AssertionError):
                    raise ValueError(f"--at must be X,Y pixel coordinates, e.g. 412,300; got {a.at!r}") from None
        aligned, report = scale_to_distance(depth, a.distance, at=at, region=mask, measure=a.measure,
                                            fov_deg=a.fov_deg)
    say(report.summary())
    writers = {".npy": depth_io.save_depth_npy, ".exr": depth_io.save_depth_exr,
               ".png": lambda p, d: depth_io.save_depth_png16(p, d)["path"]}
    written = [Path(writers[out.suffix.lower()](out, aligned))]
    if a.report:
        from ..atomic import atomic_path

        with atomic_path(a.report) as tmp:
            tmp.write_text(json.dumps(report.as_dict(), indent=2))
        written.append(Path(a.report))
    return written


def run_normals(a, say: Callable[[str], None]) -> list[Path]:
    import numpy as np
    from PIL import Image

    from ..atomic import atomic_path
    from ..geometry.normals import depth_to_normals, normals_to_image

    out = _check_output(a.output, (".png",))
    if a.raw and not a.raw.lower().endswith(".npy"):
        raise ValueError(f"--raw {a.raw!r}: the float normals are written as .npy")
    n = depth_to_normals(_load(a), fov_deg=a.fov_deg, edge_rtol=a.edge_rtol)  # (H, W, 3)
    rgb = (normals_to_image(n, a.convention) * 255.0).round().astype(np.uint8)
    with atomic_path(out) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")
    written = [out]
    if a.raw:
        with atomic_path(a.raw) as tmp, open(tmp, "xb") as f:
            np.save(f, n, allow_pickle=False)
        written.append(Path(a.raw))
    return written


def run(a, say: Callable[[str], None] = log.info) -> list[Path]:
    """Run one of COMMANDS; `say` gets the one-line summary (the CLI prints it on stderr)."""
    return {"mesh": run_mesh, "align": run_align, "normals": run_normals}[a.command](a, say)
