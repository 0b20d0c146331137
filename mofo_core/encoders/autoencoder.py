"""The FLUX.2 autoencoder in ComfyUI's layouts, and loading it from the release's files.

Public layouts (ComfyUI's): images are IMAGE tensors (B, H, W, 3) in [0, 1]; latents are FLUX.2 LATENT
tensors (B, 128, H/16, W/16), i.e. 32 channels patchified 2x2 (channel index c*4 + pi*2 + pj) and batch-norm
normalised (comfy/latent_formats.py `Flux2`: 128 channels, 16x; comfy/ldm/models/autoencoder.py:223-251).
The DiT consumes them as row-major tokens (`mofo_core.latents`, comfy/ldm/flux/model.py:319 with patch 1).

Checkpoint layouts, both safetensors only:

* split files (Modality Forcing release, `bartduis/modality_forcing`): `ae_encoder.safetensors` holds the
  encoder keys bare plus `bn.*`, `ae_decoder.safetensors` the decoder keys bare plus `bn.*`
  (reference: flux_rgbd/_flux2/autoencoder.py, strict `load_state_dict` on each half).
* single file (`models/vae/flux2-vae.safetensors`, the Comfy-Org repackage of BFL's FLUX.2 `ae.safetensors`,
  which BFL loads strictly into `AutoEncoder`: black-forest-labs/flux2 src/flux2/util.py:96):

  | single-file key                                   | split-file key (file)            | source (flux2 @ ab7cca6) |
  |---------------------------------------------------|----------------------------------|--------------------------|
  | `encoder.<k>`, incl. `encoder.quant_conv.*`        | `<k>` (ae_encoder)               | autoencoder.py:119, :275 |
  | `decoder.<k>`, incl. `decoder.post_quant_conv.*`   | `<k>` (ae_decoder)               | autoencoder.py:196, :283 |
  | `bn.running_mean / running_var / num_batches_tracked` | `bn.*` (both files, same values) | autoencoder.py:296    |
  | `quant_conv.*` (top level, ComfyUI in-memory)      | `quant_conv.*` (ae_encoder)      | ComfyUI sd.py:623        |
  | `post_quant_conv.*` (top level, ComfyUI in-memory) | `post_quant_conv.*` (ae_decoder) | ComfyUI sd.py:623        |

  (ComfyUI's `AutoencodingEngineLegacy` holds quant_conv / post_quant_conv / bn at the top level:
  comfy/ldm/models/autoencoder.py:176, :182, :189.)

  ComfyUI recognises this file by `decoder.conv_in.weight` (comfy/sd.py:583) plus `bn.running_mean`
  (comfy/sd.py:625), moves `encoder.quant_conv` / `decoder.post_quant_conv` to the top level (sd.py:623),
  and allows a decoder narrower than the encoder (sd.py:633-636, the FLUX.2 small-decoder release); both
  quant-conv placements and a separate decoder width are accepted here too.

`bn.num_batches_tracked` is the one key allowed to be missing (it is unused at inference; torch's own
strict load fills it with 0 as well). Everything else must match exactly, or `AutoEncoderCheckpointError`
lists the missing, unexpected and wrongly shaped keys.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import torch
from einops import rearrange
from torch import Tensor, nn

from ..errors import AutoEncoderCheckpointError
from ..weights.checkpoint import check_dtypes, check_keys, read_header, read_tensors
from .autoencoder_blocks import AutoEncoderConfig, Flux2Decoder, Flux2Encoder

log = logging.getLogger(__name__)

Shapes = Mapping[str, tuple[int, ...]]
OPTIONAL_KEYS = ("bn.num_batches_tracked",)  # may be missing from a file; filled with 0
FLUX2_VAE_HINT = "use the FLUX.2 VAE: models/vae/flux2-vae.safetensors (Comfy-Org) or BFL FLUX.2 ae.safetensors"


class Flux2AutoEncoder(nn.Module):
    """FLUX.2 VAE with ComfyUI's IMAGE and LATENT layouts; `encoder` / `decoder` may each be absent."""

    def __init__(
        self,
        config: AutoEncoderConfig | None = None,
        *,
        decoder_config: AutoEncoderConfig | None = None,
        with_encoder: bool = True,
        with_decoder: bool = True,
    ):
        super().__init__()
        self.config = config or AutoEncoderConfig()
        self.decoder_config = decoder_config or self.config
        if self.decoder_config.latent_channels != self.config.latent_channels:
            raise ValueError("encoder and decoder configs disagree on the latent channels")
        self.encoder = Flux2Encoder(self.config) if with_encoder else None
        self.decoder = Flux2Decoder(self.decoder_config) if with_decoder else None

    @torch.no_grad()
    def encode(self, images: Tensor) -> Tensor:
        """Encode images to the normalised FLUX.2 latent (posterior mean, no sampling).

        Args:
            images: (B, H, W, 3) float in [0, 1] (ComfyUI IMAGE); H and W multiples of 16.

        Returns:
            (B, 128, H/16, W/16) fp32 latent (ComfyUI FLUX.2 LATENT `samples`).
        """
        if self.encoder is None:
            raise ValueError("this autoencoder was loaded without its encoder; pass encoder= or vae= to load it")
        if images.ndim != 4 or images.shape[-1] != self.config.in_channels:
            raise ValueError(f"expected images (B, H, W, {self.config.in_channels}), got {tuple(images.shape)}")
        _check_size(images.shape[1], images.shape[2], self.config.downscale)
        x = images.to(self.encoder.conv_in.weight.device, torch.float32) * 2.0 - 1.0
        z = self.encoder(x)  # (B, h, w, 128)
        return rearrange(z, "b h w c -> b c h w").contiguous()

    @torch.no_grad()
    def decode(self, latent: Tensor) -> Tensor:
        """Decode a normalised FLUX.2 latent to images.

        Args:
            latent: (B, 128, h, w) (ComfyUI FLUX.2 LATENT `samples`).

        Returns:
            (B, 16h, 16w, 3) fp32 images in [0, 1] (x * 0.5 + 0.5, clamped; ComfyUI IMAGE).
        """
        if self.decoder is None:
            raise ValueError("this autoencoder was loaded without its decoder; pass decoder= or vae= to load it")
        c = self.decoder_config.latent_channels
        if latent.ndim != 4 or latent.shape[1] != c:
            raise ValueError(f"expected a latent (B, {c}, h, w), got {tuple(latent.shape)}")
        z = rearrange(latent.to(self.decoder.conv_in.weight.device), "b c h w -> b h w c")
        x = self.decoder(z).float()  # (B, H, W, 3) in ~[-1, 1]
        return (x * 0.5 + 0.5).clamp(0.0, 1.0)


