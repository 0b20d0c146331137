"""FLUX.2 latents <-> the DiT's RGB tokens: ComfyUI's LATENT layout (B, 128, h, w) and the model's row-major
token sequence (B, h*w, 128). One home: the pipeline, edits, the sampler node and its previews use it; it needs
no autoencoder."""

from __future__ import annotations

from einops import rearrange
from torch import Tensor


def latent_to_tokens(latent: Tensor) -> Tensor:
    """(B, C, h, w) latent -> (B, h*w, C) tokens, row-major (as ComfyUI's FLUX models flatten)."""
    return rearrange(latent, "b c h w -> b (h w) c")


def tokens_to_latent(tokens: Tensor, h: int, w: int) -> Tensor:
    """(B, h*w, C) row-major tokens -> (B, C, h, w) latent."""
    if tokens.ndim != 3 or tokens.shape[1] != h * w:
        raise ValueError(f"expected tokens (B, {h}*{w}={h * w}, C), got {tuple(tokens.shape)}")
    return rearrange(tokens, "b (h w) c -> b c h w", h=h, w=w)
