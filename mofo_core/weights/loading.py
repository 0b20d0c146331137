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
import math
import os
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor

from ..config import VARIANTS, DiTConfig
from ..model import MofoDiT
from ..ops import torch_ops
from .checkpoint import (
    CheckpointError,
    check_dtypes,
    check_keys,
    expected_shapes,
    iter_tensors,
    read_header,
    unloaded_tensors,
)
from .identify import identify, where_it_belongs

log = logging.getLogger(__name__)

PREFIX = "dit."
HEAD = "depth_final_layer."
_FOREIGN_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "transformer.", "model.")


def _strip_prefix(shapes: Mapping[str, tuple[int, ...]]) -> str:
    """The prefix every key carries: 'dit.' or ''; anything else is an error naming what the file is."""
    keys = list(shapes)
    if keys and all(k.startswith(PREFIX) for k in keys):
        return PREFIX
    if any(k.startswith(PREFIX) for k in keys):
        raise CheckpointError("checkpoint mixes 'dit.'-prefixed and bare keys; it is not a release checkpoint")
    for p in _FOREIGN_PREFIXES:
        if keys and all(k.startswith(p) for k in keys):
            raise CheckpointError(_not_ours(shapes, f"its keys start with {p!r}; the release's are bare or 'dit.'"))
    return ""


def _not_ours(shapes: Mapping[str, tuple[int, ...]], detail: str) -> str:
    """The message for a file that is not a Modality Forcing DiT: what it is (`identify`) and where it belongs."""
    kind = identify(shapes)
    fix = ("pick model.safetensors from bartduis/modality_forcing (models/diffusion_models/modality_forcing/), or "
           "use Mofo Download + Load Model")
    if kind is None:
        return f"not a Modality Forcing DiT checkpoint ({detail}); {fix}"
    if kind.startswith("an RGB-only FLUX.2"):
        return (f"this is {kind}, not Modality Forcing: it has no depth stream (depth_in, depth_final_layer). "
                f"Load it with ComfyUI's Load Diffusion Model; for this node {fix}")
    where = where_it_belongs(kind)
    return f"this is {kind}, not a Modality Forcing DiT{f' (it belongs in {where})' if where else ''}; {fix}"


def infer_config(shapes: Mapping[str, tuple[int, ...]], overrides: Mapping | None = None) -> DiTConfig:
    """Architecture from (prefix-free) tensor shapes; RoPE axes split head_dim in 4 equal parts."""
    keys = set(shapes)
    needed = ("img_in.weight", "txt_in.weight", "depth_in.weight", "single_blocks.0.norm.query_norm.scale")
    if not all(k in keys for k in needed):
        raise CheckpointError(_not_ours(shapes, "no depth_in / img_in / txt_in weights"))
    ndims = {"img_in.weight": 2, "txt_in.weight": 2, "depth_in.weight": 2, "single_blocks.0.linear2.weight": 2,
             "single_blocks.0.norm.query_norm.scale": 1}
    odd = [f"{k} {tuple(shapes.get(k, ()))}" for k, n in ndims.items() if len(shapes.get(k, ())) != n]
    if odd:
        raise CheckpointError(f"malformed DiT tensors ({', '.join(odd)}); the file is damaged or not a Modality "
                              "Forcing checkpoint")

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
    check_overrides(overrides or {})
    extra = {k: v for k, v in (overrides or {}).items() if k in ("axes_dim", "theta")}
    if "axes_dim" in extra:
        extra["axes_dim"] = tuple(extra["axes_dim"])
        if sum(extra["axes_dim"]) != head_dim:
            raise CheckpointError(f"config \"axes_dim\" {list(extra['axes_dim'])} must add up to the head width "
                                  f"{head_dim} of these weights")
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


