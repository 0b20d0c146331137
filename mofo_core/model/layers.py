"""FLUX.2 transformer layers with the Modality Forcing triple-stream block.

A re-implementation of black-forest-labs/flux2 `src/flux2/model.py` (Apache-2.0) as vendored in the
Modality Forcing reference (`flux_rgbd/_flux2/model.py`, `flux_rgbd/dit.py`). Module and attribute names
are the checkpoint's, so released weights load by name. Deltas from the reference: every weight-bearing
layer comes from an injected `operations` namespace (ComfyUI passes `comfy.ops`), the attention kernel
is a parameter, and RMSNorm casts its scale to the activation dtype (a no-op for same-dtype checkpoints).
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from einops import rearrange
from torch import Tensor, nn

from ..ops import torch_ops
from .math import AttentionFn, attention, sdpa

ModTriple = tuple[Tensor, Tensor, Tensor]  # (shift, scale, gate), each (B, 1 or L, H)


def _layer_norm(hidden_size: int, device=None) -> nn.LayerNorm:
    # Parameter-free, so it never needs ComfyUI's weight casting.
    return nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6, device=device)


class GatedSiLU(nn.Module):
    """silu(first half) * second half of the last dim (SwiGLU activation)."""

    def forward(self, x: Tensor) -> Tensor:
        x1, x2 = x.chunk(2, dim=-1)
        return nn.functional.silu(x1) * x2


class MLPEmbedder(nn.Module):
    """Time-embedding MLP: out_layer(silu(in_layer(x)))."""

    def __init__(self, in_dim: int, hidden_dim: int, *, dtype=None, device=None, operations=torch_ops):
        super().__init__()
        self.in_layer = operations.Linear(in_dim, hidden_dim, bias=False, dtype=dtype, device=device)
        self.out_layer = operations.Linear(hidden_dim, hidden_dim, bias=False, dtype=dtype, device=device)

    def forward(self, x: Tensor) -> Tensor:
        return self.out_layer(nn.functional.silu(self.in_layer(x)))


class Modulation(nn.Module):
    """AdaLN coefficients lin(silu(vec)) chunked as (shift, scale, gate) [+ a second triple]."""

    def __init__(self, dim: int, double: bool, *, dtype=None, device=None, operations=torch_ops):
        super().__init__()
        self.is_double = double
        self.multiplier = 6 if double else 3
        self.lin = operations.Linear(dim, self.multiplier * dim, bias=False, dtype=dtype, device=device)

    def forward(self, vec: Tensor) -> tuple[ModTriple, ModTriple | None]:
        out = self.lin(nn.functional.silu(vec))
        if out.ndim == 2:
            out = out[:, None, :]  # (B, 1, k*H)
        out = out.chunk(self.multiplier, dim=-1)
        return out[:3], out[3:] if self.is_double else None


class RMSNorm(nn.Module):
    """x * rsqrt(mean(x^2) + 1e-6) in fp32, cast back, then times the learned scale."""

    def __init__(self, dim: int, *, dtype=None, device=None):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim, dtype=dtype, device=device))

    def forward(self, x: Tensor) -> Tensor:
        x_dtype = x.dtype
        x = x.float()
        rrms = torch.rsqrt(torch.mean(x**2, dim=-1, keepdim=True) + 1e-6)
        return (x * rrms).to(dtype=x_dtype) * self.scale.to(device=x.device, dtype=x_dtype)


class QKNorm(nn.Module):
    def __init__(self, dim: int, *, dtype=None, device=None):
        super().__init__()
        self.query_norm = RMSNorm(dim, dtype=dtype, device=device)
        self.key_norm = RMSNorm(dim, dtype=dtype, device=device)

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        return self.query_norm(q).to(v), self.key_norm(k).to(v)


class SelfAttention(nn.Module):
    """Container for qkv, QK-norm and proj; the blocks run the attention themselves."""

    def __init__(self, dim: int, num_heads: int, *, dtype=None, device=None, operations=torch_ops):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = operations.Linear(dim, dim * 3, bias=False, dtype=dtype, device=device)
        self.norm = QKNorm(dim // num_heads, dtype=dtype, device=device)
        self.proj = operations.Linear(dim, dim, bias=False, dtype=dtype, device=device)


class LastLayer(nn.Module):
    """Output head: linear((1 + scale) * LN(x) + shift), modulation chunked (shift, scale)."""

    def __init__(self, hidden_size: int, out_channels: int, *, dtype=None, device=None, operations=torch_ops):
        super().__init__()
        self.norm_final = _layer_norm(hidden_size, device=device)
        self.linear = operations.Linear(hidden_size, out_channels, bias=False, dtype=dtype, device=device)
        self.adaLN_modulation = nn.Sequential(
            nn.SiLU(),
            operations.Linear(hidden_size, 2 * hidden_size, bias=False, dtype=dtype, device=device),
        )

    def forward(self, x: Tensor, vec: Tensor) -> Tensor:
        shift, scale = self.adaLN_modulation(vec).chunk(2, dim=-1)
        if shift.ndim == 2:
            shift, scale = shift[:, None, :], scale[:, None, :]  # (B, 1, H)
        return self.linear((1 + scale) * self.norm_final(x) + shift)


class SingleStreamBlock(nn.Module):
    """Fused attention + gated-MLP block (FLUX.2 `SingleStreamBlock`)."""

    def __init__(
        self, hidden_size: int, num_heads: int, mlp_ratio: float, *, dtype=None, device=None, operations=torch_ops
    ):
        super().__init__()
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.mlp_hidden_dim = int(hidden_size * mlp_ratio)
        self.linear1 = operations.Linear(
            hidden_size, hidden_size * 3 + self.mlp_hidden_dim * 2, bias=False, dtype=dtype, device=device
        )
        self.linear2 = operations.Linear(
            hidden_size + self.mlp_hidden_dim, hidden_size, bias=False, dtype=dtype, device=device
        )
        self.norm = QKNorm(hidden_size // num_heads, dtype=dtype, device=device)
        self.pre_norm = _layer_norm(hidden_size, device=device)
        self.mlp_act = GatedSiLU()

    def forward(self, x: Tensor, pe: Tensor, mod: ModTriple, attn_fn: AttentionFn = sdpa) -> Tensor:
        shift, scale, gate = mod
        x_mod = (1 + scale) * self.pre_norm(x) + shift
        qkv, mlp = torch.split(self.linear1(x_mod), [3 * self.hidden_size, self.mlp_hidden_dim * 2], dim=-1)
        q, k, v = rearrange(qkv, "B L (K H D) -> K B H L D", K=3, H=self.num_heads)
        q, k = self.norm(q, k, v)
        attn = attention(q, k, v, pe, attn_fn)
        return x + gate * self.linear2(torch.cat((attn, self.mlp_act(mlp)), 2))


STREAMS = ("img", "txt", "depth")  # registration order of the reference's submodules


class TripleStreamBlock(nn.Module):
    """Per-stream AdaLN, QKV and MLP for img, txt and depth around one joint attention.

    Joint sequence order is [txt, img, depth]. img/txt submodule names equal FLUX.2's DoubleStreamBlock.
    """

    def __init__(
        self, hidden_size: int, num_heads: int, mlp_ratio: float, *, dtype=None, device=None, operations=torch_ops
    ):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        mlp_hidden = int(hidden_size * mlp_ratio)
        kw = SimpleNamespace(dtype=dtype, device=device)
        for s in STREAMS:
            setattr(self, f"{s}_norm1", _layer_norm(hidden_size, device=device))
            setattr(self, f"{s}_attn", SelfAttention(hidden_size, num_heads, **vars(kw), operations=operations))
            setattr(self, f"{s}_norm2", _layer_norm(hidden_size, device=device))
            mlp = nn.Sequential(
                operations.Linear(hidden_size, mlp_hidden * 2, bias=False, **vars(kw)),
                GatedSiLU(),
                operations.Linear(mlp_hidden, hidden_size, bias=False, **vars(kw)),
            )
            setattr(self, f"{s}_mlp", mlp)

    def _qkv(self, s: str, x: Tensor, mod1: ModTriple) -> tuple[Tensor, Tensor, Tensor]:
        shift, scale, _ = mod1
        attn: SelfAttention = getattr(self, f"{s}_attn")
        qkv = attn.qkv((1 + scale) * getattr(self, f"{s}_norm1")(x) + shift)
        q, k, v = rearrange(qkv, "B L (K H D) -> K B H L D", K=3, H=self.num_heads)
        q, k = attn.norm(q, k, v)
        return q, k, v

    def _residual(self, s: str, x: Tensor, attn_out: Tensor, mod: tuple[ModTriple, ModTriple]) -> Tensor:
        (_, _, gate1), (shift2, scale2, gate2) = mod
        x = x + gate1 * getattr(self, f"{s}_attn").proj(attn_out)
        return x + gate2 * getattr(self, f"{s}_mlp")((1 + scale2) * getattr(self, f"{s}_norm2")(x) + shift2)

    def forward(
        self,
        img: Tensor,
        txt: Tensor,
        depth: Tensor,
        pe: Tensor,  # joint [txt, img, depth] RoPE, (B, 1, L, D/2, 2, 2)
        mod_img: tuple[ModTriple, ModTriple],
        mod_txt: tuple[ModTriple, ModTriple],
        mod_depth: tuple[ModTriple, ModTriple],
        attn_fn: AttentionFn = sdpa,
    ) -> tuple[Tensor, Tensor, Tensor]:
        q_i, k_i, v_i = self._qkv("img", img, mod_img[0])
        q_t, k_t, v_t = self._qkv("txt", txt, mod_txt[0])
        q_d, k_d, v_d = self._qkv("depth", depth, mod_depth[0])
        q = torch.cat([q_t, q_i, q_d], dim=2)  # (B, heads, L_txt + L_img + L_depth, D)
        k = torch.cat([k_t, k_i, k_d], dim=2)
        v = torch.cat([v_t, v_i, v_d], dim=2)
        out = attention(q, k, v, pe, attn_fn)  # (B, L, H)
        n_t, n_i = txt.shape[1], img.shape[1]
        img = self._residual("img", img, out[:, n_t : n_t + n_i], mod_img)
        txt = self._residual("txt", txt, out[:, :n_t], mod_txt)
        depth = self._residual("depth", depth, out[:, n_t + n_i :], mod_depth)
        return img, txt, depth
