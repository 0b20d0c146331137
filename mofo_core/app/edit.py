"""Masked RGB-D editing: a noise level per modality AND per region, in one sampler pass.

Four tasks, each a preset of which modality is regenerated and where (1 = regenerate, 0 = keep):

    inpaint    RGB and depth regenerated inside the mask (the depth is estimated by image -> depth first when
               none is given), so the new object's geometry fits the kept scene.
    outpaint   the canvas grows by `pad` pixels; RGB and depth are generated in the new area (+ the optional mask),
               continuing the kept image and its depth (estimated on the original image when none is given).
    restyle    depth held clean everywhere (estimated when none is given); RGB regenerated inside the mask, or
               everywhere without one: a new look on the same geometry.
    depth-fix  RGB held clean; depth regenerated only inside the mask (a given depth map's bad region).

The input image (and depth, masks) are resized to the generation size: by default the image's own size when
both sides are multiples of 16 and the long side is at most 1024, else its aspect with a 512 long side.
Outside its mask a modality comes back as its given latent exactly; the pictures differ from the inputs only by
the codec (the VAE round trip; the depth codec is exact up to float rounding).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from ..config import LATENT_COMPRESSION, RELEASE_MU
from ..depth.codec import check_depth_map, decode_depth, encode_depth
from ..depth.fit import resize_depth, resize_image, size_for
from ..sampling.masks import check_mask, fit_mask, resize_mask
from ..sampling.sampler import StepCallback, sample
from ..sampling.schedules import schedule
from .pipeline import check_finite, check_guidance

log = logging.getLogger(__name__)

Task = Literal["inpaint", "outpaint", "restyle", "depth-fix"]
TASKS: dict[str, str] = {"inpaint": "both", "outpaint": "both", "restyle": "rgb", "depth-fix": "depth"}
REGENERATE = ("rgb", "depth", "both")


@dataclass(frozen=True)
class EditParams:
    """Everything that decides an edit (recorded verbatim in metadata.json)."""

    task: Task = "inpaint"
    prompt: str = ""
    regenerate: Literal["rgb", "depth", "both"] | None = None  # None: the task's (see TASKS)
    steps: int = 50
    cfg: float | None = None  # None: 4.0 when RGB is regenerated, 1.0 for depth only (the i2d default)
    depth_cfg: float | None = None  # None: same as cfg
    log2_alpha: float | None = 5.0  # both regenerated: depth stays noisier longer (RGB first), as joint
    rgb_denoise: float = 1.0  # < 1: regenerate part-way from the kept latent inside the mask
    depth_denoise: float = 1.0
    feather: int = 0  # pixels of soft falloff outside the masks
    pad: tuple[int, int, int, int] = (0, 0, 0, 0)  # outpaint: (top, bottom, left, right) pixels, multiples of 16
    seed: int = 0
    width: int | None = None  # the input is resized to this (before the pad); None: its own size if a multiple
    # of 16 with a long side <= 1024, else its aspect with a 512 long side
    height: int | None = None
    batch: int = 1
    mu: float = RELEASE_MU
    depth_xpred_exact: bool = False
    truncate_prompt: bool = False
    robust_depth: bool = False  # a given depth: unit-mean over valid pixels only (holes, zeros)

    def resolved(self, image_shape: tuple[int, ...]) -> EditParams:
        regen = self.regenerate or TASKS.get(self.task, "both")
        cfg = self.cfg if self.cfg is not None else (1.0 if regen == "depth" else 4.0)
        h, w = self.height, self.width
        if h is None or w is None:
            ih, iw = image_shape[:2]
            own = ih % 16 == 0 and iw % 16 == 0 and max(ih, iw) <= 1024
            dh, dw = (ih, iw) if own else size_for(image_shape, 512)
            h, w = h or dh, w or dw
        return replace(self, regenerate=regen, cfg=cfg, depth_cfg=cfg if self.depth_cfg is None else self.depth_cfg,
                       height=h, width=w, pad=tuple(int(x) for x in self.pad))

    def validate(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {sorted(TASKS)}, got {self.task!r}")
        if self.regenerate not in REGENERATE:
            raise ValueError(f"regenerate must be one of {REGENERATE}, got {self.regenerate!r}")
        for name in ("width", "height"):
            v = getattr(self, name)
            if v <= 0 or v % LATENT_COMPRESSION:
                raise ValueError(f"{name} {v} is not a positive multiple of 16; try {max(16, round(v / 16) * 16)}")
        if self.steps < 1 or self.batch < 1:
            raise ValueError("steps and batch must be at least 1")
        if len(self.pad) != 4 or any(p < 0 or p % LATENT_COMPRESSION for p in self.pad):
            raise ValueError(f"pad (top, bottom, left, right) must be multiples of 16 pixels, got {self.pad}")
        check_guidance(self.cfg, self.depth_cfg, self.log2_alpha, self.seed, self.mu)
        if self.task == "outpaint":
            if not any(self.pad):
                raise ValueError("outpaint needs a pad: how many pixels to add (e.g. --pad-right 256)")
            if self.regenerate != "both":
                raise ValueError("outpaint regenerates RGB and depth (the new area has neither); drop --regenerate")
        elif any(self.pad):
            raise ValueError(f"pad is for outpaint only (task {self.task!r})")
        if self.regenerate != "depth" and not self.prompt.strip():
            raise ValueError("an edit that regenerates RGB needs a prompt describing the new content")
        if not (0.0 < self.rgb_denoise <= 1.0 and 0.0 < self.depth_denoise <= 1.0):
            raise ValueError("rgb_denoise / depth_denoise must be in (0, 1] (the held modality is set by regenerate)")
        if self.feather < 0:
            raise ValueError(f"feather must be >= 0 pixels, got {self.feather}")


def _pad_tokens(tokens: Tensor, grid: tuple[int, int], pad_px: tuple[int, int, int, int]) -> Tensor:
    """(B, h*w, C) tokens placed in a canvas grown by pad_px (top, bottom, left, right); new tokens are 0."""
    (h, w), (t, b, left, r) = grid, (p // LATENT_COMPRESSION for p in pad_px)
    x = tokens.reshape(tokens.shape[0], h, w, tokens.shape[-1])  # (B, h, w, C)
    x = torch.nn.functional.pad(x, (0, 0, left, r, t, b))  # (B, h + t + b, w + l + r, C)
    return x.reshape(x.shape[0], -1, x.shape[-1])


def _inputs(p: EditParams, image, depth, mask, depth_mask):
    """Inputs fitted to the generation size and padded for outpaint: (image u8, depth or None, masks, notes)."""
    h, w = p.height, p.width
    notes = []
    img = resize_image(image, h, w)
    d = None if depth is None else resize_depth(np.asarray(depth, dtype=np.float32), h, w)
    masks = []
    for m, name in ((mask, "mask"), (depth_mask, "depth_mask")):
        if m is None:
            masks.append(None)
            continue
        m = check_mask(torch.as_tensor(m), name)
        if tuple(m.shape[1:]) != image.shape[:2]:  # a mask of the input's size is resized with it, silently
            m, note = fit_mask(m, *image.shape[:2], name=name)
            notes.append(note)
        masks.append(resize_mask(m, h, w))
    if p.task == "outpaint":
        t, b, left, r = p.pad
        img = np.pad(img, ((t, b), (left, r), (0, 0)), mode="edge")  # (H', W', 3); the new area is regenerated
        d = None if d is None else np.pad(d, ((t, b), (left, r)), mode="edge")
        grow = torch.ones(1, h + t + b, w + left + r)
        grow[:, t : t + h, left : left + w] = 0.0
        masks = [grow if m is None else torch.maximum(grow, torch.nn.functional.pad(m, (left, r, t, b)))
                 for m in masks]
    return img, d, masks, notes


def check_edit(params: EditParams, image: np.ndarray, *, depth=None, mask=None, depth_mask=None) -> EditParams:
    """The resolved parameters, or one ValueError saying what is missing (nothing loads here)."""
    if image is None or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError("an edit needs the image as uint8 (H, W, 3) RGB")
    p = params.resolved(image.shape)
    p.validate()
    if p.task in ("inpaint", "depth-fix") and mask is None and depth_mask is None:
        raise ValueError(f"{p.task} needs a mask (white = regenerate)")
    if p.task == "depth-fix" and depth is None:
        raise ValueError("depth-fix needs the depth map to fix (--depth)")
    if depth_mask is not None and p.regenerate == "rgb":
        raise ValueError("a depth mask needs depth regenerated (regenerate 'depth' or 'both')")
    if mask is not None and p.regenerate == "depth" and depth_mask is not None:
        raise ValueError("with depth regenerated alone, give one mask (mask or depth_mask), not both")
    if depth is not None and np.asarray(depth).ndim != 2:
        raise ValueError(f"depth must be (H, W), got {np.asarray(depth).shape}")
    if depth is not None:
        check_depth_map(depth, robust=p.robust_depth)
    return p


@torch.no_grad()
def run_edit(
    pipe,
    params: EditParams,
    image: np.ndarray,
    *,
    depth: np.ndarray | None = None,
    mask: Tensor | np.ndarray | None = None,
    depth_mask: Tensor | np.ndarray | None = None,
    callback: StepCallback | None = None,
):
    """One edit with a `MofoPipeline`. image: uint8 (H, W, 3); depth: float (H, W) relative depth (optional: the
    image's depth is estimated when it is needed); mask / depth_mask: (H, W) in [0, 1], 1 = regenerate (depth_mask
    defaults to mask). Returns a `GenerationResult` at the generation size (plus the pad)."""
    from ..latents import tokens_to_latent
    from .pipeline import GenerationResult, to_uint8

    # 1. cheap checks before any weights load
    p = check_edit(params, image, depth=depth, mask=mask, depth_mask=depth_mask)
    regen_rgb, regen_depth = p.regenerate in ("rgb", "both"), p.regenerate in ("depth", "both")
    img, d, (m, dm), notes = _inputs(p, image, depth, mask, depth_mask)
    H, W = img.shape[:2]
    h, w = H // LATENT_COMPRESSION, W // LATENT_COMPRESSION
    rgb_mask = m if regen_rgb else None
    depth_mask_px = (dm if dm is not None else m) if regen_depth else None
    estimate = d is None  # the depth of the input image is estimated (image -> depth) first

    # 2. text; the empty prompt also conditions the image -> depth estimate (as the reference demo)
    ctx, null, dit = pipe.prepare(p.prompt, batch=p.batch, need_null=p.cfg != 1.0 or p.depth_cfg != 1.0 or estimate,
                                  truncate=p.truncate_prompt)

    # 3. clean latents of what is kept
    rgb = pipe.encode_image(img)  # (1, N, 128)
    kw = dict(seed=p.seed, depth_xpred_exact=p.depth_xpred_exact, batch_cfg=not pipe.lowvram)
    if estimate:
        t, b, left, r = p.pad
        src = img[t : H - b, left : W - r]  # the original image (no pad)
        rs, ds = schedule(p.steps, mode="i2d", mu=p.mu)
        _, dep = sample(pipe.denoiser(1), null[:1], None, rs, ds, height=src.shape[0] // 16,
                        width=src.shape[1] // 16, rgb=pipe.encode_image(src) if any(p.pad) else rgb, **kw)
        dep = _pad_tokens(dep, (src.shape[0] // 16, src.shape[1] // 16), p.pad)  # (1, N, 256)
    else:
        dep = encode_depth(torch.from_numpy(d).to(pipe.device)[None], robust=p.robust_depth)
    dep = dep.to(dit.dtype).float()

    # 4. sample: each modality on its own schedule, inside its own mask
    mode = {"both": "joint", "rgb": "d2i", "depth": "i2d"}[p.regenerate]
    rs, ds = schedule(p.steps, mode=mode, mu=p.mu, log2_alpha=p.log2_alpha if mode == "joint" else None,
                      rgb_denoise=p.rgb_denoise, depth_denoise=p.depth_denoise)
    guided = p.cfg != 1.0 or p.depth_cfg != 1.0
    rgb_tok, depth_tok = sample(pipe.denoiser(p.batch * (2 if guided else 1)), ctx, null, rs, ds, height=h, width=w,
                                cfg=p.cfg, depth_cfg=p.depth_cfg, rgb=rgb, depth=dep, rgb_mask=rgb_mask,
                                depth_mask=depth_mask_px, mask_feather=p.feather, callback=callback, **kw)

    # 5. decode
    check_finite(rgb_tok, depth_tok)
    rgb_latent = tokens_to_latent(rgb_tok, h, w)
    out_rgb = to_uint8(pipe.autoencoder(encoder=False).decode(rgb_latent.float()))
    meta = pipe._metadata(p, image, depth)
    meta.update(mode=f"edit-{p.task}", depth_source="estimated (image -> depth)" if estimate
                else "given", mask_notes=notes, rgb_mask_share=None if rgb_mask is None else float(rgb_mask.mean()),
                depth_mask_share=None if depth_mask_px is None else float(depth_mask_px.mean()),
                codec_note="outside the masks the latents are the inputs' exactly; pixels differ by the VAE round trip")
    return GenerationResult(rgb=out_rgb, depth=decode_depth(depth_tok, h, w).cpu().numpy().astype(np.float32),
                            rgb_latent=rgb_latent.cpu(), depth_tokens=depth_tok.cpu(), metadata=meta)
