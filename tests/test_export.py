"""PLY / GLB writers, read back with independent libraries (plyfile, trimesh, pygltflib)."""

from __future__ import annotations

import json
import struct

import numpy as np
import plyfile  # test-only readers (pyproject [test] extra), independent of our writers
import pygltflib
import pytest
import trimesh

from mofo_core.geometry import cloud_export as export
from mofo_core.geometry.cloud_export import write_glb, write_ply


@pytest.fixture
def cloud():
    rng = np.random.default_rng(7)
    pts = (rng.normal(size=(257, 3)) * [1.0, 2.0, 3.0] - [0, 0, 5]).astype(np.float32)
    cols = rng.integers(0, 256, size=(257, 3), dtype=np.uint8)
    return pts, cols


# --------------------------------------------------------------------------------------------- PLY


def test_ply_roundtrip_plyfile(tmp_path, cloud):
    pts, cols = cloud
    out = write_ply(tmp_path / "c.ply", pts, cols)
    assert out == tmp_path / "c.ply"
    ply = plyfile.PlyData.read(str(out))
    assert ply.text is False and ply.byte_order == "<"
    v = ply["vertex"]
    assert v.count == 257
    assert [p.name for p in v.properties] == ["x", "y", "z", "red", "green", "blue"]
    assert v.data.dtype == np.dtype(
        [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")]
    )
    np.testing.assert_array_equal(np.stack([v["x"], v["y"], v["z"]], 1), pts)
    np.testing.assert_array_equal(np.stack([v["red"], v["green"], v["blue"]], 1), cols)
    assert any("+Y up" in c and "-Z forward" in c for c in ply.comments)
    header = out.read_bytes().split(b"end_header\n")[0].decode()
    assert "alpha" not in header and "f_dc" not in header  # plain RGB, no 3DGS names
    assert out.stat().st_size == len(header) + len("end_header\n") + 257 * 15


def test_ply_roundtrip_trimesh(tmp_path, cloud):
    pts, cols = cloud
    pc = trimesh.load(write_ply(tmp_path / "c.ply", pts, cols), process=False)
    assert isinstance(pc, trimesh.PointCloud)
    np.testing.assert_array_equal(np.asarray(pc.vertices, np.float32), pts)
    np.testing.assert_array_equal(np.asarray(pc.colors)[:, :3], cols)


def test_ply_without_colours(tmp_path, cloud):
    pts, _ = cloud
    v = plyfile.PlyData.read(str(write_ply(tmp_path / "c.ply", pts.astype(np.float64))))["vertex"]
    assert [p.name for p in v.properties] == ["x", "y", "z"]
    np.testing.assert_array_equal(np.stack([v["x"], v["y"], v["z"]], 1), pts)


# --------------------------------------------------------------------------------------------- GLB


def _glb_chunks(data: bytes) -> tuple[dict, bytes]:
    magic, version, length = struct.unpack_from("<III", data, 0)
    assert (magic, version, length) == (0x46546C67, 2, len(data))
    jlen, jtype = struct.unpack_from("<II", data, 12)
    assert jtype == 0x4E4F534A and jlen % 4 == 0
    blen, btype = struct.unpack_from("<II", data, 20 + jlen)
    assert btype == 0x004E4942 and blen % 4 == 0 and 28 + jlen + blen == len(data)
    return json.loads(data[20 : 20 + jlen]), data[28 + jlen :]


def test_glb_structure_pygltflib(tmp_path, cloud):
    pts, cols = cloud
    out = write_glb(tmp_path / "c.glb", pts, cols)
    g = pygltflib.GLTF2().load(str(out))
    assert g.asset.version == "2.0" and g.asset.generator
    assert g.scenes[g.scene].nodes == [0] and g.nodes[0].mesh == 0
    (prim,) = g.meshes[0].primitives
    assert prim.mode == pygltflib.POINTS
    pos, col = g.accessors[prim.attributes.POSITION], g.accessors[prim.attributes.COLOR_0]
    assert (pos.componentType, pos.type, pos.count) == (pygltflib.FLOAT, "VEC3", 257)
    assert (col.componentType, col.type, col.count, col.normalized) == (pygltflib.UNSIGNED_BYTE, "VEC4", 257, True)
    np.testing.assert_array_equal(np.float32(pos.min), pts.min(0))
    np.testing.assert_array_equal(np.float32(pos.max), pts.max(0))
    blob = g.binary_blob()
    for acc, elem in ((pos, 12), (col, 4)):
        view = g.bufferViews[acc.bufferView]
        assert view.byteOffset % 4 == 0 and (view.byteStride or elem) % 4 == 0  # glTF alignment rules
        assert view.byteLength == 257 * elem and view.target == pygltflib.ARRAY_BUFFER
    pview, cview = g.bufferViews[pos.bufferView], g.bufferViews[col.bufferView]
    got_pts = np.frombuffer(blob, "<f4", 257 * 3, pview.byteOffset).reshape(-1, 3)
    got_rgba = np.frombuffer(blob, np.uint8, 257 * 4, cview.byteOffset).reshape(-1, 4)
    np.testing.assert_array_equal(got_pts, pts)
    np.testing.assert_array_equal(got_rgba[:, :3], cols)
    assert (got_rgba[:, 3] == 255).all()
    doc, _ = _glb_chunks(out.read_bytes())
    assert g.buffers[0].byteLength == len(blob) == doc["buffers"][0]["byteLength"]


def test_glb_roundtrip_trimesh(tmp_path, cloud):
    pts, cols = cloud
    scene = trimesh.load(write_glb(tmp_path / "c.glb", pts, cols), process=False)
    (geom,) = scene.geometry.values()
    assert isinstance(geom, trimesh.PointCloud)
    np.testing.assert_array_equal(np.asarray(geom.vertices, np.float32), pts)
    np.testing.assert_array_equal(np.asarray(geom.colors)[:, :3], cols)


def test_glb_without_colours_and_padding(tmp_path):
    pts = np.array([[0.0, 1.0, -2.0]], np.float32)  # 12-byte blob, odd-sized JSON: both chunks padded
    out = write_glb(tmp_path / "one.glb", pts)
    doc, blob = _glb_chunks(out.read_bytes())
    attrs = doc["meshes"][0]["primitives"][0]["attributes"]
    assert attrs == {"POSITION": 0}
    np.testing.assert_array_equal(np.frombuffer(blob[:12], "<f4"), pts[0])
    assert len(out.read_bytes()) % 4 == 0


def test_empty_cloud_gives_valid_files(tmp_path):
    pts, cols = np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8)
    v = plyfile.PlyData.read(str(write_ply(tmp_path / "e.ply", pts, cols)))["vertex"]
    assert v.count == 0 and [p.name for p in v.properties][-1] == "blue"
    data = write_glb(tmp_path / "e.glb", pts, cols).read_bytes()
    magic, version, length = struct.unpack_from("<III", data, 0)
    jlen, jtype = struct.unpack_from("<II", data, 12)
    assert (magic, version, length, jtype) == (0x46546C67, 2, len(data), 0x4E4F534A) and 20 + jlen == len(data)
    doc = json.loads(data[20:])
    assert "meshes" not in doc and "buffers" not in doc and "nodes" not in doc["scenes"][doc["scene"]]
    g = pygltflib.GLTF2().load(str(tmp_path / "e.glb"))
    assert g.meshes == [] and g.accessors == []


