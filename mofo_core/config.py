"""Frozen configuration for the Modality Forcing DiT and its two released variants.

Numbers follow the reference `Duisterhof/modality-forcing` (`flux_rgbd/factories.py`, `flux_rgbd/dit.py`);
see docs in `../shared/docs/reference-spec.md` §2.1. `tiny()` gives a seconds-fast model with the same
token interfaces (128 RGB channels, 256 depth channels) for tests and the offline demo.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

VariantName = Literal["flux_rgbd_9b_v1", "flux_rgbd_9b_v2"]


@dataclass(frozen=True)
class DiTConfig:
    """Architecture of the three-stream (text, RGB, depth) DiT."""

    in_channels: int = 128  # RGB latent channels (FLUX.2 VAE: 32 ch x 2x2 patch)
    depth_channels: int = 256  # depth token channels (16x16 pixel patch, 1 channel)
    context_in_dim: int = 12288  # text features: 3 Qwen3-8B layers x 4096
    hidden_size: int = 4096
    num_heads: int = 32  # head_dim = hidden_size / num_heads must equal sum(axes_dim)
    depth_double: int = 8  # triple-stream blocks (txt, img, depth share one attention)
    depth_single: int = 24  # single-stream blocks over the joint sequence
    depth_decoder_num_layers: int = 4  # single blocks over depth tokens only
    mlp_ratio: float = 3.0
    axes_dim: tuple[int, ...] = (32, 32, 32, 32)  # RoPE axes: (time, row, col, seq)
    theta: int = 2000  # RoPE base
    cross_stream_timestep_mixing: bool = False  # v2: each stream's vec also sees the other stream's time

    def activation_bytes(self, tokens: int, batch: int = 1) -> int:
        """Working memory of one bf16 forward over `tokens` joint tokens (text + RGB + depth) and `batch` samples:
        ~24 hidden-sized tensors per token (an estimate for a host's memory planning, e.g. ComfyUI's)."""
        return batch * tokens * self.hidden_size * 2 * 24

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def mlp_hidden_dim(self) -> int:
        return int(self.hidden_size * self.mlp_ratio)

    @property
    def variant(self) -> VariantName:
        return "flux_rgbd_9b_v2" if self.cross_stream_timestep_mixing else "flux_rgbd_9b_v1"

    def validate(self) -> None:
        """Raise ValueError when the numbers cannot form a model."""
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if sum(self.axes_dim) != self.head_dim:
            raise ValueError(f"sum(axes_dim)={sum(self.axes_dim)} must equal head_dim={self.head_dim}")
        if any(d % 2 for d in self.axes_dim):
            raise ValueError(f"every RoPE axis needs an even size, got {self.axes_dim}")


V1 = DiTConfig()
V2 = replace(V1, cross_stream_timestep_mixing=True)
VARIANTS: dict[str, DiTConfig] = {"flux_rgbd_9b_v1": V1, "flux_rgbd_9b_v2": V2}


def tiny(variant: VariantName = "flux_rgbd_9b_v2", *, context_in_dim: int = 48) -> DiTConfig:
    """A few-hundred-thousand-parameter model with the real token interfaces (tests, offline demo)."""
    return replace(
        VARIANTS[variant],
        context_in_dim=context_in_dim,
        hidden_size=64,
        num_heads=2,
        depth_double=2,
        depth_single=2,
        depth_decoder_num_layers=1,
        axes_dim=(8, 8, 8, 8),
    )


VERSION = "0.1.0"  # this package's version (mofo_core.__version__, the CLI's --version, run metadata)


# -- release defaults (one home; the CLI, the pipeline and the nodes read them from here) --------------------
# Time shift of the schedules (reference `ScheduleConfig(rgb_shift_mu=1.1, depth_shift_mu=1.1)`, sigma 1).
RELEASE_MU = 1.1
RELEASE_SIGMA = 1.0
# Horizontal field of view assumed for point clouds and meshes (the reference's guess; the model knows none).
DEFAULT_FOV_DEG = 65.0
# Attention kernels one can ask for (`mofo_core.model.perf`: auto = the fastest measured for the GPU, SDPA on CPU).
ATTENTION_BACKENDS = ("auto", "sdpa", "flash", "cudnn", "efficient")
# fp8 weight scaling: one scale per output channel (and per token), or one per matrix (`mofo_core.model.fp8`).
FP8_SCALINGS = ("row", "tensor")


# Sampler constant: the depth head predicts x0; v = (x_t - x0) / max(t, X_PREDICTION_T_MIN)
# (reference `FluxRGBD.sample`, x_prediction_t_min = 0.05).
X_PREDICTION_T_MIN = 0.05

# Depth codec: reference DepthConfig(("unit_mean", "contract"), patch_size=16, depth_value_scale=1.0).
DEPTH_PATCH = 16
# Pixels per latent cell of the FLUX.2 autoencoder (8x conv downsampling, then a 2x2 patchify).
LATENT_COMPRESSION = 16
# Text tokens the reference always feeds (right-padded / truncated to this length).
TEXT_TOKENS = 512
