"""The page object of the browser e2e tests: one Chromium page on ComfyUI's frontend (`UI`), and the constants the
tests share. The JavaScript it runs in the page lives in page.js (`window.mofoPage`).

Every wait here is on a condition (a workflow loaded, the page settled, a dialog closed, a picture changed); see
`UI.settle` for what "settled" means.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))
import comfy_harness as ch  # noqa: E402

ROOT = ch.ROOT
PAGE_JS = HERE / "page.js"
CHROMIUM = Path(os.environ.get("MOFO_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-dev-shm-usage",
                 # WebGL without a GPU (the 3D viewer): ANGLE on SwiftShader, Chromium's CPU rasteriser
                 "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
VIEWPORT = {"width": 1920, "height": 1080}
OUT = Path(os.environ.get("MOFO_E2E_OUT", HERE / "out"))
WRITE_DOCS = os.environ.get("MOFO_E2E_WRITE_DOCS") == "1"
WORKFLOWS = sorted((ROOT / "workflows").glob("*.json"))
TEXT_WF = "mofo_text_to_rgbd_pointcloud"
SMALL = {  # node type -> widget values for a CPU run in seconds
    "MofoScheduler": {"steps": 2},
    "MofoSampler": {"width": 64, "height": 48},
    "MofoFitImage": {"width": 64, "height": 64},
    "ImageScale": {"width": 64, "height": 64},
    "EmptyLatentImage": {"width": 64, "height": 64},
    "KSampler": {"steps": 2},
    # random-weight depth is all edges (edge_rtol 0 keeps them) and heavy-tailed: the outlier filter keeps the
    # viewer's fit-to-bounds from shrinking the cloud to a dot
    "MofoDepthToPointCloud": {"edge_rtol": 0.0, "outlier_removal": True},
    "MofoDepthToMesh": {"edge_rtol": 0.0},  # the same: a random-weight depth map is edges everywhere
}
PACK_MARKERS = ("mofo", "modalityforcing", "modality-forcing", "modality_forcing")


def skip_reason() -> str | None:
    """Why the browser tests cannot run here (None: they can)."""
    if ch.comfy_dir() is None:
        return "COMFYUI_DIR is not set to a ComfyUI checkout (browser e2e test)"
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} is missing (Debian's chromium): run tests/e2e/install.sh"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright module is missing: run tests/e2e/install.sh"
    return None


def from_pack(entry: dict) -> bool:
    """A console entry {text, url} that names the pack."""
    text = (entry["text"] + " " + entry["url"]).lower().replace(" ", "")
    return any(m in text for m in PACK_MARKERS)


def saved_sizes(wf: Path) -> dict:
    return {n["id"]: n["size"] for n in json.loads(wf.read_text())["nodes"]}


def _is_prompt_post(r) -> bool:
    return r.url.endswith("/api/prompt") and r.request.method == "POST"


class UI:
    """One Chromium page on the ComfyUI frontend, with everything the page logged."""

    def __init__(self, page, server):
        self.page, self.server = page, server
        self.console: list[dict] = []
        self.http_errors: list[tuple[int, str]] = []
        self.prompt_posts: list[tuple[int, str]] = []
        self.loads = 0  # workflows loaded, and runs finished, in this session
        self.runs = 0
        page.on("console", lambda m: self.console.append({"type": m.type, "text": m.text,
                                                          "url": (m.location or {}).get("url", "")}))
        page.on("pageerror", lambda e: self.console.append({"type": "pageerror", "text": f"{e}\n{e.stack or ''}",
                                                            "url": ""}))
        page.on("response", self._response)
        page.add_init_script(path=str(PAGE_JS))  # window.mofoPage, before the frontend's own scripts

    def _response(self, r):
        if r.status >= 400:
            self.http_errors.append((r.status, r.url))
        if _is_prompt_post(r):
            try:
                body = r.text()
            except Exception:  # noqa: BLE001 - body may be gone; the status is what matters
                body = ""
            self.prompt_posts.append((r.status, body[:3000]))

    # -- calls into page.js ---------------------------------------------------------------------------------------
    def js(self, fn: str, arg=None):
        """mofoPage.<fn>(arg) in the page."""
        return self.page.evaluate(f"(a) => mofoPage.{fn}(a)", arg)

    def wait_js(self, expr: str, arg=None, *, timeout_ms: float = 30_000, what: str = "", polling="raf"):
        """Wait until the page expression `expr` (a function of `a`) is truthy; returns its value."""
        from playwright.sync_api import TimeoutError as PWTimeout

        try:
            return self.page.wait_for_function(f"(a) => {expr}", arg=arg, timeout=timeout_ms,
                                               polling=polling).json_value()
        except PWTimeout:
            raise AssertionError(f"{what or expr}: not true after {timeout_ms / 1000:.0f} s") from None

    def settle(self, frames: int = 3, timeout_ms: float = 30_000):
        """Wait until the page is still for `frames` animation frames in a row: no workflow loading (ComfyUI's
        ChangeTracker.isLoadingGraph), no fetch / XHR in flight (the missing-model and missing-media checks run
        after a graph is configured and end in requests), the graph canvas redrawn and sized to its box, the view
        unchanged."""
        self.js("unsettle")
        try:
            self.wait_js(f"mofoPage.settled({frames})", timeout_ms=timeout_ms, what="page settled")
        except AssertionError as e:
            raise AssertionError(f"{e}; requests in flight: {self.js('pendingRequests')}") from None

    def next_frame(self):
        self.page.evaluate("() => mofoPage.nextFrame()")

    def until(self, fn: Callable[[], object], *, timeout_s: float = 30, what: str):
        """Call fn (Python, e.g. a screenshot check) once per animation frame until it returns a truthy value."""
        import time

        deadline = time.monotonic() + timeout_s
        while True:
            value = fn()
            if value:
                return value
            assert time.monotonic() < deadline, f"{what}: not true after {timeout_s:.0f} s"
            self.next_frame()

    def until_still(self, element, *, differs_from: bytes | None = None, timeout_s: float = 30) -> bytes:
        """Screenshots of `element` until two in a row are the same (and, if given, differ from `differs_from`)."""
        last = [element.screenshot()]

        def still():
            now = element.screenshot()
            same = now == last[0] and (differs_from is None or now != differs_from)
            last[0] = now
            return now if same else None

        return self.until(still, timeout_s=timeout_s, what="the picture stops changing")

    # -- page actions ---------------------------------------------------------------------------------------------
    def open(self):
        self.page.goto(self.server.url + "/")
        self.wait_js("window.app && app.graph && app.canvas && window.comfyAPI && window.mofoPage"
                     " && app.extensionManager && app.extensionManager.workflow.activeWorkflow",
                     timeout_ms=90_000, what="the frontend started with a workflow open")
        self.js("instrument")
        setting = "([k, v]) => app.extensionManager.setting.set(k, v)"
        for k, v in (("LiteGraph.Canvas.MinFontSizeForLOD", 0),  # full-detail nodes in zoomed-out screenshots
                     ("Comfy.Minimap.Visible", False)):
            self.page.evaluate(setting, [k, v])
        self.settle()
        self.close_dialogs()

    def close_dialogs(self):
        count = "document.querySelectorAll('.p-dialog-mask, [role=\"dialog\"]').length"
        for _ in range(3):
            n = self.page.evaluate(f"() => {count}")
            if not n:
                break
            self.page.keyboard.press("Escape")
            self.wait_js(f"{count} < a", n, timeout_ms=10_000, what="Escape closes the dialog")

    def close_side_panel(self):
        self.page.evaluate("() => app.extensionManager.setting.set('Comfy.RightSidePanel.IsOpen', false)")

    def _before_load(self):
        self.close_dialogs()
        self.page.evaluate("() => { window.__mofoPrev = app.extensionManager.workflow.activeWorkflow; }")

    def _wait_loaded(self, wf: Path, *, same_tab: bool = False):
        n = len(json.loads(wf.read_text())["nodes"])
        self.wait_js("mofoPage.loaded(a)", [n, wf.stem, same_tab], what=f"{wf.name} loaded")
        self.settle()  # the missing-model / missing-media checks run after the graph is configured
        self.loads += 1

    def load_from_templates(self, wf: Path):
        self._before_load()
        self.page.get_by_text("Templates", exact=True).first.click()
        self.page.get_by_text(ch.PACK_NAME, exact=True).first.click()
        self.page.get_by_test_id(f"template-workflow-{wf.stem}").click()
        self._wait_loaded(wf)

    def load_by_drop(self, wf: Path):
        self._before_load()
        # frontend 1.58 loads a dropped file that is already open into its own tab (1.47 opens a new one): empty
        # the graph first, so that the node count proves the drop loaded the file either way
        self.page.evaluate("() => app.graph.clear()")
        self.js("drop", [wf.name, wf.read_text()])
        self._wait_loaded(wf, same_tab=True)

    def errors_shown(self) -> dict:
        state = self.js("state")
        if state["overlay"]:  # what the user would read after "View details"
            self.page.get_by_test_id("error-overlay").get_by_text("View details").click()
            panel = self.page.get_by_test_id("properties-panel")
            panel.wait_for(state="visible")
            self.settle()
            state = self.js("state")
            state["details"] = panel.inner_text()[:2000]
        return state

    def focus(self, node, scale: float, x: float, y: float):
        """Node `node` (a type, or an id) at (x, y) on screen at zoom `scale`; the mouse and toasts out of the way."""
        self.clear_toasts()
        self.js("focus", [node, scale, x, y])
        self.page.mouse.move(5, VIEWPORT["height"] - 5)  # no hover highlight in the picture
        self.settle()

    def clear_toasts(self):
        """No toast over the pictures (the pack's warnings from earlier tiny runs, "Job queued" ...)."""
        self.js("clearToasts")
        self.wait_js("mofoPage.toastCount() === 0", what="the toasts closed")

    def viewer(self):
        """The 3D viewer's canvas over the Preview3D node (waits until it is drawn there)."""
        self.wait_js("mofoPage.markViewer()", what="a 3D viewer canvas over the Preview3D node")
        return self.page.locator("canvas[data-mofo-viewer]")

    def graph_shot(self, name: str, viewport: dict | None = None) -> Path:
        """The whole graph, fitted to a `viewport`-sized window and cropped to it."""
        if viewport:
            self.page.set_viewport_size(viewport)
        try:
            self.fit_view()  # settles: the canvas is resized to the new window first
            return self.shot(name, clip=self.js("graphBox"))
        finally:
            if viewport:
                self.page.set_viewport_size(VIEWPORT)
                self.settle()

    def fit_view(self):
        self.close_side_panel()
        self.clear_toasts()
        self.page.evaluate("() => app.extensionManager.command.execute('Comfy.Canvas.FitView')")
        self.page.mouse.move(5, VIEWPORT["height"] - 5)  # no hover highlight in the picture
        self.settle()

    def start_run(self) -> int:
        """Swap in the tiny text encoder and small sizes, press Run; returns the HTTP status of the queued prompt."""
        self.js("resetRun")
        self.js("swap", SMALL)
        self.js("hookClouds")
        self._posts_from = len(self.prompt_posts)
        with self.page.expect_response(_is_prompt_post, timeout=60_000) as posted:
            self.page.get_by_test_id("queue-button").click()
        return posted.value.status

    def wait_run(self, status: int, timeout_s: float = 90) -> dict:
        """After start_run: wait until the run finished (or was refused); the events and the server's answers."""
        posts = lambda: self.prompt_posts[self._posts_from:]  # noqa: E731
        if status == 200:  # else refused outright: nothing to wait for
            try:  # finished, or refused with node errors
                self.wait_js("mofoPage.finished()", timeout_ms=timeout_s * 1000, polling=250)
            except AssertionError:
                raise AssertionError(f"no result {timeout_s} s after Run: {posts()}") from None
        self.runs += 1
        events = self.page.evaluate("() => window.__mofo.events.map(e => ({type: e.type, detail: e.detail}))")
        return {"events": events, "posts": posts(), "node_errors": self.page.evaluate("() => app.lastNodeErrors")}

    def run(self, timeout_s: float = 90) -> dict:
        return self.wait_run(self.start_run(), timeout_s)

    def shot(self, name: str, clip: dict | None = None, element=None) -> Path:
        OUT.mkdir(parents=True, exist_ok=True)
        path = OUT / f"{name}.png"
        if element is not None:
            element.screenshot(path=str(path))
        else:
            self.page.screenshot(path=str(path), clip=clip)
        return path
