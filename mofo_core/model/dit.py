"""`MofoDiT`: the FLUX.2 trunk with a peer depth stream (the Modality Forcing DiT).

Same function as the reference `FluxRGBDDiT.forward` (`Duisterhof/modality-forcing: flux_rgbd/dit.py`) and
`FluxRGBD.forward` (`predict` here), with the checkpoint's module names. RGB tokens carry RoPE time id 0,
depth tokens time id 1, text tokens (0, 0, 0, i).
"""

from __future__ import annotations

import torch
from einops import repeat
from torch import Tensor, nn

from ..config import DiTConfig
from ..ops import torch_ops
from .layers import LastLayer, MLPEmbedder, ModTriple, Modulation, SingleStreamBlock, TripleStreamBlock
from .math import AttentionFn, embed_nd, sdpa, timestep_embedding


def image_ids(batch: int, h: int, w: int, *, device, time_id: float = 0.0) -> Tensor:
    """(B, h*w, 4) ids (time_id, row, col, 0), row-major over the latent grid, fp32."""
    ids = torch.zeros(h, w, 4, device=device)
    ids[..., 0] = time_id
    ids[..., 1] = torch.arange(h, device=device)[:, None]
    ids[..., 2] = torch.arange(w, device=device)[None, :]
    return repeat(ids, "h w d -> b (h w) d", b=batch)


def text_ids(batch: int, seq_len: int, *, device) -> Tensor:
    """(B, L, 4) ids (0, 0, 0, i)."""
    ids = torch.zeros(batch, seq_len, 4, device=device)
    ids[..., 3] = torch.arange(seq_len, device=device)
    return ids


def _per_token(mod_a: ModTriple, mod_b: ModTriple, n_a: int, n_b: int) -> ModTriple:
    """Broadcast two (B, 1, H) triples over n_a then n_b tokens: (B, n_a + n_b, H) each."""
    return tuple(torch.cat([a.expand(-1, n_a, -1), b.expand(-1, n_b, -1)], dim=1) for a, b in zip(mod_a, mod_b))


