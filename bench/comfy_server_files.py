"""Model files and a bench-only custom node for bench/comfy_server_gpu.py (split out: what the server reads vs
how it is measured).

`write_models` writes full-size random model files in the release layouts (the DiT, a native Qwen3-8B, the FLUX.2
VAE); `NEWER_LAYERS` is a custom node that shows comfy.ops the layer-building condition of ComfyUI >= ~0.33.
"""

from __future__ import annotations

import json
from pathlib import Path

import comfy_harness as ch


# -- model files ---------------------------------------------------------------------------------------------
def write_models(models: Path, tiny: bool) -> None:
    import torch
    from common import random_dit, write_safetensors_streamed

    import mofo_core as mc

    dev = torch.device("cuda" if torch.cuda.is_available() and not tiny else "cpu")
    dit_dir = models / "diffusion_models" / "modality_forcing"
    if not (dit_dir / "model.safetensors").is_file():
        dit_dir.mkdir(parents=True, exist_ok=True)
        dit = random_dit(mc.tiny("flux_rgbd_9b_v2") if tiny else mc.VARIANTS["flux_rgbd_9b_v2"], dev, seed=0)
        write_safetensors_streamed(dit_dir / "model.safetensors", {f"dit.{k}": v for k, v in dit.state_dict().items()})
        (dit_dir / "config.json").write_text(json.dumps({"variant": "flux_rgbd_9b_v2"}))
        del dit
    if tiny:
        from mofo_core.app.tiny_assets import build_tiny_qwen3

        build_tiny_qwen3(models / "text_encoders" / "qwen3_tiny", seed=0)
    elif not (models / "text_encoders" / "qwen_3_8b.safetensors").is_file():
        (models / "text_encoders").mkdir(parents=True, exist_ok=True)
        write_safetensors_streamed(models / "text_encoders" / "qwen_3_8b.safetensors", random_qwen3_8b(dev))
    if not (models / "vae" / "flux2-vae.safetensors").is_file():
        (models / "vae").mkdir(parents=True, exist_ok=True)
        if tiny:
            ch.write_comfy_vae(models / "vae" / "flux2-vae.safetensors")
        else:
            write_release_vae(models / "vae" / "flux2-vae.safetensors")
    if dev.type == "cuda":
        torch.cuda.empty_cache()


def random_qwen3_8b(dev) -> dict:
    """Qwen3-8B in the Hugging Face key layout (what Comfy-Org's qwen_3_8b.safetensors holds), bf16, random."""
    import math

    import torch
    from common import QWEN3_8B
    from transformers import Qwen3Config, Qwen3ForCausalLM

    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in Qwen3ForCausalLM(Qwen3Config(**QWEN3_8B)).state_dict().items()}
    g = torch.Generator(device=dev).manual_seed(1)
    out = {}
    for k, shape in shapes.items():
        t = torch.empty(shape, dtype=torch.bfloat16, device=dev)
        if "norm" in k:
            t.fill_(1.0)
        elif "embed_tokens" in k:
            t.normal_(0.0, 1.0, generator=g)
        else:
            t.normal_(0.0, 1.0 / math.sqrt(shape[-1]), generator=g)
        out[k] = t
    return out


def write_release_vae(path: Path) -> None:
    """A random FLUX.2 VAE single file of the release's width (ComfyUI's VAELoader layout), bf16 convolutions."""
    import torch
    from safetensors.torch import save_file

    from mofo_core.encoders.autoencoder import AutoEncoderConfig, build_autoencoder

    ae = build_autoencoder(AutoEncoderConfig(), seed=0)
    sd = {}
    for prefix, part in (("encoder.", ae.encoder), ("decoder.", ae.decoder)):
        for k, v in part.state_dict().items():
            if not k.startswith("bn."):
                sd[prefix + k] = v.to(torch.bfloat16) if v.is_floating_point() else v
    for k, v in ae.encoder.state_dict().items():
        if k.startswith("bn."):
            sd[k] = v
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))


# -- layers as newer ComfyUI builds them ----------------------------------------------------------------------
NEWER_LAYERS = '''"""Bench-only custom node: comfy.ops builds layers as ComfyUI >= ~0.33 (lazy under dynamic VRAM).

0.29's condition is `WINDOWS and aimdo_enabled` (comfy/ops.py disable_weight_init.Linear); newer releases drop the
WINDOWS part. comfy.ops alone is shown WINDOWS = True, so with comfy-aimdo really on it takes the newer path.
"""
import logging
import types

import comfy
import comfy.model_management
import comfy.ops


class _View(types.ModuleType):
    def __init__(self, real, **over):
        super().__init__(real.__name__)
        self.__dict__["_real"] = real
        self.__dict__.update(over)

    def __getattr__(self, name):
        return getattr(self.__dict__["_real"], name)


comfy.ops.comfy = _View(comfy, model_management=_View(comfy.model_management, WINDOWS=True))
_lazy = comfy.ops.disable_weight_init._lazy_load_from_state_dict
_n = [0]


def _counted(module, *args, **kwargs):
    _n[0] += 1
    if _n[0] in (1, 100):
        logging.info("bench: lazy comfy.ops layers loaded: %d", _n[0])
    return _lazy(module, *args, **kwargs)


comfy.ops.disable_weight_init._lazy_load_from_state_dict = staticmethod(_counted)
NODE_CLASS_MAPPINGS = {}
'''
