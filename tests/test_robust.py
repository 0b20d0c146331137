"""Bad input fails fast with one `error:` line (exit 2) before any weights load; nothing is lost or left behind.

Tiny random models (`mofo_core.app.demo`); every case that must fail before the expensive work runs with the weight
loaders replaced by a tripwire, so an error raised only after loading would fail the test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from mofo_core.app.cli import main
from mofo_core.app.demo import ensure_demo_assets


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    model, text = ensure_demo_assets(tmp_path_factory.mktemp("cache"))
    return model, text


def _run(model, text, out, *args, device="cpu"):
    return main([*args, "--model", str(model), "--text-encoder", str(text), "--device", device, "--dtype", "fp32",
                 "--offline", "--num-steps", "2", "--output-dir", str(out)])


@pytest.fixture
def tripwire(monkeypatch):
    """Loading any weights fails the test: the error under test must come first."""
    import mofo_core.encoders.autoencoder as ae
    import mofo_core.encoders.text_encoder as te
    import mofo_core.weights.loading as loading

    def loaded(*a, **k):
        raise AssertionError("weights were loaded before the error")

    monkeypatch.setattr(loading, "load_dit", loaded)
    monkeypatch.setattr(ae, "load_autoencoder", loaded)
    monkeypatch.setattr(te.QwenTextEmbedder, "from_pretrained", classmethod(loaded))


def _files(tmp_path):
    """Input files for the cases below, by name."""
    f = {}
    rng = np.random.default_rng(0)
    ok = rng.uniform(1, 5, (32, 32)).astype(np.float32)
    for name, arr in {"zero.npy": np.zeros((32, 32), np.float32), "inf.npy": np.full((32, 32), np.inf, np.float32),
                      "empty.npy": np.zeros((0, 0), np.float32), "stack.npy": np.stack([ok, ok + 1]),
                      "nan.npy": np.where(np.eye(32, dtype=bool), np.nan, ok).astype(np.float32)}.items():
        np.save(tmp_path / name, arr)
        f[name] = tmp_path / name
    # a .npy whose header claims to be megabytes long
    head = b"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }" + b" " * 2_000_000 + b"\n"
    (tmp_path / "bighead.npy").write_bytes(b"\x93NUMPY\x02\x00" + struct.pack("<I", len(head)) + head + bytes(16))
    f["bighead.npy"] = tmp_path / "bighead.npy"
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "photo.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "photo.png").read_bytes()[:200])
    f["cut.png"], f["photo.png"] = tmp_path / "cut.png", tmp_path / "photo.png"
    (tmp_path / "a_file").write_text("x")
    f["a_file/out"] = tmp_path / "a_file" / "out"
    return f


@pytest.mark.parametrize(
    "args,message",
    [
        (["joint", "--prompt", "x", "--cfg-scale", "nan"], "cfg (CLI --cfg-scale) must be a finite number"),
        (["joint", "--prompt", "x", "--cfg-scale", "inf"], "must be a finite number"),
        (["d2i", "--depth", "inf.npy", "--depth-cfg", "nan"], "depth_cfg (CLI --depth-cfg)"),
        (["joint", "--prompt", "x", "--log2-alpha", "2000"], "--log2-alpha"),
        (["joint", "--prompt", "x", "--seed", str(2**64)], "seed (CLI --seed) must be in [0, 2**64 - 1]"),
        (["joint", "--prompt", "x", "--seed", "-1"], "seed (CLI --seed)"),
        (["joint", "--prompt", "x", "--fov-deg", "nan"], "--fov-deg: fov_deg must be in (0, 180)"),
        (["joint", "--prompt", "x", "--fov-deg", "1e-320"], "focal length overflows"),
        (["joint", "--prompt", "x", "--edge-rtol", "-1"], "--edge-rtol"),
        (["joint", "--prompt", "x", "--device", "cuda:99"], "--device cuda:99"),
        (["joint", "--prompt", "x", "--device", "nonsense"], "is not a device name"),
        (["joint", "--prompt", "x", "--output-dir", "a_file/out"], "choose a writable --output-dir"),
        (["joint", "--prompt", "y " * 600], "--truncate-prompt"),
        (["d2i", "--depth", "zero.npy"], "no finite positive pixel"),
        (["d2i", "--depth", "inf.npy"], "no finite positive pixel"),
        (["d2i", "--depth", "empty.npy"], "empty array"),
        (["d2i", "--depth", "stack.npy"], "one map per .npy"),
        (["d2i", "--depth", "nan.npy"], "--robust-depth"),
        (["d2i", "--depth", "bighead.npy"], "cannot read"),
        (["i2d", "--image", "cut.png"], "truncated or damaged"),
        (["edit", "restyle", "--image", "photo.png", "--cfg-scale", "nan"], "must be a finite number"),
    ],
)
def test_bad_option_or_input_fails_before_loading(assets, tmp_path, capsys, tripwire, args, message):
    files = _files(tmp_path)
    args = [str(files[a]) if a in files else a for a in args]
    opts = {}
    for flag in ("--device", "--output-dir"):  # the helper's own value would win (argparse keeps the last one)
        if flag in args:
            i = args.index(flag)
            opts[flag] = args[i + 1]
            del args[i : i + 2]
    out = tmp_path / "out"
    model, text = assets
    assert _run(model, text, opts.get("--output-dir", out), *args, device=opts.get("--device", "cpu")) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and message in err.split("error:")[1], err
    assert "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


def test_decompression_bomb_is_an_error_line(assets, tmp_path, capsys, tripwire, monkeypatch):
    files = _files(tmp_path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 64 // 3)  # the 64x64 photo is over twice the limit
    assert _run(*assets, tmp_path / "o", "i2d", "--image", str(files["photo.png"])) == 2
    assert "too large to open safely" in capsys.readouterr().err


def _model_copy(model, tmp_path):
    d = tmp_path / "model"
    shutil.copytree(model, d)
    return d


@pytest.mark.parametrize(
    "config,message",
    [
        ('{"variant": "flux_rgbd_9b_v2", "theta": NaN}', '"theta" must be a finite number > 1'),
        ('{"variant": "flux_rgbd_9b_v2", "theta": 0.5}', '"theta" must be a finite number > 1'),
        ('["flux_rgbd_9b_v2"]', "got a list"),
        ('{"variant": ["flux_rgbd_9b_v2"]}', '"variant" must be a string'),
        ('{"variant": ', "config.json: not valid JSON"),
    ],
)
def test_bad_dit_config_json_is_an_error_line_naming_the_file(assets, tmp_path, capsys, tripwire, config, message):
    d = _model_copy(assets[0], tmp_path)
    (d / "config.json").write_text(config)
    assert _run(d, assets[1], tmp_path / "o", "joint", "--prompt", "x") == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and str(d / "config.json") in err, err


@pytest.mark.parametrize("damage,message", [("truncate", "truncated"), ("bomb", "does not fit the file"),
                                             ("config", "not a readable JSON file")])
def test_damaged_text_encoder_is_an_error_line(assets, tmp_path, capsys, tripwire, damage, message):
    te = tmp_path / "te"
    shutil.copytree(assets[1], te)
    st = te / "model.safetensors"
    if damage == "truncate":
        st.write_bytes(st.read_bytes()[:-64])
    elif damage == "bomb":
        st.write_bytes((2**62).to_bytes(8, "little") + b"{}")
    else:
        (te / "config.json").write_text("{")
    assert _run(assets[0], te, tmp_path / "o", "joint", "--prompt", "x") == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and message in err and "Traceback" not in err, err


def test_wrong_kind_of_tensor_is_refused_at_load(assets, tmp_path, capsys, tripwire):
    from safetensors.torch import load_file, save_file

    d = _model_copy(assets[0], tmp_path)
    sd = load_file(d / "model.safetensors")
    key = sorted(sd)[0]
    sd[key] = sd[key].to(torch.int32)
    save_file(sd, d / "model.safetensors")
    assert _run(d, assets[1], tmp_path / "o", "joint", "--prompt", "x") == 2
    assert f"{key} (I32)" in capsys.readouterr().err


def test_model_file_is_accepted_and_nan_depth_works_with_robust(assets, tmp_path, capsys):
    depth = np.random.default_rng(1).uniform(1, 4, (32, 48)).astype(np.float32)
    depth[3:9, 5:7] = np.nan
    np.save(tmp_path / "holes.npy", depth)
    out = tmp_path / "o"
    rc = _run(assets[0] / "model.safetensors", assets[1], out, "d2i", "--prompt", "x", "--depth",
              str(tmp_path / "holes.npy"), "--robust-depth", "--max-points", "100", "--edge-rtol", "0")
    assert rc == 0, capsys.readouterr().err
    (run,) = out.iterdir()
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["robust_depth"] is True and meta["point_count"] == 100 and meta["point_cloud"]["max_points"] == 100
    assert np.isfinite(np.load(run / "depth.npy")).all()


def test_missing_weights_are_one_message_naming_every_file_and_option(tmp_path, capsys, monkeypatch):
    import mofo_core.weights.download as weights

    monkeypatch.setattr(weights, "hub_reachable", lambda timeout=3.0: False)  # as with no network
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    rc = main(["joint", "--prompt", "x", "--device", "cpu", "--output-dir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("error:") == 1, err
    for needle in ("model.safetensors", "ae_encoder.safetensors", "ae_decoder.safetensors", "Qwen3-8B", "--model",
                   "--text-encoder", "no network", "hf download"):
        assert needle in err, (needle, err)
    assert "huggingface-cli" not in err


def test_hub_probe_is_quick_and_false_without_a_server(monkeypatch):
    from mofo_core.weights.download import hub_reachable

    for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    assert hub_reachable(timeout=1.0) is False


def test_parallel_runs_with_one_name_lose_nothing(tmp_path, monkeypatch):
    import mofo_core.app.outputs as outputs
    from mofo_core.app.pipeline import GenerationResult

    monkeypatch.setattr(outputs, "run_name", lambda mode, prompt: "20260101_000000_joint_same")
    n = 8
    barrier, results, errors = threading.Barrier(n), [None] * n, []

    def one(i):
        depth = np.full((16, 16), 1.0 + i, np.float32)
        res = GenerationResult(rgb=np.full((1, 16, 16, 3), i, np.uint8), depth=depth[None], rgb_latent=torch.zeros(1),
                               depth_tokens=torch.zeros(1), metadata={"mode": "joint", "prompt": "same", "i": i})
        barrier.wait()
        try:
            results[i] = outputs.save_run(tmp_path, res, exr=False, edge_rtol=0)["run_dir"]
        except Exception as e:  # recorded, asserted below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(results)) == n
    names = sorted(p.name for p in tmp_path.iterdir())
    base = "20260101_000000_joint_same"
    assert names == sorted([base] + [f"{base}_{k}" for k in range(2, n + 1)])
    seen = sorted(json.loads((r / "metadata.json").read_text())["i"] for r in results)
    assert seen == list(range(n))  # every run's own files, none overwritten


def test_sigterm_while_saving_leaves_nothing(assets, tmp_path, monkeypatch, capsys):
    import mofo_core.app.outputs as outputs

    def killed(*a, **k):
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(outputs, "write_glb", killed)
    out = tmp_path / "o"
    before = signal.getsignal(signal.SIGTERM)
    assert _run(*assets, out, "joint", "--prompt", "x", "--resolution", "32", "--edge-rtol", "0") == 143
    assert "terminated: nothing was written" in capsys.readouterr().err
    assert list(out.iterdir()) == []  # no run folder, no hidden .partial folder
    assert signal.getsignal(signal.SIGTERM) == before  # main() restores the caller's handler


def test_ctrl_c_during_start_up_is_clean(tmp_path, monkeypatch, capsys):
    import mofo_core.app.cli as cli

    def interrupted(spec):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_check_device", interrupted)
    assert main(["joint", "--prompt", "x", "--output-dir", str(tmp_path / "o")]) == 130
    err = capsys.readouterr().err
    assert err.strip() == "interrupted: nothing was written"


def test_help_shows_defaults_per_mode_and_version(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip().startswith("python -m mofo_core 0.")
    with pytest.raises(SystemExit):
        main(["i2d", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 50)" in text and "(default: 1200000)" in text and "(default: 1.0)" in text
    assert "required for joint" not in text and "optional description of the image" in text
