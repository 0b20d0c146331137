"""Mesh files: binary glTF (GLB), binary PLY and Wavefront OBJ, written with numpy, Pillow and the standard library.

The GLB follows the glTF 2.0 specification (Khronos, https://registry.khronos.org/glTF/specs/2.0/glTF-2.0.html):
one TRIANGLES primitive with POSITION (float32 VEC3, with the required min / max), indices (uint32 SCALAR) and
either COLOR_0 (normalised uint8 VEC4) or TEXCOORD_0 (float32 VEC2) with a PNG base-colour texture embedded in the
binary chunk (never both: glTF multiplies COLOR_0 into the base colour, which would darken the texture twice).
The material is double-sided and, by default, unlit (KHR_materials_unlit): the colours are a photograph's, which
already holds its lighting. Every writer goes through `export.atomic_path` (temporary file, then rename).
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from .glb import ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER, FLOAT, UNSIGNED_BYTE, UNSIGNED_INT, pad4, write_glb_file
from .mesh import Mesh

log = logging.getLogger(__name__)

GENERATOR = "mofo_core mesh export"
_MODE_TRIANGLES = 4
_LINEAR, _CLAMP_TO_EDGE = 9729, 33071  # sampler filter / wrap (glTF 2.0 spec, "Samplers")
AXES_NOTE = "+X right, +Y up, -Z forward (camera at the origin looking down -Z; glTF / three.js convention)"


def _png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _check_texture(mesh: Mesh, texture: bool) -> None:
    if texture and mesh.texture is None:
        raise ValueError("texture=True but the mesh has no texture image; build it with depth_to_mesh(..., "
                         "texture=True) or pass texture=False")


class _Blob:
    """The GLB binary chunk under construction: 4-byte aligned buffer views."""

    def __init__(self):
        self.data, self.views = b"", []

    def add(self, payload: bytes, target: int | None = None) -> int:
        self.data = pad4(self.data, b"\0")
        view = {"buffer": 0, "byteOffset": len(self.data), "byteLength": len(payload)}
        if target is not None:
            view["target"] = target
        self.views.append(view)
        self.data += payload
        return len(self.views) - 1


def write_mesh_glb(path: str | os.PathLike, mesh: Mesh, *, texture: bool = True, unlit: bool = True) -> Path:
    """Write a mesh as a glTF 2.0 binary (GLB).

    Args:
        path: output `.glb` path; its folder must exist.
        mesh: the mesh (vertices in glTF's +Y up / -Z forward frame).
        texture: embed `mesh.texture` as a PNG base-colour texture (the vertex colours are then left out); when
            False, vertex colours are written as COLOR_0 (if the mesh has them).
        unlit: mark the material KHR_materials_unlit (shown with its own colours, no shading).

    Returns:
        `path` as a `Path`.

    Raises:
        ValueError: texture=True without a texture image, an empty mesh, non-finite vertices, or a missing folder.
    """
    _check_texture(mesh, texture)
    if not mesh.face_count:
        raise ValueError("the mesh has no triangles; nothing to write (raise edge_rtol, or check the depth map)")
    pos = np.ascontiguousarray(mesh.vertices, dtype="<f4")
    if not np.isfinite(pos).all():
        raise ValueError("mesh vertices contain NaN or inf")
    blob = _Blob()
    accessors = [{
        "bufferView": blob.add(pos.tobytes(), ARRAY_BUFFER), "componentType": FLOAT, "count": len(pos),
        "type": "VEC3", "min": [float(v) for v in pos.min(0)], "max": [float(v) for v in pos.max(0)],
    }]
    attributes = {"POSITION": 0}
    if texture:
        uv = np.ascontiguousarray(mesh.uvs, dtype="<f4")
        accessors.append({"bufferView": blob.add(uv.tobytes(), ARRAY_BUFFER), "componentType": FLOAT,
                          "count": len(uv), "type": "VEC2"})
        attributes["TEXCOORD_0"] = 1
    elif mesh.colors is not None:
        rgba = np.concatenate([mesh.colors, np.full((len(pos), 1), 255, np.uint8)], 1)  # (V, 4)
        accessors.append({"bufferView": blob.add(rgba.tobytes(), ARRAY_BUFFER), "componentType": UNSIGNED_BYTE,
                          "normalized": True, "count": len(rgba), "type": "VEC4"})
        attributes["COLOR_0"] = len(accessors) - 1
    idx = np.ascontiguousarray(mesh.faces, dtype="<u4").reshape(-1)  # (3F,)
    accessors.append({"bufferView": blob.add(idx.tobytes(), ELEMENT_ARRAY_BUFFER), "componentType": UNSIGNED_INT,
                      "count": len(idx), "type": "SCALAR"})
    primitive = {"attributes": attributes, "indices": len(accessors) - 1, "mode": _MODE_TRIANGLES, "material": 0}
    pbr = {"metallicFactor": 0.0, "roughnessFactor": 1.0}
    gltf = {"asset": {"version": "2.0", "generator": GENERATOR, "extras": {"axes": AXES_NOTE}}, "scene": 0,
            "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0, "name": "depth_mesh"}],
            "meshes": [{"primitives": [primitive], "name": "depth_mesh"}]}
    if texture:
        image_view = blob.add(_png_bytes(mesh.texture))
        gltf.update(images=[{"bufferView": image_view, "mimeType": "image/png"}],
                    samplers=[{"magFilter": _LINEAR, "minFilter": _LINEAR, "wrapS": _CLAMP_TO_EDGE,
                               "wrapT": _CLAMP_TO_EDGE}],
                    textures=[{"sampler": 0, "source": 0}])
        pbr["baseColorTexture"] = {"index": 0, "texCoord": 0}
    material = {"name": "depth_mesh", "pbrMetallicRoughness": pbr, "doubleSided": True}
    if unlit:
        material["extensions"] = {"KHR_materials_unlit": {}}
        gltf["extensionsUsed"] = ["KHR_materials_unlit"]
    gltf["materials"] = [material]
    data = pad4(blob.data, b"\0")
    gltf.update(buffers=[{"byteLength": len(data)}], bufferViews=blob.views, accessors=accessors)
    target = write_glb_file(path, gltf, data)
    log.debug("wrote a mesh of %d vertices / %d faces to %s", len(pos), mesh.face_count, target)
    return target


def write_mesh_ply(path: str | os.PathLike, mesh: Mesh) -> Path:
    """Write a binary little-endian PLY: vertices (x, y, z, s, t[, red, green, blue]) and faces (uchar-counted
    int lists named vertex_indices), the layout MeshLab, Blender and trimesh read. No texture image."""
    if not mesh.face_count:
        raise ValueError("the mesh has no triangles; nothing to write")
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("s", "<f4"), ("t", "<f4")]
    if mesh.colors is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    vert = np.empty(len(mesh.vertices), dtype=fields)
    vert["x"], vert["y"], vert["z"] = np.asarray(mesh.vertices, dtype=np.float32).T
    vert["s"], vert["t"] = np.asarray(mesh.uvs, dtype=np.float32).T
    if mesh.colors is not None:
        vert["red"], vert["green"], vert["blue"] = np.asarray(mesh.colors).T
    faces = np.empty(mesh.face_count, dtype=[("n", "u1"), ("i", "<i4", (3,))])
    faces["n"], faces["i"] = 3, mesh.faces.astype(np.int32)
    header = ["ply", "format binary_little_endian 1.0", f"comment generated by {GENERATOR}",
              f"comment axes: {AXES_NOTE}", f"element vertex {len(vert)}",
              *[f"property {'float' if t == '<f4' else 'uchar'} {n}" for n, t in fields],
              f"element face {mesh.face_count}", "property list uchar int vertex_indices", "end_header"]
    target = Path(path)
    with atomic_path(target) as tmp, open(tmp, "xb") as f:
        f.write(("\n".join(header) + "\n").encode("ascii"))
        f.write(vert.tobytes())
        f.write(faces.tobytes())
    return target


def write_mesh_obj(path: str | os.PathLike, mesh: Mesh, *, texture: bool = True) -> list[Path]:
    """Write a Wavefront OBJ (v with per-vertex r g b in [0, 1] when the mesh has colours, vt, f v/vt); with
    texture, also `<stem>.mtl` and `<stem>.png` next to it (map_Kd). OBJ's vt origin is the image's bottom-left,
    so v is flipped. Returns the written paths, the OBJ first."""
    _check_texture(mesh, texture)
    if not mesh.face_count:
        raise ValueError("the mesh has no triangles; nothing to write")
    target = Path(path)
    written = []
    lines = [f"# generated by {GENERATOR}", f"# axes: {AXES_NOTE}"]
    if texture:
        mtl, png = target.with_suffix(".mtl"), target.with_suffix(".png")
        with atomic_path(png) as tmp:
            tmp.write_bytes(_png_bytes(mesh.texture))
        with atomic_path(mtl) as tmp:
            tmp.write_text(f"newmtl depth_mesh\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nillum 1\nmap_Kd {png.name}\n")
        written += [mtl, png]
        lines += [f"mtllib {mtl.name}", "usemtl depth_mesh"]
    v = np.asarray(mesh.vertices, dtype=np.float64)
    if mesh.colors is not None:
        v = np.concatenate([v, np.asarray(mesh.colors, dtype=np.float64) / 255.0], 1)
        vfmt = "v %.6g %.6g %.6g %.4f %.4f %.4f"
    else:
        vfmt = "v %.6g %.6g %.6g"
    uv = np.asarray(mesh.uvs, dtype=np.float64) * [1.0, -1.0] + [0.0, 1.0]
    f1 = mesh.faces.astype(np.int64) + 1  # OBJ indices start at 1
    body = io.StringIO()
    np.savetxt(body, v, fmt=vfmt)
    np.savetxt(body, uv, fmt="vt %.6f %.6f")
    np.savetxt(body, np.repeat(f1, 2, axis=1), fmt="f %d/%d %d/%d %d/%d")
    with atomic_path(target) as tmp:
        tmp.write_text("\n".join(lines) + "\n" + body.getvalue())
    return [target, *written]


WRITERS = {".glb": write_mesh_glb, ".ply": write_mesh_ply, ".obj": write_mesh_obj}


def write_mesh(path: str | os.PathLike, mesh: Mesh, *, texture: bool = True) -> list[Path]:
    """Write by suffix (.glb, .ply, .obj); returns the written paths (an OBJ's .mtl / .png included)."""
    suffix = Path(path).suffix.lower()
    if suffix not in WRITERS:
        raise ValueError(f"unsupported mesh file {Path(path).name!r}; use .glb, .ply or .obj")
    if suffix == ".glb":
        return [write_mesh_glb(path, mesh, texture=texture)]
    if suffix == ".ply":
        return [write_mesh_ply(path, mesh)]
    return write_mesh_obj(path, mesh, texture=texture)
