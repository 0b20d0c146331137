"""Command line: `python -m mofo_core {joint,i2d,d2i,edit,batch,demo} ...` (the reference scripts' options, plus more).

Prints the written paths. Bad input gives one `error:` line and exit status 2; nothing is written then.
"""

from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
from pathlib import Path

from ..config import ATTENTION_BACKENDS, DEFAULT_FOV_DEG, FP8_SCALINGS

DTYPES = ("bf16", "fp32", "fp16", "fp8")
REFERENCE_MAX_POINTS = 1_200_000  # = pointcloud.REFERENCE_MAX_POINTS (not imported: --help stays numpy-free)


PROMPT_HELP = {
    "joint": "scene description (required)",
    "i2d": "optional description of the image (the reference leaves it empty)",
    "d2i": "description of the image to generate for the depth map",
    "edit": "description of what to generate inside the mask",
}


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default (but not the uninformative None / False ones)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.default in ("", argparse.SUPPRESS):
            return action.help
        return super()._get_help_string(action)


def _common(p: argparse.ArgumentParser, *, cfg_default: float | None) -> None:
    p.add_argument("--prompt", default="", help=PROMPT_HELP[p.prog.split()[-1]])
    p.add_argument("--model", default="bartduis/modality_forcing",
                   help="folder with the release files, its model.safetensors (VAE files beside it), or a repo id")
    p.add_argument("--text-encoder", default="Qwen/Qwen3-8B", help="Qwen3-8B folder or repo id")
    p.add_argument("--num-steps", type=int, default=50, help="sampling steps")
    p.add_argument("--seed", type=int, default=0, help="noise seed, 0 .. 2**64-1 (same seed, same result)")
    p.add_argument("--device", default=None, help="cuda, cuda:1, cpu ... (default: cuda if available)")
    p.add_argument("--resolution", type=int, default=None, help="square size, a multiple of 16 (default 512)")
    p.add_argument("--width", type=int, default=None, help="output width, a multiple of 16 (overrides --resolution)")
    p.add_argument("--height", type=int, default=None, help="output height, a multiple of 16")
    p.add_argument("--batch", type=int, default=1, help="images per run (seeds drawn in one batch)")
    p.add_argument(
        "--dtype",
        choices=DTYPES,
        default="bf16",
        help="DiT body dtype (depth head stays fp32); fp8: e4m3 block weights on the fp8 matrix units, "
        "bf16 elsewhere (~12 GiB instead of 22)",
    )
    p.add_argument(
        "--fp8-scaling",
        choices=FP8_SCALINGS,
        default=FP8_SCALINGS[0],
        help="with --dtype fp8: one scale per output channel and per token, or one per matrix",
    )
    p.add_argument(
        "--attention",
        choices=ATTENTION_BACKENDS,
        default="auto",
        help="attention kernel (auto: the fastest measured one for the GPU, PyTorch's choice on CPU)",
    )
    p.add_argument(
        "--lowvram",
        action="store_true",
        help="lower peak GPU memory: cond/uncond one after the other, DiT freed for the VAE decode",
    )
    p.add_argument(
        "--gpus",
        type=int,
        default=1,
        help="CFG-parallel: cond and uncond at the same time on cuda:0 .. cuda:N-1, one model copy per GPU (pick "
        "GPUs with CUDA_VISIBLE_DEVICES). Same result as one GPU up to bf16 rounding. Fewer CUDA GPUs than N is an "
        "error (no fallback). A cfg 1 job at --batch 1 (i2d) has nothing to split and runs on cuda:0 alone",
    )
    p.add_argument("--output-dir", default="./outputs", help="runs are written to new folders here")
    p.add_argument("--cfg-scale", type=float, default=cfg_default, help="guidance for the RGB (and depth) head")
    p.add_argument("--depth-cfg", type=float, default=None, help="guidance for the depth head (default: --cfg-scale)")
    p.add_argument("--fov-deg", type=float, default=DEFAULT_FOV_DEG,
                   help="horizontal field of view for the point cloud")
    p.add_argument("--sor", action="store_true", help="statistical outlier removal on the point cloud")
    p.add_argument("--max-points", type=int, default=REFERENCE_MAX_POINTS,
                   help="point-cloud cap: a larger cloud is a random subset of this size (the reference's; 0: none)")
    p.add_argument("--edge-rtol", type=float, default=0.04, help="drop depth-edge pixels (0 disables)")
    p.add_argument(
        "--center",
        choices=("camera", "median"),
        default="camera",
        help="camera at the origin, or the cloud median-centred (the reference)",
    )
    p.add_argument("--mesh", action="store_true", help="also write mesh.glb: the depth as a textured triangle mesh")
    p.add_argument("--mesh-max-faces", type=int, default=0, help="mesh face budget by grid subsampling (0: none)")
    p.add_argument("--depth-range", choices=("image", "batch"), default="image",
                   help="depth16.png / depth_magma.png range: each image its own, or one over the --batch")
    p.add_argument(
        "--compile", action="store_true", help="torch.compile the DiT blocks (CUDA; ~20 s warm-up, ~12 s once cached)"
    )
    p.add_argument("--offline", action="store_true", help="never download; read only local files and the HF cache")
    p.add_argument(
        "--depth-xpred-exact",
        action="store_true",
        help="fix the residual depth noise the x-prediction clamp leaves at >= 59 steps",
    )
    p.add_argument("--truncate-prompt", action="store_true", help="cut prompts over 512 tokens (reference behaviour)")
    p.add_argument("--no-exr", action="store_true", help="skip depth.exr")
    p.add_argument("--verbose", action="store_true", help="log what loads and where")


