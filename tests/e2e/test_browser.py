"""The pack in ComfyUI's own web frontend, in a real browser: every shipped workflow opens cleanly, the text ->
RGB + depth + point cloud workflow runs and shows its images and its point cloud, and a warning the pack logs
reaches the person (a toast, a mark on the node, the node's progress text).

Needs a ComfyUI checkout in COMFYUI_DIR (run by COMFYUI_PYTHON; it brings its own frontend package), Debian's
Chromium (/usr/bin/chromium) and Playwright for Python; `bash tests/e2e/install.sh` installs the last two. Skips,
saying which is missing, otherwise (as in CI).

    COMFYUI_DIR=/path/to/ComfyUI COMFYUI_PYTHON=/path/to/venv/bin/python pytest -q tests/e2e -rs

What it does: starts ComfyUI headless on 127.0.0.1 with this pack and tiny random checkpoints (tests/integration/
comfy_harness.py) under every file name the workflows reference, as a user's install would have them; drives
Chromium headless through Playwright (conftest.py; the page object is page.py, the JavaScript it runs in the page
page.js); opens each workflow from the template browser (the text workflow also by drag-and-drop of the file onto
the canvas) and asserts: no missing-node / missing-model / missing-input error, every combo value valid, no node
smaller than its widgets need, no overlapping nodes or groups, group titles that fit; queues each one (CLIPLoader
swapped for Mofo Text Encoder Loader with the tiny Hugging Face Qwen3, since ComfyUI's native Qwen3-8B cannot be
made tiny; small sizes, 2 steps) and asserts the server accepts and finishes it; for the text workflow, that the
RGB (SaveImage) and depth (PreviewImage) previews arrive and the 3D viewer (Preview3D fed by the pack's ply_path)
draws the point cloud. Browser console errors that come from the pack fail the test; the others are listed in the
report.

Screenshots go to $MOFO_E2E_OUT (default tests/e2e/out/). With MOFO_E2E_WRITE_DOCS=1 the run also writes the
README's screenshots (docs/*.png) and the template browser's thumbnails (workflows/<name>.jpg) through
tools/doc_images.py.
"""

from __future__ import annotations

import importlib.util
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from page import OUT, PACK_MARKERS, ROOT, TEXT_WF, UI, VIEWPORT, WORKFLOWS, WRITE_DOCS, ch, from_pack, saved_sizes

TEXT_PATH = ROOT / "workflows" / f"{TEXT_WF}.json"
TOAST = ".p-toast-message, [data-testid='toast']"  # a toast: PrimeVue's in frontend 1.47, the Toaster's in 1.5x
LONG_PROMPT = "a long prompt " * 400  # ~1200 tokens with the tiny Qwen3 tokenizer; the model reads 512


