"""Scheduler (two SIGMAS) and the joint sampler (RGB LATENT + depth latent)."""

from __future__ import annotations

import logging

import comfy.model_management as mm
import torch
from comfy_api.latest import io

from ..mofo_core import (
    MODES,
    RELEASE_MU,
    ParallelDenoiser,
    fit_mask,
    latent_to_tokens,
    sample,
    schedule,
    tokens_to_latent,
)
from .messages import shows_warnings
from .runtime import MofoModelHandle, make_step_callback
from .types import MofoDepthLatent, MofoModel, check_conditioning, node_schema

log = logging.getLogger(__name__)
NOISE = ["device (reference)", "cpu"]


class MofoScheduler(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return node_schema(
            node_id="MofoScheduler",
            display_name="Mofo Scheduler",
            description="Per-modality sigma lists. joint: both denoised (log2_alpha > 0 keeps depth noisier longer, "
            "0 = no tilt); i2d: RGB held clean; d2i: depth held clean. *_denoise < 1 starts that modality part-way "
            "from its input latent; 0 holds it clean.",
            inputs=[
                io.Int.Input("steps", default=50, min=1, max=1000, tooltip="denoising steps (50 = the reference)"),
                io.Combo.Input("mode", options=list(MODES), default="joint",
                               tooltip="joint: text -> RGB + depth; i2d: image -> depth (RGB held clean); d2i: depth "
                               "-> image (depth held clean)"),
                io.Float.Input("mu", default=RELEASE_MU, min=-5.0, max=5.0, step=0.01,
                               tooltip="time shift (1.1 = release)"),
                io.Float.Input("log2_alpha", default=5.0, min=-10.0, max=10.0, step=0.5,
                               tooltip="joint only: depth tilt; 5 = the reference scripts, 0 = none"),
                io.Float.Input("rgb_denoise", default=1.0, min=0.0, max=1.0, step=0.01,
                               tooltip="1 = from noise; < 1 starts part-way from rgb_latent; 0 holds RGB clean"),
                io.Float.Input("depth_denoise", default=1.0, min=0.0, max=1.0, step=0.01,
                               tooltip="1 = from noise; < 1 starts part-way from depth_latent; 0 holds depth clean"),
            ],
            outputs=[io.Sigmas.Output(display_name="rgb_sigmas"), io.Sigmas.Output(display_name="depth_sigmas")],
        )

    @classmethod
    @shows_warnings
    def execute(cls, steps, mode, mu, log2_alpha, rgb_denoise, depth_denoise) -> io.NodeOutput:
        rs, ds = schedule(steps, mode=mode, mu=mu, log2_alpha=log2_alpha if log2_alpha != 0 else None,
                          rgb_denoise=rgb_denoise, depth_denoise=depth_denoise)
        return io.NodeOutput(rs, ds)


class MofoSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return node_schema(
            node_id="MofoSampler",
            display_name="Mofo Sampler (RGB + depth)",
            description="Denoises RGB and depth along their own sigma lists. Give an RGB LATENT (FLUX.2 VAEEncode) "
            "for image -> depth or a part-way edit, a depth latent (Mofo Depth Encode) for depth -> image; "
            "without either, width / height / batch set the size. Decode RGB with the FLUX.2 VAE, depth with "
            "Mofo Depth Decode. rgb_mask / depth_mask (1 = regenerate) keep the rest of that latent exactly: "
            "inpaint, outpaint, restyle inside a mask, depth fix-up.",
            inputs=[
                MofoModel.Input("model", tooltip="Mofo Load Model"),
                io.Conditioning.Input("positive", tooltip="Mofo Text Encode of the prompt"),
                io.Conditioning.Input("negative", tooltip="Mofo Text Encode of an empty prompt (the reference's)"),
                io.Sigmas.Input("rgb_sigmas", tooltip="Mofo Scheduler (or any SIGMAS source) for the RGB stream"),
                io.Sigmas.Input("depth_sigmas", tooltip="Mofo Scheduler (or any SIGMAS source) for the depth stream"),
                io.Float.Input("cfg", default=4.0, min=0.0, max=30.0, step=0.1,
                               tooltip="classifier-free guidance (4 = the reference for text -> RGB + depth; 1 = "
                               "none, one forward per step)"),
                io.Float.Input("depth_cfg", default=-1.0, min=-1.0, max=30.0, step=0.1,
                               tooltip="guidance of the depth head; -1 = same as cfg (the reference)"),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="noise seed (see noise for which generator)"),
                io.Int.Input("width", default=512, min=16, max=4096, step=16,
                             tooltip="pixels, a multiple of 16; ignored when a latent is connected"),
                io.Int.Input("height", default=512, min=16, max=4096, step=16,
                             tooltip="pixels, a multiple of 16; ignored when a latent is connected"),
                io.Int.Input("batch_size", default=1, min=1, max=64,
                             tooltip="images per run; ignored when a latent is connected"),
                io.Combo.Input("noise", options=NOISE, default=NOISE[0],
                               tooltip="device: the reference's generator (same seed, same image as the reference "
                               "on that device type); cpu: identical on every machine"),
                io.Boolean.Input("batch_cfg", default=True,
                                 tooltip="cond + uncond in one batch (faster); off: one after the other, ~0.6 GiB "
                                 "less VRAM at 512x512"),
                io.Int.Input("mask_feather", default=0, min=0, max=256, optional=True,
                             tooltip="pixels of soft falloff added outside rgb_mask / depth_mask"),
                io.Latent.Input("rgb_latent", optional=True,
                                tooltip="FLUX.2 VAEEncode of an image: image -> depth, or a part-way / masked edit"),
                MofoDepthLatent.Input("depth_latent", optional=True,
                                      tooltip="Mofo Depth Encode of a depth map: depth -> image or a depth edit"),
                io.Mask.Input("rgb_mask", optional=True,
                              tooltip="regenerate RGB only where the mask is 1; elsewhere rgb_latent is kept exactly"),
                io.Mask.Input("depth_mask", optional=True,
                              tooltip="regenerate depth only where the mask is 1; elsewhere depth_latent is kept"),
                io.Int.Input("gpus", default=1, min=1, max=16, optional=True,
                             tooltip="CFG-parallel: cond on the first GPU, uncond on the second (a copy of the "
                             "model on each; needs batch_cfg and cfg != 1). 1 = one GPU"),
            ],
            outputs=[io.Latent.Output(display_name="rgb_latent"), MofoDepthLatent.Output(display_name="depth_latent")],
        )

    @classmethod
    @shows_warnings
    def execute(cls, model, positive, negative, rgb_sigmas, depth_sigmas, cfg, depth_cfg, seed, width, height,
                batch_size, noise, batch_cfg=True, mask_feather=0, rgb_latent=None, depth_latent=None, rgb_mask=None,
                depth_mask=None, gpus=1) -> io.NodeOutput:
        rgb, depth = run_sampler(model, positive, negative, rgb_sigmas, depth_sigmas, cfg=cfg,
                                 depth_cfg=None if depth_cfg < 0 else depth_cfg, seed=seed, size=(height, width),
                                 batch=batch_size, cpu_noise=noise == "cpu", rgb_latent=rgb_latent,
                                 depth_latent=depth_latent, batch_cfg=batch_cfg, rgb_mask=rgb_mask,
                                 depth_mask=depth_mask, mask_feather=mask_feather, gpus=gpus)
        return io.NodeOutput(rgb, depth)