def build_parser() -> argparse.ArgumentParser:
    from ..config import VERSION as __version__

    ap = argparse.ArgumentParser(prog="python -m mofo_core", description="Modality Forcing: RGB + depth generation")
    ap.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)
    j = sub.add_parser("joint", formatter_class=_Help, help="text -> RGB + depth + point cloud")
    _common(j, cfg_default=4.0)
    j.add_argument("--log2-alpha", type=float, default=5.0, help="depth/RGB tilt; > 0 resolves RGB first")
    j.add_argument("--refine-depth", action="store_true", help="second pass: image -> depth on the generated RGB")
    i = sub.add_parser("i2d", formatter_class=_Help, help="image -> depth + point cloud (any aspect ratio)")
    _common(i, cfg_default=1.0)
    i.add_argument("--image", required=True, help="the photo (PNG, JPEG, WebP, TIFF ...)")
    i.add_argument("--fit", choices=("letterbox", "stretch"), default="letterbox",
                   help="how an image of another aspect is fitted to the generation size")

    d = sub.add_parser("d2i", formatter_class=_Help, help="depth -> image")
    _common(d, cfg_default=4.0)
    d.add_argument("--depth", required=True, help=".npy, 16-bit PNG/TIFF or EXR depth map")
    d.add_argument("--disparity", action="store_true", help="the map is disparity (near = bright), not depth")
    d.add_argument("--robust-depth", action="store_true", help="normalise over valid pixels only (holes, zeros)")
    e = sub.add_parser("edit", formatter_class=_Help,
                       help="masked RGB-D editing: inpaint, outpaint, restyle, depth-fix")
    _common(e, cfg_default=None)
    e.add_argument("task", choices=("inpaint", "outpaint", "restyle", "depth-fix"))
    e.add_argument("--image", required=True, help="the photo to edit")
    e.add_argument("--mask", default=None, help="PNG, white = regenerate (or transparent = regenerate)")
    e.add_argument("--depth", default=None, help="its depth map (default: estimated by image -> depth)")
    e.add_argument("--depth-mask", default=None, help="a separate mask for depth (default: --mask)")
    e.add_argument("--regenerate", choices=("rgb", "depth", "both"), default=None,
                   help="which modality is regenerated inside the mask (default: the task's)")
    e.add_argument("--feather", type=int, default=0, help="pixels of soft falloff outside the mask")
    for side in ("top", "bottom", "left", "right"):
        e.add_argument(f"--pad-{side}", type=int, default=0, help=f"outpaint: pixels added at the {side}")
    e.add_argument("--rgb-denoise", type=float, default=1.0, help="< 1: change the RGB only part-way")
    e.add_argument("--depth-denoise", type=float, default=1.0, help="< 1: change the depth only part-way")
    e.add_argument("--log2-alpha", type=float, default=5.0, help="RGB + depth regenerated: depth/RGB tilt")
    e.add_argument("--disparity", action="store_true", help="--depth is disparity (near = bright)")
    e.add_argument("--robust-depth", action="store_true", help="normalise --depth over valid pixels only")
    from .batch import add_parser as add_batch

    add_batch(sub)
    demo = sub.add_parser("demo", formatter_class=_Help,
                          help="offline end-to-end run on tiny RANDOM weights (writes every output file)")
    demo.add_argument("--output-dir", default="./mofo_outputs/demo")
    demo.add_argument(
        "--cache-dir", default=None, help="where the tiny random models are built (default ~/.cache/mofo)"
    )
    demo.add_argument("--verbose", action="store_true", help="log what loads and where")
    from .geometry_cli import add_commands

    add_commands(sub, _Help)  # mesh, align, normals: depth files in, no model
    return ap


