"""The per-modality Euler sampler, driven by two sigma lists (RGB, depth).

Same function as the reference `FluxRGBD.sample` (`Duisterhof/modality-forcing: flux_rgbd/model.py`) when
given the reference's schedules: RGB predicts velocity, depth predicts x0 and is converted with
v = (x_t - x0) / max(t, 0.05); CFG pred = u + s (c - u) on both heads, in each head's dtype; Euler in
fp32 state; seeded noise from a `torch.Generator` on the conditioning's device, RGB drawn first. Deltas:
cond and uncond run as one batched forward (same math), `depth_cfg` may differ from `cfg`, a modality
can start from a given latent part-way (first sigma < 1), and `depth_xpred_exact=True` removes the
residual noise the 0.05 clamp leaves when the last positive depth time is below 0.05 (>= 59 steps).

Region masks (`rgb_mask`, `depth_mask`) add a noise level per region: inside the mask a modality follows its
sigma list; outside it is held to its given latent re-noised to the current time with that modality's own
initial noise draw, x_t = (1 - t) x_given + t eps, after every step (latent-blend inpainting for flow models),
so the final output outside the mask is the given latent exactly. Without masks nothing changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from ..config import X_PREDICTION_T_MIN
from .masks import token_mask


class Denoiser(Protocol):
    in_channels: int
    depth_channels: int

    def predict(
        self, rgb: Tensor, depth: Tensor, ctx: Tensor, t_rgb: Tensor, t_depth: Tensor, height: int, width: int
    ) -> tuple[Tensor, Tensor]: ...


@dataclass(frozen=True)
class StepInfo:
    """What a per-step callback sees (after the update of step `step`, 0-based)."""

    step: int
    steps: int
    rgb: Tensor  # (B, N, 128) current RGB state, fp32
    depth: Tensor  # (B, N, 256) current depth state, fp32
    rgb_x0: Tensor  # (B, N, 128) clean-RGB estimate of this step, for previews
    depth_x0: Tensor  # (B, N, 256) clean-depth estimate of this step


StepCallback = Callable[[StepInfo], None]

# A first time at or above this is pure noise (tilted schedules can start at 1 - 1 ulp).
_FULL_NOISE = 1.0 - 1e-6
# Latent grids beyond this many tokens per side are almost surely pixel sizes passed by mistake.
_MAX_GRID_SIDE = 512


def _as_sigmas(s: Tensor | list[float], name: str) -> Tensor:
    s = torch.as_tensor(s, dtype=torch.float32).flatten().cpu()
    if s.numel() < 2:
        raise ValueError(f"{name} needs at least 2 entries (steps + 1), got {s.numel()}")
    if not bool(torch.isfinite(s).all()) or bool((s < 0).any()) or bool((s > 1).any()):
        raise ValueError(f"{name} must be finite times in [0, 1], got {s.tolist()}")
    if bool((s[1:] > s[:-1]).any()):
        raise ValueError(f"{name} must not increase (it runs from noisy to clean), got {s.tolist()}")
    return s


def _batched(x: Tensor | None, batch: int, shape: tuple[int, int], name: str, device) -> Tensor | None:
    if x is None:
        return None
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or tuple(x.shape[1:]) != shape or x.shape[0] not in (1, batch):
        raise ValueError(f"{name} must be (1 or {batch}, {shape[0]}, {shape[1]}), got {tuple(x.shape)}")
    return x.to(device=device, dtype=torch.float32).expand(batch, *shape)


def _start(
    sig0: float, latent: Tensor | None, noise: Tensor | None, draw: Callable[[], Tensor], name: str
) -> tuple[Tensor, Tensor | None]:
    """(state at the first time, the noise drawn): the clean latent (t=0), noise (t=1) or (1 - t) x + t noise."""
    if sig0 == 0.0:
        if latent is None:
            raise ValueError(
                f"{name} is held clean (its sigmas are all zero) but no {name} latent was given; "
                f"connect a {name} latent or give it a non-zero schedule"
            )
        return latent.clone(), None
    eps = noise if noise is not None else draw()
    if sig0 < _FULL_NOISE:
        if latent is None:
            raise ValueError(f"{name} starts part-way (first sigma {sig0:.4f} < 1) but no {name} latent was given")
        return (1.0 - sig0) * latent + sig0 * eps, eps
    return eps.clone(), eps


def _region(
    mask: Tensor | None, latent: Tensor | None, sigmas: Tensor, batch: int, grid: tuple[int, int], feather: int,
    name: str, device,
) -> Tensor | None:
    """Token mask (B, N, 1) of one modality, or None; checks that the mask can mean something."""
    if mask is None:
        return None
    if latent is None:
        raise ValueError(
            f"{name}_mask is given but no {name} latent: the region outside the mask has nothing to keep; "
            f"connect the {name} latent (or drop the mask to generate all of {name})"
        )
    if float(sigmas[0]) == 0.0:
        raise ValueError(
            f"{name}_mask is given but {name} is held clean everywhere (its sigmas are all zero); give {name} a "
            f"non-zero schedule to regenerate it inside the mask, or drop the mask"
        )
    m = token_mask(mask, *grid, feather=feather, name=f"{name}_mask")
    if m.shape[0] not in (1, batch):
        raise ValueError(f"{name}_mask has batch {m.shape[0]} but the sampling batch is {batch}")
    return m.to(device).expand(batch, -1, -1)


def _keep_outside(x: Tensor, latent: Tensor, eps: Tensor, t: Tensor | float, mask: Tensor) -> Tensor:
    """x inside the mask; outside, the given latent re-noised to time t, (1 - t) latent + t eps (latent at t = 0)."""
    held = (1.0 - t) * latent + t * eps
    return held + mask * (x - held)


@torch.no_grad()
def sample(
    model: Denoiser,
    ctx: Tensor,
    null_ctx: Tensor | None,
    rgb_sigmas: Tensor | list[float],
    depth_sigmas: Tensor | list[float],
    *,
    height: int,
    width: int,
    cfg: float = 1.0,
    depth_cfg: float | None = None,
    seed: int | None = None,
    noise_device: str | torch.device | None = None,
    rgb: Tensor | None = None,
    depth: Tensor | None = None,
    rgb_noise: Tensor | None = None,
    depth_noise: Tensor | None = None,
    callback: StepCallback | None = None,
    depth_xpred_exact: bool = False,
    batch_cfg: bool = True,
    rgb_mask: Tensor | None = None,
    depth_mask: Tensor | None = None,
    mask_feather: int = 0,
) -> tuple[Tensor, Tensor]:
    """Denoise RGB and depth tokens along their own sigma lists; returns fp32 (rgb, depth) tokens.

    Args:
        model: a `MofoDiT` (anything with `predict`, `in_channels`, `depth_channels`).
        ctx: (B, L, C) text conditioning; its device and batch are the sampling device and batch.
        null_ctx: (1 or B, L', C) unconditional conditioning (the encoded empty prompt); needed when
            cfg or depth_cfg differs from 1.
        rgb_sigmas, depth_sigmas: steps + 1 times each, non-increasing, in [0, 1]. All zeros = held clean.
        height, width: latent grid (pixels / 16).
        cfg, depth_cfg: guidance scales for the RGB and depth heads (depth_cfg defaults to cfg).
        seed: seeds a `torch.Generator` on ctx's device; noise is drawn as the reference draws it.
        noise_device: draw the seeded noise on this device instead (e.g. "cpu": the same image on every
            machine), in the same order (RGB first, only for the modalities that start noised).
        rgb, depth: (1 or B, N, C) clean latents: needed for held-clean or part-way modalities.
        rgb_noise, depth_noise: explicit (1 or B, N, C) noise instead of seeded draws.
        callback: called after every step with a `StepInfo`; raise from it to interrupt.
        depth_xpred_exact: opt-in fix; exact x0 -> v conversion instead of the 0.05 clamp.
        batch_cfg: run cond + uncond as one batch of 2B (False: two sequential forwards).
        rgb_mask, depth_mask: (H, W) or (1 or B, H, W) in [0, 1] at the image size (16 height x 16 width) or the
            latent grid; 1 = regenerate, 0 = keep the given latent. Needs that modality's latent.
        mask_feather: pixels of soft falloff added outside each pixel mask.
    """
    # 1. validate
    rgb_s, depth_s = _as_sigmas(rgb_sigmas, "rgb_sigmas"), _as_sigmas(depth_sigmas, "depth_sigmas")
    if rgb_s.numel() != depth_s.numel():
        raise ValueError(f"rgb_sigmas has {rgb_s.numel()} entries but depth_sigmas has {depth_s.numel()}")
    if not (0 < height <= _MAX_GRID_SIDE and 0 < width <= _MAX_GRID_SIDE):
        raise ValueError(f"height/width are the latent grid (pixels / 16), got {height}x{width}")
    if ctx.ndim != 3:
        raise ValueError(f"ctx must be (B, L, C), got {tuple(ctx.shape)}")
    depth_cfg = cfg if depth_cfg is None else depth_cfg
    device, batch, n = ctx.device, ctx.shape[0], height * width
    ctx = ctx.float()
    use_cfg = cfg != 1.0 or depth_cfg != 1.0
    if use_cfg:
        if null_ctx is None:
            raise ValueError("cfg/depth_cfg != 1 needs a null conditioning (the encoded empty prompt)")
        null_ctx = null_ctx[None] if null_ctx.ndim == 2 else null_ctx
        if null_ctx.shape[0] not in (1, batch) or null_ctx.shape[2] != ctx.shape[2]:
            raise ValueError(f"null_ctx {tuple(null_ctx.shape)} does not match ctx {tuple(ctx.shape)}")
        null_ctx = null_ctx.to(device=device, dtype=torch.float32).expand(batch, *null_ctx.shape[1:])
    rgb = _batched(rgb, batch, (n, model.in_channels), "rgb latent", device)
    depth = _batched(depth, batch, (n, model.depth_channels), "depth latent", device)
    rgb_noise = _batched(rgb_noise, batch, (n, model.in_channels), "rgb_noise", device)
    depth_noise = _batched(depth_noise, batch, (n, model.depth_channels), "depth_noise", device)

    # 2. initial state (the reference draws RGB noise first, then depth, from one generator)
    gen_device = torch.device(noise_device) if noise_device is not None else device
    gen = torch.Generator(device=gen_device).manual_seed(seed) if seed is not None else None

    def randn(c: int) -> Callable[[], Tensor]:
        return lambda: torch.randn(batch, n, c, device=gen_device, dtype=torch.float32, generator=gen).to(device)

    m_r = _region(rgb_mask, rgb, rgb_s, batch, (height, width), mask_feather, "rgb", device)  # (B, N, 1)
    m_d = _region(depth_mask, depth, depth_s, batch, (height, width), mask_feather, "depth", device)
    x_rgb, eps_r = _start(float(rgb_s[0]), rgb, rgb_noise, randn(model.in_channels), "rgb")
    x_depth, eps_d = _start(float(depth_s[0]), depth, depth_noise, randn(model.depth_channels), "depth")
    rgb_t, depth_t = rgb_s.to(device), depth_s.to(device)
    cond = torch.cat([ctx, null_ctx]) if use_cfg and batch_cfg and null_ctx.shape[1] == ctx.shape[1] else None

    # 3. Euler steps
    steps = rgb_s.numel() - 1
    for i in range(steps):
        t_r, t_d = rgb_t[i].expand(batch), depth_t[i].expand(batch)
        dt_r, dt_d = rgb_t[i + 1] - rgb_t[i], depth_t[i + 1] - depth_t[i]  # 0-dim fp32, <= 0
        if not use_cfg:
            v_r, x0_d = model.predict(x_rgb, x_depth, ctx, t_r, t_d, height, width)
        else:
            if cond is not None:
                pr, pd = model.predict(
                    x_rgb.repeat(2, 1, 1), x_depth.repeat(2, 1, 1), cond, t_r.repeat(2), t_d.repeat(2), height, width
                )
                (c_r, u_r), (c_d, u_d) = pr.chunk(2), pd.chunk(2)
            else:
                c_r, c_d = model.predict(x_rgb, x_depth, ctx, t_r, t_d, height, width)
                c_r, c_d = c_r.clone(), c_d.clone()
                u_r, u_d = model.predict(x_rgb, x_depth, null_ctx, t_r, t_d, height, width)
            v_r = u_r + cfg * (c_r - u_r)  # in the RGB head's dtype, as the reference
            x0_d = u_d + depth_cfg * (c_d - u_d)
        t_col = t_d.view(batch, 1, 1)
        if depth_xpred_exact and float(depth_t[i]) > 0.0:
            # x_next = x0 + (t_next / t) (x - x0): the exact step for an x0 predictor (no clamp).
            x_depth = x0_d + (depth_t[i + 1] / depth_t[i]) * (x_depth - x0_d)
        else:
            v_d = (x_depth - x0_d) / t_col.clamp(min=X_PREDICTION_T_MIN)
            x_depth = x_depth + dt_d * v_d
        x_rgb = x_rgb + dt_r * v_r
        # x_{i+1} - t_{i+1} v = x_i - t_i v: the clean estimate of this step (for previews).
        x0_r = x_rgb - rgb_t[i + 1] * v_r.float() if callback is not None else None
        if m_r is not None:  # outside the mask: the given latent at the new time, with the same noise draw
            x_rgb = _keep_outside(x_rgb, rgb, eps_r, rgb_t[i + 1], m_r)
            x0_r = None if x0_r is None else _keep_outside(x0_r, rgb, eps_r, 0.0, m_r)
        if m_d is not None:
            x_depth = _keep_outside(x_depth, depth, eps_d, depth_t[i + 1], m_d)
            x0_d = _keep_outside(x0_d.float(), depth, eps_d, 0.0, m_d)
        if callback is not None:
            callback(StepInfo(i, steps, x_rgb, x_depth, x0_r, x0_d.float()))
    return x_rgb, x_depth
