"""Depth -> mesh on synthetic scenes with known answers, written as GLB / PLY / OBJ and read back by trimesh,
pygltflib and plyfile (independent readers)."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from mofo_core.camera import fov_intrinsics
from mofo_core.geometry.mesh import choose_stride, depth_to_mesh, face_normals
from mofo_core.geometry.mesh_export import write_mesh, write_mesh_glb, write_mesh_obj, write_mesh_ply
from mofo_core.geometry.pointcloud import depth_to_points

trimesh = pytest.importorskip("trimesh", reason="trimesh (a test dependency) reads the meshes back")
pygltflib = pytest.importorskip("pygltflib", reason="pygltflib (a test dependency) reads the GLB back")
plyfile = pytest.importorskip("plyfile", reason="plyfile (a test dependency) reads the PLY back")


def _step_scene(h=24, w=32, near=2.0, far=4.0, step_col=16):
    """A wall at `near` on the left, one at `far` from column step_col on: a depth step edge."""
    d = np.full((h, w), near, dtype=np.float32)
    d[:, step_col:] = far
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[..., 0] = np.arange(w, dtype=np.uint8)[None] * 7  # red encodes the column
    rgb[..., 1] = np.arange(h, dtype=np.uint8)[:, None] * 9  # green the row
    return d, rgb


def _no_face_spans_the_step(vertices: np.ndarray, faces: np.ndarray, near=2.0, far=4.0) -> bool:
    z = -vertices[:, 2][faces]  # (F, 3) depths of each face's corners
    on_near, on_far = np.isclose(z, near, rtol=1e-4), np.isclose(z, far, rtol=1e-4)
    return bool((on_near.all(1) | on_far.all(1)).all())


def test_plane_mesh_is_the_full_grid_facing_the_camera():
    h, w = 6, 8
    mesh = depth_to_mesh(np.full((h, w), 3.0, np.float32), fov_deg=90.0)
    assert mesh.face_count == 2 * (h - 1) * (w - 1) and len(mesh.vertices) == h * w
    # the vertices are the point cloud's points (same camera, same order)
    pts, _ = depth_to_points(np.full((h, w), 3.0, np.float32), fov_deg=90.0, edge_rtol=0)
    np.testing.assert_allclose(mesh.vertices, pts, rtol=1e-6)
    n = face_normals(mesh)
    np.testing.assert_allclose(n, np.tile([0.0, 0.0, 1.0], (mesh.face_count, 1)), atol=1e-6)  # towards the camera
    # UVs: pixel centres, origin top-left
    np.testing.assert_allclose(mesh.uvs[0], [0.5 / w, 0.5 / h])
    np.testing.assert_allclose(mesh.uvs[-1], [(w - 0.5) / w, (h - 0.5) / h])


def test_no_triangle_across_a_step_edge_and_the_faces_there_are_missing():
    d, rgb = _step_scene()
    mesh = depth_to_mesh(d, rgb)
    assert _no_face_spans_the_step(mesh.vertices, mesh.faces)
    # the edge test drops the two pixel columns touching the step (15 and 16); the rest is a full grid
    kept_cols = 32 - 2
    assert mesh.face_count == 2 * (24 - 1) * (kept_cols - 2)
    # without the edge test, the step is bridged: that is what the test prevents
    bridged = depth_to_mesh(d, rgb, edge_rtol=0)
    assert not _no_face_spans_the_step(bridged.vertices, bridged.faces)
    assert bridged.face_count == 2 * 23 * 31


def test_vertex_colours_are_the_pixels_colours():
    d, rgb = _step_scene()
    mesh = depth_to_mesh(d, rgb, fov_deg=60.0)
    fx, fy, cx, cy = fov_intrinsics(32, 24, 60.0)
    z = -mesh.vertices[:, 2].astype(np.float64)
    col = np.rint(mesh.vertices[:, 0] * fx / z + cx - 0.5).astype(int)
    row = np.rint(-mesh.vertices[:, 1] * fy / z + cy - 0.5).astype(int)
    np.testing.assert_array_equal(mesh.colors, rgb[row, col])


def test_invalid_pixels_and_mask_make_holes():
    d = np.full((10, 10), 2.0, np.float32)
    d[4, 4] = 0.0  # one invalid pixel removes the four quads around it
    assert depth_to_mesh(d, edge_rtol=0).face_count == 2 * (81 - 4)
    mask = np.ones((10, 10), bool)
    mask[:, 5:] = False
    assert depth_to_mesh(np.full((10, 10), 2.0), mask=mask).face_count == 2 * 9 * 4


def test_face_budget_decimates_by_grid_stride_and_still_cuts_the_step():
    d, rgb = _step_scene(h=60, w=80, step_col=41)
    full = depth_to_mesh(d, rgb)
    budget = full.face_count // 5
    small = depth_to_mesh(d, rgb, max_faces=budget)
    assert small.face_count <= budget and small.stride > 1
    assert small.stride == choose_stride(d, budget)
    assert depth_to_mesh(d, rgb, max_faces=budget * 4).face_count <= budget * 4
    # a stride-s grid: vertices on every s-th pixel row / column
    assert set(np.unique(np.rint(small.uvs[:, 0] * 80 - 0.5)) % small.stride) == {0}
    assert _no_face_spans_the_step(small.vertices, small.faces)
    assert depth_to_mesh(d, rgb, max_faces=10 * full.face_count).stride == 1


def test_glb_read_back_by_trimesh_and_pygltflib(tmp_path):
    d, rgb = _step_scene()
    mesh = depth_to_mesh(d, rgb, texture=True)
    path = write_mesh_glb(tmp_path / "m.glb", mesh)
    scene = trimesh.load(path)
    (geom,) = scene.geometry.values()
    assert len(geom.faces) == mesh.face_count
    assert _no_face_spans_the_step(np.asarray(geom.vertices), np.asarray(geom.faces))
    tex = geom.visual.material.baseColorTexture
    assert tex is not None and tex.size == (32, 24)
    np.testing.assert_array_equal(np.asarray(tex.convert("RGB")), rgb)
    g = pygltflib.GLTF2().load(str(path))
    prim = g.meshes[0].primitives[0]
    assert prim.mode == 4 and prim.attributes.TEXCOORD_0 is not None and prim.attributes.COLOR_0 is None
    assert g.images[0].mimeType == "image/png" and g.materials[0].doubleSided
    assert g.accessors[prim.indices].count == 3 * mesh.face_count
    pos = g.accessors[prim.attributes.POSITION]
    np.testing.assert_allclose(pos.min, mesh.vertices.min(0)) and np.testing.assert_allclose(pos.max,
                                                                                           mesh.vertices.max(0))
    raw = path.read_bytes()  # GLB container: header length = file length, chunks 4-byte aligned
    assert struct.unpack("<III", raw[:12])[2] == len(raw) and len(raw) % 4 == 0


def test_glb_with_vertex_colours_and_the_camera_at_the_origin(tmp_path):
    d, rgb = _step_scene()
    mesh = depth_to_mesh(d, rgb)
    path = write_mesh_glb(tmp_path / "c.glb", mesh, texture=False, unlit=False)
    g = pygltflib.GLTF2().load(str(path))
    assert g.meshes[0].primitives[0].attributes.COLOR_0 is not None and not g.images
    geom = trimesh.load(path, force="mesh", skip_materials=True)
    np.testing.assert_array_equal(np.asarray(geom.visual.vertex_colors)[:, :3], mesh.colors)
    assert (np.asarray(geom.vertices)[:, 2] < 0).all()  # everything in front of the camera (down -Z)
    header = json.loads(path.read_bytes()[20:20 + struct.unpack("<I", path.read_bytes()[12:16])[0]])
    assert "translation" not in header["nodes"][0] and "matrix" not in header["nodes"][0]


def test_ply_and_obj_read_back(tmp_path):
    d, rgb = _step_scene()
    mesh = depth_to_mesh(d, rgb, texture=True)
    ply = plyfile.PlyData.read(write_mesh_ply(tmp_path / "m.ply", mesh))
    assert len(ply["face"]) == mesh.face_count and len(ply["vertex"]) == len(mesh.vertices)
    faces = np.stack(ply["face"]["vertex_indices"])
    np.testing.assert_array_equal(faces, mesh.faces)
    np.testing.assert_array_equal(np.stack([ply["vertex"][c] for c in ("red", "green", "blue")], 1), mesh.colors)
    obj, mtl, png = write_mesh_obj(tmp_path / "m.obj", mesh)
    assert mtl.is_file() and png.is_file()
    m = trimesh.load(obj, force="mesh", process=False)
    assert len(m.faces) == mesh.face_count
    assert m.visual.material.image is not None
    flipped = mesh.uvs * [1, -1] + [0, 1]  # trimesh keeps UVs with OBJ's bottom-left origin, whatever the file
    np.testing.assert_allclose(np.asarray(m.visual.uv), flipped, atol=1e-6)
    (glb,) = trimesh.load(write_mesh_glb(tmp_path / "m.glb", mesh)).geometry.values()
    np.testing.assert_allclose(np.asarray(glb.visual.uv), flipped, atol=1e-6)  # the same texture placement
    assert [p.name for p in write_mesh(tmp_path / "x.glb", mesh)] == ["x.glb"]


def test_errors_name_the_fix(tmp_path):
    d, rgb = _step_scene()
    with pytest.raises(ValueError, match="texture=True needs the colours"):
        depth_to_mesh(d, texture=True)
    with pytest.raises(ValueError, match="max_faces"):
        depth_to_mesh(d, max_faces=1)
    with pytest.raises(ValueError, match="no finite positive pixel"):
        depth_to_mesh(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="mask must be"):
        depth_to_mesh(d, mask=np.ones((3, 3), bool))
    mesh = depth_to_mesh(d)
    with pytest.raises(ValueError, match="no texture image"):
        write_mesh_glb(tmp_path / "a.glb", mesh)
    with pytest.raises(ValueError, match="use .glb, .ply or .obj"):
        write_mesh(tmp_path / "a.stl", mesh)
    with pytest.raises(ValueError, match="no triangles"):
        write_mesh_glb(tmp_path / "e.glb", depth_to_mesh(np.random.default_rng(0).uniform(1, 9, (8, 8))),
                       texture=False)
    assert not list(tmp_path.iterdir())  # nothing half-written
