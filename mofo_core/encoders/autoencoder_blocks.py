"""FLUX.2 autoencoder networks: `Flux2Encoder` and `Flux2Decoder` with the release's key names.

A re-implementation of black-forest-labs/flux2 `src/flux2/autoencoder.py` @ ab7cca6 (Apache-2.0) as split
by the Modality Forcing reference (`flux_rgbd/_flux2/autoencoder.py`): each half owns its own copy of the
latent batch-norm statistics (`bn.*`), so their state dicts equal the release files `ae_encoder.safetensors`
and `ae_decoder.safetensors` key for key. Numbers: docs reference-spec.md §3.

These modules keep the reference's tensor conventions: the encoder takes NHWC images in [-1, 1] and
returns the normalised NHWC latent (B, H/16, W/16, 128); the decoder takes that back to NHWC images in
(nominally) [-1, 1]. `mofo_core.encoders.autoencoder.Flux2AutoEncoder` wraps them in ComfyUI's layouts. Unlike
the reference, `forward` never switches the batch-norm into eval mode: it always normalises with the
running statistics, so a module left in train mode cannot update them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from einops import rearrange
from torch import Tensor, nn
from torch.nn import functional as F


@dataclass(frozen=True)
class AutoEncoderConfig:
    """Architecture of the FLUX.2 autoencoder; the defaults are the released model."""

    in_channels: int = 3  # image channels (encoder input and decoder output)
    ch: int = 128  # width of level 0; level i is ch * ch_mult[i] wide
    ch_mult: tuple[int, ...] = (1, 2, 4, 4)  # one entry per level; len - 1 stride-2 downsamples
    num_res_blocks: int = 2  # ResnetBlocks per encoder level (the decoder has one more per level)
    z_channels: int = 32  # latent channels before the 2x2 patchify (x4 after it)
    norm_groups: int = 32  # GroupNorm groups; every level width must be divisible by it
    norm_eps: float = 1e-6  # GroupNorm eps
    bn_eps: float = 1e-4  # latent batch-norm eps (affine-free, running statistics only)
    bn_momentum: float = 0.1  # stored for BatchNorm2d; inference never updates the statistics
    patch_size: int = 2  # latent patchify: z_channels x (p x p) -> latent_channels

    @property
    def latent_channels(self) -> int:
        """Channels of the patchified, normalised latent (128 for the release)."""
        return self.z_channels * self.patch_size**2

    @property
    def downscale(self) -> int:
        """Pixels per latent cell along each axis (16 for the release)."""
        return 2 ** (len(self.ch_mult) - 1) * self.patch_size

    @property
    def widths(self) -> tuple[int, ...]:
        """Channel width of each level."""
        return tuple(self.ch * m for m in self.ch_mult)

    def validate(self) -> None:
        """Raise ValueError when the numbers cannot form a model."""
        if not self.ch_mult or self.num_res_blocks < 1:
            raise ValueError(f"need at least one level and one ResnetBlock, got {self}")
        bad = [w for w in (*self.widths, self.ch) if w % self.norm_groups]
        if bad:
            raise ValueError(f"widths {bad} are not divisible by norm_groups={self.norm_groups} (GroupNorm)")

    @staticmethod
    def tiny() -> AutoEncoderConfig:
        """A ~1M-parameter model with the release's latent interface (128 channels at 1/16) for tests."""
        return replace(AutoEncoderConfig(), ch=32, ch_mult=(1, 2, 2, 2), num_res_blocks=1)


def swish(x: Tensor) -> Tensor:
    """Swish (SiLU) activation, x * sigmoid(x)."""
    return x * torch.sigmoid(x)


def _group_norm(channels: int, cfg: AutoEncoderConfig) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=cfg.norm_groups, num_channels=channels, eps=cfg.norm_eps, affine=True)


def _latent_bn(cfg: AutoEncoderConfig) -> nn.BatchNorm2d:
    # Holds bn.running_mean / bn.running_var / bn.num_batches_tracked; used only through its buffers.
    return nn.BatchNorm2d(
        cfg.latent_channels, eps=cfg.bn_eps, momentum=cfg.bn_momentum, affine=False, track_running_stats=True
    )


