"""Write the shared workflows in workflows/ (ComfyUI UI format, frontend schema version 0.4).

    python tools/make_workflows.py

Each workflow is described once below as nodes + links; this script lays them out in columns, adds groups
and a note saying which model files to get and where. tests/integration converts the written files to API
prompts through a live ComfyUI's /object_info, so a slot or widget mistake here fails there; tests/e2e opens them
in the real frontend and checks that no node is smaller than its widgets need, that nothing overlaps and that
every group title fits its group.

It also writes the example inputs (tools/example_scene.py): assets/mofo_depth_example.png, the depth map of the
depth -> image and depth fix-up workflows, and assets/mofo_edit_example.png, the picture of the same room with the
ball cut out of its alpha (the edit workflows' photo + mask). The pack copies both into ComfyUI's input folder on
start-up (nodes/__init__.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import example_scene  # noqa: E402
from workflow_graph import MOFO_FILE, MOFO_URL, QWEN_FILE, QWEN_URL, VAE_FILE, VAE_URL, Graph, W  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "workflows"
DEPTH_EXAMPLE = ROOT / "assets" / "mofo_depth_example.png"
EDIT_EXAMPLE = ROOT / "assets" / "mofo_edit_example.png"  # RGBA: the transparent part is LoadImage's MASK

FILES_NOTE = f"""## Model files (put them here, then press Run)
* **`model.safetensors`** (24 GB, the Modality Forcing DiT) in `models/diffusion_models/modality_forcing/`
  from [bartduis/modality_forcing]({MOFO_URL}), or use **Mofo Download + Load Model** instead of Mofo Load Model
* **`{QWEN_FILE}`** (16 GB; `qwen_3_8b_fp8mixed` works too) in `models/text_encoders/` from [Comfy-Org]({QWEN_URL})
* **`{VAE_FILE}`** (the FLUX.2 VAE) in `models/vae/` from [Comfy-Org]({VAE_URL})

