"""Load (and, when the user asks, download) the Modality Forcing DiT."""

from __future__ import annotations

from pathlib import Path

import comfy.model_management as mm
import comfy.ops
import folder_paths
import torch
from comfy_api.latest import io

from ..mofo_core import ATTENTION_BACKENDS, RELEASE_REPO, compile_blocks, download_files, load_dit, set_attention
from .messages import shows_warnings
from .runtime import MofoModelHandle
from .types import MofoModel, node_schema

WEIGHT_DTYPES = ["default", "bf16", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp32"]
ATTENTION = list(ATTENTION_BACKENDS)
DOWNLOAD_SUBFOLDER = "modality_forcing"


def _dtype(choice: str, device) -> torch.dtype:
    if choice == "default":  # fp16 overflows in this model (reference runner), so only bf16 or fp32
        return mm.unet_dtype(device, supported_dtypes=[torch.bfloat16, torch.float32])
    return {"bf16": torch.bfloat16, "fp8_e4m3fn": torch.float8_e4m3fn, "fp32": torch.float32}[choice]


def build(path: str, weight_dtype: str, attention: str = "auto", compile: bool = False, device=None):
    """The DiT for compute `device` (default: ComfyUI's), as ComfyUI loads models: in the offload device's memory,
    except fp8_e4m3fn_fast, which is quantised as read on the compute device."""
    device = device or mm.get_torch_device()
    if weight_dtype == "fp8_e4m3fn_fast":  # fp8 matrix units (RTX 40xx / H100+); quantised as read, on the GPU
        dit = load_dit(path, device=device, dtype=torch.bfloat16, fp8="row", operations=comfy.ops.manual_cast)
    else:
        dtype = _dtype(weight_dtype, device)
        compute = torch.bfloat16 if dtype.itemsize == 1 else dtype
        dit = load_dit(path, device=mm.unet_offload_device(), dtype=dtype, compute_dtype=compute,
                       operations=comfy.ops.manual_cast)
    set_attention(dit, attention)
    if compile:
        compile_blocks(dit)
    return dit


def load_handle(path: str, weight_dtype: str, name: str, attention: str = "auto", compile: bool = False):
    # A compiled model gets the plain ModelPatcher, as core's TorchCompileModel does (runtime.patcher_class).
    return MofoModelHandle.wrap(build(path, weight_dtype, attention, compile), name,
                                rebuild=lambda device: build(path, weight_dtype, attention, compile, device),
                                dynamic=not compile)


def _perf_inputs():
    return [
        io.Combo.Input("attention", options=ATTENTION, default="auto",
                       tooltip="attention kernel; auto = the fastest measured for this GPU (plain SDPA on CPU)"),
        io.Boolean.Input("compile", default=False,
                         tooltip="torch.compile the repeated blocks (CUDA): ~1.35x faster after ~20 s of warm-up "
                         "(~10 s from the cache). Like core's TorchCompileModel, a compiled model skips dynamic "
                         "VRAM: it is loaded whole when it fits, else partly"),
    ]


DTYPE_TIP = ("storage dtype of the body; compute is bf16 (fp32 for fp32); the depth head stays fp32. fp8_e4m3fn_fast: "
             "fp8 matrix units (RTX 40xx / H100+), ~12 GiB, ~2x faster with compile, ~5% deviation; always fully "
             "loaded (no streaming)")


class MofoModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return node_schema(
            node_id="MofoModelLoader",
            display_name="Mofo Load Model",
            description="Loads the Modality Forcing DiT (model.safetensors from bartduis/modality_forcing) from "
            "models/diffusion_models. v1 / v2 is read off the weights.",
            inputs=[
                io.Combo.Input("model_name", options=folder_paths.get_filename_list("diffusion_models"),
                               tooltip="models/diffusion_models/... (e.g. modality_forcing/model.safetensors)"),
                io.Combo.Input("weight_dtype", options=WEIGHT_DTYPES, default="default", tooltip=DTYPE_TIP),
                *_perf_inputs(),
            ],
            outputs=[MofoModel.Output(display_name="model")],
        )

    @classmethod
    @shows_warnings
    def execute(cls, model_name: str, weight_dtype: str, attention: str = "auto", compile: bool = False):
        path = folder_paths.get_full_path_or_raise("diffusion_models", model_name)
        return io.NodeOutput(load_handle(path, weight_dtype, model_name, attention, compile))


class MofoDownloadModel(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return node_schema(
            node_id="MofoDownloadModel",
            display_name="Mofo Download + Load Model",
            description="Loads models/diffusion_models/modality_forcing/model.safetensors (found in any "
            "diffusion_models folder ComfyUI knows, e.g. models/unet/modality_forcing/ too); when it is nowhere, "
            "first downloads it (24 GB, resumable) with config.json into models/diffusion_models/modality_forcing/. "
            "Weights: CC BY-NC 4.0 (non-commercial).",
            inputs=[
                io.String.Input("repo_id", default=RELEASE_REPO,
                                tooltip="Hugging Face repository to download from when the file is not found"),
                io.Combo.Input("weight_dtype", options=WEIGHT_DTYPES, default="default", tooltip=DTYPE_TIP),
                *_perf_inputs(),
            ],
            outputs=[MofoModel.Output(display_name="model")],
        )

    @classmethod
    @shows_warnings
    def execute(cls, repo_id: str, weight_dtype: str, attention: str = "auto", compile: bool = False):
        found = find_release_model()
        if found is None:
            files = download_files(repo_id, ["config.json", "model.safetensors"], release_folder(),
                                   tqdm_class=_comfy_tqdm())
            found = files["model.safetensors"]
        return io.NodeOutput(load_handle(str(found), weight_dtype, f"{DOWNLOAD_SUBFOLDER}/model.safetensors", attention,
                                         compile))


def release_folder() -> Path:
    """`models/diffusion_models/modality_forcing/` (where the README says), under ComfyUI's current models folder.

    `get_folder_paths("diffusion_models")` lists the legacy `models/unet` first (ComfyUI folder_paths.py), so
    the folder is picked by name, not by position.
    """
    roots = [Path(p) for p in folder_paths.get_folder_paths("diffusion_models")]
    named = [r for r in roots if r.name == "diffusion_models"]
    return (named or roots)[0] / DOWNLOAD_SUBFOLDER


def find_release_model() -> Path | None:
    """An existing `modality_forcing/model.safetensors` in any registered diffusion_models folder."""
    for root in folder_paths.get_folder_paths("diffusion_models"):
        path = Path(root) / DOWNLOAD_SUBFOLDER / "model.safetensors"
        if path.is_file():
            return path
    return None


def _comfy_tqdm():
    """A tqdm class that mirrors byte progress onto ComfyUI's progress bar (and honours Cancel)."""
    import comfy.utils
    from tqdm.auto import tqdm

    class ComfyTqdm(tqdm):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self._bar = comfy.utils.ProgressBar(max(int(self.total or 1), 1))

        def update(self, n=1):
            mm.throw_exception_if_processing_interrupted()
            out = super().update(n)
            self._bar.update_absolute(int(self.n), int(self.total or self.n or 1))
            return out

    return ComfyTqdm
