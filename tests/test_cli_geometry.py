"""The depth tools from the command line: mesh / align / normals on files (no model), and --mesh / --depth-range on a
generation with the tiny random models."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from test_cli import _run, assets  # noqa: F401 (assets: the tiny demo models, built once per module)

from mofo_core.app.cli import main

trimesh = pytest.importorskip("trimesh", reason="trimesh (a test dependency) reads the meshes back")


@pytest.fixture
def scene(tmp_path):
    depth = np.full((24, 32), 2.0, np.float32)
    depth[:, 16:] = 4.0  # a step edge
    np.save(tmp_path / "depth.npy", depth)
    rgb = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)  # twice the depth's size
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    return tmp_path, depth


def test_mesh_command_writes_a_textured_glb_and_a_ply(scene, capsys):
    tmp, _ = scene
    assert main(["mesh", "--depth", str(tmp / "depth.npy"), "--image", str(tmp / "rgb.png"), "--output",
                 str(tmp / "m.glb"), "--fov-deg", "60"]) == 0
    out = capsys.readouterr()
    assert out.out.split() == [str(tmp / "m.glb")] and "faces" in out.err
    (geom,) = trimesh.load(tmp / "m.glb").geometry.values()
    assert len(geom.faces) == 2 * 23 * 28 and geom.visual.material.baseColorTexture.size == (32, 24)
    z = -np.asarray(geom.vertices)[:, 2][np.asarray(geom.faces)]
    assert (np.isclose(z, 2.0).all(1) | np.isclose(z, 4.0).all(1)).all()  # nothing across the step
    assert main(["mesh", "--depth", str(tmp / "depth.npy"), "--output", str(tmp / "m.ply"), "--max-faces",
                 "300"]) == 0
    import plyfile

    assert 0 < len(plyfile.PlyData.read(tmp / "m.ply")["face"]) <= 300


def test_align_command_stated_distance_and_reference(scene, capsys):
    tmp, depth = scene
    assert main(["align", "--depth", str(tmp / "depth.npy"), "--distance", "0.75", "--at", "3,5", "--output",
                 str(tmp / "metric.npy")]) == 0
    np.testing.assert_allclose(np.load(tmp / "metric.npy"), depth * 0.75 / 2.0, rtol=1e-6)
    assert "stated distance" in capsys.readouterr().err
    rng = np.random.default_rng(1)
    rel = rng.uniform(1, 3, (24, 32)).astype(np.float32)
    ref = 4.0 * rel
    ref[rng.random(ref.shape) < 0.2] = 99.0  # outliers
    np.save(tmp / "rel.npy", rel)
    np.save(tmp / "ref.npy", ref)
    assert main(["align", "--depth", str(tmp / "rel.npy"), "--reference", str(tmp / "ref.npy"), "--loss", "tukey",
                 "--output", str(tmp / "aligned.exr"), "--report", str(tmp / "fit.json")]) == 0
    report = json.loads((tmp / "fit.json").read_text())
    assert report["scale"] == pytest.approx(4.0, rel=1e-5) and report["method"] == "tukey"
    assert "RMSE" in capsys.readouterr().err


def test_normals_command(scene, capsys):
    tmp, _ = scene
    assert main(["normals", "--depth", str(tmp / "depth.npy"), "--output", str(tmp / "n.png"), "--raw",
                 str(tmp / "n.npy")]) == 0
    img = np.asarray(Image.open(tmp / "n.png"))
    assert tuple(img[12, 5]) == (128, 128, 255)  # a wall facing the camera, ControlNet colours
    np.testing.assert_allclose(np.load(tmp / "n.npy")[12, 5], [0, 0, 1], atol=1e-6)


@pytest.mark.parametrize("args, message", [
    (["mesh", "--output", "m.stl"], "use .glb / .ply / .obj"),
    (["align", "--output", "a.npy"], "exactly one of --reference"),
    (["align", "--output", "a.npy", "--distance", "1", "--at", "x"], "--at must be X,Y"),
    (["normals", "--output", "n.png", "--raw", "n.txt"], "written as .npy"),
    (["mesh", "--output", "m.glb", "--max-faces", "1"], "max_faces"),
])
def test_bad_input_is_one_clear_error_and_writes_nothing(scene, capsys, monkeypatch, args, message):
    tmp, _ = scene
    monkeypatch.chdir(tmp)
    before = set(tmp.iterdir())
    assert main([args[0], "--depth", str(tmp / "depth.npy"), *args[1:]]) == 2
    assert message in capsys.readouterr().err and set(tmp.iterdir()) == before


def test_generation_with_mesh_and_one_depth_range_over_the_batch(assets, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    assert _run(assets, out, "joint", "--prompt", "a chair", "--resolution", "32", "--batch", "2", "--edge-rtol", "0",
                "--mesh", "--depth-range", "batch") == 0
    (run,) = list(out.iterdir())
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["depth_range"] == "batch" and len(set(meta["depth16_scale"])) == 1  # one scale for both frames
    depths = [np.load(run / f"depth_{i}.npy") for i in range(2)]
    assert meta["depth16_scale"][0] == pytest.approx(65535 / max(float(d[d > 0].max()) for d in depths))
    for i in range(2):
        (geom,) = trimesh.load(run / f"mesh_{i}.glb").geometry.values()
        assert len(geom.faces) == meta["mesh_faces"][i] > 0
