"""Depth map -> triangle mesh: one vertex per kept pixel, two triangles per quad of four kept pixels.

The camera model and the edge test are the point cloud's (`pointcloud.fov_intrinsics`, `depth_edge_mask`): a
centred pinhole with a horizontal field of view, pixel centres at +0.5, planar depth, vertices in the glTF frame
(+X right, +Y up, camera at the origin looking down -Z). A pixel is kept when its depth is finite and > 0 and it
is not on a depth edge; a quad becomes two triangles only when all four of its corners are kept, so no triangle
ever spans a depth discontinuity (the edge pixels on both sides of a step are dropped, and the quads between
them with them).

Decimation is uniform grid subsampling, nothing cleverer: the mesh is built on every s-th row and column
(stride s = 1, 2, 3 ...), the smallest stride whose face count fits the budget. The edge test is run again on
the subsampled grid, so a step that falls between two samples is still cut. This is not quadric edge-collapse
simplification: flat and detailed regions lose resolution alike.

Triangles wind counter-clockwise seen from the camera (their front faces it). UVs map each vertex to its pixel
centre in the image (glTF's UV origin is the image's top-left corner, so v grows downwards, as rows do).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from ..camera import Intrinsics, resolve_intrinsics
from ..config import DEFAULT_FOV_DEG
from .pointcloud import DEFAULT_EDGE_RTOL, _check_inputs, depth_edge_mask

log = logging.getLogger(__name__)


@dataclass
class Mesh:
    """A triangle mesh in the glTF frame.

    vertices: (V, 3) float32 positions, in depth units.
    faces: (F, 3) uint32 vertex indices, counter-clockwise seen from the camera.
    uvs: (V, 2) float32 texture coordinates in [0, 1], origin at the image's top-left corner.
    colors: (V, 3) uint8 RGB per vertex, or None.
    texture: (H, W, 3) uint8 RGB image the UVs point into, or None.
    stride: the grid stride the mesh was built at (1 = every pixel).
    """

    vertices: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray
    colors: np.ndarray | None = None
    texture: np.ndarray | None = None
    stride: int = 1

    def __post_init__(self):
        v, f = np.asarray(self.vertices), np.asarray(self.faces)
        if v.ndim != 2 or v.shape[1] != 3:
            raise ValueError(f"vertices must be (V, 3), got {v.shape}")
        if f.ndim != 2 or f.shape[1] != 3:
            raise ValueError(f"faces must be (F, 3) vertex indices, got {f.shape}")
        if len(f) and (int(f.min()) < 0 or int(f.max()) >= len(v)):
            raise ValueError(f"faces index vertices outside 0 .. {len(v) - 1}")
        if np.asarray(self.uvs).shape != (len(v), 2):
            raise ValueError(f"uvs must be (V, 2) = ({len(v)}, 2), got {np.asarray(self.uvs).shape}")
        if self.colors is not None and np.asarray(self.colors).shape != (len(v), 3):
            raise ValueError(f"colors must be (V, 3) = ({len(v)}, 3), got {np.asarray(self.colors).shape}")

    @property
    def face_count(self) -> int:
        return len(self.faces)


def _kept(depth: np.ndarray, edge_rtol: float, mask: np.ndarray | None) -> np.ndarray:
    """(h, w) bool: finite positive depth, inside `mask`, and (edge_rtol > 0) not on a depth edge of this grid."""
    with np.errstate(invalid="ignore"):
        keep = np.isfinite(depth) & (depth > 0)
    if mask is not None:
        keep &= mask
    if edge_rtol > 0:
        keep &= ~depth_edge_mask(depth, edge_rtol)
    return keep


def _quads(keep: np.ndarray) -> np.ndarray:
    """(h-1, w-1) bool: quads whose four corners are all kept."""
    return keep[:-1, :-1] & keep[:-1, 1:] & keep[1:, :-1] & keep[1:, 1:]


def _grid(depth: np.ndarray, stride: int, edge_rtol: float, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The subsampled depth (h, w) and its quad mask (h-1, w-1) at this stride."""
    d = depth[::stride, ::stride]
    m = None if mask is None else mask[::stride, ::stride]
    keep = _kept(d, edge_rtol, m)
    return d, _quads(keep) if min(d.shape) > 1 else np.zeros((0, 0), bool)


def choose_stride(depth: np.ndarray, max_faces: int, *, edge_rtol: float = DEFAULT_EDGE_RTOL,
                  mask: np.ndarray | None = None) -> int:
    """The smallest grid stride whose mesh has at most `max_faces` triangles.

    Starts from the stride the full-resolution face count suggests (faces shrink about as 1 / stride²) and steps
    up until the budget holds. A mesh that cannot shrink further (a 2 x 2 grid) keeps its stride.
    """
    d = np.asarray(depth)
    _, quads = _grid(d, 1, edge_rtol, mask)
    faces = 2 * int(quads.sum())
    if faces <= max_faces:
        return 1
    stride = max(2, int(math.floor(math.sqrt(faces / max_faces))))
    while True:
        _, quads = _grid(d, stride, edge_rtol, mask)
        if 2 * int(quads.sum()) <= max_faces or min(d[::stride, ::stride].shape) <= 2:
            return stride
        stride += 1