def _doc_images():
    spec = importlib.util.spec_from_file_location("doc_images", ROOT / "tools" / "doc_images.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# -- helpers -------------------------------------------------------------------------------------------------------
def _assert_opens_cleanly(ui: UI, wf: Path, shot_name: str):
    state = ui.errors_shown()
    assert not state["overlay"] and not state["errorGroups"], \
        f"{wf.name}: the frontend reports {state['errorGroups']}:\n{state.get('details', '')}"
    assert not state["dialogs"], f"{wf.name}: dialog open after loading: {state['dialogs']}"
    layout = ui.js("layout", saved_sizes(wf))
    problems = [f"{k}: {p}" for k, v in layout.items() for p in v]
    assert not problems, f"{wf.name}:\n" + "\n".join(problems)
    ui.graph_shot(shot_name)
    if WRITE_DOCS:  # the template browser's card: the graph around the (first) Mofo Sampler
        side = min(VIEWPORT["width"], VIEWPORT["height"]) - 80
        cx, cy = VIEWPORT["width"] / 2, VIEWPORT["height"] / 2
        ui.focus("MofoSampler", 0.8, cx - 128, cy - 120)
        card = ui.shot(f"card_{wf.stem}", clip={"x": cx - side / 2, "y": cy - side / 2, "width": side, "height": side})
        _doc_images().thumbnail(card, ROOT / "workflows" / f"{wf.stem}.jpg")


def _assert_ran(ui: UI, result: dict, wf: Path):
    posts = result["posts"]
    assert posts and posts[-1][0] == 200, f"{wf.name}: the server refused the prompt: {posts}"
    assert not result["node_errors"], f"{wf.name}: validation errors: {result['node_errors']}"
    types = [e["type"] for e in result["events"]]
    errors = [e["detail"] for e in result["events"] if e["type"] == "execution_error"]
    assert "execution_success" in types, f"{wf.name}: run did not succeed: {types} {json.dumps(errors)[:3000]}"


def _png(data: bytes | Path) -> np.ndarray:
    import io

    from PIL import Image

    src = io.BytesIO(data) if isinstance(data, bytes) else data
    return np.asarray(Image.open(src).convert("RGB")).astype(np.int16)


def _coloured(img: np.ndarray) -> np.ndarray:
    return (img.max(-1) - img.min(-1)) > 40


def _new_colour(empty: np.ndarray, drawn: np.ndarray) -> int:
    """Coloured pixels (the cloud's) where the empty viewer had its grey grid / background."""
    return int((_coloured(drawn) & ~_coloured(empty)).sum()) if empty.shape == drawn.shape else 0


def _doc_png(src: Path, dst: Path, width: int, max_kb: int = 290):
    _doc_images().doc_png(src, dst, width, max_kb)
    assert dst.stat().st_size < max_kb * 1024, f"{dst} is {dst.stat().st_size // 1024} KB"


# -- tests ---------------------------------------------------------------------------------------------------------
def test_template_browser_lists_every_workflow(ui):
    listed = ui.page.evaluate("() => fetch('/api/workflow_templates').then(r => r.json())")
    assert sorted(listed.get(ch.PACK_NAME, [])) == sorted(p.stem for p in WORKFLOWS), listed


@pytest.mark.parametrize("wf", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_workflow_opens_cleanly_and_runs(ui, server, wf):
    """Opened from the template browser; every workflow but the text one (see below) is also queued."""
    ui.load_from_templates(wf)
    _assert_opens_cleanly(ui, wf, f"open_{wf.stem}")
    if wf.stem == TEXT_WF:
        return
    if "CheckpointLoaderSimple" in wf.read_text() and not server.sd_ready:
        pytest.skip("opened cleanly; not run: no tiny SD 1.5 + ControlNet files (tests/integration/tiny_sd.py)")
    t = time.time()
    result = ui.run()
    _assert_ran(ui, result, wf)
    ui.graph_shot(f"ran_{wf.stem}")
    assert time.time() - t < 60, f"{wf.stem}: the tiny run took {time.time() - t:.0f} s"


def test_text_to_rgbd_runs_and_shows_images_and_point_cloud(ui):
    wf = TEXT_PATH
    ui.load_by_drop(wf)  # the other way a user opens a workflow file
    _assert_opens_cleanly(ui, wf, f"drop_{wf.stem}")

    # the empty 3D viewer, seen at the same zoom as after the run (once it has drawn its grid)
    ui.close_side_panel()
    ui.focus("Preview3D", 1.0, 900, 200)
    viewer = ui.viewer()
    empty_png = ui.until_still(viewer)
    empty = ui.shot("viewer_empty", element=viewer)

    result = ui.run()
    _assert_ran(ui, result, wf)

    # RGB (SaveImage) and depth (PreviewImage) previews arrive in their nodes, at the sampled size
    ui.wait_js("mofoPage.images(['SaveImage', 'PreviewImage']).every(n => n.imgs.length && n.imgs.every(i => i.ok))",
               what="the RGB and depth previews")
    previews = ui.js("images", ["SaveImage", "PreviewImage", "MofoSaveDepth", "MofoDepthToPointCloud"])
    by_type = {p["type"]: p for p in previews}
    for t in ("SaveImage", "PreviewImage"):
        assert [(i["w"], i["h"]) for i in by_type[t]["imgs"]] == [(64, 48)], by_type[t]
    assert "type=output" in by_type["SaveImage"]["imgs"][0]["src"]
    for t in ("MofoSaveDepth", "MofoDepthToPointCloud"):  # the pack's own in-node previews
        assert by_type[t]["imgs"] and all(i["ok"] for i in by_type[t]["imgs"]), by_type[t]

    # the 3D viewer parsed the PLY as a point cloud and draws it
    assert ui.js("hookClouds"), "the 3D viewer's point cloud loader (PointCloudModelAdapter) was not found"
    ui.wait_js("window.__mofo.clouds.length > 0", what="the 3D viewer loads the point cloud")
    clouds = ui.page.evaluate("() => window.__mofo.clouds")
    assert clouds[-1]["file"].endswith(".ply") and clouds[-1]["points"] > 100, clouds
    ui.focus("Preview3D", 1.0, 900, 200)
    viewer = ui.viewer()
    a = _png(empty_png)
    ui.until(lambda: _new_colour(a, _png(viewer.screenshot())) > 50, what="the 3D viewer draws the point cloud")
    drawn = ui.shot("viewer_cloud", element=viewer)
    a, b = _png(empty), _png(drawn)
    assert a.shape == b.shape
    assert len(np.unique(b.reshape(-1, 3), axis=0)) > 50, "3D viewer is (nearly) one flat colour"
    new_colour = _new_colour(a, b)
    assert new_colour > 50, f"3D viewer shows no point cloud ({new_colour} new coloured pixels)"

    # screenshots: the finished graph (in a wider window, for legible text), and a close-up of the point cloud
    # node + the 3D viewer, zoomed in a little with the mouse wheel as a user would
    graph = ui.graph_shot(f"ran_{wf.stem}", viewport={"width": 2560, "height": 1200})
    ui.focus("MofoDepthToPointCloud", 1.0, 420, 160)
    viewer = ui.viewer()
    vb = ui.js("markViewer")
    before = ui.until_still(viewer)
    ui.page.mouse.move(vb[0] + vb[2] / 2, vb[1] + vb[3] / 2)
    for _ in range(3):
        ui.page.mouse.wheel(0, -200)
    ui.until_still(viewer, differs_from=before)  # the camera moved in and stopped
    ui.page.mouse.move(5, VIEWPORT["height"] - 5)
    ui.settle()
    close = ui.shot("pointcloud_closeup", clip=ui.js("closeupBox"))
    if WRITE_DOCS:
        _doc_png(graph, ROOT / "docs" / "workflow_text_to_rgbd.png", 1600)
        _doc_png(close, ROOT / "docs" / "pointcloud_preview.png", 1000)


def test_image_to_mesh_shows_the_textured_mesh_in_the_3d_viewer(ui):
    """The mesh workflow's GLB (Mofo Depth To Mesh -> glb_path -> Preview3D) opens in ComfyUI's own 3D viewer."""
    wf = ROOT / "workflows" / "mofo_image_to_mesh.json"
    ui.load_from_templates(wf)
    _assert_opens_cleanly(ui, wf, f"open_again_{wf.stem}")
    ui.close_side_panel()
    ui.focus("Preview3D", 1.0, 900, 200)
    viewer = ui.viewer()
    empty = _png(ui.until_still(viewer))
    result = ui.run()
    _assert_ran(ui, result, wf)
    ui.focus("Preview3D", 1.0, 900, 200)
    viewer = ui.viewer()
    ui.until(lambda: _new_colour(empty, _png(viewer.screenshot())) > 50, what="the 3D viewer draws the mesh")
    drawn = _png(ui.shot("viewer_mesh", element=viewer))
    assert drawn.shape == empty.shape
    assert len(np.unique(drawn.reshape(-1, 3), axis=0)) > 50, "3D viewer is (nearly) one flat colour"
    assert _new_colour(empty, drawn) > 50, "3D viewer shows no mesh"


def test_warning_reaches_the_person(ui):
    """A prompt over 512 tokens is cut (too_long = truncate) with a warning: ComfyUI's page shows it as a toast,
    the Mofo Text Encode node keeps it (node.mofoWarnings, web/mofo_warnings.js) and ComfyUI writes it on the node
    as progress text (nodes/messages.py)."""
    wf = TEXT_PATH
    ui.load_by_drop(wf)
    enc = ui.js("sourceOf", ["MofoSampler", "positive"])  # the positive prompt's Mofo Text Encode
    info = ui.js("nodeInfo", enc)
    assert info["type"] == "MofoTextEncode", info
    assert {w["name"]: w["value"] for w in info["widgets"]}.get("too_long") == "truncate", info
    ui.js("setWidget", [enc, "text", LONG_PROMPT])
    ui.close_side_panel()
    ui.focus(enc, 1.0, 1040, 140)  # the node left of where toasts appear (top right)

    status = ui.start_run()
    # the toast lives 12 s, and ComfyUI 1.5x drops the progress text when the run ends: catch both while the run goes on
    toast = ui.page.locator(TOAST).filter(has_text="Modality Forcing").filter(has_text="512")
    try:
        toast.first.wait_for(state="visible", timeout=60_000)
    except Exception as e:  # noqa: BLE001 - say what the page did get
        ui.shot("warning_toast_missing")
        raise AssertionError(
            f"no warning toast ({type(e).__name__}); the page got {ui.page.evaluate('() => window.__mofo.warnings')}"
            f"; toasts shown: {ui.page.locator(TOAST).all_inner_texts()}; "
            f"run events: {[ev['type'] for ev in ui.page.evaluate('() => window.__mofo.events')]}") from None
    text = toast.first.inner_text()
    # ComfyUI's own progress text, on the node: the frontend keeps it in a text widget it adds to the node
    progress_shown = ui.wait_js("mofoPage.progressShown(a)", enc, timeout_ms=10_000,
                                what="the warning as progress text on the node")
    ui.next_frame()  # drawn on the canvas
    ui.next_frame()
    box, tb = ui.js("nodeBox", [enc, 20]), toast.first.bounding_box()
    x0, y0 = max(0, min(box["x"], tb["x"]) - 10), max(0, min(box["y"], tb["y"]) - 10)
    x1 = min(VIEWPORT["width"], max(box["x"] + box["width"], tb["x"] + tb["width"]) + 10)
    y1 = min(VIEWPORT["height"], max(box["y"] + box["height"], tb["y"] + tb["height"]) + 10)
    ui.shot("warning_toast", clip={"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0})
    assert "tokens" in text and "are dropped" in text, text
    assert progress_shown.startswith("⚠") and "512" in progress_shown, progress_shown

    result = ui.wait_run(status)
    _assert_ran(ui, result, wf)
    # the event the page received names the node; the node keeps the message (its "⚠ n" mark)
    got = ui.page.evaluate("() => window.__mofo.warnings")
    assert any(str(w["node"]) == str(enc) and "512" in w["message"] for w in got), got
    marks = ui.js("nodeInfo", enc)["mofoWarnings"]
    assert marks and any("512" in m and "are dropped" in m for m in marks), marks
    # the progress text as it came over the websocket
    progress = ui.page.evaluate("() => window.__mofo.progressText")
    assert any(str(p["nodeId"]) == str(enc) and p["text"].startswith("⚠") and "512" in p["text"]
               for p in progress), progress


def test_no_browser_console_error_from_the_pack(ui):
    if not ui.runs:  # run on its own: exercise the pack in the page first, so that there is something to check
        ui.load_from_templates(TEXT_PATH)
        _assert_ran(ui, ui.run(), TEXT_PATH)
    assert ui.loads and ui.runs, "no workflow was loaded and run in this session: nothing was checked"
    assert ui.page.evaluate("() => app.extensions.some(e => e.name === 'ModalityForcing.Warnings')"), \
        "the pack's web extension (web/mofo_warnings.js) is not loaded in the page"
    errors = [e for e in ui.console if e["type"] in ("error", "pageerror")]
    ours = [e for e in errors if from_pack(e)]
    others = [e for e in errors if not from_pack(e)]
    pack_http = [(s, u) for s, u in ui.http_errors if any(m in u.lower() for m in PACK_MARKERS)]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "console.json").write_text(json.dumps({"errors": errors, "http_errors": ui.http_errors}, indent=1))
    if others:  # reported, not failed: the frontend's own (offline update check, optional user files ...)
        warnings.warn(f"{len(others)} browser console errors not from the pack (all in {OUT / 'console.json'}):\n"
                      + "\n".join(f"  [{e['type']}] {e['text'][:160]} ({e['url'][:100]})" for e in others),
                      stacklevel=1)
    assert not ours and not pack_http, f"errors from the pack: {json.dumps(ours, indent=1)[:4000]} {pack_http}"
