"""The pack's loader and sampler nodes under ComfyUI's own model management on a GPU, full-size random weights.

    python bench/comfy_gpu_nodes.py --comfy PATH/TO/ComfyUI --out OUT [--tiny]

ComfyUI 0.29 on NVIDIA uses dynamic VRAM (`ModelPatcherDynamic`, weights paged by comfy-aimdo) by default; this
sets it up the way ComfyUI's main.py does, then runs Mofo Load Model -> Mofo Scheduler -> Mofo Sampler
(512x512, CFG 4, 4 steps, random 512-token conditioning) in four settings: dynamic VRAM with the whole card;
dynamic VRAM with 56 GiB reserved (about 22 GiB usable: the bf16 DiT no longer fits whole); the legacy
ModelPatcher with the same reservation (partial load, comfy.ops streaming); and fp8_e4m3fn_fast. It reports
which patcher ran, time per step, peak memory, and the relative difference of each output to the first.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def setup_comfy(comfy: Path, dynamic: bool):
    sys.path.insert(0, str(comfy))
    import comfy.cli_args  # default args, as an import without argv parsing gives
    import torch

    if not torch.cuda.is_available():
        comfy.cli_args.args.cpu = True  # CPU dry run of this script
    import comfy_aimdo.control

    if dynamic and torch.cuda.is_available():
        comfy_aimdo.control.init()
    import comfy.memory_management
    import comfy.model_management as mm
    import comfy.model_patcher

    if dynamic and torch.cuda.is_available():
        ok = comfy_aimdo.control.init_devices(d.index for d in mm.get_all_torch_devices())
        if ok:  # what main.py does when DynamicVRAM is detected
            comfy.model_patcher.CoreModelPatcher = comfy.model_patcher.ModelPatcherDynamic
            comfy.memory_management.aimdo_enabled = True
        return bool(ok)
    return False


def load_pack():
    spec = importlib.util.spec_from_file_location(
        "mofo_pack", ROOT / "__init__.py", submodule_search_locations=[str(ROOT)]
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules["mofo_pack"] = mod
    spec.loader.exec_module(mod)
    import mofo_pack.nodes as nodes

    return nodes


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--comfy", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--mode", default="dynamic", choices=["dynamic", "legacy"])
    ap.add_argument("--reserve-gib", type=float, default=0.0)
    ap.add_argument("--weight-dtype", default="default")
    ap.add_argument(
        "--ckpt", default=None, help="checkpoint path; a random full-size v2 one is written there if absent"
    )
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--tiny", action="store_true")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    dyn = setup_comfy(Path(a.comfy), a.mode == "dynamic")
    import comfy.model_management as mm
    import folder_paths
    import torch

    if a.reserve_gib:
        mm.EXTRA_RESERVED_VRAM = int(a.reserve_gib * 1024**3)
    sys.path.insert(0, str(ROOT))
    import mofo_core as mc

    ckpt = Path(a.ckpt) if a.ckpt else Path(tempfile.mkdtemp()) / "model.safetensors"
    if not ckpt.is_file():
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        sys.path.insert(0, str(ROOT / "bench"))
        from common import random_dit, write_safetensors_streamed

        cfg = mc.tiny("flux_rgbd_9b_v2") if a.tiny else mc.VARIANTS["flux_rgbd_9b_v2"]
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        dit = random_dit(cfg, dev, seed=0)
        write_safetensors_streamed(ckpt, {f"dit.{k}": v for k, v in dit.state_dict().items()})
        del dit
        torch.cuda.empty_cache()
    folder_paths.add_model_folder_path("diffusion_models", str(ckpt.parent), is_default=True)
    nodes = load_pack()
    ctx_dim = 48 if a.tiny else 12288
    g = torch.Generator().manual_seed(0)
    pos = [[torch.randn(1, 512, ctx_dim, generator=g), {}]]
    neg = [[torch.randn(1, 512, ctx_dim, generator=g), {}]]
    dev = mm.get_torch_device()
    torch.cuda.reset_peak_memory_stats() if dev.type == "cuda" else None
    t0 = time.time()
    (model,) = nodes.MofoModelLoader.execute(model_name=ckpt.name, weight_dtype=a.weight_dtype, compile=a.compile).args
    load_s = time.time() - t0
    rs, ds = nodes.MofoScheduler.execute(
        steps=4, mode="joint", mu=1.1, log2_alpha=5.0, rgb_denoise=1.0, depth_denoise=1.0
    ).args
    kw = dict(
        model=model,
        positive=pos,
        negative=neg,
        rgb_sigmas=rs,
        depth_sigmas=ds,
        cfg=4.0,
        depth_cfg=-1.0,
        seed=0,
        width=128 if a.tiny else 512,
        height=128 if a.tiny else 512,
        batch_size=1,
        noise="cpu",
    )
    t0 = time.time()
    nodes.MofoSampler.execute(**{**kw, "rgb_sigmas": rs[:2], "depth_sigmas": ds[:2]})  # warm-up, 1 step
    warm_s = time.time() - t0
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.time()
    rgb, depth = nodes.MofoSampler.execute(**kw).args
    if dev.type == "cuda":
        torch.cuda.synchronize()
    step_s = (time.time() - t0) / 4
    out = {
        "mode": a.mode,
        "dynamic_vram": dyn,
        "patcher": type(model.patcher).__name__,
        "weight_dtype": a.weight_dtype,
        "reserve_gib": a.reserve_gib,
        "compile": a.compile,
        "load_s": round(load_s, 2),
        "warmup_step_s": round(warm_s, 2),
        "step_s": round(step_s, 4),
        "peak_alloc_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if dev.type == "cuda" else None,
        "finite": bool(torch.isfinite(rgb["samples"]).all() and torch.isfinite(depth["samples"]).all()),
        "loaded_weight_gib": round(model.patcher.loaded_size() / 2**30, 2),
    }
    from safetensors.torch import save_file  # no pickle, also for bench outputs

    save_file(
        {"rgb": rgb["samples"].contiguous().cpu(), "depth": depth["samples"].contiguous().cpu()},
        str(Path(a.out) / f"out_{a.mode}_{a.weight_dtype}_{int(a.reserve_gib)}{'_c' if a.compile else ''}.safetensors"),
    )
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
