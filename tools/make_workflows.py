"""Write the shared workflows in workflows/ (ComfyUI UI format, frontend schema version 0.4).

    python tools/make_workflows.py

Each workflow is described once below as nodes + links; this script lays them out in columns, adds groups
and a note saying which model files to get and where. tests/integration converts the written files to API
prompts through a live ComfyUI's /object_info, so a slot or widget mistake here fails there; tests/e2e opens them
in the real frontend and checks that no node is smaller than its widgets need, that nothing overlaps and that
every group title fits its group.

It also writes assets/mofo_depth_example.png, the example depth map of the depth -> image workflow (the pack
copies it into ComfyUI's input folder on start-up, see nodes/__init__.py).
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "workflows"
DEPTH_EXAMPLE = ROOT / "assets" / "mofo_depth_example.png"
CNR = {"cnr_id": "comfyui-modality-forcing", "ver": "0.1.0"}

MOFO_URL = "https://huggingface.co/bartduis/modality_forcing/resolve/main/model.safetensors"
QWEN_URL = ("https://huggingface.co/Comfy-Org/vae-text-encorder-for-flux-klein-9b/resolve/main/split_files/"
            "text_encoders/qwen_3_8b.safetensors")
VAE_URL = "https://huggingface.co/Comfy-Org/flux2-dev/resolve/main/split_files/vae/flux2-vae.safetensors"
SD15_URL = ("https://huggingface.co/Comfy-Org/stable-diffusion-v1-5-archive/resolve/main/"
            "v1-5-pruned-emaonly-fp16.safetensors")
CN_URL = ("https://huggingface.co/comfyanonymous/ControlNet-v1-1_fp16_safetensors/resolve/main/"
          "control_v11f1p_sd15_depth_fp16.safetensors")

MOFO_FILE = "modality_forcing/model.safetensors"
QWEN_FILE = "qwen_3_8b.safetensors"
VAE_FILE = "flux2-vae.safetensors"

# node type -> (socket inputs [(name, type)], outputs [(name, type)])
SLOTS = {
    "MofoModelLoader": ([], [("model", "MOFO_MODEL")]),
    "MofoTextEncode": ([("clip", "CLIP"), ("text_encoder", "MOFO_TEXT_ENCODER")], [("CONDITIONING", "CONDITIONING")]),
    "MofoScheduler": ([], [("rgb_sigmas", "SIGMAS"), ("depth_sigmas", "SIGMAS")]),
    "MofoSampler": ([("model", "MOFO_MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING"),
                     ("rgb_sigmas", "SIGMAS"), ("depth_sigmas", "SIGMAS"), ("rgb_latent", "LATENT"),
                     ("depth_latent", "MOFO_DEPTH_LATENT")],
                    [("rgb_latent", "LATENT"), ("depth_latent", "MOFO_DEPTH_LATENT")]),
    "MofoDepthDecode": ([("depth_latent", "MOFO_DEPTH_LATENT"), ("fit", "MOFO_FIT")],
                        [("depth", "MOFO_DEPTH"), ("depth_image", "IMAGE")]),
    "MofoDepthEncode": ([("depth", "MOFO_DEPTH"), ("depth_image", "IMAGE")], [("depth_latent", "MOFO_DEPTH_LATENT")]),
    "MofoFitImage": ([("image", "IMAGE")], [("image", "IMAGE"), ("fit", "MOFO_FIT")]),
    "MofoDepthToPointCloud": ([("image", "IMAGE"), ("depth", "MOFO_DEPTH")],
                              [("ply_path", "STRING"), ("glb_path", "STRING"), ("model_3d", "FILE_3D_PLY")]),
    "MofoSaveDepth": ([("depth", "MOFO_DEPTH")], []),
    "CLIPLoader": ([], [("CLIP", "CLIP")]),
    "VAELoader": ([], [("VAE", "VAE")]),
    "VAEDecode": ([("samples", "LATENT"), ("vae", "VAE")], [("IMAGE", "IMAGE")]),
    "VAEEncode": ([("pixels", "IMAGE"), ("vae", "VAE")], [("LATENT", "LATENT")]),
    "SaveImage": ([("images", "IMAGE")], []),
    "PreviewImage": ([("images", "IMAGE")], []),
    "LoadImage": ([], [("IMAGE", "IMAGE"), ("MASK", "MASK")]),
    "ImageScale": ([("image", "IMAGE")], [("IMAGE", "IMAGE")]),
    "Preview3D": ([("model_file", "STRING"), ("camera_info", "LOAD3D_CAMERA"), ("bg_image", "IMAGE")], []),
    "CheckpointLoaderSimple": ([], [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")]),
    "CLIPTextEncode": ([("clip", "CLIP")], [("CONDITIONING", "CONDITIONING")]),
    "ControlNetLoader": ([], [("CONTROL_NET", "CONTROL_NET")]),
    "ControlNetApplyAdvanced": ([("positive", "CONDITIONING"), ("negative", "CONDITIONING"),
                                 ("control_net", "CONTROL_NET"), ("image", "IMAGE"), ("vae", "VAE")],
                                [("positive", "CONDITIONING"), ("negative", "CONDITIONING")]),
    "EmptyLatentImage": ([], [("LATENT", "LATENT")]),
    "KSampler": ([("model", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING"),
                  ("latent_image", "LATENT")], [("LATENT", "LATENT")]),
    "MarkdownNote": ([], []),
}
TITLES = {"MofoTextEncode": "Mofo Text Encode"}
MODELS = {  # properties.models lets the frontend's missing-model dialog offer the download
    # the frontend matches `name` against the widget value, and `directory` must be a models/ folder key
    "MofoModelLoader": [{"name": MOFO_FILE, "url": MOFO_URL, "directory": "diffusion_models"}],
    "CLIPLoader": [{"name": QWEN_FILE, "url": QWEN_URL, "directory": "text_encoders"}],
    "VAELoader": [{"name": VAE_FILE, "url": VAE_URL, "directory": "vae"}],
    "CheckpointLoaderSimple": [{"name": "v1-5-pruned-emaonly-fp16.safetensors", "url": SD15_URL,
                                "directory": "checkpoints"}],
    "ControlNetLoader": [{"name": "control_v11f1p_sd15_depth_fp16.safetensors", "url": CN_URL,
                          "directory": "controlnet"}],
}

FILES_NOTE = f"""## Model files (put them here, then press Run)
* **`model.safetensors`** (24 GB, the Modality Forcing DiT) in `models/diffusion_models/modality_forcing/`
  from [bartduis/modality_forcing]({MOFO_URL}), or use **Mofo Download + Load Model** instead of Mofo Load Model
