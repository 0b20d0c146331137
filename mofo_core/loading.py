"""Load a Modality Forcing DiT checkpoint: safetensors only, architecture read off the tensor shapes.

The release file `bartduis/modality_forcing/model.safetensors` stores the DiT under the wrapper's
attribute, so every key starts with `dit.` (reference `runner.from_pretrained` loads `FluxRGBD`); bare
keys are accepted too. v2 is told from v1 by `cross_alpha_img`; an optional `config.json` `"variant"`
must agree. Loading is strict in both directions (the reference's non-strict load silently drops a v2
checkpoint's mixing weights when its config says v1). The model is built on the meta device and the
tensors are assigned, so nothing is allocated twice and no random init runs.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor

from .config import VARIANTS, DiTConfig
from .model import MofoDiT
from .ops import torch_ops

log = logging.getLogger(__name__)

PREFIX = "dit."
HEAD = "depth_final_layer."
_FOREIGN_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "transformer.", "model.")


class CheckpointError(ValueError):
    """The file is not a usable Modality Forcing DiT checkpoint; the message says why and what to do."""


def _open_safetensors(path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    from safetensors import safe_open

    if path.suffix.lower() not in (".safetensors", ".sft"):
        raise CheckpointError(f"{path.name}: only .safetensors checkpoints are loaded (no pickle formats)")
    try:
        with safe_open(str(path), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
            meta = f.metadata() or {}
    except Exception as e:  # safetensors raises its own error types for truncated / foreign files
        raise CheckpointError(
            f"{path}: cannot be read as safetensors ({e}); the file is truncated or not a safetensors file -- "
            "download it again"
        ) from e
    size = path.stat().st_size
    return shapes, {**meta, "_file_size": str(size)}


def _strip_prefix(keys: list[str]) -> str:
    """The prefix every key carries: 'dit.' or ''; anything else is an error naming what was found."""
    if keys and all(k.startswith(PREFIX) for k in keys):
        return PREFIX
    if any(k.startswith(PREFIX) for k in keys):
        raise CheckpointError("checkpoint mixes 'dit.'-prefixed and bare keys; it is not a release checkpoint")
    for p in _FOREIGN_PREFIXES:
        if keys and all(k.startswith(p) for k in keys):
            raise CheckpointError(
                f"checkpoint keys start with {p!r}; expected the release layout ('dit.' or bare DiT keys)"
            )
    return ""


def _describe_foreign(keys: set[str]) -> str:
    if "img_in.weight" in keys and "double_blocks.0.img_attn.qkv.weight" in keys:
        return (
            "this is an RGB-only FLUX.2 transformer (e.g. FLUX.2 [klein]), not a Modality Forcing checkpoint: "
            "it has no depth stream (depth_in, depth_final_layer). Load it with ComfyUI's own UNETLoader and "
            "get the Modality Forcing weights (bartduis/modality_forcing, model.safetensors) for this node"
        )
    if any(k.startswith(("encoder.", "decoder.", "bn.")) for k in keys):
        return "this is an autoencoder (VAE) file, not the DiT; load it with VAELoader"
    if any(".self_attn." in k or k.startswith("embed_tokens") for k in keys):
        return "this is a language model (text encoder) file, not the DiT; load it with CLIPLoader"
    return "it is not a Modality Forcing DiT checkpoint (no depth_in / img_in / txt_in weights)"


def infer_config(shapes: Mapping[str, tuple[int, ...]], overrides: Mapping | None = None) -> DiTConfig:
    """Architecture from (prefix-free) tensor shapes; RoPE axes split head_dim in 4 equal parts."""
    keys = set(shapes)
    needed = ("img_in.weight", "txt_in.weight", "depth_in.weight", "single_blocks.0.norm.query_norm.scale")
    if not all(k in keys for k in needed):
        raise CheckpointError(_describe_foreign(keys))

    def count(prefix: str) -> int:
        idx = {int(m.group(1)) for k in keys if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
        return max(idx) + 1 if idx else 0

    hidden, in_ch = shapes["img_in.weight"]
    head_dim = shapes["single_blocks.0.norm.query_norm.scale"][0]
    mlp_hidden = shapes["single_blocks.0.linear2.weight"][1] - hidden
    if mlp_hidden <= 0 or hidden % head_dim or head_dim % 8:
        raise CheckpointError(
            f"inconsistent DiT shapes (hidden {hidden}, head_dim {head_dim}, mlp {mlp_hidden}); the file is damaged "
            "or not a Modality Forcing checkpoint"
        )
    cfg = DiTConfig(
        in_channels=in_ch,
        depth_channels=shapes["depth_in.weight"][1],
        context_in_dim=shapes["txt_in.weight"][1],
        hidden_size=hidden,
        num_heads=hidden // head_dim,
        depth_double=count("double_blocks."),
        depth_single=count("single_blocks."),
        depth_decoder_num_layers=count("depth_decoder_blocks."),
        mlp_ratio=mlp_hidden / hidden,
        axes_dim=(head_dim // 4,) * 4,
        cross_stream_timestep_mixing="cross_alpha_img" in keys,
    )
    extra = {k: v for k, v in (overrides or {}).items() if k in ("axes_dim", "theta")}
    if "axes_dim" in extra:
        extra["axes_dim"] = tuple(extra["axes_dim"])
    return replace(cfg, **extra)


def _check_variant(cfg: DiTConfig, config_json: Mapping | None) -> None:
    want = (config_json or {}).get("variant")
    if want is None:
        return
    if want not in VARIANTS:
        raise CheckpointError(f"config.json names unknown variant {want!r}; known: {sorted(VARIANTS)}")
    if want != cfg.variant:
        has = "has" if cfg.cross_stream_timestep_mixing else "lacks"
        raise CheckpointError(
            f"config.json says {want!r} but the weights are {cfg.variant!r} (the checkpoint {has} the "
            "cross-stream mixing weights cross_alpha_*); the config and the weights come from different releases"
        )


def _resolve(source) -> tuple[Path | None, Mapping | None]:
    """(safetensors path or None for a state dict, parsed config.json or None)."""
    if isinstance(source, Mapping):
        return None, None
    path = Path(os.fspath(source)).expanduser()
    config_json = None
    if path.is_dir():
        cfg_path = path / "config.json"
        if cfg_path.is_file():
            config_json = json.loads(cfg_path.read_text())
        path = path / "model.safetensors"
    elif path.is_file() and (path.parent / "config.json").is_file() and path.name == "model.safetensors":
        config_json = json.loads((path.parent / "config.json").read_text())
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; expected model.safetensors (bartduis/modality_forcing)")
    return path, config_json


def _check_keys(model: MofoDiT, shapes: Mapping[str, tuple[int, ...]]) -> None:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    wrong = sorted(k for k in set(expected) & set(shapes) if expected[k] != tuple(shapes[k]))
    if missing or unexpected or wrong:
        parts = []
        for name, ks in (("missing", missing), ("unexpected", unexpected)):
            if ks:
                parts.append(f"{len(ks)} {name} keys: {', '.join(ks[:12])}{' ...' if len(ks) > 12 else ''}")
        if wrong:
            parts.append("wrong shapes: " + ", ".join(f"{k} {tuple(shapes[k])} != {expected[k]}" for k in wrong[:8]))
        raise CheckpointError(f"checkpoint does not match a {model.config.variant} DiT: " + "; ".join(parts))


def load_dit(
    source: str | os.PathLike | Mapping[str, Tensor],
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    head_dtype: torch.dtype | None = torch.float32,
    operations=torch_ops,
    config_json: Mapping | None = None,
    compute_dtype: torch.dtype | None = None,
    fp8: str | None = None,
    reader: str = "auto",
) -> MofoDiT:
    """Build a `MofoDiT` from a `.safetensors` file, a directory with `model.safetensors` (+ optional
    `config.json`), or a state dict; `dit.`-prefixed or bare keys.

    Args:
        dtype: body weight dtype (the compute dtype too). head_dtype: depth head (`depth_final_layer`)
            dtype; fp32 by default as in the reference (None = same as dtype). The RGB head follows dtype.
        operations: namespace providing `Linear` (ComfyUI passes `comfy.ops`).
        config_json: overrides the directory's config.json (`variant`, optional `axes_dim`, `theta`).
        compute_dtype: the body's compute dtype when it differs from the storage dtype (default: dtype,
            or bf16 for fp8 storage; the `operations` layers must then cast weights, as comfy.ops does).
        fp8: "tensor" or "row": store the block matrices as e4m3 with per-tensor / per-channel scales and run
            them on the fp8 matrix units (`mofo_core.fp8`); each is quantised as it is read. dtype stays the
            compute dtype of everything else (bf16).
        reader: "threaded" (parallel reads into pinned memory, `mofo_core.perf.iter_safetensors`),
            "safetensors" (safe_open) or "auto" (threaded on CUDA).
    """
    path, found_json = _resolve(source)
    config_json = config_json if config_json is not None else found_json
    if path is None:
        state = dict(source)
        shapes = {k: tuple(v.shape) for k, v in state.items()}
    else:
        shapes, _ = _open_safetensors(path)
    prefix = _strip_prefix(list(shapes))
    bare = {k[len(prefix) :]: s for k, s in shapes.items()}
    cfg = infer_config(bare, config_json)
    _check_variant(cfg, config_json)
    head_dtype = head_dtype or dtype

    with torch.device("meta"):
        model = MofoDiT(cfg, dtype=dtype, operations=operations)
    _check_keys(model, bare)
    convert = None
    if fp8:
        from .fp8 import fp8_loader

        convert = fp8_loader(model, scaling=fp8)

    def tensors():
        if path is None:
            yield from ((k, state[k]) for k in shapes)
            return
        if reader == "threaded" or (reader == "auto" and torch.device(device).type == "cuda"):
            from .perf import iter_safetensors

            yield from iter_safetensors(path, device)
            return
        from safetensors import safe_open

        with safe_open(str(path), framework="pt", device=str(device)) as f:
            for k in f.keys():
                yield k, f.get_tensor(k)

    loaded = {}
    for key, t in tensors():
        name = key[len(prefix) :]
        t = t.to(device=device, dtype=head_dtype if name.startswith(HEAD) else dtype)
        if convert is None:
            loaded[name] = t
        else:
            loaded.update(convert(name, t))
        del t
    model.load_state_dict(loaded, strict=True, assign=True)
    left = [n for n, p in model.named_parameters() if p.is_meta]
    if left:  # cannot happen after the key check; kept as the last line of defence
        raise CheckpointError(f"{len(left)} tensors were not loaded: {left[:8]}")
    if compute_dtype is None:
        compute_dtype = torch.bfloat16 if dtype.itemsize == 1 else dtype
    model.body_dtype = compute_dtype
    if convert is not None:
        from .fp8 import set_native

        set_native(model)
        if torch.device(device).type == "cuda":
            torch.cuda.empty_cache()  # the bf16 tensors quantised on arrival leave fragmented cached blocks
    model.eval().requires_grad_(False)
    log.info("loaded %s DiT (%d tensors, %s, depth head %s) from %s", cfg.variant, len(loaded), dtype, head_dtype,
             path or "state dict")
    return model


def build_dit(
    config: DiTConfig, *, dtype: torch.dtype = torch.float32, device="cpu", operations=torch_ops, seed: int | None = 0
) -> MofoDiT:
    """A randomly initialised DiT (tests, the offline demo, benchmarks). Key names equal the release's."""
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    with torch.device("meta"):
        model = MofoDiT(config, dtype=dtype, operations=operations)
    state = {}
    for name, p in model.state_dict().items():
        if name.endswith(".scale"):  # RMSNorm scales start at 1, as in training
            t = 1.0 + 0.1 * torch.randn(p.shape, generator=gen)
        elif name.startswith("cross_alpha"):
            t = 0.5 * torch.randn(p.shape, generator=gen)
        else:
            t = torch.randn(p.shape, generator=gen) / max(p.shape[-1], 1) ** 0.5
        state[name] = t.to(device=device, dtype=dtype)
    model.load_state_dict(state, strict=True, assign=True)
    model.body_dtype = dtype
    return model.eval().requires_grad_(False)