The Modality Forcing weights are **CC BY-NC 4.0 (non-commercial)**. Needs ComfyUI >= 0.9.2 (Qwen3-8B text
encoder)."""

def write_wf(g: Graph, name: str, description: str) -> None:
    g.write(OUT / name, description)


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


def sampler(g, model, pos, neg, mode, steps=50, cfg=4.0, log2_alpha=5.0, col=2, rgb_dn=1.0, depth_dn=1.0, row=0,
            feather=0):
    s = g.add("MofoScheduler", [steps, mode, 1.1, log2_alpha, rgb_dn, depth_dn], col, row)
    k = g.add("MofoSampler", [cfg, -1.0, 0, "fixed", 512, 512, 1, "device (reference)", True, feather], col, row + 1)
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
    dd = g.add("MofoDepthDecode", ["grey", "per image"], 3, 1)
    g.link(k, "depth_latent", dd, "depth_latent")
    sd = g.add("MofoSaveDepth", ["mofo/depth", "png16", "per image", 10.0], 3, 2)
    g.link(dd, "depth", sd, "depth")
    save = g.add("SaveImage", ["mofo/rgb"], 4, 0)
    g.link(dec, "IMAGE", save, "images")
    pv = g.add("PreviewImage", [], 4, 1, title="Depth (near = white)")
    g.link(dd, "depth_image", pv, "images")
    pc, p3 = cloud(g, dec, "IMAGE", dd, 5)
    g.group("4. Outputs: image, 16-bit depth, point cloud", [dec, save, dd, pv, sd, pc, p3], BROWN)
    note(g, "Text -> RGB + depth + point cloud: each modality walks its own noise schedule. `log2_alpha` 5 lets "
            "the RGB settle first (cleaner depth); 0 denoises both together.")
    write_wf(g, "mofo_text_to_rgbd_pointcloud.json", "Modality Forcing: text -> RGB + depth + point cloud")


def letterboxed_image(g, v):
    """LoadImage -> Mofo Fit Image (512², letterbox) -> VAEEncode, in column 2: the image-in start of i2d graphs."""
    li = g.add("LoadImage", ["example.png", "image"], 2, 0)
    fit = g.add("MofoFitImage", [512, 512, "letterbox"], 2, 1)
    g.link(li, "IMAGE", fit, "image")
    enc = g.add("VAEEncode", [], 2, 2)
    g.link(fit, "image", enc, "pixels")
    g.link(v, "VAE", enc, "vae")
    return li, fit, enc


def image_to_depth():
    g = Graph()
    m, c, v = models(g)
    p, n = prompts(g, c, "", col=1)
    li, fit, enc = letterboxed_image(g, v)
    s, k = sampler(g, m, p, n, "i2d", cfg=1.0, col=3)
    g.link(enc, "LATENT", k, "rgb_latent")
    g.group("3. Image -> depth (letterbox in, crop out)", [li, fit, enc, s, k], PURPLE)
    dd = g.add("MofoDepthDecode", ["grey", "per image"], 4, 0)
    g.link(k, "depth_latent", dd, "depth_latent")
    g.link(fit, "fit", dd, "fit")
    pv = g.add("PreviewImage", [], 4, 1, title="Depth (near = white)")
    g.link(dd, "depth_image", pv, "images")
    sd = g.add("MofoSaveDepth", ["mofo/depth", "exr", "per image", 10.0], 4, 2)
    g.link(dd, "depth", sd, "depth")
    pc, p3 = cloud(g, li, "IMAGE", dd, 5)
    g.group("4. Depth at the input's size (EXR) + point cloud", [dd, pv, sd, pc, p3], BROWN)
    note(g, "Image -> depth. Load any photo; the depth comes back at its size. The prompt may stay empty (the "
            "reference demo clears it).")
    write_wf(g, "mofo_image_to_depth_pointcloud.json", "Modality Forcing: image -> depth (any aspect) -> point cloud")


def image_to_mesh():
    g = Graph()
    m, c, v = models(g)
    p, n = prompts(g, c, "", col=1)
    li, fit, enc = letterboxed_image(g, v)
    s, k = sampler(g, m, p, n, "i2d", cfg=1.0, col=3)
    g.link(enc, "LATENT", k, "rgb_latent")
    dd = g.add("MofoDepthDecode", ["grey", "per image"], 3, 2)
    g.link(k, "depth_latent", dd, "depth_latent")
    g.link(fit, "fit", dd, "fit")
    g.group("3. Image -> depth (at the photo's size)", [li, fit, enc, s, k, dd], PURPLE)
    al = g.add("MofoAlignDepth", ["known distance", 2.0, -1, -1, "planar depth", 65.0, "scale", "depth", "huber",
                                  "each image", "disparity (near = bright)"], 4, 0)
    g.link(dd, "depth", al, "depth")
    nm = g.add("MofoDepthNormals", [65.0, "controlnet", 0.1], 4, 1)
    g.link(dd, "depth", nm, "depth")
    pn = g.add("PreviewImage", [], 4, 2, title="Normals (ControlNet colours)")
    g.link(nm, "normal_image", pn, "images")
    g.group("4. Metres (centre at 2 m), normals", [al, nm, pn], GREEN)
    me = g.add("MofoDepthToMesh", [65.0, 0.04, 2_500_000, True, "none", 0, "mofo/mesh"], 5, 0)
    g.link(li, "IMAGE", me, "image")
    g.link(al, "depth", me, "depth")
    p3 = g.add("Preview3D", [""], 6, 0, size=[480, 480])
    g.link(me, "glb_path", p3, "model_file")
    g.group("5. Textured mesh (GLB) in the 3D viewer", [me, p3], BROWN)
    note(g, "Image -> depth -> metres -> textured mesh. Mofo Align Depth gives the relative depth a unit: here the "
            "image centre is stated to be 2 m away (set `at_x` / `at_y` or connect a mask for the thing you know). "
            "With ComfyUI's MoGe (Load MoGe Model + Run MoGe Inference on the same photo), connect `moge_geometry` "
            "to `reference` and set `method` to *fit to reference* for a robust metric fit.")
    write_wf(g, "mofo_image_to_mesh.json", "Modality Forcing: image -> depth -> metric scale -> textured mesh")


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
    write_wf(g, "mofo_depth_to_image.json", "Modality Forcing: depth -> image")


def depth_controlnet():
    g = Graph()
    m, c, v = models(g)
    p, n = prompts(g, c, "a bright modern loft with large windows and plants")
    s, k = sampler(g, m, p, n, "joint")
    dd = g.add("MofoDepthDecode", ["grey", "per image"], 3, 0)
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
    write_wf(g, "mofo_depth_to_controlnet.json", "Modality Forcing depth image -> Apply ControlNet on another model")


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
    write_wf(g, "mofo_depth_guided_edit.json", "Modality Forcing: partial-noise RGB edit guided by held-clean depth")


# -- masked editing: a noise level per modality and per region (rgb_mask / depth_mask on Mofo Sampler) ----------
def photo_and_depth(g, m, n, v, image, crop, title="Photo + mask (transparent = regenerate)"):
    """LoadImage -> ImageScale -> VAEEncode, and image -> depth on it (empty prompt, cfg 1): the kept latents."""
    li = g.add("LoadImage", [image, "image"], 2, 0, title=title)
    sc = g.add("ImageScale", ["area", 512, 512, crop], 2, 1)
    g.link(li, "IMAGE", sc, "image")
    enc = g.add("VAEEncode", [], 2, 2)
    g.link(sc, "IMAGE", enc, "pixels")
    g.link(v, "VAE", enc, "vae")
    s1, k1 = sampler(g, m, n, n, "i2d", cfg=1.0, col=3)
    g.link(enc, "LATENT", k1, "rgb_latent")
    g.group("3. The photo and its depth (image -> depth)", [li, sc, enc, s1, k1], PURPLE)
    return li, sc, enc, k1


def edit_outputs(g, k, v, col, name, rgb=True):
    ids = []
    if rgb:
        dec = g.add("VAEDecode", [], col, 0)
        g.link(k, "rgb_latent", dec, "samples")
        g.link(v, "VAE", dec, "vae")
        save = g.add("SaveImage", [f"mofo/{name}"], col + 1, 0)
        g.link(dec, "IMAGE", save, "images")
        ids += [dec, save]
    dd = g.add("MofoDepthDecode", ["grey", "per image"], col, 1)
    g.link(k, "depth_latent", dd, "depth_latent")
    pv = g.add("PreviewImage", [], col + 1, 1, title="Depth (near = white)")
    g.link(dd, "depth_image", pv, "images")
    sd = g.add("MofoSaveDepth", [f"mofo/{name}_depth", "png16", "per image", 10.0], col, 2)
    g.link(dd, "depth", sd, "depth")
    g.group("5. Output", ids + [dd, pv, sd], BROWN)


MASK_NOTE = ("Mofo Sampler keeps each latent exactly where its mask is 0 (re-noised to the current step with the "
             "same noise, the standard latent-blend inpainting) and regenerates where it is 1; `mask_feather` "
             "softens the edge. Paint your own mask in LoadImage's mask editor (right click > Open in MaskEditor).")


def edit_inpaint():
    g = Graph()
    m, c, v = models(g)
    p, n = prompts(g, c, "a large green potted plant standing on the floor")
    li, sc, enc, k1 = photo_and_depth(g, m, n, v, EDIT_EXAMPLE.name, "disabled")
    s2, k2 = sampler(g, m, p, n, "joint", col=4, feather=16)
    for src, out, dst in ((enc, "LATENT", "rgb_latent"), (k1, "depth_latent", "depth_latent"),
                          (li, "MASK", "rgb_mask"), (li, "MASK", "depth_mask")):
        g.link(src, out, k2, dst)
    g.group("4. Inpaint RGB + depth", [s2, k2], GREEN)
    edit_outputs(g, k2, v, 5, "inpaint")
    note(g, "Inpaint: replace what the mask covers (here the ball) and regenerate its depth in the same region, "
            "so the new object's geometry fits the room. " + MASK_NOTE)
    write_wf(g, "mofo_edit_inpaint.json", "Modality Forcing: inpaint RGB + depth inside a mask")


def edit_outpaint():
    g = Graph()
    m, c, v = models(g)
    p, n = prompts(g, c, "a wide view of the same scene, continuing naturally on both sides")
    li = g.add("LoadImage", ["example.png", "image"], 2, 0)
    sc = g.add("ImageScale", ["area", 512, 512, "center"], 2, 1)
    g.link(li, "IMAGE", sc, "image")
    pad = g.add("ImagePadForOutpaint", [128, 0, 128, 0, 40], 2, 2)
    g.link(sc, "IMAGE", pad, "image")
    enc = g.add("VAEEncode", [], 2, 3)
    g.link(pad, "IMAGE", enc, "pixels")
    g.link(v, "VAE", enc, "vae")
    s1, k1 = sampler(g, m, n, n, "i2d", cfg=1.0, col=3)
    g.link(enc, "LATENT", k1, "rgb_latent")
    g.group("3. The photo on a wider canvas (512 -> 768 x 512) and its depth", [li, sc, pad, enc, s1, k1], PURPLE)
    s2, k2 = sampler(g, m, p, n, "joint", col=4)
    for src, out, dst in ((enc, "LATENT", "rgb_latent"), (k1, "depth_latent", "depth_latent"),
                          (pad, "MASK", "rgb_mask"), (pad, "MASK", "depth_mask")):
        g.link(src, out, k2, dst)
    g.group("4. Outpaint RGB + depth", [s2, k2], GREEN)
    edit_outputs(g, k2, v, 5, "outpaint")
    note(g, "Outpaint: Pad Image for Outpainting adds 128 px left and right and masks the new area (`feathering` "
            "reaches into the photo for a soft seam); RGB and depth are generated there, continuing the scene. "
            + MASK_NOTE)
    write_wf(g, "mofo_edit_outpaint.json", "Modality Forcing: outpaint RGB + depth onto a wider canvas")


def edit_restyle():
    g = Graph()
    m, c, v = models(g)
    p, n = prompts(g, c, "the same room as a watercolor painting, soft pastel light")
    li, sc, enc, k1 = photo_and_depth(g, m, n, v, EDIT_EXAMPLE.name, "disabled")
    inv = g.add("InvertMask", [], 4, 0)
    g.link(li, "MASK", inv, "mask")
    s2, k2 = sampler(g, m, p, n, "d2i", col=4, row=1)
    for src, out, dst in ((enc, "LATENT", "rgb_latent"), (k1, "depth_latent", "depth_latent"),
                          (inv, "MASK", "rgb_mask")):
        g.link(src, out, k2, dst)
    g.group("4. Restyle (depth held)", [inv, s2, k2], GREEN)
    edit_outputs(g, k2, v, 5, "restyle")
    note(g, "Geometry-locked restyle: the depth stays clean everywhere (scheduler mode d2i) and the RGB is "
            "regenerated where the mask is 1 (here everything but the ball: Invert Mask). Disconnect rgb_mask to "
            "restyle the whole picture; lower `rgb_denoise` to keep more of the old look. " + MASK_NOTE)
    write_wf(g, "mofo_edit_restyle.json", "Modality Forcing: geometry-locked restyle (depth held, RGB regenerated)")


def edit_depth_fix():
    g = Graph()
    m, c, v = models(g)
    p, n = prompts(g, c, "")
    li = g.add("LoadImage", [EDIT_EXAMPLE.name, "image"], 2, 0, title="Photo + mask of the bad depth")
    sc = g.add("ImageScale", ["area", 512, 512, "disabled"], 2, 1)
    g.link(li, "IMAGE", sc, "image")
    enc = g.add("VAEEncode", [], 2, 2)
    g.link(sc, "IMAGE", enc, "pixels")
    g.link(v, "VAE", enc, "vae")
    ld = g.add("LoadImage", [DEPTH_EXAMPLE.name, "image"], 3, 0, title="Depth to fix (near = bright)")
    sd = g.add("ImageScale", ["bilinear", 512, 512, "disabled"], 3, 1)
    g.link(ld, "IMAGE", sd, "image")
    de = g.add("MofoDepthEncode", [True, True], 3, 2)
    g.link(sd, "IMAGE", de, "depth_image")
    g.group("3. Photo, its depth map and the mask", [li, sc, enc, ld, sd, de], PURPLE)
    s, k = sampler(g, m, p, n, "i2d", cfg=1.0, col=4)
    for src, out, dst in ((enc, "LATENT", "rgb_latent"), (de, "depth_latent", "depth_latent"),
                          (li, "MASK", "depth_mask")):
        g.link(src, out, k, dst)
    g.group("4. Depth fix-up (RGB held)", [s, k], GREEN)
    edit_outputs(g, k, v, 5, "depth_fix", rgb=False)
    note(g, "Depth fix-up: the photo stays clean (mode i2d) and the depth map is kept except where the mask marks "
            "a bad region (holes, a sensor's flying pixels, a wrong object), which is regenerated from the photo. "
            + MASK_NOTE)
    write_wf(g, "mofo_edit_depth_fix.json", "Modality Forcing: fix a depth map inside a mask (RGB held)")


def write_depth_example(path: Path = DEPTH_EXAMPLE, size: int = 512) -> None:
    example_scene.write_depth_example(path, size)


def write_edit_example(path: Path = EDIT_EXAMPLE, size: int = 512) -> None:
    example_scene.write_edit_example(path, size)


WORKFLOW_MAKERS = (text_to_rgbd, image_to_depth, image_to_mesh, depth_to_image, depth_controlnet, depth_guided_edit,
                   edit_inpaint, edit_outpaint, edit_restyle, edit_depth_fix)

if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    for make in WORKFLOW_MAKERS:
        make()
    write_depth_example()
    write_edit_example()
    print("wrote", sorted(p.name for p in OUT.glob("*.json")))
