"""Per-modality flow-matching sigma schedules, expressed as what they are: two lists of times.

Reference: `Duisterhof/modality-forcing: flux_rgbd/depth/schedule.py` (`rollout_timesteps`). Each list has
steps + 1 entries from the first (noisiest) time down to 0; t = 1 is pure noise, t = 0 is clean. A
modality held clean (the RGB of image -> depth, the depth of depth -> image) is a list of zeros.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from ..config import RELEASE_MU, RELEASE_SIGMA

Mode = Literal["joint", "i2d", "d2i"]
MODES: tuple[str, ...] = ("joint", "i2d", "d2i")


def time_shift(t: Tensor, mu: float = RELEASE_MU, sigma: float = RELEASE_SIGMA) -> Tensor:
    """SD3/FLUX shift t' = e^mu / (e^mu + (1/t - 1)^sigma); fixes 0 and 1 (1/0 = inf)."""
    return math.exp(mu) / (math.exp(mu) + (1.0 / t - 1.0) ** sigma)


def tilt(t: Tensor, log2_alpha: float) -> Tensor:
    """Moebius warp f_a(t) = a t / (1 + (a - 1) t), a = 2^log2_alpha; a > 1 keeps depth noisier longer."""
    alpha = 2.0**log2_alpha
    return (alpha * t) / (1.0 + (alpha - 1.0) * t)


def _shifted(steps: int, mu: float, sigma: float) -> Tensor:
    return time_shift(torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float32), mu, sigma)


def _with_denoise(steps: int, denoise: float, mu: float, sigma: float) -> Tensor:
    """The last steps + 1 times of a schedule stretched to steps / denoise (ComfyUI's denoise rule)."""
    if not 0.0 <= denoise <= 1.0:
        raise ValueError(f"denoise must be in [0, 1], got {denoise}")
    if denoise == 0.0:
        return torch.zeros(steps + 1, dtype=torch.float32)
    total = max(steps, int(round(steps / denoise)))
    return _shifted(total, mu, sigma)[-(steps + 1) :].clone()


def schedule(
    steps: int,
    *,
    mode: Mode = "joint",
    mu: float = RELEASE_MU,
    sigma: float = 1.0,
    log2_alpha: float | None = None,
    rgb_denoise: float = 1.0,
    depth_denoise: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """(rgb_sigmas, depth_sigmas), each fp32 of length steps + 1.

    joint: both shifted; with log2_alpha the depth list is tilt(rgb list). i2d: RGB all zeros (held
    clean). d2i: depth all zeros. `*_denoise` < 1 starts that modality part-way (a partial-noise edit of
    a given latent); 0 holds it clean. With the defaults this equals the reference's `rollout_timesteps`
    with `ScheduleConfig(rgb_shift_mu=mu, depth_shift_mu=mu)` (release: `config.RELEASE_MU`).
    """
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps}")
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
    rgb = _with_denoise(steps, rgb_denoise, mu, sigma)
    depth = _with_denoise(steps, depth_denoise, mu, sigma)
    if mode == "i2d":
        rgb = torch.zeros_like(rgb)
    elif mode == "d2i":
        depth = torch.zeros_like(depth)
    elif log2_alpha is not None:
        depth = tilt(rgb, log2_alpha) if depth_denoise == rgb_denoise else tilt(depth, log2_alpha)
    return rgb, depth

