"""Pictures of the four masked-editing modes for the README (docs/edit_*.png) and the template browser's thumbnails
of their workflows (workflows/mofo_edit_*.jpg).

    python tools/make_edit_docs.py

Runs `MofoPipeline.edit` on the TINY RANDOM demo weights (mofo_core.app.demo; no download), on the shipped example
room (assets/mofo_edit_example.png, its ball mask and assets/mofo_depth_example.png) at 128 px. The generated
content is noise (random weights); what the pictures show is real: the masks, and which tokens of each modality
came back exactly as given ("kept exactly" is measured by comparing the output latents with the input latents).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mofo_core.app.demo import ensure_demo_assets  # noqa: E402
from mofo_core.app.edit import EditParams, _inputs  # noqa: E402
from mofo_core.app.pipeline import MofoPipeline  # noqa: E402
from mofo_core.depth.codec import encode_depth  # noqa: E402
from mofo_core.depth.files import depth_to_disparity_vis  # noqa: E402
from mofo_core.latents import latent_to_tokens  # noqa: E402

S = 128  # generation size of the pictures (pixels)
MODES = {  # task -> (params, which inputs)
    "inpaint": dict(prompt="a green plant", feather=8),
    "outpaint": dict(prompt="more of the room", pad=(0, 0, 32, 32)),
    "restyle": dict(prompt="a watercolor room"),
    "depth-fix": dict(),
}
LABEL_H = 16


def _grey(x: np.ndarray) -> np.ndarray:
    return np.repeat((np.clip(x, 0, 1) * 255).astype(np.uint8)[..., None], 3, -1)


def _kept(out: torch.Tensor, given: torch.Tensor, h: int, w: int) -> np.ndarray:
    """(H, W, 3): green where the output token equals the given token exactly, magenta where it was regenerated."""
    same = (out == given).all(-1).view(h, w).numpy()
    px = np.kron(same, np.ones((16, 16), bool))
    return np.where(px[..., None], [40, 160, 60], [200, 50, 160]).astype(np.uint8)


def _row(title: str, panels: list[tuple[str, np.ndarray]]) -> Image.Image:
    h, w = panels[0][1].shape[:2]
    gap = 4
    img = Image.new("RGB", (len(panels) * (w + gap) + 90, h + LABEL_H), (250, 250, 250))
    d = ImageDraw.Draw(img)
    d.text((4, LABEL_H + h // 2 - 6), title, fill=(0, 0, 0))
    for i, (label, arr) in enumerate(panels):
        x = 90 + i * (w + gap)
        img.paste(Image.fromarray(arr), (x, LABEL_H))
        d.rectangle((x - 1, LABEL_H - 1, x + w, LABEL_H + h), outline=(90, 90, 90))
        d.text((x + 2, 2), label, fill=(0, 0, 0))
    return img


def picture(pipe: MofoPipeline, task: str) -> Image.Image:
    rgba = np.asarray(Image.open(ROOT / "assets" / "mofo_edit_example.png"))
    image = np.asarray(Image.fromarray(np.ascontiguousarray(rgba[..., :3])).resize((S, S), Image.Resampling.BOX))
    alpha = np.asarray(Image.fromarray(rgba[..., 3]).resize((S, S), Image.Resampling.BOX), np.float32)
    mask = 1.0 - alpha / 255.0  # as ComfyUI's LoadImage: transparent = 1 = regenerate
    disp = np.asarray(Image.open(ROOT / "assets" / "mofo_depth_example.png").resize((S, S)), np.float32)
    depth = 256.0 / (disp + 1.0)  # 8-bit disparity image (near = bright) -> relative depth
    mask_in = {"outpaint": None, "restyle": 1.0 - mask}.get(task, mask)  # restyle: all but the ball (as the workflow)
    p = EditParams(task=task, steps=4, width=S, height=S, seed=1, **MODES[task])
    res = pipe.edit(p, image, depth=depth, mask=mask_in)
    img, d, (m, _), _ = _inputs(p.resolved(image.shape), image, depth, mask_in, None)
    H, W = img.shape[:2]
    h, w = H // 16, W // 16
    rgb_given, depth_given = pipe.encode_image(img)[0], encode_depth(torch.from_numpy(d)[None])[0]
    regen = p.resolved(image.shape).regenerate
    rgb_mask = m[0].numpy() if m is not None and regen != "depth" else np.full((H, W), 1.0 if regen != "depth" else 0)
    depth_mask = m[0].numpy() if m is not None and regen != "rgb" else np.full((H, W), 1.0 if regen != "rgb" else 0)
    rows = [
        _row("RGB", [("input", img), ("mask", _grey(rgb_mask)), ("output", res.rgb[0]),
                     ("kept exactly", _kept(latent_to_tokens(res.rgb_latent)[0], rgb_given, h, w))]),
        _row("depth", [("input", _grey(depth_to_disparity_vis(d))), ("mask", _grey(depth_mask)),
                       ("output", _grey(depth_to_disparity_vis(res.depth[0]))),
                       ("kept exactly", _kept(res.depth_tokens[0], depth_given, h, w))]),
    ]
    out = Image.new("RGB", (rows[0].width, sum(r.height for r in rows) + 18), (250, 250, 250))
    ImageDraw.Draw(out).text((4, 2), f"{task} - tiny RANDOM weights: generated content is noise; masks and "
                             "kept tokens are real", fill=(120, 0, 0))
    y = 18
    for r in rows:
        out.paste(r, (0, y))
        y += r.height
    return out


def main() -> None:
    cache = Path.home() / ".cache" / "mofo"
    model, text = ensure_demo_assets(cache)
    pipe = MofoPipeline.from_pretrained(str(model), text_encoder=str(text), offline=True, device="cpu",
                                        dtype=torch.float32, keep_text_encoder=True)
    for task in MODES:
        pic = picture(pipe, task)
        name = task.replace("-", "_")
        pic.save(ROOT / "docs" / f"edit_{name}.png", optimize=True)
        pic.convert("RGB").save(ROOT / "workflows" / f"mofo_edit_{name}.jpg", quality=85)
        print("wrote", f"docs/edit_{name}.png", f"workflows/mofo_edit_{name}.jpg")


if __name__ == "__main__":
    main()
