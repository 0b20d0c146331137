"""Minimal stand-ins for the ComfyUI modules the pack touches, so node tests run in CI without ComfyUI.

Only the surface nodes/ uses is modelled (V3 io schema objects, model management, progress, folder_paths);
behaviour on a real ComfyUI is covered by tests/integration (COMFYUI_DIR).
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import torch


def _mod(name: str, **attrs) -> types.ModuleType:
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    return m


# -- comfy_api.latest.io -------------------------------------------------------------------------------
class _Input:
    def __init__(self, id, display_name=None, optional=False, tooltip=None, default=None, **kw):
        self.id, self.display_name, self.optional, self.tooltip, self.default = (
            id,
            display_name,
            optional,
            tooltip,
            default,
        )
        self.extra = kw


class _Output:
    def __init__(self, id=None, display_name=None, tooltip=None, is_output_list=False):
        self.id, self.display_name = id, display_name


def _type(io_type: str, widget: bool = False):
    cls = type(io_type, (), {"io_type": io_type, "widget": widget})
    cls.Input = type("Input", (_Input,), {"io_type": io_type, "widget": widget})
    cls.Output = type("Output", (_Output,), {"io_type": io_type})
    return cls


@dataclass
class Schema:
    node_id: str
    display_name: str | None = None
    category: str = "sd"
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    hidden: list = field(default_factory=list)
    description: str = ""
    is_output_node: bool = False


class ComfyNode:
    @classmethod
    def define_schema(cls) -> Schema:
        raise NotImplementedError


class NodeOutput:
    def __init__(self, *args, ui=None):
        self.args, self.ui = args, ui


def make_io(with_file3d: bool):
    io = _mod(
        "comfy_api.latest.io", Schema=Schema, ComfyNode=ComfyNode, NodeOutput=NodeOutput, Custom=lambda t: _type(t)
    )
    for name, t, widget in [
        ("Int", "INT", True),
        ("Float", "FLOAT", True),
        ("String", "STRING", True),
        ("Boolean", "BOOLEAN", True),
        ("Combo", "COMBO", True),
        ("Image", "IMAGE", False),
        ("Latent", "LATENT", False),
        ("Mask", "MASK", False),
        ("Conditioning", "CONDITIONING", False),
        ("Sigmas", "SIGMAS", False),
        ("Clip", "CLIP", False),
    ]:
        setattr(io, name, _type(t, widget))
    if with_file3d:
        io.File3DPLY = _type("FILE_3D_PLY")
        io.File3DGLB = _type("FILE_3D_GLB")
    return io


class ComfyExtension:
    async def get_node_list(self):
        raise NotImplementedError


class PreviewImage:
    def __init__(self, image, cls=None, **kw):
        self.image = image

    def as_dict(self):
        return {"images": [{"filename": "preview.png", "subfolder": "", "type": "temp"}]}


class File3D:
    def __init__(self, source, file_format=""):
        self.source, self.format = source, file_format or Path(str(source)).suffix.lstrip(".")


# -- comfy.* --------------------------------------------------------------------------------------------
class CastLinear(torch.nn.Linear):
    """`comfy.ops.manual_cast.Linear`: the weight is cast to the input's dtype and device at each call.

    With `lazy = True` it also models dynamic VRAM (comfy-aimdo; every OS from ComfyUI ~0.33, Windows only in
    0.29): the layer is built WITHOUT weights (`weight = None`, `bias = None`) and `_load_from_state_dict`
    assigns whatever the state dict holds, reporting an absent weight as missing and any other key as
    unexpected (comfy/ops.py `disable_weight_init.Linear` and `_lazy_load_from_state_dict`).
    """

    lazy = False

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        if not CastLinear.lazy:
            super().__init__(in_features, out_features, bias, device, dtype)
            return
        torch.nn.Module.__init__(self)
        self.in_features, self.out_features = in_features, out_features
        self.weight = None
        self.bias = None
        self.comfy_need_lazy_init_bias = bias

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        if not hasattr(self, "comfy_need_lazy_init_bias"):  # built eagerly
            return super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                                 unexpected_keys, error_msgs)
        assign = local_metadata.get("assign_to_params_buffers", False)
        for k, v in state_dict.items():
            key = k[len(prefix):]
            if key in ("weight", "bias") and v is not None:
                setattr(self, key, torch.nn.Parameter(v if assign else v.clone(), requires_grad=False))
            else:
                unexpected_keys.append(k)
        if self.weight is None:
            missing_keys.append(prefix + "weight")

    def forward(self, x):
        w = self.weight.to(device=x.device, dtype=x.dtype)
        b = self.bias.to(device=x.device, dtype=x.dtype) if self.bias is not None else None
        return torch.nn.functional.linear(x, w, b)


def set_lazy_layers(on: bool) -> None:
    """Build comfy.ops Linear layers without weights from now on (dynamic VRAM), or with them (legacy)."""
    CastLinear.lazy = on


class ModelPatcher:
    def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False):
        self.model, self.load_device, self.offload_device = model, load_device, offload_device


class ProgressBar:
    log: list = []

    def __init__(self, total, node_id=None):
        self.total = total

    def update_absolute(self, value, total=None, preview=None):
        ProgressBar.log.append((value, total, preview is not None))


class Interrupted(Exception):
    pass


class MM:
    interrupt_at: int | None = None
    calls = 0
    loaded: list = []

    @staticmethod
    def throw_exception_if_processing_interrupted():
        MM.calls += 1
        if MM.interrupt_at is not None and MM.calls >= MM.interrupt_at:
            raise Interrupted("interrupted")


def install(tmp: Path, *, with_file3d: bool = True) -> dict[str, types.ModuleType]:
    """Put the stand-ins into sys.modules (returns them; caller restores)."""
    cpu = torch.device("cpu")
    models = tmp / "models"
    for sub in ("diffusion_models", "text_encoders", "vae"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    out_dir = tmp / "output"
    out_dir.mkdir(exist_ok=True)

    def get_save_image_path(prefix, output_dir, w=0, h=0):
        sub = str(Path(prefix).parent) if "/" in prefix else ""
        name = Path(prefix).name
        folder = Path(output_dir) / sub
        folder.mkdir(parents=True, exist_ok=True)
        counter = len(list(folder.glob(f"{name}_*"))) + 1
        return str(folder), name, counter, sub, prefix

    def folders(cat):  # as ComfyUI registers them: the legacy models/unet comes first (folder_paths.py)
        return [models / "unet", models / cat] if cat == "diffusion_models" else [models / cat]

    def full_path(cat, name):
        hits = [f / name for f in folders(cat) if (f / name).is_file()]
        return str(hits[0]) if hits else None

    def full_path_or_raise(cat, name):
        if full_path(cat, name) is None:
            raise FileNotFoundError(f"Model in folder '{cat}' with filename '{name}' not found.")
        return full_path(cat, name)

    folder_paths = _mod(
        "folder_paths",
        get_filename_list=lambda cat: sorted(
            {str(p.relative_to(f)) for f in folders(cat) for p in f.rglob("*.safetensors")}
        ),
        get_full_path=full_path,
        get_full_path_or_raise=full_path_or_raise,
        get_folder_paths=lambda cat: [str(f) for f in folders(cat)],
        get_save_image_path=get_save_image_path,
        get_output_directory=lambda: str(out_dir),
        get_temp_directory=lambda: str(tmp / "temp"),
    )
    mm = _mod(
        "comfy.model_management",
        get_torch_device=lambda: cpu,
        unet_offload_device=lambda: cpu,
        intermediate_device=lambda: cpu,
        text_encoder_device=lambda: cpu,
        text_encoder_offload_device=lambda: cpu,
        unet_dtype=lambda device=None, model_params=0, supported_dtypes=None, weight_dtype=None: torch.float32,
        load_models_gpu=lambda models, memory_required=0, **k: MM.loaded.append((models, memory_required)),
        throw_exception_if_processing_interrupted=MM.throw_exception_if_processing_interrupted,
    )
    comfy = _mod("comfy")
    ops = _mod("comfy.ops", manual_cast=SimpleNamespace(Linear=CastLinear, LayerNorm=torch.nn.LayerNorm))
    patcher = _mod("comfy.model_patcher", ModelPatcher=ModelPatcher, CoreModelPatcher=ModelPatcher)
    utils = _mod("comfy.utils", ProgressBar=ProgressBar)
    latent_formats = _mod("comfy.latent_formats")  # no Flux2: previews are skipped, as on old ComfyUI
    comfy.model_management, comfy.ops, comfy.model_patcher, comfy.utils, comfy.latent_formats = (
        mm,
        ops,
        patcher,
        utils,
        latent_formats,
    )
    io = make_io(with_file3d)
    ui = _mod("comfy_api.latest.ui", PreviewImage=PreviewImage)
    latest = _mod("comfy_api.latest", io=io, ui=ui, ComfyExtension=ComfyExtension, Types=SimpleNamespace(File3D=File3D))
    latest.__path__ = []
    comfy_api = _mod("comfy_api", latest=latest)
    comfy_api.__path__ = []
    comfy.__path__ = []
    mods = {
        "folder_paths": folder_paths,
        "comfy": comfy,
        "comfy.model_management": mm,
        "comfy.ops": ops,
        "comfy.model_patcher": patcher,
        "comfy.utils": utils,
        "comfy.latent_formats": latent_formats,
        "comfy_api": comfy_api,
        "comfy_api.latest": latest,
        "comfy_api.latest.io": io,
        "comfy_api.latest.ui": ui,
        "latent_preview": _mod("latent_preview", get_previewer=lambda device, fmt: None),
    }
    saved = {k: sys.modules.get(k) for k in mods}
    sys.modules.update(mods)
    return saved