* **`{QWEN_FILE}`** (16 GB; `qwen_3_8b_fp8mixed` works too) in `models/text_encoders/` from [Comfy-Org]({QWEN_URL})
* **`{VAE_FILE}`** (the FLUX.2 VAE) in `models/vae/` from [Comfy-Org]({VAE_URL})

The Modality Forcing weights are **CC BY-NC 4.0 (non-commercial)**. Needs ComfyUI >= 0.9.2 (Qwen3-8B text
encoder)."""


# Layout. Heights below are what the ComfyUI 0.29 frontend (1.47) computes for each node's slots + widgets
# (LGraphNode.computeSize, title bar excluded), plus a little air: a node saved smaller is grown on load and then
# overlaps the node under it. Nodes with a preview (images, the 3D viewer) get room for it.
W = 320  # default node width
TITLE = 30  # LiteGraph.NODE_TITLE_HEIGHT
ROW_GAP, COL_GAP, GROUP_GAP = 30, 60, 50  # between nodes in a column / columns / groups stacked in a column
GROUP_PAD, GROUP_HEAD = 20, 45  # group border around its nodes; group title bar above them
MIN_H = {
    "MofoModelLoader": 140, "CLIPLoader": 110, "VAELoader": 60, "MofoTextEncode": 160, "MofoScheduler": 200,
    "MofoSampler": 380, "MofoDepthDecode": 80, "MofoDepthEncode": 110, "MofoFitImage": 130,
    "MofoDepthToPointCloud": 330, "MofoSaveDepth": 260, "VAEDecode": 50, "VAEEncode": 50, "SaveImage": 320,
    "PreviewImage": 320, "LoadImage": 340, "ImageScale": 140, "Preview3D": 440, "CheckpointLoaderSimple": 100,
    "CLIPTextEncode": 130, "ControlNetLoader": 60, "ControlNetApplyAdvanced": 190, "EmptyLatentImage": 110,
    "KSampler": 270, "MarkdownNote": 300,
}
VIEW = {"scale": 0.75, "offset": [60, 110]}  # opening view: the groups' titles clear the frontend's top bar


class Graph:
    """Nodes are placed by (column, row): columns left to right, rows top to bottom inside a column, each node
    as tall as it needs (MIN_H); groups are drawn around their nodes at write time."""

    def __init__(self):
        self.nodes, self.links, self.groups = [], [], []

    def add(self, ntype, widgets=(), col=0, row=0, title=None, size=None, props=None):
        ins, outs = SLOTS[ntype]
        node = {
            "id": len(self.nodes) + 1, "type": ntype, "pos": [0, 0],
            "size": size or [W, MIN_H[ntype]], "flags": {}, "order": len(self.nodes), "mode": 0,
            "inputs": [{"name": n, "type": t, "link": None} for n, t in ins],
            "outputs": [{"name": n, "type": t, "links": [], "slot_index": i} for i, (n, t) in enumerate(outs)],
            "properties": {"Node name for S&R": ntype, **({} if ntype == "MarkdownNote" else CNR), **(props or {})},
            "widgets_values": list(widgets),
        }
        if ntype in MODELS:
            node["properties"]["models"] = MODELS[ntype]
        if title or ntype in TITLES:
            node["title"] = title or TITLES[ntype]
        self.nodes.append(node)
        self._cell = getattr(self, "_cell", {})
        self._cell[node["id"]] = (col, row)
        return node["id"]

    def link(self, src, out_name, dst, in_name):
        s, d = self.nodes[src - 1], self.nodes[dst - 1]
        oi = next(i for i, o in enumerate(s["outputs"]) if o["name"] == out_name)
        ii = next(i for i, p in enumerate(d["inputs"]) if p["name"] == in_name)
        lid = len(self.links) + 1
        t = s["outputs"][oi]["type"]
        self.links.append([lid, src, oi, dst, ii, t])
        s["outputs"][oi]["links"].append(lid)
        d["inputs"][ii]["link"] = lid

    def group(self, title, ids, color):
        self.groups.append({"title": title, "ids": list(ids), "color": color, "font_size": 22})

    def _layout(self):
        group_of = {i: gi for gi, g in enumerate(self.groups) for i in g["ids"]}
        cols = sorted({c for c, _ in self._cell.values()})
        x, col_x = 40, {}
        for c in cols:
            col_x[c] = x
            x += max(n["size"][0] for n in self.nodes if self._cell[n["id"]][0] == c) + COL_GAP
        for c in cols:
            y, prev = GROUP_HEAD + GROUP_PAD + TITLE, None
            column = sorted((n for n in self.nodes if self._cell[n["id"]][0] == c),
                            key=lambda n: self._cell[n["id"]][1])
            for n in column:
                g = group_of.get(n["id"], -1)
                if prev is not None and g != prev:  # leave room for the group borders and the next group's title
                    y += GROUP_GAP + GROUP_PAD + (GROUP_HEAD if g >= 0 else 0)
                n["pos"] = [col_x[c], y]
                y += n["size"][1] + TITLE + ROW_GAP
                prev = g
        for g in self.groups:
            ns = [self.nodes[i - 1] for i in g.pop("ids")]
            x0 = min(n["pos"][0] for n in ns) - GROUP_PAD
            y0 = min(n["pos"][1] for n in ns) - TITLE - GROUP_HEAD
            x1 = max(n["pos"][0] + n["size"][0] for n in ns) + GROUP_PAD
            y1 = max(n["pos"][1] + n["size"][1] for n in ns) + GROUP_PAD
            g["bounding"] = [x0, y0, x1 - x0, y1 - y0]
            g.update(title=g.pop("title"), color=g.pop("color"), font_size=g.pop("font_size"))

    def write(self, name, description):
        self._layout()
        for n in self.nodes:  # drop optional sockets nobody uses, as the frontend saves them
            n["inputs"] = [i for i in n["inputs"] if i["link"] is not None or i["name"] in _REQUIRED.get(n["type"], ())]
            for i, p in enumerate(n["inputs"]):
                for lk in self.links:
                    if lk[0] == p["link"]:
                        lk[4] = i
        doc = {"last_node_id": len(self.nodes), "last_link_id": len(self.links), "nodes": self.nodes,
               "links": self.links, "groups": self.groups, "config": {},
               "extra": {"ds": VIEW, "info": {"description": description}},
               "version": 0.4}
        (OUT / name).write_text(json.dumps(doc, indent=1) + "\n")


_REQUIRED = {t: tuple(n for n, _ in ins) for t, (ins, _) in SLOTS.items()}
for _t, _opt in {"MofoTextEncode": ("clip", "text_encoder"), "MofoSampler": ("rgb_latent", "depth_latent"),
                 "MofoDepthDecode": ("fit",), "MofoDepthEncode": ("depth", "depth_image"),
                 "Preview3D": ("camera_info", "bg_image"), "ControlNetApplyAdvanced": ("vae",)}.items():
    _REQUIRED[_t] = tuple(n for n in _REQUIRED[_t] if n not in _opt)

BLUE, GREEN, PURPLE, BROWN = "#3f5a7a", "#3f6b4a", "#5b4a78", "#6b5a3f"


def models(g: Graph):
    m = g.add("MofoModelLoader", [MOFO_FILE, "default", "auto", False], 0, 0)
    c = g.add("CLIPLoader", [QWEN_FILE, "flux2", "default"], 0, 1)
    v = g.add("VAELoader", [VAE_FILE], 0, 2)
    g.group("1. Models", [m, c, v], BLUE)
    return m, c, v


def note(g: Graph, text: str):
    """The model-files note, under the Models group (column 0)."""
    g.add("MarkdownNote", [FILES_NOTE + "\n\n" + text], 0, 9, size=[W, 470])


def prompts(g: Graph, clip, text, col=1):
    p = g.add("MofoTextEncode", [text], col, 0, title="Prompt")
    n = g.add("MofoTextEncode", [""], col, 1, title="Negative (empty = unconditional)")
    g.link(clip, "CLIP", p, "clip")
    g.link(clip, "CLIP", n, "clip")
    g.group("2. Prompt", [p, n], GREEN)
    return p, n


def sampler(g, model, pos, neg, mode, steps=50, cfg=4.0, log2_alpha=5.0, col=2, rgb_dn=1.0, depth_dn=1.0, row=0):
    s = g.add("MofoScheduler", [steps, mode, 1.1, log2_alpha, rgb_dn, depth_dn], col, row)
    k = g.add("MofoSampler", [cfg, -1.0, 0, "fixed", 512, 512, 1, "device (reference)", True], col, row + 1)
    g.link(model, "model", k, "model")
    g.link(pos, "CONDITIONING", k, "positive")
    g.link(neg, "CONDITIONING", k, "negative")
    g.link(s, "rgb_sigmas", k, "rgb_sigmas")
    g.link(s, "depth_sigmas", k, "depth_sigmas")
    return s, k


def cloud(g, image_src, image_out, depth_src, col, row=0):
    pc = g.add("MofoDepthToPointCloud", [65.0, 0.04, False, 0, "mofo/cloud"], col, row)
    g.link(image_src, image_out, pc, "image")
    g.link(depth_src, "depth", pc, "depth")
    p3 = g.add("Preview3D", [""], col + 1, row, size=[480, 480])
    g.link(pc, "ply_path", p3, "model_file")
    return pc, p3


def text_to_rgbd():
    g = Graph()
    m, c, v = models(g)
    p, n = prompts(g, c, "A warm, inviting kitchen with a rustic-modern feel, soft morning light through a small "
                         "window above the sink")
    s, k = sampler(g, m, p, n, "joint")
    g.group("3. Sample RGB + depth", [s, k], PURPLE)
    dec = g.add("VAEDecode", [], 3, 0)
    g.link(k, "rgb_latent", dec, "samples")
    g.link(v, "VAE", dec, "vae")
    dd = g.add("MofoDepthDecode", ["grey"], 3, 1)
    g.link(k, "depth_latent", dd, "depth_latent")
    sd = g.add("MofoSaveDepth", ["mofo/depth", "png16"], 3, 2)
    g.link(dd, "depth", sd, "depth")
    save = g.add("SaveImage", ["mofo/rgb"], 4, 0)
    g.link(dec, "IMAGE", save, "images")
    pv = g.add("PreviewImage", [], 4, 1, title="Depth (near = white)")
    g.link(dd, "depth_image", pv, "images")
    pc, p3 = cloud(g, dec, "IMAGE", dd, 5)
    g.group("4. Outputs: image, 16-bit depth, point cloud", [dec, save, dd, pv, sd, pc, p3], BROWN)
    note(g, "Text -> RGB + depth + point cloud: each modality walks its own noise schedule. `log2_alpha` 5 lets "
            "the RGB settle first (cleaner depth); 0 denoises both together.")
    g.write("mofo_text_to_rgbd_pointcloud.json", "Modality Forcing: text -> RGB + depth + point cloud")


def image_to_depth():
    g = Graph()
    m, c, v = models(g)
    p, n = prompts(g, c, "", col=1)
    li = g.add("LoadImage", ["example.png", "image"], 2, 0)
    fit = g.add("MofoFitImage", [512, 512, "letterbox"], 2, 1)
    g.link(li, "IMAGE", fit, "image")
    enc = g.add("VAEEncode", [], 2, 2)
    g.link(fit, "image", enc, "pixels")
    g.link(v, "VAE", enc, "vae")
    s, k = sampler(g, m, p, n, "i2d", cfg=1.0, col=3)
    g.link(enc, "LATENT", k, "rgb_latent")
    g.group("3. Image -> depth (letterbox in, crop out)", [li, fit, enc, s, k], PURPLE)
    dd = g.add("MofoDepthDecode", ["grey"], 4, 0)
    g.link(k, "depth_latent", dd, "depth_latent")
    g.link(fit, "fit", dd, "fit")
    pv = g.add("PreviewImage", [], 4, 1, title="Depth (near = white)")
    g.link(dd, "depth_image", pv, "images")
    sd = g.add("MofoSaveDepth", ["mofo/depth", "exr"], 4, 2)
    g.link(dd, "depth", sd, "depth")
    pc, p3 = cloud(g, li, "IMAGE", dd, 5)
    g.group("4. Depth at the input's size (EXR) + point cloud", [dd, pv, sd, pc, p3], BROWN)
    note(g, "Image -> depth. Load any photo; the depth comes back at its size. The prompt may stay empty (the "
            "reference demo clears it).")
    g.write("mofo_image_to_depth_pointcloud.json", "Modality Forcing: image -> depth (any aspect) -> point cloud")


def depth_to_image():
    g = Graph()
    m, c, v = models(g)
    p, n = prompts(g, c, "a cozy reading nook with warm lamps, bookshelves, evening")
    li = g.add("LoadImage", [DEPTH_EXAMPLE.name, "image"], 2, 0, title="Depth image (near = bright)")
    sc = g.add("ImageScale", ["bilinear", 512, 512, "disabled"], 2, 1)
    g.link(li, "IMAGE", sc, "image")
    de = g.add("MofoDepthEncode", [True, True], 2, 2)
    g.link(sc, "IMAGE", de, "depth_image")
    s, k = sampler(g, m, p, n, "d2i", col=3)
    g.link(de, "depth_latent", k, "depth_latent")
    g.group("3. Depth -> image (depth held clean)", [li, sc, de, s, k], PURPLE)
    dec = g.add("VAEDecode", [], 4, 0)
    g.link(k, "rgb_latent", dec, "samples")
    g.link(v, "VAE", dec, "vae")
    save = g.add("SaveImage", ["mofo/d2i"], 4, 1)
    g.link(dec, "IMAGE", save, "images")
    g.group("4. Output", [dec, save], BROWN)
    note(g, f"Depth -> image. `{DEPTH_EXAMPLE.name}` is an example (the pack puts it in `input/`); any depth "
            "node's image works (most are disparity: near is bright). Mofo Depth Encode's `robust` ignores holes.")
    g.write("mofo_depth_to_image.json", "Modality Forcing: depth -> image")


def depth_controlnet():
    g = Graph()
    m, c, v = models(g)
    p, n = prompts(g, c, "a bright modern loft with large windows and plants")
    s, k = sampler(g, m, p, n, "joint")
    dd = g.add("MofoDepthDecode", ["grey"], 3, 0)
    g.link(k, "depth_latent", dd, "depth_latent")
    pv = g.add("PreviewImage", [], 3, 1, title="Depth (ControlNet convention)")
    g.link(dd, "depth_image", pv, "images")
    g.group("3. Modality Forcing: text -> depth", [s, k, dd, pv], PURPLE)
    ck = g.add("CheckpointLoaderSimple", ["v1-5-pruned-emaonly-fp16.safetensors"], 4, 0)
    cp = g.add("CLIPTextEncode", ["a watercolor painting of a loft with plants, soft light"], 4, 1)
    cn = g.add("CLIPTextEncode", ["blurry, low quality"], 4, 2)
    g.link(ck, "CLIP", cp, "clip")
    g.link(ck, "CLIP", cn, "clip")
    cl = g.add("ControlNetLoader", ["control_v11f1p_sd15_depth_fp16.safetensors"], 5, 0)
    ap = g.add("ControlNetApplyAdvanced", [1.0, 0.0, 1.0], 5, 1)
    g.link(cp, "CONDITIONING", ap, "positive")
    g.link(cn, "CONDITIONING", ap, "negative")
    g.link(cl, "CONTROL_NET", ap, "control_net")
    g.link(dd, "depth_image", ap, "image")
    el = g.add("EmptyLatentImage", [512, 512, 1], 5, 2)
    ks = g.add("KSampler", [0, "fixed", 20, 7.0, "euler", "normal", 1.0], 6, 0)
    g.link(ck, "MODEL", ks, "model")
    g.link(ap, "positive", ks, "positive")
    g.link(ap, "negative", ks, "negative")
    g.link(el, "LATENT", ks, "latent_image")
    dec = g.add("VAEDecode", [], 6, 1)
    g.link(ks, "LATENT", dec, "samples")
    g.link(ck, "VAE", dec, "vae")
    save = g.add("SaveImage", ["mofo/controlnet"], 7, 0)
    g.link(dec, "IMAGE", save, "images")
    g.group("4. SD 1.5 guided by that depth (ControlNet)", [ck, cp, cn, cl, ap, el, ks, dec, save], BROWN)
    note(g, "Plus, for the second model: `v1-5-pruned-emaonly-fp16.safetensors` in `models/checkpoints/` and "
            "`control_v11f1p_sd15_depth_fp16.safetensors` in `models/controlnet/`. Any depth ControlNet takes "
            "Mofo's depth image (near = white).")
    g.write("mofo_depth_to_controlnet.json", "Modality Forcing depth image -> Apply ControlNet on another model")


def depth_guided_edit():
    g = Graph()
    m, c, v = models(g)
    p0, n0 = prompts(g, c, "")
    li = g.add("LoadImage", ["example.png", "image"], 2, 0)
    sc = g.add("ImageScale", ["area", 512, 512, "center"], 2, 1)
    g.link(li, "IMAGE", sc, "image")
    enc = g.add("VAEEncode", [], 2, 2)
    g.link(sc, "IMAGE", enc, "pixels")
    g.link(v, "VAE", enc, "vae")
    s1, k1 = sampler(g, m, p0, n0, "i2d", cfg=1.0, col=3)
    g.link(enc, "LATENT", k1, "rgb_latent")
    g.group("3. Depth of the input image", [li, sc, enc, s1, k1], PURPLE)
    pe = g.add("MofoTextEncode", ["the same room in winter, snow outside, cold blue light"], 4, 0, title="Edit prompt")
    g.link(c, "CLIP", pe, "clip")
    s2, k2 = sampler(g, m, pe, n0, "joint", log2_alpha=0.0, col=4, rgb_dn=0.6, depth_dn=0.0, row=1)
    g.link(enc, "LATENT", k2, "rgb_latent")
    g.link(k1, "depth_latent", k2, "depth_latent")
    g.group("4. Edit (depth held)", [pe, s2, k2], GREEN)
    dec = g.add("VAEDecode", [], 5, 0)
    g.link(k2, "rgb_latent", dec, "samples")
    g.link(v, "VAE", dec, "vae")
    save = g.add("SaveImage", ["mofo/edit"], 5, 1)
    g.link(dec, "IMAGE", save, "images")
    g.group("5. Output", [dec, save], BROWN)
    note(g, "Depth-guided edit: the first sampler estimates depth; the second re-noises the RGB to 60 % "
            "(`rgb_denoise`) while the depth stays clean (`depth_denoise` 0), so the layout holds while the look "
            "changes.")
    g.write("mofo_depth_guided_edit.json", "Modality Forcing: partial-noise RGB edit guided by held-clean depth")


def write_depth_example(path: Path = DEPTH_EXAMPLE, size: int = 512) -> None:
    """A synthetic depth map of a room (floor, ceiling, walls, back wall, a table and a ball), ray-cast from a
    pinhole camera; stored as 8-bit disparity (near = bright), as most depth nodes write it."""
    import numpy as np
    from PIL import Image

    f = 0.5 * size / np.tan(np.radians(65.0) / 2)
    v, u = np.mgrid[0:size, 0:size] + 0.5
    d = np.stack([(u - size / 2) / f, -(v - size / 2) / f, -np.ones_like(u)], -1)  # rays, camera at 1.5 m
    z = np.full(u.shape, np.inf)

    def plane(axis, value, lo=None, hi=None):
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (value - (1.5 if axis == 1 else 0.0)) / d[..., axis]
        p = d * t[..., None] + np.array([0, 1.5, 0])
        ok = t > 0
        for ax, (a, b) in (lo or {}).items():
            ok &= (p[..., ax] >= a) & (p[..., ax] <= b)
        np.minimum(z, np.where(ok, t, np.inf), out=z)

    plane(1, 0.0)  # floor
    plane(1, 2.8)  # ceiling
    plane(0, -2.2)  # left wall
    plane(0, 2.4)  # right wall
    plane(2, -6.0)  # back wall
    plane(1, 0.75, {0: (-1.6, -0.2), 2: (-3.6, -2.4)})  # table top
    plane(2, -2.4, {0: (-1.6, -0.2), 1: (0.0, 0.75)})  # table front
    c, r = np.array([1.0, 0.45, -3.0]), 0.45  # ball on the floor
    o = np.array([0, 1.5, 0]) - c
    b = (d * o).sum(-1)
    disc = b**2 - (d * d).sum(-1) * ((o * o).sum() - r * r)
    t = (-b - np.sqrt(np.maximum(disc, 0))) / (d * d).sum(-1)
    np.minimum(z, np.where((disc > 0) & (t > 0), t, np.inf), out=z)
    disp = 1.0 / z
    img = (255 * (disp - disp.min()) / (disp.max() - disp.min())).round().astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img, "L").save(path, optimize=True)


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    for make in (text_to_rgbd, image_to_depth, depth_to_image, depth_controlnet, depth_guided_edit):
        make()
    write_depth_example()
    print("wrote", sorted(p.name for p in OUT.glob("*.json")))