# --------------------------------------------------------------------------------------------- errors, atomicity


@pytest.mark.parametrize("writer", [write_ply, write_glb])
@pytest.mark.parametrize(
    ("points", "colors", "match"),
    [
        (np.zeros((4, 2)), None, r"\(N, 3\)"),
        (np.array([[0.0, np.nan, 1.0]]), None, "NaN or inf"),
        (np.zeros((4, 3)), np.zeros((3, 3), np.uint8), "one RGB triple per point"),
        (np.zeros((4, 3)), np.zeros((4, 3), np.float32), "astype"),
        (np.zeros((4, 3)), np.zeros((4, 4), np.uint8), "colors must have shape"),
    ],
)
def test_bad_inputs_raise_and_write_nothing(tmp_path, writer, points, colors, match):
    with pytest.raises(ValueError, match=match):
        writer(tmp_path / "x.out", points, colors)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("writer", [write_ply, write_glb])
def test_missing_folder(tmp_path, writer):
    with pytest.raises(ValueError, match="create it first"):
        writer(tmp_path / "nope" / "x.out", np.zeros((2, 3)))


@pytest.mark.parametrize("writer", [write_ply, write_glb])
def test_failed_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch, writer, cloud):
    target = tmp_path / "c.bin"
    target.write_bytes(b"old")

    def boom(*_args):
        raise OSError("disk full")

    monkeypatch.setattr(export.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        writer(target, *cloud)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["c.bin"]


@pytest.mark.parametrize("writer", [write_ply, write_glb])
def test_overwrites_existing_file(tmp_path, writer, cloud):
    target = tmp_path / "c.bin"
    target.write_bytes(b"old")
    writer(target, *cloud)
    assert target.stat().st_size > 257 * 12
    assert [p.name for p in tmp_path.iterdir()] == ["c.bin"]
