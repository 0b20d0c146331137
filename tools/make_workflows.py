"""Write the shared workflows in workflows/ (ComfyUI UI format, frontend schema version 0.4).

    python tools/make_workflows.py

Each workflow is described once below as nodes + links; this script lays them out in columns, adds groups
and a note saying which model files to get and where. tests/integration converts the written files to API
prompts through a live ComfyUI's /object_info, so a slot or widget mistake here fails there.
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "workflows"
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
    "MofoModelLoader": [{"name": "model.safetensors", "url": MOFO_URL, "directory": "diffusion_models/modality_forcing"}],
    "CLIPLoader": [{"name": QWEN_FILE, "url": QWEN_URL, "directory": "text_encoders"}],
    "VAELoader": [{"name": VAE_FILE, "url": VAE_URL, "directory": "vae"}],
    "CheckpointLoaderSimple": [{"name": "v1-5-pruned-emaonly-fp16.safetensors", "url": SD15_URL,
                                "directory": "checkpoints"}],
    "ControlNetLoader": [{"name": "control_v11f1p_sd15_depth_fp16.safetensors", "url": CN_URL,
                          "directory": "controlnet"}],
}

FILES_NOTE = f"""## Model files (put them here, then press Run)
| file | folder | from |
|---|---|---|
| `model.safetensors` (24 GB, Modality Forcing DiT) | `models/diffusion_models/modality_forcing/` | [bartduis/modality_forcing]({MOFO_URL}) |
| `{QWEN_FILE}` (16 GB; `qwen_3_8b_fp8mixed` works too) | `models/text_encoders/` | [Comfy-Org]({QWEN_URL}) |
| `{VAE_FILE}` (FLUX.2 VAE) | `models/vae/` | [Comfy-Org]({VAE_URL}) |