def depth_to_mesh(
    depth: np.ndarray,
    colors: np.ndarray | None = None,
    *,
    fov_deg: float = DEFAULT_FOV_DEG,
    intrinsics: Intrinsics | None = None,
    edge_rtol: float = DEFAULT_EDGE_RTOL,
    max_faces: int | None = None,
    mask: np.ndarray | None = None,
    texture: bool = False,
) -> Mesh:
    """Triangulate a depth map on its pixel grid (see the module docstring for the rules).

    Args:
        depth: (H, W) planar depth, any positive unit (the mesh is in the same unit).
        colors: (H, W, 3) uint8 RGB aligned with depth: vertex colours (and the texture), or None.
        fov_deg: horizontal field of view [deg], in (0, 180); ignored when `intrinsics` is given.
        intrinsics: (fx, fy, cx, cy) [px] of the full-resolution depth map, overriding the field of view.
        edge_rtol: relative 3x3 depth jump that marks an edge pixel (the point cloud's test); 0 disables it.
        max_faces: a face budget: the grid is subsampled (uniform stride) until the mesh fits; None = every pixel.
        mask: optional (H, W) bool, True where the mesh may go (e.g. to drop the sky).
        texture: keep `colors` as the mesh's texture image (the UVs point into it).

    Returns:
        A `Mesh`; vertices used by no triangle are left out. An empty mesh (no quad kept) logs a warning.

    Raises:
        ValueError: bad shapes or dtypes, a bad option, texture without colours, or no finite positive depth.
    """
    d = _check_inputs(depth, colors)
    height, width = d.shape
    fx, fy, cx, cy = resolve_intrinsics(width, height, fov_deg, intrinsics)
    if not (math.isfinite(edge_rtol) and edge_rtol >= 0):
        raise ValueError(f"edge_rtol must be >= 0 (0 disables the edge test), got {edge_rtol}")
    if max_faces is not None and (int(max_faces) != max_faces or max_faces < 2):
        raise ValueError(f"max_faces must be an integer >= 2 (one quad) or None (no budget), got {max_faces}")
    if texture and colors is None:
        raise ValueError("texture=True needs the colours (the image) to texture the mesh with")
    m = None
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != d.shape:
            raise ValueError(f"mask must be (H, W) = {d.shape} like the depth, got {m.shape}")
        m = m.astype(bool)
    with np.errstate(invalid="ignore"):
        if not (np.isfinite(d) & (d > 0)).any():
            raise ValueError("depth has no finite positive pixel; nothing to triangulate (check the depth map)")

    stride = 1 if max_faces is None else choose_stride(d, int(max_faces), edge_rtol=edge_rtol, mask=m)
    sub, quads = _grid(d, stride, edge_rtol, m)
    h, w = sub.shape
    qr, qc = np.nonzero(quads)  # top-left corners of the kept quads, row-major
    a = qr * w + qc  # (Q,) flat indices into the subsampled grid: a b / c e
    b, c, e = a + 1, a + w, a + w + 1
    # CCW seen from the camera (screen x right, y up): a -> c -> b and b -> c -> e
    tri = np.concatenate([np.stack([a, c, b], 1), np.stack([b, c, e], 1)], 0)  # (2Q, 3)
    tri = tri.reshape(2, -1, 3).transpose(1, 0, 2).reshape(-1, 3)  # the quad's two triangles side by side

    used = np.unique(tri)  # sorted flat indices of the vertices that appear in a face
    remap = np.full(h * w, -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    faces = remap[tri].astype(np.uint32)
    rows, cols = np.divmod(used, w)  # in the subsampled grid
    u = cols * stride + 0.5  # full-resolution pixel centres
    v = rows * stride + 0.5
    z = sub.reshape(-1)[used].astype(np.float64)
    x = (u - cx) * z / fx
    y = (v - cy) * z / fy
    vertices = np.stack([x, -y, -z], axis=-1).astype(np.float32)  # (V, 3), glTF frame
    uvs = np.stack([u / width, v / height], axis=-1).astype(np.float32)  # (V, 2)
    vcol = None if colors is None else np.asarray(colors)[rows * stride, cols * stride]  # (V, 3) uint8
    if not len(faces):
        log.warning("no quad of four kept pixels at edge_rtol=%s: the mesh is empty (raise edge_rtol or pass 0)",
                       edge_rtol)
    tex = np.ascontiguousarray(colors) if texture else None
    return Mesh(vertices, faces, uvs, vcol, tex, stride)


def face_normals(mesh: Mesh) -> np.ndarray:
    """(F, 3) unit normals of the triangles (right-hand rule over the stored winding)."""
    p = mesh.vertices.astype(np.float64)[mesh.faces.astype(np.int64)]  # (F, 3 corners, 3)
    n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-30)