def _size(a) -> tuple[int | None, int | None]:
    if a.resolution is not None:
        return a.height or a.resolution, a.width or a.resolution
    return a.height, a.width


PASS_LABELS = {"joint": ("RGB + depth", "depth refine"), "i2d": ("depth",), "d2i": ("RGB",)}


class _Progress:
    """A labelled step bar per sampling pass, created at its first step (an error before sampling prints nothing
    but the error)."""

    def __init__(self, labels: tuple[str, ...] = ()):
        self.bar, self.labels, self.passes = None, labels, 0

    def __call__(self, info):
        from tqdm.auto import tqdm

        if self.bar is None or self.bar.total != info.steps or info.step == 0:
            self.close()
            self.passes += 1
            label = self.labels[self.passes - 1] if self.passes <= len(self.labels) else f"pass {self.passes}"
            self.bar = tqdm(total=info.steps, unit="step", file=sys.stderr, desc=label)
        self.bar.update(1)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _edit_job(a):
    """(params, inputs) of `edit`, checked before any weights load."""
    from ..sampling.masks import load_mask
    from .edit import EditParams, check_edit
    from .images import load_image

    h, w = _size(a)
    params = EditParams(
        task=a.task, prompt=a.prompt, regenerate=a.regenerate, steps=a.num_steps, cfg=a.cfg_scale,
        depth_cfg=a.depth_cfg, log2_alpha=a.log2_alpha, rgb_denoise=a.rgb_denoise, depth_denoise=a.depth_denoise,
        feather=a.feather, pad=(a.pad_top, a.pad_bottom, a.pad_left, a.pad_right), seed=a.seed, width=w, height=h,
        batch=a.batch, depth_xpred_exact=a.depth_xpred_exact, truncate_prompt=a.truncate_prompt,
        robust_depth=a.robust_depth,
    )
    inputs = {"depth": None, "mask": None, "depth_mask": None}
    if a.depth:
        from ..depth.files import load_depth

        inputs["depth"] = load_depth(a.depth, disparity=a.disparity, nan_ok=a.robust_depth)
    for key, path in (("mask", a.mask), ("depth_mask", a.depth_mask)):
        if path:
            inputs[key] = load_mask(path)
    image = load_image(a.image)
    check_edit(params, image, **inputs)
    return params, image, inputs


