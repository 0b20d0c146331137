"""Workflow graph builder for tools/make_workflows.py: slot tables, node sizes, the column layout, the JSON writer.

Heights in MIN_H are what the ComfyUI 0.29 frontend (1.47) computes for each node's slots + widgets; see Graph.
"""

from __future__ import annotations

import json
from pathlib import Path

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
                     ("depth_latent", "MOFO_DEPTH_LATENT"), ("rgb_mask", "MASK"), ("depth_mask", "MASK")],
                    [("rgb_latent", "LATENT"), ("depth_latent", "MOFO_DEPTH_LATENT")]),
    "MofoDepthDecode": ([("depth_latent", "MOFO_DEPTH_LATENT"), ("fit", "MOFO_FIT")],
                        [("depth", "MOFO_DEPTH"), ("depth_image", "IMAGE")]),
    "MofoDepthEncode": ([("depth", "MOFO_DEPTH"), ("depth_image", "IMAGE")], [("depth_latent", "MOFO_DEPTH_LATENT")]),
    "MofoFitImage": ([("image", "IMAGE")], [("image", "IMAGE"), ("fit", "MOFO_FIT")]),
    "MofoDepthToPointCloud": ([("image", "IMAGE"), ("depth", "MOFO_DEPTH")],
                              [("ply_path", "STRING"), ("glb_path", "STRING"), ("model_3d", "FILE_3D_PLY")]),
    "MofoSaveDepth": ([("depth", "MOFO_DEPTH")], []),
    "MofoAlignDepth": ([("depth", "MOFO_DEPTH"), ("mask", "MASK"),
                        ("reference", "MOFO_DEPTH,MOGE_GEOMETRY,DA3_GEOMETRY"), ("reference_image", "IMAGE")],
                       [("depth", "MOFO_DEPTH"), ("report", "STRING"), ("scale", "FLOAT")]),
    "MofoDepthToMesh": ([("image", "IMAGE"), ("depth", "MOFO_DEPTH")], [("glb_path", "STRING"),
                                                                         ("model_3d", "FILE_3D_GLB")]),
    "MofoDepthNormals": ([("depth", "MOFO_DEPTH")], [("normal_image", "IMAGE")]),
    "MofoDepthToImage": ([("depth", "MOFO_DEPTH")], [("depth_image", "IMAGE")]),
    "CLIPLoader": ([], [("CLIP", "CLIP")]),
    "VAELoader": ([], [("VAE", "VAE")]),
    "VAEDecode": ([("samples", "LATENT"), ("vae", "VAE")], [("IMAGE", "IMAGE")]),
    "VAEEncode": ([("pixels", "IMAGE"), ("vae", "VAE")], [("LATENT", "LATENT")]),
    "SaveImage": ([("images", "IMAGE")], []),
    "PreviewImage": ([("images", "IMAGE")], []),
    "LoadImage": ([], [("IMAGE", "IMAGE"), ("MASK", "MASK")]),
    "ImageScale": ([("image", "IMAGE")], [("IMAGE", "IMAGE")]),
    "ImagePadForOutpaint": ([("image", "IMAGE")], [("IMAGE", "IMAGE"), ("MASK", "MASK")]),
    "InvertMask": ([("mask", "MASK")], [("MASK", "MASK")]),
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



# Layout. Heights below are what the ComfyUI 0.29 frontend (1.47) computes for each node's slots + widgets
# (LGraphNode.computeSize, title bar excluded), plus a little air: a node saved smaller is grown on load and then
# overlaps the node under it. Nodes with a preview (images, the 3D viewer) get room for it.
W = 320  # default node width
TITLE = 30  # LiteGraph.NODE_TITLE_HEIGHT
ROW_GAP, COL_GAP, GROUP_GAP = 30, 60, 50  # between nodes in a column / columns / groups stacked in a column
GROUP_PAD, GROUP_HEAD = 20, 45  # group border around its nodes; group title bar above them
MIN_H = {
    "MofoModelLoader": 140, "CLIPLoader": 110, "VAELoader": 60, "MofoTextEncode": 160, "MofoScheduler": 200,
    "MofoSampler": 480, "MofoDepthDecode": 110, "MofoDepthEncode": 110, "MofoFitImage": 130,
    "MofoDepthToPointCloud": 330, "MofoSaveDepth": 310, "MofoAlignDepth": 380, "MofoDepthToMesh": 380,
    "MofoDepthNormals": 110, "MofoDepthToImage": 130, "VAEDecode": 50, "VAEEncode": 50, "SaveImage": 320,
    "PreviewImage": 320, "LoadImage": 340, "ImageScale": 140,
    "ImagePadForOutpaint": 190, "InvertMask": 50, "Preview3D": 440, "CheckpointLoaderSimple": 100,
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

    def write(self, path: Path, description):
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
        path.write_text(json.dumps(doc, indent=1) + "\n")


_REQUIRED = {t: tuple(n for n, _ in ins) for t, (ins, _) in SLOTS.items()}
for _t, _opt in {"MofoTextEncode": ("clip", "text_encoder"),
                 "MofoSampler": ("rgb_latent", "depth_latent", "rgb_mask", "depth_mask"),
                 "MofoDepthDecode": ("fit",), "MofoDepthEncode": ("depth", "depth_image"),
                 "MofoAlignDepth": ("mask", "reference", "reference_image"),
                 "Preview3D": ("camera_info", "bg_image"), "ControlNetApplyAdvanced": ("vae",)}.items():
    _REQUIRED[_t] = tuple(n for n in _REQUIRED[_t] if n not in _opt)