def _check_size(height: int, width: int, multiple: int) -> None:
    if height % multiple or width % multiple:
        fit_h, fit_w = (max(multiple, round(s / multiple) * multiple) for s in (height, width))
        raise ValueError(
            f"image size {height}x{width} (HxW) is not a multiple of {multiple}; resize or crop it to a multiple of "
            f"{multiple} first, e.g. {fit_h}x{fit_w}"
        )


# -- building -------------------------------------------------------------------------------------------


def build_autoencoder(
    config: AutoEncoderConfig | None = None, seed: int | None = 0, *, device="cpu", dtype=torch.float32
) -> Flux2AutoEncoder:
    """A randomly initialised autoencoder (tests, the offline demo); release key names, running_var > 0."""
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    with torch.device("meta"):
        model = Flux2AutoEncoder(config)
    state = {}
    for name, t in model.state_dict().items():
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "num_batches_tracked":
            state[name] = torch.zeros((), dtype=torch.long)
            continue
        r = torch.randn(t.shape, generator=gen)
        if ".bn." in name:  # latent statistics: mean ~ N(0, 0.3^2), var in (0.37, 2.7)
            state[name] = 0.3 * r if leaf == "running_mean" else torch.exp(0.5 * r.clamp(-2, 2))
        elif t.ndim == 1:  # GroupNorm scale near 1, biases near 0
            state[name] = (1.0 + 0.1 * r if leaf == "weight" and "norm" in name else 0.05 * r).to(dtype)
        else:  # conv kernels with unit fan-in variance
            state[name] = (r / math.sqrt(math.prod(t.shape[1:]))).to(dtype)
    for stat in ("running_mean", "running_var"):  # one latent space: both halves share the statistics
        if f"encoder.bn.{stat}" in state and f"decoder.bn.{stat}" in state:
            state[f"decoder.bn.{stat}"] = state[f"encoder.bn.{stat}"].clone()
    model.load_state_dict({k: v.to(device) for k, v in state.items()}, strict=True, assign=True)
    return model.eval().requires_grad_(False)


