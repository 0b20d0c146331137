"""Write a generation to a new run folder: images, depth in four formats, point clouds, metadata.

Files (suffix `_{i}` per batch element when batch > 1): rgb.png, depth.npy (float32 relative), depth16.png
(16-bit, scale in metadata and the PNG), depth.exr (float), depth_magma.png (disparity colormap, near =
bright), cloud.ply, cloud.glb, metadata.json, and with mesh=True mesh.glb (a textured triangle mesh, same camera as the
cloud). Everything is written into a hidden temporary folder that is
renamed into place at the end, so an error or an interruption leaves no partial run, and an existing run
is never overwritten (two runs finishing together with one name get `name` and `name_2`). The folder is
named `{YYYYmmdd_HHMMSS}_{mode}_{prompt slug}` as in the reference.
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..config import DEFAULT_FOV_DEG
from ..depth.files import magma, save_depth_exr, save_depth_npy, save_depth_png16, save_magma_png
from ..depth.ranges import disparity_vis_batch, png16_max_depths
from ..geometry.cloud_export import write_glb, write_ply
from ..geometry.mesh import depth_to_mesh
from ..geometry.mesh_export import write_mesh_glb
from ..geometry.pointcloud import REFERENCE_MAX_POINTS, depth_to_points

log = logging.getLogger(__name__)


def slug(prompt: str, n: int = 48) -> str:
    return re.sub(r"[^a-z0-9]+", "_", prompt.lower()).strip("_")[:n]


def run_name(mode: str, prompt: str) -> str:
    """`{YYYYmmdd_HHMMSS}_{mode}_{prompt slug}` (the reference's run folder name)."""
    return f"{_dt.datetime.now().strftime('%Y%m%d_%H%M%S')}_{mode}" + (f"_{slug(prompt)}" if slug(prompt) else "")


def new_run_dir(root: str | Path, mode: str, prompt: str) -> Path:
    """A not yet existing folder name under root (a counter is added on a clash). Only a hint: `claim_run_dir`
    is what takes a name atomically."""
    root = Path(root)
    base = run_name(mode, prompt)
    cand, i = root / base, 2
    while cand.exists():
        cand, i = root / f"{base}_{i}", i + 1
    return cand


def claim_run_dir(tmp: Path, root: Path, base: str) -> Path:
    """Rename the finished folder tmp to root/base (or base_2, base_3, ... on a clash) atomically; returns it.

    rename(2) of a folder onto an existing non-empty folder fails (EEXIST / ENOTEMPTY), so of two runs finishing
    at once with the same name each gets its own folder; nothing is overwritten. An existing empty folder of that
    name is taken over (it holds nothing to lose)."""
    for i in range(1, 10_000):
        cand = root / (base if i == 1 else f"{base}_{i}")
        if cand.exists() and (not cand.is_dir() or any(cand.iterdir())):
            continue
        try:
            os.rename(tmp, cand)
            return cand
        except OSError as e:
            if e.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
                raise
    raise FileExistsError(f"{root} already holds 10000 runs named {base}*; choose another --output-dir")


def check_output_dir(root: str | Path) -> Path:
    """Refuse an output folder that cannot be written (cheap; call before loading weights). Creates nothing: an
    existing folder gets a probe file (removed at once), a missing one needs a writable nearest existing parent."""
    root = Path(root).expanduser()
    fix = "choose a writable --output-dir"
    if root.exists():
        if not root.is_dir():
            raise ValueError(f"the output folder {root} is a file, not a folder; {fix}")
        try:
            fd, probe = tempfile.mkstemp(prefix=".mofo_probe_", dir=root)
            os.close(fd)
            os.unlink(probe)
        except OSError as e:
            raise ValueError(f"cannot write to the output folder {root} ({e.strerror or e}); {fix}") from e
        return root
    parent = root.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write to the output folder {root}: {parent} is not a writable folder; {fix}")
    return root


def save_run(
    root: str | Path,
    result,
    *,
    fov_deg: float = DEFAULT_FOV_DEG,
    edge_rtol: float = 0.04,
    sor: bool = False,
    center: str = "camera",
    exr: bool = True,
    max_points: int | None = REFERENCE_MAX_POINTS,
    mesh: bool = False,
    mesh_max_faces: int | None = None,
    depth_range: str = "image",
) -> dict[str, Path]:
    """Write `result` (a `GenerationResult`) under a new folder of root; returns {name: path}.

    max_points: point clouds over this size are a random subset of it (the reference's 1.2 M; None: no cap).
    mesh: also write mesh.glb (`mesh.depth_to_mesh`, textured with the RGB; mesh_max_faces: its face budget).
    depth_range: "image" (each depth16.png / depth_magma.png its own range) or "batch" (one range over the batch,
    `depth_range.py`, so the frames compare)."""
    meta = dict(result.metadata)
    root = Path(root)
    base = run_name(meta.get("mode", "run"), meta.get("prompt", ""))
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{base}.", suffix=".partial", dir=root))  # unique per process
    written: dict[str, Path] = {}
    try:
        from PIL import Image

        b = result.rgb.shape[0]
        scales, points, faces = [], [], []
        valid_idx = [i for i, d in enumerate(result.depth) if bool(np.any(np.isfinite(d) & (d > 0)))]
        kept = [result.depth[i] for i in valid_idx]
        top_of = dict(zip(valid_idx, png16_max_depths(kept, depth_range))) if kept else {}
        vis_of = dict(zip(valid_idx, disparity_vis_batch(kept, "batch"))) if kept and depth_range == "batch" else {}
        for i in range(b):
            sfx = f"_{i}" if b > 1 else ""
            rgb, depth = result.rgb[i], result.depth[i]
            Image.fromarray(rgb).save(tmp / f"rgb{sfx}.png")
            save_depth_npy(tmp / f"depth{sfx}.npy", depth)
            if exr:
                save_depth_exr(tmp / f"depth{sfx}.exr", depth)
            if not bool(np.any(np.isfinite(depth) & (depth > 0))):  # keep what can be kept
                log.warning("depth map %d has no valid pixel: no 16-bit PNG, colormap or point cloud for it", i)
                scales.append(None)
                points.append(0)
                faces.append(0)
                continue
            scales.append(save_depth_png16(tmp / f"depth16{sfx}.png", depth, top_of[i])["scale"])
            if i in vis_of:  # one disparity range over the batch
                Image.fromarray(magma(vis_of[i])).save(tmp / f"depth_magma{sfx}.png")
            else:
                save_magma_png(tmp / f"depth_magma{sfx}.png", depth)
            pts, cols = depth_to_points(depth, rgb, fov_deg=fov_deg, edge_rtol=edge_rtol, sor=sor, center=center,
                                        max_points=max_points)
            write_ply(tmp / f"cloud{sfx}.ply", pts, cols)
            write_glb(tmp / f"cloud{sfx}.glb", pts, cols)
            points.append(int(len(pts)))
            if mesh:
                m = depth_to_mesh(depth, rgb, fov_deg=fov_deg, edge_rtol=edge_rtol, max_faces=mesh_max_faces,
                                  texture=True)
                if m.face_count:
                    write_mesh_glb(tmp / f"mesh{sfx}.glb", m)
                else:
                    log.warning("depth map %d: every pixel is on a depth edge, no mesh (lower --edge-rtol)", i)
                faces.append(m.face_count)
        if mesh:
            meta.update(mesh_faces=faces if b > 1 else faces[0], mesh_max_faces=mesh_max_faces)
        meta.update(depth_range=depth_range)
        meta.update(depth16_scale=scales if b > 1 else scales[0], point_count=points if b > 1 else points[0],
                    point_cloud={"fov_deg": fov_deg, "edge_rtol": edge_rtol, "sor": sor, "center": center,
                                 "max_points": max_points,
                                 "axes": "glTF: +X right, +Y up, camera at origin looking down -Z"},
                    depth_note="relative depth (positive = farther); invalid pixels are <= 0 or non-finite")
        (tmp / "metadata.json").write_text(json.dumps(meta, indent=2, default=_jsonable))
        run = claim_run_dir(tmp, root, base)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for f in sorted(run.iterdir()):
        written[f.name] = f
    log.info("wrote %d files to %s", len(written), run)
    return {"run_dir": run, **written}


def _jsonable(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    return str(x)
