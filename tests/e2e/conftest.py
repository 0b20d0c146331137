"""Fixtures of the browser e2e tests: a real ComfyUI server with this pack and tiny checkpoints, and one Chromium
page on its frontend (page.py). Without ComfyUI, Chromium or Playwright every test here skips, saying which."""

from __future__ import annotations

import json
import os
import shutil
import sys
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from page import CHROMIUM, CHROMIUM_ARGS, UI, VIEWPORT, ch, skip_reason  # noqa: E402

_REASON = skip_reason()


@pytest.fixture(scope="session", autouse=True)
def _browser_e2e_possible():
    # session scope: checked before the module-scoped server and browser below are started
    if _REASON is not None:
        pytest.skip(_REASON)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = ch.make_base(tmp_path_factory.mktemp("comfy_e2e"))
    # a user's install: ComfyUI's stock input/example.png (the image workflows load it) and no depth example (the
    # pack provides its own on start-up, nodes/__init__.py)
    stock = ch.comfy_dir() / "input" / "example.png"
    if stock.is_file():
        shutil.copyfile(stock, base / "input" / "example.png")
    (base / "input" / "depth_example.png").unlink(missing_ok=True)
    models = base / "models"
    for d in ("text_encoders", "checkpoints", "controlnet"):
        (models / d).mkdir(parents=True, exist_ok=True)
    # the file the workflows' CLIPLoader names; never executed (runs swap in the tiny Qwen3, see page.js swap)
    (models / "text_encoders" / "qwen_3_8b.safetensors").write_bytes(b"")
    ckpt = models / "checkpoints" / "v1-5-pruned-emaonly-fp16.safetensors"
    cnet = models / "controlnet" / "control_v11f1p_sd15_depth_fp16.safetensors"
    try:
        from tiny_sd import write_tiny_sd15

        write_tiny_sd15(ckpt, cnet)
        sd_ready = True
    except ImportError:  # placeholders are enough for opening the workflow; it is then not run
        ckpt.write_bytes(b"")
        cnet.write_bytes(b"")
        sd_ready = False
    # MOFO_E2E_FRONTEND_ROOT: the static folder of another comfyui-frontend-package (e.g. 1.58.1, unpacked by
    # tests/e2e/install.sh) served through ComfyUI's --front-end-root; unset = the frontend ComfyUI bundles
    front = os.environ.get("MOFO_E2E_FRONTEND_ROOT")
    extra = ["--front-end-root", front] if front else []
    with ch.ComfyServer(base, extra_args=extra) as s:
        s.sd_ready = sd_ready
        # a returning user: the frontend opens its default graph instead of the first-visit template browser, so
        # the start-up ends in a known state (no dialog that may open at some later moment)
        req = urllib.request.Request(s.url + "/settings", data=json.dumps({"Comfy.TutorialCompleted": True}).encode(),
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=60).close()  # answers 200 with an empty body
        yield s


@pytest.fixture(scope="module")
def ui(server, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium_profile")  # a fresh user-data dir
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(str(profile), executable_path=str(CHROMIUM), headless=True,
                                                    args=CHROMIUM_ARGS, viewport=VIEWPORT)
        try:
            u = UI(ctx.new_page(), server)
            u.open()
            yield u
        finally:
            ctx.close()