class MofoDiT(nn.Module):
    """Text + RGB + depth DiT; RGB head predicts velocity, depth head predicts the clean sample."""

    def __init__(self, config: DiTConfig, *, dtype=None, device=None, operations=torch_ops):
        super().__init__()
        config.validate()
        self.config = config
        c, H = config, config.hidden_size
        kw = dict(dtype=dtype, device=device, operations=operations)
        self.in_channels = c.in_channels
        self.depth_channels = c.depth_channels
        # Compute dtype of the body; None = the dtype of img_in's weight (the reference's rule). Set it
        # when weights are stored in another dtype than they compute in (fp8 storage, ComfyUI casting).
        self.body_dtype: torch.dtype | None = None
        self.attn_fn: AttentionFn = sdpa

        self.img_in = operations.Linear(c.in_channels, H, bias=False, dtype=dtype, device=device)
        self.txt_in = operations.Linear(c.context_in_dim, H, bias=False, dtype=dtype, device=device)
        self.depth_in = operations.Linear(c.depth_channels, H, bias=False, dtype=dtype, device=device)
        self.time_in = MLPEmbedder(256, H, **kw)
        self.time_in_depth = MLPEmbedder(256, H, **kw)
        if c.cross_stream_timestep_mixing:  # v2
            self.time_in_depth_to_img = MLPEmbedder(256, H, **kw)
            self.time_in_rgb_to_depth = MLPEmbedder(256, H, **kw)
            self.cross_alpha_img = nn.Parameter(torch.zeros(1, dtype=dtype, device=device))
            self.cross_alpha_depth = nn.Parameter(torch.zeros(1, dtype=dtype, device=device))

        blk = dict(mlp_ratio=c.mlp_ratio, **kw)
        self.double_blocks = nn.ModuleList([TripleStreamBlock(H, c.num_heads, **blk) for _ in range(c.depth_double)])
        self.single_blocks = nn.ModuleList([SingleStreamBlock(H, c.num_heads, **blk) for _ in range(c.depth_single)])
        self.double_stream_modulation_img = Modulation(H, double=True, **kw)
        self.double_stream_modulation_txt = Modulation(H, double=True, **kw)
        self.double_stream_modulation_depth = Modulation(H, double=True, **kw)
        self.single_stream_modulation = Modulation(H, double=False, **kw)
        self.single_stream_modulation_depth = Modulation(H, double=False, **kw)
        self.depth_decoder_blocks = nn.ModuleList(
            [SingleStreamBlock(H, c.num_heads, **blk) for _ in range(c.depth_decoder_num_layers)]
        )
        if c.depth_decoder_num_layers:
            self.depth_decoder_modulation = Modulation(H, double=False, **kw)
        self.final_layer = LastLayer(H, c.in_channels, **kw)
        self.depth_final_layer = LastLayer(H, c.depth_channels, **kw)

    @property
    def dtype(self) -> torch.dtype:
        """The body's compute dtype."""
        return self.body_dtype or self.img_in.weight.dtype

    def _head_dtype(self, head: LastLayer) -> torch.dtype:
        """A head computes in its weight dtype (fp32 depth head over a bf16 body), except 8-bit storage."""
        dt = head.linear.weight.dtype
        return self.dtype if dt.itemsize == 1 else dt

    def forward(
        self,
        img: Tensor,  # (B, N_img, 128) RGB latent tokens
        img_ids: Tensor,  # (B, N_img, 4)
        timesteps: Tensor,  # (B,) RGB time in [0, 1]
        ctx: Tensor,  # (B, N_txt, context_in_dim)
        ctx_ids: Tensor,  # (B, N_txt, 4)
        depth: Tensor,  # (B, N_d, 256) depth tokens
        depth_ids: Tensor,  # (B, N_d, 4)
        depth_timesteps: Tensor,  # (B,) depth time in [0, 1]
    ) -> tuple[Tensor, Tensor]:
        """Return (rgb velocity (B, N_img, 128), depth x0 (B, N_d, 256)), each in its head's dtype."""
        body = self.dtype
        img, ctx, depth = img.to(body), ctx.to(body), depth.to(body)
        # The reference rounds t to the body dtype *before* the x1000 inside the embedding.
        e_rgb = timestep_embedding(timesteps.to(body), 256).to(body)  # (B, 256)
        e_depth = timestep_embedding(depth_timesteps.to(body), 256).to(body)
        vec_img = self.time_in(e_rgb)  # (B, H)
        vec_depth = self.time_in_depth(e_depth)
        if self.config.cross_stream_timestep_mixing:
            vec_img = vec_img + self.cross_alpha_img.to(vec_img) * self.time_in_depth_to_img(e_depth)
            vec_depth = vec_depth + self.cross_alpha_depth.to(vec_depth) * self.time_in_rgb_to_depth(e_rgb)

        mod_img = self.double_stream_modulation_img(vec_img)
        mod_txt = self.double_stream_modulation_txt(vec_img)  # text is modulated by the RGB time
        mod_depth = self.double_stream_modulation_depth(vec_depth)
        mod_img_single, _ = self.single_stream_modulation(vec_img)
        mod_depth_single, _ = self.single_stream_modulation_depth(vec_depth)

        img = self.img_in(img)  # (B, N_img, H)
        txt = self.txt_in(ctx)  # (B, N_txt, H)
        depth = self.depth_in(depth)  # (B, N_d, H)
        axes, theta = self.config.axes_dim, self.config.theta
        pe_depth = embed_nd(depth_ids, axes, theta)  # (B, 1, N_d, D/2, 2, 2)
        pe = torch.cat([embed_nd(ctx_ids, axes, theta), embed_nd(img_ids, axes, theta), pe_depth], dim=2)

        for block in self.double_blocks:
            img, txt, depth = block(img, txt, depth, pe, mod_img, mod_txt, mod_depth, self.attn_fn)

        n_txt, n_img, n_depth = txt.shape[1], img.shape[1], depth.shape[1]
        joint = torch.cat([txt, img, depth], dim=1)  # (B, L, H)
        mod_joint = _per_token(mod_img_single, mod_depth_single, n_txt + n_img, n_depth)
        for block in self.single_blocks:
            joint = block(joint, pe, mod_joint, self.attn_fn)

        rgb_tokens = joint[:, n_txt : n_txt + n_img]  # (B, N_img, H)
        # (B, N_d, H). Contiguous, so the first depth-decoder block sees the layout of the others: as a strided
        # view it made torch.compile build that block a second time (a stride guard; ~4.5 s of a cold warm-up).
        depth_tokens = joint[:, n_txt + n_img :].contiguous()
        if self.config.depth_decoder_num_layers:
            mod_dec, _ = self.depth_decoder_modulation(vec_depth)
            for block in self.depth_decoder_blocks:
                depth_tokens = block(depth_tokens, pe_depth, mod_dec, self.attn_fn)

        rgb_dt, depth_dt = self._head_dtype(self.final_layer), self._head_dtype(self.depth_final_layer)
        rgb_out = self.final_layer(rgb_tokens.to(rgb_dt), vec_img.to(rgb_dt))  # (B, N_img, 128)
        depth_out = self.depth_final_layer(depth_tokens.to(depth_dt), vec_depth.to(depth_dt))  # (B, N_d, 256)
        return rgb_out, depth_out

    def predict(
        self, rgb: Tensor, depth: Tensor, ctx: Tensor, t_rgb: Tensor, t_depth: Tensor, height: int, width: int
    ) -> tuple[Tensor, Tensor]:
        """One denoiser call on a height x width latent grid (the reference's `FluxRGBD.forward`).

        Args:
            rgb: (B, height*width, 128) RGB latent tokens.
            depth: (B, height*width, 256) depth tokens.
            ctx: (B, L, context_in_dim) text features.
            t_rgb, t_depth: (B,) flow times in [0, 1] (1 = pure noise).
            height, width: latent grid size (pixels / 16).
        """
        b, n, dev = rgb.shape[0], height * width, rgb.device
        if rgb.ndim != 3 or rgb.shape[1:] != (n, self.in_channels):
            raise ValueError(
                f"rgb tokens must be (B, {n}, {self.in_channels}) for a {height}x{width} grid, got {tuple(rgb.shape)}"
            )
        if depth.ndim != 3 or depth.shape != (b, n, self.depth_channels):
            raise ValueError(f"depth tokens must be ({b}, {n}, {self.depth_channels}), got {tuple(depth.shape)}")
        if ctx.ndim != 3 or ctx.shape[0] != b or ctx.shape[2] != self.config.context_in_dim:
            raise ValueError(
                f"text conditioning must be ({b}, L, {self.config.context_in_dim}), got {tuple(ctx.shape)}"
                + (" -- was it encoded by Qwen3-8B (3 x 4096 features)?" if ctx.ndim == 3 else "")
            )
        return self.forward(
            img=rgb,
            img_ids=image_ids(b, height, width, device=dev),
            timesteps=t_rgb,
            ctx=ctx,
            ctx_ids=text_ids(b, ctx.shape[1], device=dev),
            depth=depth,
            depth_ids=image_ids(b, height, width, device=dev, time_id=1.0),
            depth_timesteps=t_depth,
        )
