"""The pack in ComfyUI's own web frontend, in a real browser: every shipped workflow opens cleanly, and the
text -> RGB + depth + point cloud workflow runs and shows its images and its point cloud.

Needs a ComfyUI checkout in COMFYUI_DIR (run by COMFYUI_PYTHON; it brings its own frontend package), Debian's
Chromium (/usr/bin/chromium) and Playwright for Python; `bash tests/e2e/install.sh` installs the last two. Skips,
saying which is missing, otherwise (as in CI).

    COMFYUI_DIR=/path/to/ComfyUI COMFYUI_PYTHON=/path/to/venv/bin/python pytest -q tests/e2e -rs

What it does: starts ComfyUI headless on 127.0.0.1 with this pack and tiny random checkpoints (tests/integration/
comfy_harness.py) under every file name the workflows reference, as a user's install would have them; drives
Chromium headless through Playwright; opens each workflow from the template browser (the text workflow also by
drag-and-drop of the file onto the canvas) and asserts: no missing-node / missing-model / missing-input error,
every combo value valid, no node smaller than its widgets need, no overlapping nodes or groups, group titles that
fit; queues each one (CLIPLoader swapped for Mofo Text Encoder Loader with the tiny Hugging Face Qwen3, since
ComfyUI's native Qwen3-8B cannot be made tiny; small sizes, 2 steps) and asserts the server accepts and finishes
it; for the text workflow, that the RGB (SaveImage) and depth (PreviewImage) previews arrive and the 3D viewer
(Preview3D fed by the pack's ply_path) draws the point cloud. Browser console errors that come from the pack fail
the test; the others are listed in the report.

Screenshots go to $MOFO_E2E_OUT (default tests/e2e/out/). With MOFO_E2E_WRITE_DOCS=1 the run also writes the
README's screenshots (docs/*.png) and the template browser's thumbnails (workflows/<name>.jpg).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))
import comfy_harness as ch  # noqa: E402

ROOT = ch.ROOT
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
}
PACK_MARKERS = ("mofo", "modalityforcing", "modality-forcing", "modality_forcing")


def _skip_reason() -> str | None:
    if ch.comfy_dir() is None:
        return "COMFYUI_DIR is not set to a ComfyUI checkout (browser e2e test)"
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} is missing (Debian's chromium): run tests/e2e/install.sh"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright module is missing: run tests/e2e/install.sh"
    return None


_REASON = _skip_reason()
pytestmark = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")


# -- page-side helpers (JavaScript run in the page) ---------------------------------------------------------------
INSTRUMENT = """() => {
  // execution events, and every point cloud the 3D viewer parses (read-only wrapper around its PLY adapter)
  window.__mofo = {events: [], clouds: []};
  const api = window.comfyAPI.api.api;
  for (const t of ['execution_start', 'execution_success', 'execution_error', 'execution_interrupted'])
    api.addEventListener(t, e => window.__mofo.events.push({type: t, detail: e.detail}));
  const A = window.comfyAPI.PointCloudModelAdapter && window.comfyAPI.PointCloudModelAdapter.PointCloudModelAdapter;
  if (!A) return false;
  const load = A.prototype.load;
  A.prototype.load = async function (...args) {
    const r = await load.apply(this, args);
    let points = 0;
    r.object.traverse(o => { if (o.isPoints) points += o.geometry.attributes.position.count; });
    window.__mofo.clouds.push({file: String(args[2]), points});
    return r;
  };
  return true;
}"""

DROP = """([name, text]) => {
  // what the browser does when a file is dragged from the desktop onto the canvas
  const dt = new DataTransfer();
  dt.items.add(new File([text], name, {type: 'application/json'}));
  const target = document.querySelector('#graph-canvas');
  const r = target.getBoundingClientRect();
  const opts = {bubbles: true, cancelable: true, dataTransfer: dt,
                clientX: r.x + r.width / 2, clientY: r.y + r.height / 2};
  for (const t of ['dragenter', 'dragover', 'drop']) target.dispatchEvent(new DragEvent(t, opts));
}"""

STATE = """() => ({
  nodes: app.graph._nodes.length,
  overlay: !!document.querySelector('[data-testid="error-overlay"]'),
  errorGroups: [...document.querySelectorAll('[data-testid^="error-group-"]')].map(e => e.dataset.testid),
  dialogs: [...document.querySelectorAll('.p-dialog, [role="dialog"], [role="alertdialog"]')]
    .filter(e => e.offsetParent !== null).map(e => e.innerText.slice(0, 300)),
})"""

LAYOUT = """(saved) => {
  // saved: {node id: [w, h]} as stored in the workflow file (the frontend grows a too-small node on load)
  const g = app.graph, TH = LiteGraph.NODE_TITLE_HEIGHT, out = {small: [], overlaps: [], groups: [], combos: []};
  const box = n => [n.pos[0], n.pos[1] - TH, n.size[0], n.size[1] + TH];
  const inter = (a, b) => a[0] < b[0] + b[2] && b[0] < a[0] + a[2] && a[1] < b[1] + b[3] && b[1] < a[1] + a[3];
  const inside = (a, b) => a[0] >= b[0] && a[1] >= b[1] && a[0] + a[2] <= b[0] + b[2] && a[1] + a[3] <= b[1] + b[3];
  const name = n => `${n.id}:${n.title}`;
  for (const n of g._nodes) {
    const c = n.computeSize(), s = saved[n.id];
    if (s && (s[0] + 0.5 < c[0] || s[1] + 0.5 < c[1]))
      out.small.push(`${name(n)} saved ${s} < needed ${c.map(Math.ceil)}`);
    for (const w of n.widgets || []) {
      const vals = w.options && w.options.values;
      if (w.type === 'combo' && Array.isArray(vals) && !vals.includes(w.value))
        out.combos.push(`${name(n)}.${w.name} = ${JSON.stringify(w.value)} not in ${JSON.stringify(vals.slice(0, 8))}`);
    }
  }
  const ns = g._nodes;
  for (let i = 0; i < ns.length; i++) for (let j = i + 1; j < ns.length; j++)
    if (inter(box(ns[i]), box(ns[j]))) out.overlaps.push(`${name(ns[i])} / ${name(ns[j])}`);
  const ctx = document.createElement('canvas').getContext('2d');
  const gs = g._groups;
  for (let i = 0; i < gs.length; i++) {
    const gr = gs[i], b = [...gr._bounding], fs = gr.font_size || LiteGraph.DEFAULT_GROUP_FONT_SIZE || 24;
    ctx.font = `${fs}px ${LiteGraph.GROUP_FONT || 'Arial'}`;
    const need = ctx.measureText(gr.title).width + fs;
    if (need > b[2]) out.groups.push(`title "${gr.title}" needs ${Math.ceil(need)} px, group is ${b[2]}`);
    for (let j = i + 1; j < gs.length; j++)
      if (inter(b, gs[j]._bounding)) out.groups.push(`"${gr.title}" overlaps "${gs[j].title}"`);
    const body = [b[0], b[1] + TH, b[2], b[3] - TH];  // below the title bar
    for (const n of ns) {
      if (inside(box(n), body)) continue;
      if (inter(box(n), b)) out.groups.push(`${name(n)} crosses the border or title of "${gr.title}"`);
    }
  }
  return out;
}"""

SWAP = """(small) => {
  // the tiny text path: CLIPLoader (ComfyUI's Qwen3-8B) -> Mofo Text Encoder Loader with the tiny HF Qwen3
  const g = app.graph;
  for (const clip of g._nodes.filter(n => n.type === 'CLIPLoader')) {
    const te = LiteGraph.createNode('MofoTextEncoderLoader');
    te.pos = [clip.pos[0], clip.pos[1]];
    g.add(te);
    te.widgets.find(w => w.name === 'folder').value = 'qwen3_tiny';
    te.widgets.find(w => w.name === 'dtype').value = 'fp32';
    const targets = (clip.outputs[0].links || []).map(id => g.links.get ? g.links.get(id) : g.links[id])
      .map(l => g.getNodeById(l.target_id));
    g.remove(clip);
    for (const n of targets) te.connect(0, n, n.findInputSlot('text_encoder'));
  }
  for (const n of g._nodes) for (const [k, v] of Object.entries(small[n.type] || {})) {
    const w = n.widgets.find(w => w.name === k);
    if (!w) throw new Error(`${n.type} has no widget ${k}`);
    w.value = v;
  }
  app.canvas.setDirty(true, true);
}"""

FINISHED = """() => window.__mofo.events
    .some(e => ['execution_success', 'execution_error', 'execution_interrupted'].includes(e.type))
  || (app.lastNodeErrors && Object.keys(app.lastNodeErrors).length > 0)"""

IMAGES = """(types) => app.graph._nodes.filter(n => types.includes(n.type)).map(n => ({
  id: n.id, type: n.type, title: n.title,
  imgs: (n.imgs || []).map(i => ({ok: i.complete && i.naturalWidth > 0, w: i.naturalWidth, h: i.naturalHeight,
                                  src: i.src})),
}))"""

FOCUS = """([type, scale, dx, dy]) => {
  // put node `type` at (dx, dy) on screen at zoom `scale`
  const n = app.graph._nodes.find(n => n.type === type), ds = app.canvas.ds;
  ds.scale = scale;
  const r = app.canvas.canvas.getBoundingClientRect();
  ds.offset[0] = (dx - r.left) / scale - n.pos[0];
  ds.offset[1] = (dy - r.top) / scale - n.pos[1];
  app.canvas.setDirty(true, true);
}"""

MARK_VIEWER = """() => {
  // the 3D viewer's <canvas> is the one drawn over the Preview3D node
  document.querySelectorAll('canvas[data-mofo-viewer]').forEach(c => c.removeAttribute('data-mofo-viewer'));
  const n = app.graph._nodes.find(n => n.type === 'Preview3D');
  const [x, y] = app.canvasPosToClientPos(n.pos), s = app.canvas.ds.scale;
  for (const c of document.querySelectorAll('canvas')) {
    if (c.id === 'graph-canvas' || c.classList.contains('minimap-canvas')) continue;
    const b = c.getBoundingClientRect(), cx = b.x + b.width / 2, cy = b.y + b.height / 2;
    if (b.width > 0 && cx > x && cx < x + n.size[0] * s && cy > y && cy < y + n.size[1] * s) {
      c.setAttribute('data-mofo-viewer', '1');
      return [b.x, b.y, b.width, b.height];
    }
  }
  return null;
}"""


GRAPH_BOX = """() => {
  // the screen rectangle around every node and group (plus a margin), inside the viewport
  const TH = LiteGraph.NODE_TITLE_HEIGHT;
  let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
  const add = (a, b, c, d) => {
    x0 = Math.min(x0, a); y0 = Math.min(y0, b); x1 = Math.max(x1, c); y1 = Math.max(y1, d);
  };
  for (const n of app.graph._nodes) add(n.pos[0], n.pos[1] - TH - 16, n.pos[0] + n.size[0], n.pos[1] + n.size[1]);
  for (const g of app.graph._groups) { const b = g._bounding; add(b[0], b[1], b[0] + b[2], b[1] + b[3]); }
  const [a, b] = app.canvasPosToClientPos([x0, y0]), [c, d] = app.canvasPosToClientPos([x1, y1]);
  const X = Math.max(0, a - 16), Y = Math.max(0, b - 16);
  return {x: X, y: Y, width: Math.min(innerWidth, c + 16) - X, height: Math.min(innerHeight, d + 16) - Y};
}"""


class UI:
    """One Chromium page on the ComfyUI frontend, with everything the page logged."""

    def __init__(self, page, server):
        self.page, self.server = page, server
        self.console: list[dict] = []
        self.http_errors: list[tuple[int, str]] = []
        self.prompt_posts: list[tuple[int, str]] = []
        page.on("console", lambda m: self.console.append({"type": m.type, "text": m.text,
                                                          "url": (m.location or {}).get("url", "")}))
        page.on("pageerror", lambda e: self.console.append({"type": "pageerror", "text": f"{e}\n{e.stack or ''}",
                                                            "url": ""}))
        page.on("response", self._response)

    def _response(self, r):
        if r.status >= 400:
            self.http_errors.append((r.status, r.url))
        if r.url.endswith("/api/prompt") and r.request.method == "POST":
            try:
                body = r.text()
            except Exception:  # noqa: BLE001 - body may be gone; the status is what matters
                body = ""
            self.prompt_posts.append((r.status, body[:3000]))

    def open(self):
        self.page.goto(self.server.url + "/")
        self.page.wait_for_function("() => window.app && app.graph && app.canvas && window.comfyAPI", timeout=90_000)
        self.page.wait_for_timeout(1500)
        self.has_cloud_hook = self.page.evaluate(INSTRUMENT)
        setting = "([k, v]) => app.extensionManager.setting.set(k, v)"
        for k, v in (("LiteGraph.Canvas.MinFontSizeForLOD", 0),  # full-detail nodes in zoomed-out screenshots
                     ("Comfy.Minimap.Visible", False)):
            self.page.evaluate(setting, [k, v])
        self.close_dialogs()

    def close_dialogs(self):
        for _ in range(3):  # a first visit opens the template browser
            if not self.page.evaluate("() => !!document.querySelector('.p-dialog-mask, [role=\"dialog\"]')"):
                break
            self.page.keyboard.press("Escape")
            self.page.wait_for_timeout(300)

    def close_side_panel(self):
        self.page.evaluate("() => app.extensionManager.setting.set('Comfy.RightSidePanel.IsOpen', false)")

    def _before_load(self):
        self.close_dialogs()
        self.page.evaluate("() => { window.__mofoPrev = app.extensionManager.workflow.activeWorkflow; }")

    def _wait_loaded(self, wf: Path, *, same_tab: bool = False):
        n = len(json.loads(wf.read_text())["nodes"])
        self.page.wait_for_function(
            """([n, stem, sameTab]) => { const w = app.extensionManager.workflow.activeWorkflow;
                 return w && (sameTab || w !== window.__mofoPrev) && w.filename.startsWith(stem)
                   && app.graph._nodes.length === n; }""",
            arg=[n, wf.stem, same_tab], timeout=30_000)
        self.page.wait_for_timeout(1500)  # missing-model / missing-media checks run after the graph is configured

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
        self.page.evaluate(DROP, [wf.name, wf.read_text()])
        self._wait_loaded(wf, same_tab=True)

    def errors_shown(self) -> dict:
        state = self.page.evaluate(STATE)
        if state["overlay"]:  # what the user would read after "View details"
            self.page.get_by_test_id("error-overlay").get_by_text("View details").click()
            self.page.wait_for_timeout(800)
            state = self.page.evaluate(STATE)
            state["details"] = self.page.get_by_test_id("properties-panel").inner_text()[:2000]
        return state

    def graph_shot(self, name: str, viewport: dict | None = None) -> Path:
        """The whole graph, fitted to a `viewport`-sized window and cropped to it."""
        if viewport:
            self.page.set_viewport_size(viewport)
            self.page.wait_for_timeout(500)
        try:
            self.fit_view()
            return self.shot(name, clip=self.page.evaluate(GRAPH_BOX))
        finally:
            if viewport:
                self.page.set_viewport_size(VIEWPORT)
                self.page.wait_for_timeout(500)

    def fit_view(self):
        self.close_side_panel()
        self.page.evaluate("() => app.extensionManager.command.execute('Comfy.Canvas.FitView')")
        self.page.mouse.move(5, VIEWPORT["height"] - 5)  # no hover highlight in the picture
        self.page.wait_for_timeout(800)

    def run(self, timeout_s: float = 90) -> dict:
        self.page.evaluate("() => { window.__mofo.events = []; window.__mofo.clouds = []; }")
        self.page.evaluate(SWAP, SMALL)
        n_posts = len(self.prompt_posts)
        self.page.get_by_test_id("queue-button").click()
        deadline = time.time() + timeout_s
        while not self.page.evaluate(FINISHED):  # finished, refused with node errors, or refused outright
            if any(status != 200 for status, _ in self.prompt_posts[n_posts:]):
                break
            assert time.time() < deadline, f"no result {timeout_s} s after Run: {self.prompt_posts[n_posts:]}"
            self.page.wait_for_timeout(250)
        events = self.page.evaluate("() => window.__mofo.events.map(e => ({type: e.type, detail: e.detail}))")
        return {"events": events, "posts": self.prompt_posts[n_posts:],
                "node_errors": self.page.evaluate("() => app.lastNodeErrors")}

    def shot(self, name: str, clip: dict | None = None, element=None) -> Path:
        OUT.mkdir(parents=True, exist_ok=True)
        path = OUT / f"{name}.png"
        if element is not None:
            element.screenshot(path=str(path))
        else:
            self.page.screenshot(path=str(path), clip=clip)
        return path


# -- fixtures ------------------------------------------------------------------------------------------------------
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
    # the file the workflows' CLIPLoader names; never executed (runs swap in the tiny Qwen3, see SWAP)
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


# -- helpers -------------------------------------------------------------------------------------------------------
def _from_pack(entry: dict) -> bool:
    text = (entry["text"] + " " + entry["url"]).lower().replace(" ", "")
    return any(m in text for m in PACK_MARKERS)


def _saved_sizes(wf: Path) -> dict:
    return {n["id"]: n["size"] for n in json.loads(wf.read_text())["nodes"]}


def _assert_opens_cleanly(ui: UI, wf: Path, shot_name: str):
    state = ui.errors_shown()
    assert not state["overlay"] and not state["errorGroups"], \
        f"{wf.name}: the frontend reports {state['errorGroups']}:\n{state.get('details', '')}"
    assert not state["dialogs"], f"{wf.name}: dialog open after loading: {state['dialogs']}"
    layout = ui.page.evaluate(LAYOUT, _saved_sizes(wf))
    problems = [f"{k}: {p}" for k, v in layout.items() for p in v]
    assert not problems, f"{wf.name}:\n" + "\n".join(problems)
    ui.graph_shot(shot_name)
    if WRITE_DOCS:  # the template browser's card: the graph around the (first) Mofo Sampler
        side = min(VIEWPORT["width"], VIEWPORT["height"]) - 80
        cx, cy = VIEWPORT["width"] / 2, VIEWPORT["height"] / 2
        ui.page.evaluate(FOCUS, ["MofoSampler", 0.8, cx - 128, cy - 120])
        ui.page.mouse.move(5, VIEWPORT["height"] - 5)
        ui.page.wait_for_timeout(500)
        card = ui.shot(f"card_{wf.stem}", clip={"x": cx - side / 2, "y": cy - side / 2, "width": side, "height": side})
        _thumbnail(card, ROOT / "workflows" / f"{wf.stem}.jpg")


def _assert_ran(ui: UI, result: dict, wf: Path):
    posts = result["posts"]
    assert posts and posts[-1][0] == 200, f"{wf.name}: the server refused the prompt: {posts}"
    assert not result["node_errors"], f"{wf.name}: validation errors: {result['node_errors']}"
    types = [e["type"] for e in result["events"]]
    errors = [e["detail"] for e in result["events"] if e["type"] == "execution_error"]
    assert "execution_success" in types, f"{wf.name}: run did not succeed: {types} {json.dumps(errors)[:3000]}"


def _png(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB")).astype(np.int16)


def _coloured(img: np.ndarray) -> np.ndarray:
    return (img.max(-1) - img.min(-1)) > 40


def _thumbnail(src: Path, dst: Path):
    """The template browser's card picture: /api/workflow_templates/<pack>/<name>.jpg (384 px square)."""
    from PIL import Image

    Image.open(src).convert("RGB").resize((384, 384), Image.LANCZOS).save(dst, quality=82, optimize=True)