def _check_device(spec: str | None) -> str:
    """The device to run on, refused at once if this machine (or this PyTorch build) does not have it."""
    import torch

    if spec is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(spec)
    except RuntimeError as e:
        raise ValueError(f"--device {spec!r} is not a device name ({e}); use cpu, cuda, cuda:1, mps ...") from e
    if dev.type == "cuda":
        n = torch.cuda.device_count()
        if n == 0:
            raise ValueError(f"--device {spec}: this machine has no CUDA GPU that this PyTorch ({torch.__version__}) "
                             "can use; use --device cpu (very slow for the 9B model) or install a CUDA build")
        if dev.index is not None and dev.index >= n:
            raise ValueError(f"--device {spec}: this machine has {n} CUDA device(s), cuda:0 .. cuda:{n - 1}")
    elif dev.type != "cpu":
        backend = getattr(torch.backends, dev.type, None) or getattr(torch, dev.type, None)
        if backend is None or not getattr(backend, "is_available", lambda: False)():
            raise ValueError(f"--device {spec}: this machine has no {dev.type} device; use cpu or cuda")
    return str(dev)


def _check_gpus(a) -> None:
    """--gpus N: N CUDA GPUs must be there (an error, never a quiet fall back to one GPU)."""
    if a.gpus < 1:
        raise ValueError(f"--gpus must be at least 1, got {a.gpus}")
    if a.gpus == 1:
        return
    import torch

    n = torch.cuda.device_count()
    if n < a.gpus:
        raise ValueError(f"--gpus {a.gpus}: this machine has {n} CUDA GPU(s) that this PyTorch ({torch.__version__}) "
                         f"can use; run with --gpus {max(n, 1)} (or without --gpus)")
    if a.device is not None and a.device not in ("cuda", "cuda:0"):
        raise ValueError(f"--gpus {a.gpus} runs on cuda:0 .. cuda:{a.gpus - 1}; drop --device {a.device} (pick the "
                         "GPUs with CUDA_VISIBLE_DEVICES)")
    if a.lowvram:
        raise ValueError(f"--lowvram runs cond and uncond one after the other on one GPU, --gpus {a.gpus} runs them "
                         "on several GPUs at once; use one or the other")


def _preflight(a) -> None:
    """Checks of the options that nothing else checks before the weights load (all cheap)."""
    from ..camera import fov_intrinsics
    from .outputs import check_output_dir

    try:
        fov_intrinsics(16384, 16384, a.fov_deg)
    except ValueError as e:
        raise ValueError(f"--fov-deg: {e}; the default is 65") from e
    if not (math.isfinite(a.edge_rtol) and a.edge_rtol >= 0):
        raise ValueError(f"--edge-rtol must be a finite number >= 0 (0 disables), got {a.edge_rtol}")
    if a.max_points < 0:
        raise ValueError(f"--max-points must be >= 0 (0: no cap), got {a.max_points}")
    _check_gpus(a)
    if a.mesh_max_faces < 0 or a.mesh_max_faces == 1:
        raise ValueError(f"--mesh-max-faces must be 0 (no budget) or >= 2, got {a.mesh_max_faces}")
    device = _check_device(a.device)
    if device == "cpu":
        logging.getLogger(__name__).warning(
            "running on the CPU%s: the 9B model needs ~40 GB of memory and minutes per step",
            "" if a.device else " (no CUDA GPU found)",
        )
    check_output_dir(a.output_dir)