# -- key layouts ------------------------------------------------------------------------------------------


def single_file_to_split(keys) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """Map single-file keys to split-file keys (table in the module docstring).

    Returns:
        (encoder map, decoder map, unmapped keys); each map is split-file key -> single-file key.
    """
    enc: dict[str, str] = {}
    dec: dict[str, str] = {}
    other: list[str] = []

    def put(target: dict[str, str], key: str, source: str) -> None:
        if key in target:
            raise AutoEncoderCheckpointError(f"{source!r} and {target[key]!r} are the same tensor; keep one of them")
        target[key] = source

    for k in keys:
        if k.startswith("encoder."):
            put(enc, k[len("encoder.") :], k)
        elif k.startswith("decoder."):
            put(dec, k[len("decoder.") :], k)
        elif k.startswith("quant_conv."):
            put(enc, k, k)
        elif k.startswith("post_quant_conv."):
            put(dec, k, k)
        elif k.startswith("bn."):
            put(enc, k, k)
            put(dec, k, k)
        else:
            other.append(k)
    return enc, dec, other


def _describe(keys: set[str], where: str) -> str | None:
    """What a file that is not the expected autoencoder part is, or None if it looks like one."""
    if any(k.startswith(("first_stage_model.", "vae.")) for k in keys):
        return f"{where}: a full checkpoint with an embedded VAE, not a VAE file; {FLUX2_VAE_HINT}"
    if any(k.startswith(("dit.", "img_in.", "double_blocks.", "model.diffusion_model.", "transformer.")) for k in keys):
        return f"{where}: a diffusion model (DiT), not a VAE; load it with the model loader and {FLUX2_VAE_HINT}"
    if any(".self_attn." in k or "embed_tokens" in k for k in keys):
        return f"{where}: a text encoder, not a VAE; {FLUX2_VAE_HINT}"
    if any(".up_blocks." in k or ".down_blocks." in k for k in keys):
        return f"{where}: a diffusers-format VAE; {FLUX2_VAE_HINT} (single-file layout)"
    return None


def _foreign_vae(shapes: Shapes, where: str) -> str | None:
    """Name a file that is not a FLUX.2 VAE half or whole (no latent batch-norm), by its latent channels."""
    if "bn.running_mean" in shapes:
        return None
    conv_in = shapes.get("decoder.conv_in.weight", shapes.get("conv_in.weight"))
    if conv_in is None or len(conv_in) != 4:
        return f"{where}: not a VAE file (no conv_in weights); {FLUX2_VAE_HINT}"
    kind = {16: "a FLUX.1 / SD3-style VAE (16 latent channels)", 4: "an SD1.x / SDXL-style VAE (4 latent channels)"}
    what = kind.get(conv_in[1], f"a VAE without FLUX.2's latent batch-norm ({conv_in[1]} latent channels)")
    return f"{where}: {what}, not the FLUX.2 VAE (32 channels x 2x2 patch, bn.running_mean/var); {FLUX2_VAE_HINT}"


