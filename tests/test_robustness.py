"""Bad input fails before the work, garbage is never saved as a result, and no finished result is lost."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from mofo_core.app.cli import main
from mofo_core.app.demo import ensure_demo_assets
from mofo_core.app.outputs import save_run
from mofo_core.app.pipeline import GenerateParams, GenerationResult


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    model, text = ensure_demo_assets(tmp_path_factory.mktemp("cache"))
    return model, text


def _cli(model, text, out, *args):
    return main(["joint", "--prompt", "a red chair", "--model", str(model), "--text-encoder", str(text), "--device",
                 "cpu", "--dtype", "fp32", "--offline", "--num-steps", "2", "--output-dir", str(out), *args])


@pytest.mark.parametrize("args, says", [
    (["--cfg-scale", "nan"], r"cfg \(CLI --cfg-scale\) must be a finite number"),
    (["--depth-cfg", "inf"], r"depth_cfg \(CLI --depth-cfg\) must be a finite number"),
    (["--log2-alpha", "2000"], r"--log2-alpha\) must be a finite number in \[-20, 20\], got 2000.0"),
    (["--seed", str(2**64)], r"seed \(CLI --seed\) must be in \[0, 2\*\*64 - 1\]"),
])
def test_bad_guidance_and_seed_fail_up_front_and_write_nothing(assets, tmp_path, capsys, args, says):
    model, text = assets
    assert _cli(model, text, tmp_path / "out", *args) == 2
    err = capsys.readouterr().err
    assert "error:" in err and __import__("re").search(says, err), err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_nan_weights_are_an_error_not_a_black_image(assets, tmp_path, capsys):
    model, text = assets
    bad = tmp_path / "nan_model"
    bad.mkdir()
    for f in model.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    sd = load_file(bad / "model.safetensors")
    key = next(k for k in sd if k.endswith("img_in.weight"))
    sd[key] = sd[key] * float("nan")
    save_file(sd, bad / "model.safetensors")
    assert _cli(bad, text, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "non-finite" in err and "nothing was saved" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_runs_finishing_at_once_with_the_same_name_all_keep_their_result(tmp_path):
    rng = np.random.default_rng(0)
    depth = rng.uniform(1, 2, (16, 16)).astype(np.float32)
    result = GenerationResult(rgb=rng.integers(0, 255, (1, 16, 16, 3), dtype=np.uint8), depth=depth[None],
                              rgb_latent=None, depth_tokens=None, metadata={"mode": "joint", "prompt": "same"})
    dirs, errors = [], []
    start = threading.Barrier(8)

    def one():
        try:
            start.wait()
            dirs.append(save_run(tmp_path, result, exr=False)["run_dir"])
        except BaseException as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(set(dirs)) == 8 and all((d / "metadata.json").is_file() and (d / "cloud.ply").is_file() for d in dirs)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no debris


def test_params_validate_bounds():
    GenerateParams(prompt="x", seed=2**64 - 1).resolved().validate()
    with pytest.raises(ValueError, match="seed"):
        GenerateParams(prompt="x", seed=-1).resolved().validate()


def test_text_encoder_loads_safetensors_only(tmp_path):
    import shutil

    from helpers import FIXTURES

    from mofo_core.encoders.text_encoder import QwenTextEmbedder
    from mofo_core.errors import CheckpointError

    te = tmp_path / "te"
    shutil.copytree(FIXTURES / "tiny_qwen3", te)
    (te / "pytorch_model.bin").write_bytes(b"not a pickle anyone should load")  # ignored beside safetensors
    assert QwenTextEmbedder.from_pretrained(te, dtype=__import__("torch").float32).hidden_size > 0
    data = (te / "model.safetensors").read_bytes()
    (te / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.*download the text encoder again"):
        QwenTextEmbedder.from_pretrained(te)
    (te / "model.safetensors").unlink()
    with pytest.raises(ValueError, match=r"no \.safetensors weights \(only pickle files: \['pytorch_model.bin'\]\)"):
        QwenTextEmbedder.from_pretrained(te)


@pytest.mark.parametrize("args, says", [
    (["--fov-deg", "nan"], r"--fov-deg: fov_deg must be in \(0, 180\)"),
    (["--edge-rtol", "-1"], "--edge-rtol must be a finite number >= 0"),
    (["--device", "cuda:7"], r"--device cuda:7: this machine has .*use --device cpu"),
])
def test_cheap_cli_checks_fail_before_loading(assets, tmp_path, capsys, monkeypatch, args, says):
    import mofo_core.app.pipeline as pl

    def never(*a, **k):
        raise AssertionError("weights were resolved before the cheap checks")

    monkeypatch.setattr(pl.MofoPipeline, "from_pretrained", never)
    model, text = assets
    assert _cli(model, text, tmp_path / "out", *args) == 2
    assert __import__("re").search(says, capsys.readouterr().err)


def test_unwritable_output_folder_is_named_before_loading(assets, tmp_path, capsys):
    model, text = assets
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert _cli(model, text, blocker / "out") == 2
    assert "cannot write to the output folder" in capsys.readouterr().err


def test_sigterm_leaves_no_half_written_run(assets, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    model, text = assets
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "mofo_core", "joint", "--prompt", "a chair", "--model", str(model), "--text-encoder",
           str(text), "--device", "cpu", "--dtype", "fp32", "--offline", "--num-steps", "400", "--output-dir", str(out)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seen = ""
    deadline = time.time() + 60
    while "step" not in seen and time.time() < deadline:  # the sampler's progress bar has started
        seen += proc.stderr.read(1)
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(60)
    assert rc == 143, (rc, seen[-500:])  # 128 + SIGTERM
    assert not out.exists() or not [p for p in out.iterdir()]
