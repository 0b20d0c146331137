"""CLI and pipeline end to end on tiny random models: outputs, and bad input that must write nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from mofo_core.app.cli import main
from mofo_core.app.demo import ensure_demo_assets


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    model, text = ensure_demo_assets(tmp_path_factory.mktemp("cache"))
    return str(model), str(text)


def _run(assets, out, *args):
    model, text = assets
    return main(
        [
            *args,
            "--model",
            model,
            "--text-encoder",
            text,
            "--device",
            "cpu",
            "--dtype",
            "fp32",
            "--offline",
            "--num-steps",
            "2",
            "--output-dir",
            str(out),
        ]
    )


def test_joint_writes_every_file_and_full_metadata(assets, tmp_path, capsys):
    assert (
        _run(
            assets,
            tmp_path,
            "joint",
            "--prompt",
            "a red chair",
            "--width",
            "48",
            "--height",
            "32",
            "--batch",
            "2",
            "--refine-depth",
            "--edge-rtol",
            "0",
        )
        == 0
    )
    (run,) = list(tmp_path.iterdir())
    names = {p.name for p in run.iterdir()}
    for base in ("rgb", "depth", "depth16", "depth_magma", "cloud"):
        assert any(n.startswith(base + "_1") for n in names), base
    meta = json.loads((run / "metadata.json").read_text())
    for key in (
        "mode",
        "variant",
        "steps",
        "cfg",
        "depth_cfg",
        "log2_alpha",
        "refine_depth",
        "seed",
        "width",
        "height",
        "text_encoder",
        "package_version",
        "depth16_scale",
        "point_count",
    ):
        assert key in meta, key
    assert meta["refine_depth"] is True and meta["variant"] == "flux_rgbd_9b_v2"
    assert np.load(run / "depth_0.npy").shape == (32, 48)
    assert str(run / "rgb_0.png") in capsys.readouterr().out  # prints the written paths


def test_i2d_returns_depth_at_the_input_size(assets, tmp_path):
    img = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (37, 70, 3), dtype=np.uint8)).save(img)
    out = tmp_path / "out"
    assert _run(assets, out, "i2d", "--image", str(img), "--resolution", "32") == 0
    (run,) = list(out.iterdir())
    assert np.load(run / "depth.npy").shape == (37, 70)
    assert np.array_equal(np.asarray(Image.open(run / "rgb.png")), np.asarray(Image.open(img)))


def test_d2i_keeps_the_depth_aspect(assets, tmp_path):
    d = tmp_path / "d.npy"
    np.save(d, np.linspace(1, 5, 64 * 128, dtype=np.float32).reshape(64, 128))
    out = tmp_path / "out"
    assert _run(assets, out, "d2i", "--depth", str(d), "--prompt", "x") == 0
    (run,) = list(out.iterdir())
    meta = json.loads((run / "metadata.json").read_text())
    assert (meta["height"], meta["width"]) == (256, 512)


@pytest.mark.parametrize(
    "args,message",
    [
        (["joint", "--prompt", ""], "needs a prompt"),
        (["joint", "--prompt", "x", "--width", "50"], "not a positive multiple of 16"),
        (["joint", "--prompt", "y" * 600], "tokens with the chat template"),
        (["i2d", "--image", "MISSING.png"], "does not exist"),
        (["i2d", "--image", "BAD.png"], "not a readable image"),
        (["d2i", "--prompt", "x", "--depth", "EIGHT.png"], "8-bit"),
        (["d2i", "--prompt", "x", "--depth", "NAN.npy"], "NaN"),
        (["d2i", "--prompt", "x", "--depth", "RGB.png"], "channel"),
    ],
)
def test_bad_input_is_one_clear_error_and_writes_nothing(assets, tmp_path, capsys, args, message):
    (tmp_path / "BAD.png").write_bytes(b"not an image")
    Image.fromarray(np.zeros((32, 32), np.uint8) + 7).save(tmp_path / "EIGHT.png")
    rgb = np.zeros((32, 32, 3), np.uint16)
    rgb[..., 0] = 1000
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "RGB.png")
    nan = np.ones((32, 32), np.float32)
    nan[3, 3] = np.nan
    np.save(tmp_path / "NAN.npy", nan)
    files = {"BAD.png", "EIGHT.png", "RGB.png", "NAN.npy"}
    args = [str(tmp_path / a) if a in files else a for a in args]
    out = tmp_path / "out"
    assert _run(assets, out, *args) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and message in err.split("error:")[1], err
    assert not out.exists() or not any(out.iterdir())


def test_missing_weights_offline_names_the_files(tmp_path, capsys):
    rc = main(
        [
            "joint",
            "--prompt",
            "x",
            "--offline",
            "--model",
            "bartduis/modality_forcing",
            "--device",
            "cpu",
            "--output-dir",
            str(tmp_path / "o"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "model.safetensors" in err and "offline" in err
    assert not (tmp_path / "o").exists()


def test_interrupted_generation_leaves_no_run_folder(assets, tmp_path, monkeypatch):
    import mofo_core.app.pipeline as pipe

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipe, "sample", boom)
    assert _run(assets, tmp_path / "o", "joint", "--prompt", "x", "--resolution", "32") == 130
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