def _level_count(shapes: Shapes, prefix: str) -> int:
    idx = {int(m.group(1)) for k in shapes if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
    return max(idx) + 1 if idx else 0


def infer_config(shapes: Shapes, part: str) -> AutoEncoderConfig:
    """Architecture of one half from its split-file (bare) tensor shapes; `part` is "encoder" or "decoder"."""
    if part == "encoder":
        levels, blocks = _level_count(shapes, "down."), _level_count(shapes, "down.0.block.")
        widths = [shapes[f"down.{i}.block.0.conv1.weight"][0] for i in range(levels)]
        in_ch, ch = shapes["conv_in.weight"][1], shapes["conv_in.weight"][0]
        z = shapes["conv_out.weight"][0] // 2
    else:
        levels, blocks = _level_count(shapes, "up."), _level_count(shapes, "up.0.block.") - 1
        widths = [shapes[f"up.{i}.block.0.conv1.weight"][0] for i in range(levels)]
        in_ch, z = shapes["conv_out.weight"][0], shapes["conv_in.weight"][1]
        ch = math.gcd(*widths)  # only the per-level widths matter to a decoder
    if not widths or any(w % ch for w in widths):
        raise AutoEncoderCheckpointError(f"{part}: level widths {widths} do not fit a FLUX.2 autoencoder")
    return replace(
        AutoEncoderConfig(),
        in_channels=in_ch,
        ch=ch,
        ch_mult=tuple(w // ch for w in widths),
        num_res_blocks=blocks,
        z_channels=z,
    )


def _check_keys(module: nn.Module, shapes: Shapes, where: str) -> None:
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}  # plain torch layers: no lazy weights
    check_keys(expected, shapes, f"{where} does not match a FLUX.2 autoencoder", optional=OPTIONAL_KEYS,
               error=AutoEncoderCheckpointError)


# -- loading ----------------------------------------------------------------------------------------------


def _read_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    header = read_header(path, error=AutoEncoderCheckpointError)
    check_dtypes(header, "a FLUX.2 autoencoder", exempt=OPTIONAL_KEYS, error=AutoEncoderCheckpointError)
    return header.shapes


def _single_file(path: Path) -> dict[str, tuple[Path, dict[str, str], Shapes]]:
    shapes = _read_shapes(path)
    what = _describe(set(shapes), str(path))
    if what is None and "conv_in.weight" in shapes:
        part = "decoder" if "post_quant_conv.weight" in shapes else "encoder"
        what = f"{path}: a split ae_{part}.safetensors file, not a single-file VAE; pass it as {part}= instead of vae="
    what = what or _foreign_vae(shapes, str(path))
    if what:
        raise AutoEncoderCheckpointError(what)
    enc, dec, other = single_file_to_split(shapes)
    if other:
        raise AutoEncoderCheckpointError(f"{path}: {len(other)} unexpected keys for a FLUX.2 VAE: {other[:12]}")
    return {
        part: (path, kmap, {k: shapes[src] for k, src in kmap.items()})
        for part, kmap in (("encoder", enc), ("decoder", dec))
    }


def _split_file(path: Path, part: str) -> tuple[Path, dict[str, str], Shapes]:
    """(path, identity key map, shapes) for a split file, after checking it is the `part` half of a FLUX.2 VAE."""
    shapes = _read_shapes(path)
    keys = set(shapes)
    what = _describe(keys, str(path))
    if what is None and any(k.startswith(("encoder.", "decoder.")) for k in keys):
        what = f"{path}: a single-file VAE (encoder.* and decoder.* keys); pass it as vae= instead of {part}="
    other = "decoder" if part == "encoder" else "encoder"
    marker = {"encoder": "quant_conv.weight", "decoder": "post_quant_conv.weight"}
    if what is None and marker[other] in keys and marker[part] not in keys:
        what = f"{path}: the autoencoder's {other} file (ae_{other}.safetensors); pass it as {other}= instead"
    what = what or _foreign_vae(shapes, str(path))
    if what:
        raise AutoEncoderCheckpointError(what)
    return path, {k: k for k in shapes}, shapes


def load_autoencoder(
    *,
    encoder: str | os.PathLike | None = None,
    decoder: str | os.PathLike | None = None,
    vae: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    config: AutoEncoderConfig | None = None,
) -> Flux2AutoEncoder:
    """Load the FLUX.2 autoencoder from the release's split files or from a single-file VAE.

    Args:
        encoder: path to `ae_encoder.safetensors` (split release); optional.
        decoder: path to `ae_decoder.safetensors` (split release); optional.
        vae: path to a single-file FLUX.2 VAE (`flux2-vae.safetensors`); excludes encoder / decoder.
        device: where the weights go.
        dtype: weight (and compute) dtype of the convolutions; the batch-norm statistics stay fp32.
        config: architecture of both halves; inferred from the tensor shapes when None.

    Returns:
        `Flux2AutoEncoder` in eval mode with the parts that were given (both for `vae`).

    Raises:
        AutoEncoderCheckpointError: a file is missing, foreign, or its keys / shapes do not match.
    """
    if vae is not None and (encoder is not None or decoder is not None):
        raise ValueError("pass either vae= (one file) or encoder= / decoder= (split files), not both")
    if vae is not None:
        files = _single_file(Path(os.fspath(vae)).expanduser())
    else:
        files = {
            part: _split_file(Path(os.fspath(src)).expanduser(), part)
            for part, src in (("encoder", encoder), ("decoder", decoder))
            if src is not None
        }
    if not files:
        raise ValueError("nothing to load: pass vae= or encoder= and/or decoder=")

    configs = {}
    for part, (path, _, shapes) in files.items():
        try:
            configs[part] = config or infer_config(shapes, part)
        except KeyError as e:
            raise AutoEncoderCheckpointError(f"{path}: the {part} lacks {e}; not a FLUX.2 autoencoder") from e
    enc_cfg, dec_cfg = configs.get("encoder"), configs.get("decoder")
    if enc_cfg and dec_cfg and enc_cfg.latent_channels != dec_cfg.latent_channels:
        raise AutoEncoderCheckpointError(
            "the encoder and decoder files come from different autoencoders "
            f"({enc_cfg.latent_channels} vs {dec_cfg.latent_channels} latent channels)"
        )

    with torch.device("meta"):
        model = Flux2AutoEncoder(
            enc_cfg or dec_cfg,
            decoder_config=dec_cfg,
            with_encoder=enc_cfg is not None,
            with_decoder=dec_cfg is not None,
        )
    for part, (path, kmap, shapes) in files.items():
        module = getattr(model, part)
        _check_keys(module, shapes, f"{path} ({part})")
        module.load_state_dict(_read_part(path, kmap, module, device, dtype), strict=True, assign=True)
    _warn_if_bn_differs(model)
    log.info(
        "loaded FLUX.2 autoencoder (%s) from %s",
        "+".join(files),
        ", ".join(sorted({str(f[0]) for f in files.values()})),
    )
    return model.eval().requires_grad_(False)


def _read_part(path: Path, kmap: Mapping[str, str], module: nn.Module, device, dtype) -> dict[str, Tensor]:
    raw = read_tensors(path, device, keys=kmap.values())
    out = {}
    for key, src in kmap.items():
        t = raw.pop(src)
        if key.startswith("bn."):  # statistics stay fp32 (num_batches_tracked stays an integer)
            out[key] = t if not t.is_floating_point() else t.to(torch.float32)
        else:
            out[key] = t.to(dtype)
    for key in OPTIONAL_KEYS:
        if key not in out and key in module.state_dict():
            out[key] = torch.zeros((), dtype=torch.long, device=device)
    return out


def _warn_if_bn_differs(model: Flux2AutoEncoder) -> None:
    if model.encoder is None or model.decoder is None:
        return
    a, b = model.encoder.bn, model.decoder.bn
    if not (torch.equal(a.running_mean, b.running_mean) and torch.equal(a.running_var, b.running_var)):
        log.warning("encoder and decoder carry different latent statistics (bn.*); the files may not belong together")