class ResnetBlock(nn.Module):
    """x + conv2(swish(norm2(conv1(swish(norm1(x)))))), with a 1x1 `nin_shortcut` when widths differ."""

    def __init__(self, in_channels: int, out_channels: int, cfg: AutoEncoderConfig):
        super().__init__()
        self.norm1 = _group_norm(in_channels, cfg)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.norm2 = _group_norm(out_channels, cfg)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(swish(self.norm2(h)))
        if hasattr(self, "nin_shortcut"):
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all pixels, 1x1-conv projections, scale 1/sqrt(C)."""

    def __init__(self, channels: int, cfg: AutoEncoderConfig):
        super().__init__()
        self.norm = _group_norm(channels, cfg)
        self.q = nn.Conv2d(channels, channels, kernel_size=1)
        self.k = nn.Conv2d(channels, channels, kernel_size=1)
        self.v = nn.Conv2d(channels, channels, kernel_size=1)
        self.proj_out = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        _, _, height, width = x.shape
        h = self.norm(x)
        q, k, v = (rearrange(f(h), "b c h w -> b 1 (h w) c") for f in (self.q, self.k, self.v))
        h = F.scaled_dot_product_attention(q.contiguous(), k.contiguous(), v.contiguous())
        h = rearrange(h, "b 1 (h w) c -> b c h w", h=height, w=width)
        return x + self.proj_out(h)


class Downsample(nn.Module):
    """Zero-pad right and bottom by one pixel, then a 3x3 stride-2 conv (torch has no asymmetric pad)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0.0))


