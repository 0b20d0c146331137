"""Batch generation: the job file checked up front, run folders, resume, retries; on Ray with 2 CPU workers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mofo_core.app.batch import STATE_FILE, load_jobs
from mofo_core.app.cli import main
from mofo_core.app.demo import ensure_demo_assets

ROOT = Path(__file__).resolve().parents[1]
GOOD = {"mode": "joint", "prompt": "a red chair", "seed": 1, "size": [48, 32], "steps": 2}


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    model, text = ensure_demo_assets(tmp_path_factory.mktemp("cache"))
    return str(model), str(text)


def _write(path: Path, *lines) -> Path:
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


def _args(assets, jobs, out, *extra):
    model, text = assets
    return ["batch", str(jobs), "--model", model, "--text-encoder", text, "--offline", "--dtype", "fp32",
            "--output-dir", str(out), "--edge-rtol", "0", "--no-exr", *extra]


def _runs(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir())


@pytest.mark.parametrize(
    "bad, message",
    [
        ('{"mode": "joint", "prompt": ', "Expecting value"),
        ({**GOOD, "colour": "red"}, "unknown key 'colour'"),
        ({**GOOD, "steps": "2"}, "steps must be int"),
        ({**GOOD, "seed": True}, "seed must be int"),
        ({**GOOD, "size": [50, 32]}, "width 50 is not a positive multiple of 16"),
        ({**GOOD, "size": 32, "width": 32}, "size or width / height"),
        ({**GOOD, "mode": "sketch"}, "mode must be one of"),
        ({**GOOD, "prompt": ""}, "needs a prompt"),
        ({"mode": "i2d"}, "needs 'image'"),
        ({"mode": "i2d", "image": "missing.png"}, "does not exist"),
        ({**GOOD, "image": "img.png"}, "takes no 'image'"),
        ({**GOOD, "cfg": float("nan")}, "finite"),
        (GOOD, "also line 1"),
        ([1, 2], "JSON object"),
    ],
)
def test_a_bad_line_is_one_error_naming_its_line_before_anything_loads(tmp_path, capsys, bad, message):
    jobs = _write(tmp_path / "jobs.jsonl", GOOD, "", bad if isinstance(bad, str) else json.dumps(bad))
    with pytest.raises(ValueError, match=message) as e:
        load_jobs(jobs)
    assert "line 3" in str(e.value)
    # through the command: exit 2, one error line, no model loaded (the model path does not even exist), no output
    code = main(["batch", str(jobs), "--model", str(tmp_path / "no_model"), "--local", "--output-dir",
                 str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("error:") == 1 and "line 3" in err
    assert not (tmp_path / "out").exists()


def test_a_worker_that_cannot_load_the_model_is_one_error_and_writes_nothing(tmp_path, capsys):
    jobs = _write(tmp_path / "jobs.jsonl", GOOD)
    out = tmp_path / "out"
    assert main(["batch", str(jobs), "--model", str(tmp_path / "no_model"), "--offline", "--local", "--output-dir",
                 str(out)]) == 2
    assert "missing weights" in capsys.readouterr().err and not out.exists()


def test_inputs_are_checked_up_front_and_ids_are_stable(tmp_path):
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "img.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    a = load_jobs(_write(tmp_path / "a.jsonl", GOOD, {"mode": "i2d", "image": "img.png", "size": 32}))
    b = load_jobs(_write(tmp_path / "b.jsonl", "# a comment", {"mode": "i2d", "image": "img.png", "size": 32}, GOOD))
    assert {j.id for j in a} == {j.id for j in b}  # the id is the content's, not the line's
    assert a[1].image == str(tmp_path / "img.png")
    with pytest.raises(ValueError, match="line 1"):
        load_jobs(_write(tmp_path / "c.jsonl", {"mode": "i2d", "image": "broken.png"}))
    with pytest.raises(ValueError, match="holds no job"):
        load_jobs(_write(tmp_path / "d.jsonl", "# nothing"))


def test_local_batch_writes_run_folders_resumes_and_retries(assets, tmp_path, capsys, monkeypatch):
    from mofo_core.app.pipeline import MofoPipeline

    depth = (1.0 + np.random.default_rng(0).random((32, 48))).astype(np.float32)
    np.save(tmp_path / "d.npy", depth)
    flaky = {"mode": "joint", "prompt": "flaky", "steps": 2, "size": 32}
    broken = {"mode": "joint", "prompt": "broken", "steps": 2, "size": 32}
    night = {"mode": "d2i", "prompt": "night", "depth": "d.npy", "steps": 2, "size": [48, 32], "id": "night"}
    jobs = _write(tmp_path / "jobs.jsonl", GOOD, night, flaky, broken)
    generate, calls = MofoPipeline.generate, []

    def failing(self, params, **kw):  # "broken" always fails, "flaky" fails on its first try only
        calls.append(params.prompt)
        if params.prompt == "broken" or (params.prompt == "flaky" and calls.count("flaky") == 1):
            raise RuntimeError(f"CUDA out of memory ({params.prompt})")
        return generate(self, params, **kw)

    monkeypatch.setattr(MofoPipeline, "generate", failing)
    out = tmp_path / "out"
    assert main(_args(assets, jobs, out, "--local", "--device", "cpu", "--retries", "1")) == 1
    err = capsys.readouterr().err
    assert "FAILED after 2 tries" in err and "broken" in err
    state = json.loads((out / STATE_FILE).read_text())["jobs"]
    by_line = {rec["line"]: rec for rec in state.values()}
    assert [by_line[n]["status"] for n in (1, 2, 3, 4)] == ["done", "done", "done", "failed"]
    assert by_line[3]["attempt"] == 2 and by_line[4]["errors"] == ["RuntimeError: CUDA out of memory (broken)"] * 2
    runs = _runs(out)
    assert len(runs) == 3 and {r["run_dir"] for r in state.values() if r["status"] == "done"} == {str(r) for r in runs}
    meta = json.loads((Path(state["night"]["run_dir"]) / "metadata.json").read_text())
    assert meta["batch_job"] == "night" and meta["mode"] == "d2i" and meta["input_size"] == [32, 48]

    # again: the three finished jobs are skipped, only the failed one runs (and now succeeds)
    monkeypatch.setattr(MofoPipeline, "generate", generate)
    calls.clear()
    assert main(_args(assets, jobs, out, "--local", "--device", "cpu")) == 0
    assert "3 of 4 jobs already done" in capsys.readouterr().err
    state = json.loads((out / STATE_FILE).read_text())["jobs"]
    assert all(r["status"] == "done" for r in state.values()) and len(_runs(out)) == 4
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_batch_on_a_local_ray_cluster_of_two_cpu_workers(assets, tmp_path):
    pytest.importorskip("ray", reason="Ray is the optional extra `batch` (in `test` for CI)")
    long = {"mode": "joint", "prompt": "x" * 600, "steps": 2, "size": 32}  # over 512 tokens: fails in the worker
    jobs = _write(tmp_path / "jobs.jsonl", *({**GOOD, "seed": s} for s in range(4)), long)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "mofo_core", *_args(assets, jobs, out, "--cpu-workers", "2",
                                                                     "--retries", "1")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "2 workers" in proc.stderr and "[4/5]" in proc.stderr
    state = json.loads((out / STATE_FILE).read_text())["jobs"]
    done = [r for r in state.values() if r["status"] == "done"]
    (failed,) = [r for r in state.values() if r["status"] == "failed"]
    assert len(done) == 4 and len(_runs(out)) == 4
    assert len({r["worker"] for r in done}) == 2  # both workers ran jobs
    assert failed["line"] == 5 and failed["attempt"] == 2 and "PromptTooLongError" in failed["error"]
