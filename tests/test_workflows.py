"""The shipped workflows, without ComfyUI: up to date with their generator, and what the frontend needs to open
them cleanly (tests/e2e checks the same in a real browser)."""

from __future__ import annotations

import importlib.util
import json

import pytest
from helpers import ROOT

WORKFLOWS = sorted((ROOT / "workflows").glob("*.json"))
COMFY_STOCK_INPUTS = {"example.png"}  # ComfyUI ships input/example.png


def _generator():
    spec = importlib.util.spec_from_file_location("make_workflows", ROOT / "tools" / "make_workflows.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_workflows_and_example_depth_are_what_the_generator_writes(tmp_path, monkeypatch):
    gen = _generator()
    monkeypatch.setattr(gen, "OUT", tmp_path)
    for make in gen.WORKFLOW_MAKERS:
        make()
    assert sorted(p.name for p in tmp_path.glob("*.json")) == [p.name for p in WORKFLOWS]
    for p in WORKFLOWS:
        assert json.loads((tmp_path / p.name).read_text()) == json.loads(p.read_text()), \
            f"{p.name} is stale: run python tools/make_workflows.py"
    gen.write_depth_example(tmp_path / "depth.png")
    assert (tmp_path / "depth.png").read_bytes() == gen.DEPTH_EXAMPLE.read_bytes()
    gen.write_edit_example(tmp_path / "edit.png")
    assert (tmp_path / "edit.png").read_bytes() == gen.EDIT_EXAMPLE.read_bytes()


@pytest.mark.parametrize("wf", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_workflow_opens_without_missing_files(wf):
    doc = json.loads(wf.read_text())
    shipped = {p.name for p in (ROOT / "assets").glob("*.png")}
    for node in doc["nodes"]:
        # the frontend matches properties.models by name against the widget value, and downloads into the
        # models/ folder named by `directory`
        for m in node["properties"].get("models", []):
            assert m["name"] in node["widgets_values"], (wf.name, node["type"], m)
            assert "/" not in m["directory"] and m["url"].startswith("https://huggingface.co/"), m
        if node["type"] == "LoadImage":
            assert node["widgets_values"][0] in COMFY_STOCK_INPUTS | shipped, (wf.name, node["widgets_values"])
    # the template browser shows workflows/<name>.jpg (a 404 in the browser console otherwise)
    assert wf.with_suffix(".jpg").is_file(), f"no thumbnail {wf.with_suffix('.jpg').name}"




def test_edit_example_is_aligned_with_the_depth_example_and_its_alpha_is_the_ball():
    import numpy as np
    from PIL import Image

    rgba = np.asarray(Image.open(ROOT / "assets" / "mofo_edit_example.png"))
    depth = np.asarray(Image.open(ROOT / "assets" / "mofo_depth_example.png"))
    assert rgba.shape == (512, 512, 4) and depth.shape == (512, 512)
    hole = rgba[..., 3] == 0  # LoadImage: MASK = 1 - alpha
    assert 0.02 < hole.mean() < 0.2 and depth[hole].mean() > depth[~hole].mean()  # the ball is near (bright)