Or use **Mofo Download + Load Model** instead of Mofo Load Model. The Modality Forcing weights are
**CC BY-NC 4.0 (non-commercial)**. Needs ComfyUI >= 0.9.2 (Qwen3-8B text encoder)."""


class Graph:
    def __init__(self):
        self.nodes, self.links, self.groups = [], [], []

    def add(self, ntype, widgets=(), col=0, row=0, title=None, size=None, props=None):
        ins, outs = SLOTS[ntype]
        node = {
            "id": len(self.nodes) + 1, "type": ntype, "pos": [40 + col * 360, 80 + row * 190],
            "size": size or [320, 150 if widgets else 60], "flags": {}, "order": len(self.nodes), "mode": 0,
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
        xs = [self.nodes[i - 1]["pos"][0] for i in ids]
        ys = [self.nodes[i - 1]["pos"][1] for i in ids]
        x2 = [self.nodes[i - 1]["pos"][0] + self.nodes[i - 1]["size"][0] for i in ids]
        y2 = [self.nodes[i - 1]["pos"][1] + self.nodes[i - 1]["size"][1] for i in ids]
        self.groups.append({"title": title, "bounding": [min(xs) - 20, min(ys) - 50, max(x2) - min(xs) + 40,
                                                         max(y2) - min(ys) + 70], "color": color, "font_size": 22})

    def write(self, name, description):
        for n in self.nodes:  # drop optional sockets nobody uses, as the frontend saves them
            n["inputs"] = [i for i in n["inputs"] if i["link"] is not None or i["name"] in _REQUIRED.get(n["type"], ())]
            for i, p in enumerate(n["inputs"]):
                for lk in self.links:
                    if lk[0] == p["link"]:
                        lk[4] = i
        doc = {"last_node_id": len(self.nodes), "last_link_id": len(self.links), "nodes": self.nodes,
               "links": self.links, "groups": self.groups, "config": {},
               "extra": {"ds": {"scale": 0.75, "offset": [0, 0]}, "info": {"description": description}},
               "version": 0.4}
        (OUT / name).write_text(json.dumps(doc, indent=1) + "\n")


_REQUIRED = {t: tuple(n for n, _ in ins) for t, (ins, _) in SLOTS.items()}
for _t, _opt in {"MofoTextEncode": ("clip", "text_encoder"), "MofoSampler": ("rgb_latent", "depth_latent"),
                 "MofoDepthDecode": ("fit",), "MofoDepthEncode": ("depth", "depth_image"),
                 "Preview3D": ("camera_info", "bg_image"), "ControlNetApplyAdvanced": ("vae",)}.items():
    _REQUIRED[_t] = tuple(n for n in _REQUIRED[_t] if n not in _opt)

BLUE, GREEN, PURPLE, BROWN = "#3f5a7a", "#3f6b4a", "#5b4a78", "#6b5a3f"


def models(g: Graph):
    m = g.add("MofoModelLoader", [MOFO_FILE, "default"], 0, 0)
    c = g.add("CLIPLoader", [QWEN_FILE, "flux2", "default"], 0, 1)
    v = g.add("VAELoader", [VAE_FILE], 0, 2)
    g.group("1. Models", [m, c, v], BLUE)
    return m, c, v


def prompts(g: Graph, clip, text, col=1):
    p = g.add("MofoTextEncode", [text], col, 0, title="Prompt", size=[320, 160])
    n = g.add("MofoTextEncode", [""], col, 1, title="Negative (leave empty: the model's unconditional)")
    g.link(clip, "CLIP", p, "clip")
    g.link(clip, "CLIP", n, "clip")
    g.group("2. Prompt", [p, n], GREEN)
    return p, n


def sampler(g, model, pos, neg, mode, steps=50, cfg=4.0, log2_alpha=5.0, col=2, rgb_dn=1.0, depth_dn=1.0, row=0):
    s = g.add("MofoScheduler", [steps, mode, 1.1, log2_alpha, rgb_dn, depth_dn], col, row)
    k = g.add("MofoSampler", [cfg, -1.0, 0, "fixed", 512, 512, 1, "device (reference)"], col, row + 1, size=[320, 330])
    g.link(model, "model", k, "model")
    g.link(pos, "CONDITIONING", k, "positive")
    g.link(neg, "CONDITIONING", k, "negative")
    g.link(s, "rgb_sigmas", k, "rgb_sigmas")
    g.link(s, "depth_sigmas", k, "depth_sigmas")
    return s, k


def cloud(g, image_src, image_out, depth_src, col, row):
    pc = g.add("MofoDepthToPointCloud", [65.0, 0.04, False, 0, "mofo/cloud"], col, row, size=[320, 300])
    g.link(image_src, image_out, pc, "image")
    g.link(depth_src, "depth", pc, "depth")
    p3 = g.add("Preview3D", [""], col + 1, row, size=[420, 420])
    g.link(pc, "ply_path", p3, "model_file")
    return pc, p3


def text_to_rgbd():
    g = Graph()
    m, c, v = models(g)
    p, n = prompts(g, c, "A warm, inviting kitchen with a rustic-modern feel, soft morning light through a small "
                         "window above the sink")
    s, k = sampler(g, m, p, n, "joint")
    g.group("3. Sample RGB + depth (each on its own noise schedule)", [s, k], PURPLE)
    dec = g.add("VAEDecode", [], 3, 0)
    g.link(k, "rgb_latent", dec, "samples")
    g.link(v, "VAE", dec, "vae")
    save = g.add("SaveImage", ["mofo/rgb"], 4, 0, size=[320, 320])
    g.link(dec, "IMAGE", save, "images")
    dd = g.add("MofoDepthDecode", ["grey"], 3, 1)
    g.link(k, "depth_latent", dd, "depth_latent")
    pv = g.add("PreviewImage", [], 4, 2, title="Depth (near = white)", size=[320, 320])
    g.link(dd, "depth_image", pv, "images")
    sd = g.add("MofoSaveDepth", ["mofo/depth", "png16"], 3, 2)
    g.link(dd, "depth", sd, "depth")
    pc, p3 = cloud(g, dec, "IMAGE", dd, 5, 0)
    g.group("4. Outputs: image, depth (16-bit), point cloud", [dec, save, dd, pv, sd, pc, p3], BROWN)
    g.add("MarkdownNote", [FILES_NOTE + "\n\nText -> RGB + depth + point cloud. `log2_alpha` 5 lets RGB settle "
                           "first (cleaner depth); 0 denoises both together."], 1, 3, size=[700, 300])
    g.write("mofo_text_to_rgbd_pointcloud.json", "Modality Forcing: text -> RGB + depth + point cloud")


def image_to_depth():
    g = Graph()
    m, c, v = models(g)
    p, n = prompts(g, c, "", col=1)
    li = g.add("LoadImage", ["example.png", "image"], 1, 2, size=[320, 320])
    fit = g.add("MofoFitImage", [512, 512, "letterbox"], 2, 2)
    g.link(li, "IMAGE", fit, "image")
    enc = g.add("VAEEncode", [], 2, 3)
    g.link(fit, "image", enc, "pixels")
    g.link(v, "VAE", enc, "vae")
    s, k = sampler(g, m, p, n, "i2d", cfg=1.0, col=3)
    g.link(enc, "LATENT", k, "rgb_latent")
    g.group("3. Image -> depth (any aspect: letterbox in, crop out)", [li, fit, enc, s, k], PURPLE)
    dd = g.add("MofoDepthDecode", ["grey"], 4, 0)
    g.link(k, "depth_latent", dd, "depth_latent")
    g.link(fit, "fit", dd, "fit")
    pv = g.add("PreviewImage", [], 4, 1, title="Depth (near = white)", size=[320, 320])
    g.link(dd, "depth_image", pv, "images")
    sd = g.add("MofoSaveDepth", ["mofo/depth", "exr"], 4, 3)
    g.link(dd, "depth", sd, "depth")
    pc, p3 = cloud(g, li, "IMAGE", dd, 5, 0)
    g.group("4. Depth at the input's size, saved as EXR, and its point cloud", [dd, pv, sd, pc, p3], BROWN)
    g.add("MarkdownNote", [FILES_NOTE + "\n\nImage -> depth. Load any photo; the depth comes back at its size. "
                           "The prompt may stay empty (the reference demo clears it)."], 0, 3, size=[700, 300])
    g.write("mofo_image_to_depth_pointcloud.json", "Modality Forcing: image -> depth (any aspect) -> point cloud")


def depth_to_image():
    g = Graph()
    m, c, v = models(g)
    p, n = prompts(g, c, "a cozy reading nook with warm lamps, bookshelves, evening")
    li = g.add("LoadImage", ["depth_example.png", "image"], 1, 2, title="Depth image (near = bright)", size=[320, 320])
    sc = g.add("ImageScale", ["bilinear", 512, 512, "disabled"], 2, 2)
    g.link(li, "IMAGE", sc, "image")
    de = g.add("MofoDepthEncode", [True, True], 2, 3)
    g.link(sc, "IMAGE", de, "depth_image")
    s, k = sampler(g, m, p, n, "d2i", col=3)
    g.link(de, "depth_latent", k, "depth_latent")
    g.group("3. Depth -> image (depth held clean)", [li, sc, de, s, k], PURPLE)
    dec = g.add("VAEDecode", [], 4, 0)
    g.link(k, "rgb_latent", dec, "samples")
    g.link(v, "VAE", dec, "vae")
    save = g.add("SaveImage", ["mofo/d2i"], 5, 0, size=[320, 320])
    g.link(dec, "IMAGE", save, "images")
    g.group("4. Output", [dec, save], BROWN)
    g.add("MarkdownNote", [FILES_NOTE + "\n\nDepth -> image. Any depth node's image works (most are disparity: "
                           "near is bright). Mofo Depth Encode's `robust` ignores holes."], 0, 3, size=[700, 300])
    g.write("mofo_depth_to_image.json", "Modality Forcing: depth -> image")


def depth_controlnet():
    g = Graph()
    m, c, v = models(g)
    p, n = prompts(g, c, "a bright modern loft with large windows and plants")
    s, k = sampler(g, m, p, n, "joint")
    dd = g.add("MofoDepthDecode", ["grey"], 3, 0)
    g.link(k, "depth_latent", dd, "depth_latent")
    pv = g.add("PreviewImage", [], 3, 1, title="Depth (ControlNet convention)", size=[320, 320])
    g.link(dd, "depth_image", pv, "images")
    g.group("3. Modality Forcing: text -> depth image", [s, k, dd, pv], PURPLE)
    ck = g.add("CheckpointLoaderSimple", ["v1-5-pruned-emaonly-fp16.safetensors"], 4, 0)
    cp = g.add("CLIPTextEncode", ["a watercolor painting of a loft with plants, soft light"], 4, 1, size=[320, 160])
    cn = g.add("CLIPTextEncode", ["blurry, low quality"], 4, 2)
    g.link(ck, "CLIP", cp, "clip")
    g.link(ck, "CLIP", cn, "clip")
    cl = g.add("ControlNetLoader", ["control_v11f1p_sd15_depth_fp16.safetensors"], 5, 0)
    ap = g.add("ControlNetApplyAdvanced", [1.0, 0.0, 1.0], 5, 1, size=[320, 200])
    g.link(cp, "CONDITIONING", ap, "positive")
    g.link(cn, "CONDITIONING", ap, "negative")
    g.link(cl, "CONTROL_NET", ap, "control_net")
    g.link(dd, "depth_image", ap, "image")
    el = g.add("EmptyLatentImage", [512, 512, 1], 5, 2)
    ks = g.add("KSampler", [0, "fixed", 20, 7.0, "euler", "normal", 1.0], 6, 0, size=[320, 300])
    g.link(ck, "MODEL", ks, "model")
    g.link(ap, "positive", ks, "positive")
    g.link(ap, "negative", ks, "negative")
    g.link(el, "LATENT", ks, "latent_image")
    dec = g.add("VAEDecode", [], 6, 2)
    g.link(ks, "LATENT", dec, "samples")
    g.link(ck, "VAE", dec, "vae")
    save = g.add("SaveImage", ["mofo/controlnet"], 7, 0, size=[320, 320])
    g.link(dec, "IMAGE", save, "images")
    g.group("4. Another model guided by that depth (SD 1.5 + depth ControlNet)", [ck, cp, cn, cl, ap, el, ks, dec, save],
            BROWN)
    g.add("MarkdownNote", [FILES_NOTE + "\n\nPlus, for the second model: `v1-5-pruned-emaonly-fp16.safetensors` in "
                           "`models/checkpoints/` and `control_v11f1p_sd15_depth_fp16.safetensors` in "
                           "`models/controlnet/`. Any depth ControlNet takes Mofo's depth image (near = white)."],
          0, 3, size=[700, 320])
    g.write("mofo_depth_to_controlnet.json", "Modality Forcing depth image -> Apply ControlNet on another model")


def depth_guided_edit():
    g = Graph()
    m, c, v = models(g)
    p0, n0 = prompts(g, c, "")
    li = g.add("LoadImage", ["example.png", "image"], 1, 2, size=[320, 320])
    sc = g.add("ImageScale", ["area", 512, 512, "center"], 1, 3)
    g.link(li, "IMAGE", sc, "image")
    enc = g.add("VAEEncode", [], 2, 2)
    g.link(sc, "IMAGE", enc, "pixels")
    g.link(v, "VAE", enc, "vae")
    s1, k1 = sampler(g, m, p0, n0, "i2d", cfg=1.0, col=2)
    g.link(enc, "LATENT", k1, "rgb_latent")
    g.group("3. Depth of the input image", [li, sc, enc, s1, k1], PURPLE)
    pe = g.add("MofoTextEncode", ["the same room in winter, snow outside, cold blue light"], 3, 0, title="Edit prompt",
               size=[320, 160])
    g.link(c, "CLIP", pe, "clip")
    s2, k2 = sampler(g, m, pe, n0, "joint", log2_alpha=0.0, col=3, rgb_dn=0.6, depth_dn=0.0, row=1)
    g.link(enc, "LATENT", k2, "rgb_latent")
    g.link(k1, "depth_latent", k2, "depth_latent")
    g.group("4. Edit: RGB re-noised to 60 %, depth held clean (geometry kept)", [pe, s2, k2], GREEN)
    dec = g.add("VAEDecode", [], 4, 0)
    g.link(k2, "rgb_latent", dec, "samples")
    g.link(v, "VAE", dec, "vae")
    save = g.add("SaveImage", ["mofo/edit"], 5, 0, size=[320, 320])
    g.link(dec, "IMAGE", save, "images")
    g.group("5. Output", [dec, save], BROWN)
    g.add("MarkdownNote", [FILES_NOTE + "\n\nDepth-guided edit: the first sampler estimates depth; the second "
                           "re-noises the RGB part-way (`rgb_denoise`) while the depth stays clean, so the layout "
                           "holds while the look changes."], 0, 3, size=[700, 300])
    g.write("mofo_depth_guided_edit.json", "Modality Forcing: partial-noise RGB edit guided by held-clean depth")


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    for make in (text_to_rgbd, image_to_depth, depth_to_image, depth_controlnet, depth_guided_edit):
        make()
    print("wrote", sorted(p.name for p in OUT.glob("*.json")))