def run(a) -> list[Path]:

    from .pipeline import GenerateParams

    _preflight(a)

    if a.command == "edit":
        edit_params, image, inputs = _edit_job(a)
        return _run_with(a, lambda pipe, cb: pipe.edit(edit_params, image, callback=cb, **inputs))
    h, w = _size(a)
    params = GenerateParams(
        mode=a.command,
        prompt=a.prompt,
        steps=a.num_steps,
        cfg=a.cfg_scale,
        depth_cfg=a.depth_cfg,
        log2_alpha=getattr(a, "log2_alpha", None),
        refine_depth=getattr(a, "refine_depth", False),
        seed=a.seed,
        width=w,
        height=h,
        batch=a.batch,
        depth_xpred_exact=a.depth_xpred_exact,
        truncate_prompt=a.truncate_prompt,
        fit=getattr(a, "fit", "letterbox"),
        robust_depth=getattr(a, "robust_depth", False),
    )
    image = depth = None
    if a.command == "i2d":
        from .images import load_image

        image = load_image(a.image)
    if a.command == "d2i":
        from ..depth.files import load_depth

        depth = load_depth(a.depth, disparity=a.disparity, nan_ok=a.robust_depth)
    params.resolved(depth.shape if depth is not None else None).validate()  # fail before loading 40 GB
    if depth is not None:
        from ..depth.codec import check_depth_map

        check_depth_map(depth, robust=params.robust_depth)
    return _run_with(a, lambda pipe, cb: pipe.generate(params, image=image, depth=depth, callback=cb))


def _run_with(a, job) -> list[Path]:
    """Load the pipeline, run job(pipe, progress callback), save the run; returns the written files."""
    import torch

    from .outputs import save_run
    from .pipeline import MofoPipeline

    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32, "fp16": torch.float16, "fp8": torch.bfloat16}[a.dtype]
    pipe = MofoPipeline.from_pretrained(
        a.model,
        text_encoder=a.text_encoder,
        offline=a.offline or None,
        device=a.device,
        dtype=dtype,
        compile=a.compile,
        attention=a.attention,
        fp8=a.fp8_scaling if a.dtype == "fp8" else None,
        lowvram=a.lowvram,
        devices=[f"cuda:{i}" for i in range(a.gpus)] if a.gpus > 1 else None,
    )
    progress = _Progress(PASS_LABELS.get(a.command, ()))
    try:
        result = job(pipe, progress)
    finally:
        progress.close()
    out = save_run(
        a.output_dir, result, fov_deg=a.fov_deg, edge_rtol=a.edge_rtol, sor=a.sor, center=a.center, exr=not a.no_exr,
        max_points=a.max_points or None, mesh=a.mesh, mesh_max_faces=a.mesh_max_faces or None,
        depth_range=a.depth_range,
    )
    return [p for k, p in out.items() if k != "run_dir"]


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every cleanup (temporary files and folders) runs."""


def _on_sigterm(signum, frame):
    raise _Terminated


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input or missing files: one `error:` line, exit 2 (imported only when needed)."""
    from ..errors import MissingDependencyError, NonFiniteResultError, WeightsNotFoundError

    return ValueError, WeightsNotFoundError, MissingDependencyError, FileNotFoundError, NonFiniteResultError


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if a.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if _main_thread() else None
    try:
        if a.command == "demo":
            from .demo import run_demo

            paths = run_demo(a.output_dir, cache_dir=a.cache_dir, say=lambda s: print(s, file=sys.stderr))
        elif a.command == "batch":
            from .batch import run_batch

            return run_batch(a, say=lambda s: print(s, file=sys.stderr))  # progress lines; 1: some jobs failed
        elif a.command in ("mesh", "align", "normals"):
            from . import geometry_cli

            paths = geometry_cli.run(a, say=lambda s: print(s, file=sys.stderr))
        else:
            paths = run(a)
    except KeyboardInterrupt as e:  # also during start-up (imports), before anything is written
        kept = "finished jobs are kept; run it again to resume" if a.command == "batch" else "nothing was written"
        print(f"{'terminated' if isinstance(e, _Terminated) else 'interrupted'}: {kept}", file=sys.stderr)
        return 143 if isinstance(e, _Terminated) else 130
    except _user_errors() as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    for p in paths:
        print(p)
    return 0


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