def read_config_json(path: Path) -> dict:
    """The release's config.json as a dict; anything else is a `CheckpointError` naming the file."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e}); fix it or delete it (the weights alone suffice)") from e
    if not isinstance(doc, dict):
        raise CheckpointError(f"{path}: expected a JSON object such as {{\"variant\": \"flux_rgbd_9b_v2\"}}, "
                              f"got a {type(doc).__name__}; fix it or delete it")
    check_overrides(doc, str(path))
    return doc


def check_overrides(doc: Mapping, where: str = "config") -> None:
    """`variant`, `theta` and `axes_dim` must have usable values (a bad theta gives NaN images, not an error)."""
    variant = doc.get("variant")
    if variant is not None and not isinstance(variant, str):
        raise CheckpointError(f"{where}: \"variant\" must be a string such as \"flux_rgbd_9b_v2\", got {variant!r}")
    theta = doc.get("theta")
    if theta is not None and (isinstance(theta, bool) or not isinstance(theta, int | float)
                              or not math.isfinite(theta) or theta <= 1):
        raise CheckpointError(f"{where}: \"theta\" must be a finite number > 1 (the release uses 2000), got {theta!r}")
    axes = doc.get("axes_dim")
    if axes is not None and (not isinstance(axes, list | tuple) or not axes
                             or not all(isinstance(a, int) and not isinstance(a, bool) and a > 0 and a % 2 == 0
                                        for a in axes)):
        raise CheckpointError(f"{where}: \"axes_dim\" must be a list of positive even integers (the release uses "
                              f"[32, 32, 32, 32]), got {axes!r}")


def _resolve(source) -> tuple[Path | None, Mapping | None]:
    """(safetensors path or None for a state dict, parsed config.json or None)."""
    if isinstance(source, Mapping):
        return None, None
    path = Path(os.fspath(source)).expanduser()
    config_json = None
    if path.is_dir():
        cfg_path = path / "config.json"
        if cfg_path.is_file():
            config_json = read_config_json(cfg_path)
        path = path / "model.safetensors"
    elif path.is_file() and (path.parent / "config.json").is_file() and path.name == "model.safetensors":
        config_json = read_config_json(path.parent / "config.json")
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; expected model.safetensors (bartduis/modality_forcing)")
    return path, config_json


def check_dit_file(source: str | os.PathLike, config_json: Mapping | None = None) -> DiTConfig:
    """What `load_dit` checks before reading tensor data (header, config.json, keys, shapes, dtypes), alone:
    cheap, so a caller can refuse a bad file before loading anything else. Returns the inferred config."""
    path, found_json = _resolve(source)
    config_json = config_json if config_json is not None else found_json
    header = read_header(path)
    prefix = _strip_prefix(header.shapes)
    bare = {k[len(prefix) :]: s for k, s in header.shapes.items()}
    cfg = infer_config(bare, config_json)
    _check_variant(cfg, config_json)
    check_keys(dit_shapes(cfg), bare, f"checkpoint does not match a {cfg.variant} DiT")
    check_dtypes(header, "a Modality Forcing DiT")
    return cfg


def dit_shapes(cfg: DiTConfig) -> dict[str, tuple[int, ...]]:
    """The tensors a DiT of this architecture holds (meta skeleton of plain torch layers; see `checkpoint`)."""
    return expected_shapes(lambda: MofoDiT(cfg, operations=torch_ops))


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
            them on the fp8 matrix units (`mofo_core.model.fp8`); each is quantised as it is read. dtype stays the
            compute dtype of everything else (bf16).
        reader: "threaded" (parallel reads into pinned memory, `mofo_core.weights.checkpoint.iter_threaded`),
            "safetensors" (safe_open) or "auto" (threaded on CUDA).
    """
    path, found_json = _resolve(source)
    config_json = config_json if config_json is not None else found_json
    what = "a Modality Forcing DiT"
    if path is None:
        state = dict(source)
        shapes = {k: tuple(v.shape) for k, v in state.items()}
        bad = sorted(k for k, v in state.items() if not v.is_floating_point())
        if bad:
            raise CheckpointError(f"{len(bad)} tensors of a dtype {what} cannot hold: {bad[:6]}; expected "
                                  "floating-point weights")
    else:
        header = read_header(path)
        shapes = header.shapes
    prefix = _strip_prefix(shapes)
    bare = {k[len(prefix) :]: s for k, s in shapes.items()}
    cfg = infer_config(bare, config_json)
    _check_variant(cfg, config_json)
    # 1. Keys and shapes against the architecture (a skeleton of plain torch layers, never the live model: a
    #    host's lazy layers have no weight before loading), dtypes against what the model can hold.
    check_keys(dit_shapes(cfg), bare, f"checkpoint does not match a {cfg.variant} DiT")
    if path is not None:
        check_dtypes(header, what)
    head_dtype = head_dtype or dtype

    # 2. The model on the meta device, built from the host's layers; fp8 swaps its block matrices.
    with torch.device("meta"):
        model = MofoDiT(cfg, dtype=dtype, operations=operations)
    convert = None
    if fp8:
        from ..model.fp8 import fp8_loader

        convert = fp8_loader(model, scaling=fp8)

    # 3. Stream the tensors in, cast (and quantised) on arrival, and assign them.
    source_tensors = ((k, state[k]) for k in shapes) if path is None else iter_tensors(path, device, reader=reader,
                                                                                      header=header)
    loaded = {}
    for key, t in source_tensors:
        name = key[len(prefix) :]
        t = t.to(device=device, dtype=head_dtype if name.startswith(HEAD) else dtype)
        if convert is None:
            loaded[name] = t
        else:
            loaded.update(convert(name, t))
        del t
    model.load_state_dict(loaded, strict=True, assign=True)
    left = unloaded_tensors(model)
    if left:  # cannot happen after the key check; kept as the last line of defence
        raise CheckpointError(f"{len(left)} tensors were not loaded: {left[:8]}")
    if compute_dtype is None:
        compute_dtype = torch.bfloat16 if dtype.itemsize == 1 else dtype
    model.body_dtype = compute_dtype
    if convert is not None:
        from ..model.fp8 import set_native

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
    state = {}
    for name, shape in dit_shapes(config).items():
        if name.endswith(".scale"):  # RMSNorm scales start at 1, as in training
            t = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        elif name.startswith("cross_alpha"):
            t = 0.5 * torch.randn(shape, generator=gen)
        else:
            t = torch.randn(shape, generator=gen) / max(shape[-1], 1) ** 0.5
        state[name] = t.to(device=device, dtype=dtype)
    with torch.device("meta"):
        model = MofoDiT(config, dtype=dtype, operations=operations)
    model.load_state_dict(state, strict=True, assign=True)
    model.body_dtype = dtype
    return model.eval().requires_grad_(False)