def _grid(rgb_latent, depth_latent, size, batch) -> tuple[int, int, int]:
    if rgb_latent is not None:
        s = rgb_latent["samples"]
        if s.ndim != 4 or s.shape[1] != 128:
            raise ValueError(f"rgb_latent is {tuple(s.shape)}; a FLUX.2 latent is (B, 128, H/16, W/16): encode the "
                             "image with the FLUX.2 VAE (flux2-vae.safetensors) and VAEEncode")
        return s.shape[0], s.shape[2], s.shape[3]
    if depth_latent is not None:
        return depth_latent["samples"].shape[0], depth_latent["height"], depth_latent["width"]
    h, w = size
    if h % 16 or w % 16:
        raise ValueError(f"size {w}x{h} is not a multiple of 16")
    return batch, h // 16, w // 16


def run_sampler(handle: MofoModelHandle, positive, negative, rgb_sigmas, depth_sigmas, *, cfg, depth_cfg, seed, size,
                batch, cpu_noise, rgb_latent, depth_latent, batch_cfg=True, rgb_mask=None, depth_mask=None,
                mask_feather=0, gpus: int = 1):
    """ComfyUI types in, ComfyUI types out; the work is mofo_core.sample. Masks of another size than the image are
    resized, with a warning (shown on the node: nodes/messages.py)."""
    b, h, w = _grid(rgb_latent, depth_latent, size, batch)
    masks = {}
    for name, m, latent in (("rgb_mask", rgb_mask, rgb_latent), ("depth_mask", depth_mask, depth_latent)):
        if m is not None:  # cheap checks first: ComfyUI MASK (B, H, W) or (H, W) in [0, 1]
            kind = name.split("_")[0]
            if latent is None:
                raise ValueError(f"{name} is connected but {kind}_latent is not: the part outside the mask has "
                                 f"nothing to keep; connect {kind}_latent (or disconnect the mask)")
            masks[name], _ = fit_mask(m, 16 * h, 16 * w, name=name)
    width = handle.dit.config.context_in_dim
    ctx = check_conditioning(positive, "positive", width)
    guided = cfg != 1.0 or (depth_cfg is not None and depth_cfg != 1.0)
    null = check_conditioning(negative, "negative", width) if guided else None
    split = gpus > 1 and guided and batch_cfg  # CFG-parallel: the batched forward is split across the GPUs
    if gpus > 1 and not split:
        log.warning("gpus %d: nothing to split (%s); running on one GPU", gpus,
                    "cfg is 1" if not guided else "batch_cfg is off")
    replicas = handle.replica_patchers(gpus) if split else []
    device = handle.load(tokens=ctx.shape[1] + 2 * h * w, batch=b * (2 if guided and batch_cfg else 1),
                         replicas=replicas)
    dit = handle.dit
    denoiser = ParallelDenoiser([dit, *(r.model for r in replicas)]) if replicas else dit
    rgb = latent_to_tokens(rgb_latent["samples"]).to(device).to(dit.dtype).float() if rgb_latent else None
    dep = depth_latent["samples"].to(device).to(dit.dtype).float() if depth_latent else None
    rs, ds = torch.as_tensor(rgb_sigmas).float(), torch.as_tensor(depth_sigmas).float()
    try:
        rgb_out, depth_out = sample(
            denoiser, ctx.to(device).float().expand(b, -1, -1), null, rs, ds, height=h, width=w, cfg=cfg,
            depth_cfg=depth_cfg, seed=seed, noise_device="cpu" if cpu_noise else None, rgb=rgb, depth=dep,
            callback=make_step_callback(len(rs) - 1, (h, w)), batch_cfg=batch_cfg, mask_feather=mask_feather,
            **masks,
        )
    finally:
        if replicas:
            denoiser.close()  # the worker threads; the replicas stay loaded under ComfyUI's model management
    out = mm.intermediate_device()
    return ({"samples": tokens_to_latent(rgb_out, h, w).to(out)},
            {"samples": depth_out.to(out), "height": h, "width": w})