class Upsample(nn.Module):
    """Nearest-neighbour x2, then a 3x3 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _mid(channels: int, cfg: AutoEncoderConfig) -> nn.Module:
    mid = nn.Module()
    mid.block_1 = ResnetBlock(channels, channels, cfg)
    mid.attn_1 = AttnBlock(channels, cfg)
    mid.block_2 = ResnetBlock(channels, channels, cfg)
    return mid


def _run_mid(mid: nn.Module, h: Tensor) -> Tensor:
    return mid.block_2(mid.attn_1(mid.block_1(h)))


class Flux2Encoder(nn.Module):
    """Images (B, H, W, 3) in [-1, 1] -> normalised latent (B, H/16, W/16, 128); keys = `ae_encoder`."""

    def __init__(self, config: AutoEncoderConfig | None = None):
        super().__init__()
        cfg = config or AutoEncoderConfig()
        cfg.validate()
        self.config = cfg
        widths = cfg.widths
        self.conv_in = nn.Conv2d(cfg.in_channels, cfg.ch, kernel_size=3, padding=1)
        self.down = nn.ModuleList()
        block_in = cfg.ch
        for level, block_out in enumerate(widths):
            down = nn.Module()
            down.block = nn.ModuleList()
            for _ in range(cfg.num_res_blocks):
                down.block.append(ResnetBlock(block_in, block_out, cfg))
                block_in = block_out
            if level != len(widths) - 1:
                down.downsample = Downsample(block_in)
            self.down.append(down)
        self.mid = _mid(block_in, cfg)
        self.norm_out = _group_norm(block_in, cfg)
        self.conv_out = nn.Conv2d(block_in, 2 * cfg.z_channels, kernel_size=3, padding=1)  # mean, log-variance
        self.quant_conv = nn.Conv2d(2 * cfg.z_channels, 2 * cfg.z_channels, kernel_size=1)
        self.bn = _latent_bn(cfg)

    def moments(self, x: Tensor) -> Tensor:
        """The convolutional stack: (B, 3, H, W) -> (B, 2 * z_channels, H/8, W/8) (mean, log-variance)."""
        h = self.conv_in(x)
        for level, down in enumerate(self.down):
            for block in down.block:
                h = block(h)
            if level != len(self.down) - 1:
                h = down.downsample(h)
        h = _run_mid(self.mid, h)
        h = self.conv_out(swish(self.norm_out(h)))
        return self.quant_conv(h)

    def normalize(self, z: Tensor) -> Tensor:
        """Normalise with the running statistics over the patchified (B, 128, h, w) latent, in fp32."""
        bn = self.bn
        return F.batch_norm(z.float(), bn.running_mean.float(), bn.running_var.float(), training=False, eps=bn.eps)

    def forward(self, x: Tensor) -> Tensor:
        """Encode images with the posterior mean (the log-variance is discarded, no sampling).

        Args:
            x: (B, H, W, 3) images in [-1, 1]; H and W divisible by `config.downscale`.

        Returns:
            (B, H/16, W/16, 128) fp32 latent, batch-norm normalised, channel index c*4 + pi*2 + pj.
        """
        p = self.config.patch_size
        x = rearrange(x, "b h w c -> b c h w").to(self.conv_in.weight.dtype)
        mean = self.moments(x).chunk(2, dim=1)[0]  # (B, z, H/8, W/8)
        z = rearrange(mean, "b c (i pi) (j pj) -> b (c pi pj) i j", pi=p, pj=p)
        return rearrange(self.normalize(z), "b c h w -> b h w c")


class Flux2Decoder(nn.Module):
    """Normalised latent (B, h, w, 128) -> images (B, 16h, 16w, 3) in ~[-1, 1]; keys = `ae_decoder`."""

    def __init__(self, config: AutoEncoderConfig | None = None):
        super().__init__()
        cfg = config or AutoEncoderConfig()
        cfg.validate()
        self.config = cfg
        widths = cfg.widths
        block_in = widths[-1]
        self.post_quant_conv = nn.Conv2d(cfg.z_channels, cfg.z_channels, kernel_size=1)
        self.conv_in = nn.Conv2d(cfg.z_channels, block_in, kernel_size=3, padding=1)
        self.mid = _mid(block_in, cfg)
        # Built from the deepest level up but stored so that `up.{level}` names the level (release keys).
        ups: list[nn.Module] = []
        for level in reversed(range(len(widths))):
            up = nn.Module()
            up.block = nn.ModuleList()
            for _ in range(cfg.num_res_blocks + 1):
                up.block.append(ResnetBlock(block_in, widths[level], cfg))
                block_in = widths[level]
            if level != 0:
                up.upsample = Upsample(block_in)
            ups.insert(0, up)
        self.up = nn.ModuleList(ups)
        self.norm_out = _group_norm(block_in, cfg)
        self.conv_out = nn.Conv2d(block_in, cfg.in_channels, kernel_size=3, padding=1)
        self.bn = _latent_bn(cfg)

    def denormalize(self, z: Tensor) -> Tensor:
        """Undo the normalisation, z * sqrt(running_var + eps) + running_mean, over (B, 128, h, w) in fp32."""
        var = rearrange(self.bn.running_var.float(), "c -> 1 c 1 1")
        mean = rearrange(self.bn.running_mean.float(), "c -> 1 c 1 1")
        return z.float() * torch.sqrt(var + self.bn.eps) + mean

    def pixels(self, z: Tensor) -> Tensor:
        """The convolutional stack: (B, z_channels, h', w') un-normalised latent -> (B, 3, 8h', 8w')."""
        h = self.conv_in(self.post_quant_conv(z))
        h = _run_mid(self.mid, h)
        for level in reversed(range(len(self.up))):
            up = self.up[level]
            for block in up.block:
                h = block(h)
            if level != 0:
                h = up.upsample(h)
        return self.conv_out(swish(self.norm_out(h)))

    def forward(self, z: Tensor) -> Tensor:
        """Decode a normalised latent.

        Args:
            z: (B, h, w, 128) normalised latent (the encoder's output layout).

        Returns:
            (B, 16h, 16w, 3) images, nominally in [-1, 1] (not clamped), in the decoder's weight dtype.
        """
        p = self.config.patch_size
        z = self.denormalize(rearrange(z, "b h w c -> b c h w"))
        z = rearrange(z, "b (c pi pj) i j -> b c (i pi) (j pj)", pi=p, pj=p)
        dtype = self.conv_in.weight.dtype
        return rearrange(self.pixels(z.to(dtype)), "b c h w -> b h w c")