def _doc_png(src: Path, dst: Path, width: int, max_kb: int = 290):
    """A README screenshot: scaled to `width`, palette-quantised until it is under `max_kb`."""
    from PIL import Image

    im = Image.open(src).convert("RGB")
    if im.width > width:
        im = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
    for colours in (256, 128, 64):
        buf = io.BytesIO()
        im.quantize(colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(buf, "PNG", optimize=True)
        if buf.tell() < max_kb * 1024:
            break
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(buf.getvalue())
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
    wf = ROOT / "workflows" / f"{TEXT_WF}.json"
    ui.load_by_drop(wf)  # the other way a user opens a workflow file
    _assert_opens_cleanly(ui, wf, f"drop_{wf.stem}")

    # the empty 3D viewer, seen at the same zoom as after the run
    ui.close_side_panel()
    ui.page.evaluate(FOCUS, ["Preview3D", 1.0, 900, 200])
    ui.page.wait_for_timeout(800)
    assert ui.page.evaluate(MARK_VIEWER) is not None, "no 3D viewer canvas over the Preview3D node"
    viewer = ui.page.locator("canvas[data-mofo-viewer]")
    empty = ui.shot("viewer_empty", element=viewer)

    result = ui.run()
    _assert_ran(ui, result, wf)

    # RGB (SaveImage) and depth (PreviewImage) previews arrive in their nodes, at the sampled size
    ui.page.wait_for_function(
        f"() => ({IMAGES})(['SaveImage', 'PreviewImage']).every(n => n.imgs.length && n.imgs.every(i => i.ok))",
        timeout=30_000)
    previews = ui.page.evaluate(IMAGES, ["SaveImage", "PreviewImage", "MofoSaveDepth", "MofoDepthToPointCloud"])
    by_type = {p["type"]: p for p in previews}
    for t in ("SaveImage", "PreviewImage"):
        assert [(i["w"], i["h"]) for i in by_type[t]["imgs"]] == [(64, 48)], by_type[t]
    assert "type=output" in by_type["SaveImage"]["imgs"][0]["src"]
    for t in ("MofoSaveDepth", "MofoDepthToPointCloud"):  # the pack's own in-node previews
        assert by_type[t]["imgs"] and all(i["ok"] for i in by_type[t]["imgs"]), by_type[t]

    # the 3D viewer parsed the PLY as a point cloud and draws it
    if ui.has_cloud_hook:
        ui.page.wait_for_function("() => window.__mofo.clouds.length > 0", timeout=30_000)
        clouds = ui.page.evaluate("() => window.__mofo.clouds")
        assert clouds[-1]["file"].endswith(".ply") and clouds[-1]["points"] > 100, clouds
    ui.page.wait_for_timeout(1500)
    ui.page.evaluate(FOCUS, ["Preview3D", 1.0, 900, 200])
    ui.page.wait_for_timeout(500)
    assert ui.page.evaluate(MARK_VIEWER) is not None
    drawn = ui.shot("viewer_cloud", element=ui.page.locator("canvas[data-mofo-viewer]"))
    a, b = _png(empty), _png(drawn)
    assert a.shape == b.shape
    assert len(np.unique(b.reshape(-1, 3), axis=0)) > 50, "3D viewer is (nearly) one flat colour"
    new_colour = _coloured(b) & ~_coloured(a)  # coloured points where the empty viewer had grey grid/background
    assert new_colour.sum() > 50, f"3D viewer shows no point cloud ({new_colour.sum()} new coloured pixels)"

    # screenshots: the finished graph (in a wider window, for legible text), and a close-up of the point cloud
    # node + the 3D viewer, zoomed in a little with the mouse wheel as a user would
    graph = ui.graph_shot(f"ran_{wf.stem}", viewport={"width": 2560, "height": 1200})
    ui.page.evaluate(FOCUS, ["MofoDepthToPointCloud", 1.0, 420, 160])
    ui.page.wait_for_timeout(800)
    vb = ui.page.evaluate(MARK_VIEWER)
    ui.page.mouse.move(vb[0] + vb[2] / 2, vb[1] + vb[3] / 2)
    for _ in range(3):
        ui.page.mouse.wheel(0, -200)
        ui.page.wait_for_timeout(150)
    ui.page.mouse.move(5, VIEWPORT["height"] - 5)
    ui.page.wait_for_timeout(800)
    box = ui.page.evaluate("""() => { const s = app.canvas.ds.scale, TH = LiteGraph.NODE_TITLE_HEIGHT;
      const a = app.graph._nodes.find(n => n.type === 'MofoDepthToPointCloud');
      const b = app.graph._nodes.find(n => n.type === 'Preview3D');
      const [x0, y0] = app.canvasPosToClientPos([a.pos[0], a.pos[1] - TH]);
      const [x1, y1] = app.canvasPosToClientPos([b.pos[0] + b.size[0],
                                                 Math.max(a.pos[1] + a.size[1], b.pos[1] + b.size[1])]);
      return {x: x0 - 20, y: y0 - 20, width: x1 - x0 + 40, height: y1 - y0 + 40}; }""")
    close = ui.shot("pointcloud_closeup", clip=box)
    if WRITE_DOCS:
        _doc_png(graph, ROOT / "docs" / "workflow_text_to_rgbd.png", 1600)
        _doc_png(close, ROOT / "docs" / "pointcloud_preview.png", 1000)


def test_no_browser_console_error_from_the_pack(ui):
    errors = [e for e in ui.console if e["type"] in ("error", "pageerror")]
    ours = [e for e in errors if _from_pack(e)]
    others = [e for e in errors if not _from_pack(e)]
    pack_http = [(s, u) for s, u in ui.http_errors if any(m in u.lower() for m in PACK_MARKERS)]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "console.json").write_text(json.dumps({"errors": errors, "http_errors": ui.http_errors}, indent=1))
    if others:  # reported, not failed: the frontend's own (offline update check, optional user files ...)
        warnings.warn(f"{len(others)} browser console errors not from the pack (all in {OUT / 'console.json'}):\n"
                      + "\n".join(f"  [{e['type']}] {e['text'][:160]} ({e['url'][:100]})" for e in others),
                      stacklevel=1)
    assert not ours and not pack_http, f"errors from the pack: {json.dumps(ours, indent=1)[:4000]} {pack_http}"
