"""Pure tensor functions of the FLUX.2 transformer: attention, RoPE and the timestep embedding.

Re-implemented from the description of black-forest-labs/flux2 `src/flux2/model.py` as vendored by the
Modality Forcing reference (`flux_rgbd/_flux2/model.py`); the numerics (fp32 RoPE on interleaved pairs,
cos-first time embedding computed after a cast to the body dtype) are kept for bit-level parity.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from einops import rearrange
from torch import Tensor

# attention(q, k, v) on (B, heads, L, head_dim) tensors; `mofo_core.model.perf.set_attention` swaps in other kernels.
AttentionFn = Callable[[Tensor, Tensor, Tensor], Tensor]


def sdpa(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    return torch.nn.functional.scaled_dot_product_attention(q, k, v)


def attention(q: Tensor, k: Tensor, v: Tensor, pe: Tensor, attn_fn: AttentionFn = sdpa) -> Tensor:
    """RoPE on q and k, unmasked softmax attention, heads merged: (B, H, L, D) -> (B, L, H*D)."""
    q, k = apply_rope(q, k, pe)
    x = attn_fn(q, k, v)
    return rearrange(x, "B H L D -> B L (H D)")


def rope(pos: Tensor, dim: int, theta: int) -> Tensor:
    """Rotation matrices for one position axis: (B, L) -> (B, L, dim/2, 2, 2), fp32."""
    assert dim % 2 == 0
    scale = torch.arange(0, dim, 2, dtype=pos.dtype, device=pos.device) / dim  # ids are fp32
    omega = 1.0 / (theta**scale)
    out = torch.einsum("...n,d->...nd", pos, omega)
    out = torch.stack([torch.cos(out), -torch.sin(out), torch.sin(out), torch.cos(out)], dim=-1)
    out = rearrange(out, "b n d (i j) -> b n d i j", i=2, j=2)
    return out.float()


def apply_rope(xq: Tensor, xk: Tensor, freqs_cis: Tensor) -> tuple[Tensor, Tensor]:
    """Rotate adjacent pairs (x_2i, x_2i+1) of q and k in fp32, then cast back to their dtype."""
    xq_ = xq.float().reshape(*xq.shape[:-1], -1, 1, 2)
    xk_ = xk.float().reshape(*xk.shape[:-1], -1, 1, 2)
    xq_out = freqs_cis[..., 0] * xq_[..., 0] + freqs_cis[..., 1] * xq_[..., 1]
    xk_out = freqs_cis[..., 0] * xk_[..., 0] + freqs_cis[..., 1] * xk_[..., 1]
    return xq_out.reshape(*xq.shape).type_as(xq), xk_out.reshape(*xk.shape).type_as(xk)


def embed_nd(ids: Tensor, axes_dim: tuple[int, ...], theta: int) -> Tensor:
    """Position ids (B, L, n_axes) -> RoPE matrices (B, 1, L, head_dim/2, 2, 2)."""
    emb = torch.cat([rope(ids[..., i], axes_dim[i], theta) for i in range(len(axes_dim))], dim=-3)
    return emb.unsqueeze(1)


def timestep_embedding(t: Tensor, dim: int = 256, max_period: int = 10000, time_factor: float = 1000.0) -> Tensor:
    """Sinusoidal embedding [cos | sin] of t * time_factor; the product is taken in t's own dtype.

    The reference casts t to the body dtype (bf16 in practice) *before* this call, so 0.7503 becomes
    0.75 and x1000 gives 752: parity needs that rounding, so callers cast first, as the reference does.
    Returns t's dtype when t is floating point.
    """
    t = time_factor * t
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(0, half, device=t.device, dtype=torch.float32) / half)
    args = t[:, None].float() * freqs[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
    if torch.is_floating_point(t):
        embedding = embedding.to(t)
    return embedding
