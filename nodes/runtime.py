"""The model handle that travels along MOFO_MODEL edges, and the per-step progress / preview / interrupt hook."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import comfy.model_management as mm
import comfy.model_patcher
import comfy.utils
import torch

from ..mofo_core import MofoDiT, rgb_depth_preview, tokens_to_latent

log = logging.getLogger(__name__)


def patcher_class(dynamic: bool = True):
    """The ModelPatcher class for a model. CoreModelPatcher is what core models use (ModelPatcherDynamic under
    dynamic VRAM, from ~0.12); older ComfyUI only has ModelPatcher. Looked up at call time because main.py rebinds
    it at start-up. `dynamic=False` is the plain ModelPatcher, what core gives a model that is to be compiled
    (comfy_extras/nodes_torch_compile.py: `model.clone(disable_dynamic=True)`): dynamic VRAM fetches each weight
    through comfy-aimdo inside the forward, a graph break for torch.compile in every layer (seen on a server:
    comfy_aimdo/model_vbar.py). Cold start to the first compiled bf16 image, queue -> done: 105.7 s with it,
    71.9 s without (BENCHMARKS.md, runs 19-20)."""
    if not dynamic:
        return comfy.model_patcher.ModelPatcher
    return getattr(comfy.model_patcher, "CoreModelPatcher", comfy.model_patcher.ModelPatcher)


@dataclass
class MofoModelHandle:
    """A loaded DiT under ComfyUI's model management (offload, partial load, eviction)."""

    patcher: object  # comfy.model_patcher.ModelPatcher
    name: str
    # builds the same DiT again for another device: (device) -> MofoDiT (CFG-parallel replicas)
    rebuild: Callable[[torch.device], MofoDiT] | None = None
    replicas: dict = field(default_factory=dict)  # str(device) -> ModelPatcher of a replica, kept across runs
    dynamic: bool = True  # False: the plain ModelPatcher (compiled models; see patcher_class)

    @classmethod
    def wrap(cls, dit: MofoDiT, name: str, rebuild=None, dynamic: bool = True) -> MofoModelHandle:
        patcher = patcher_class(dynamic)(dit, load_device=mm.get_torch_device(),
                                         offload_device=mm.unet_offload_device())
        return cls(patcher, name, rebuild, dynamic=dynamic)

    def replica_patchers(self, gpus: int) -> list:
        """ModelPatchers of DiT replicas on the next `gpus - 1` devices ComfyUI knows (built once, then kept and
        offloaded / evicted by ComfyUI like any model). Cheap checks first: a clear error when there are fewer."""
        if gpus <= 1:
            return []
        main = self.patcher.load_device
        all_devices = getattr(mm, "get_all_torch_devices", lambda **k: [main])()
        others = [d for d in all_devices if d != main]
        if len(others) < gpus - 1:
            raise ValueError(f"gpus is {gpus} but ComfyUI sees {len(others) + 1} device(s) "
                             f"({', '.join(str(d) for d in [main, *others])}); set gpus to {len(others) + 1} or less")
        if self.rebuild is None:
            raise ValueError("this model handle cannot be copied to other GPUs; load it with Mofo Load Model")
        out = []
        for dev in others[: gpus - 1]:
            if str(dev) not in self.replicas:
                dit = self.rebuild(dev)
                self.replicas[str(dev)] = patcher_class(self.dynamic)(dit, load_device=dev,
                                                                      offload_device=mm.unet_offload_device())
            out.append(self.replicas[str(dev)])
        return out

    @property
    def dit(self) -> MofoDiT:
        return self.patcher.model

    def load(self, tokens: int, batch: int, replicas: list | None = None) -> torch.device:
        """Put the weights on the compute device (partially when VRAM is short); returns the device."""
        cfg = self.dit.config
        mm.load_models_gpu([self.patcher, *(replicas or [])], memory_required=cfg.activation_bytes(tokens, batch))
        return self.patcher.load_device


def make_step_callback(steps: int, grid: tuple[int, int], previews: bool = True):
    """A mofo_core StepCallback: ComfyUI progress bar, interrupt check, and an RGB | depth preview."""
    pbar = comfy.utils.ProgressBar(steps)
    previewer = _rgb_previewer() if previews else None

    def callback(info) -> None:
        mm.throw_exception_if_processing_interrupted()
        preview = None
        if previewer is not None:
            try:
                preview = _preview_image(previewer, info, grid)
            except Exception as e:  # a preview must never break a generation
                log.debug("preview failed: %s", e)
        pbar.update_absolute(info.step + 1, info.steps, preview)

    return callback


def _rgb_previewer():
    import comfy.latent_formats
    import latent_preview

    fmt = getattr(comfy.latent_formats, "Flux2", None)
    if fmt is None:  # ComfyUI older than FLUX.2 support: progress without pictures
        return None
    return latent_preview.get_previewer(mm.get_torch_device(), fmt())


def _preview_image(previewer, info, grid):
    h, w = grid
    fmt, rgb_img, size = previewer.decode_latent_to_preview_image("JPEG", tokens_to_latent(info.rgb_x0[:1], h, w))
    return fmt, rgb_depth_preview(rgb_img, info.depth_x0, h, w), size
