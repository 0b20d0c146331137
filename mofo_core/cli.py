"""Command line: `python -m mofo_core {joint,i2d,d2i,edit,demo} ...` (the reference scripts' options, plus more).

Prints the written paths. Bad input gives one `error:` line and exit status 2; nothing is written then.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .config import DEFAULT_FOV_DEG

DTYPES = ("bf16", "fp32", "fp16", "fp8")


def _common(p: argparse.ArgumentParser, *, cfg_default: float | None) -> None:
    p.add_argument("--prompt", default="", help="scene description (required for joint)")
    p.add_argument("--model", default="bartduis/modality_forcing", help="folder with the release files, or a repo id")
    p.add_argument("--text-encoder", default="Qwen/Qwen3-8B", help="Qwen3-8B folder or repo id")
    p.add_argument("--num-steps", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cuda, cuda:1, cpu ... (default: cuda if available)")
    p.add_argument("--resolution", type=int, default=None, help="square size, a multiple of 16 (default 512)")
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--height", type=int, default=None)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument(
        "--dtype",
        choices=DTYPES,
        default="bf16",
        help="DiT body dtype (depth head stays fp32); fp8: e4m3 block weights on the fp8 matrix units, "
        "bf16 elsewhere (~12 GiB instead of 22)",
    )
    p.add_argument(
        "--fp8-scaling",
        choices=("row", "tensor"),
        default="row",
        help="with --dtype fp8: one scale per output channel and per token, or one per matrix",
    )
    p.add_argument(
        "--attention",
        choices=("auto", "sdpa", "flash", "cudnn", "efficient"),
        default="auto",
        help="attention kernel (auto: the fastest measured one for the GPU, PyTorch's choice on CPU)",
    )
    p.add_argument(
        "--lowvram",
        action="store_true",
        help="lower peak GPU memory: cond/uncond one after the other, DiT freed for the VAE decode",
    )
    p.add_argument("--output-dir", default="./outputs")
    p.add_argument("--cfg-scale", type=float, default=cfg_default, help="guidance for the RGB (and depth) head")
    p.add_argument("--depth-cfg", type=float, default=None, help="guidance for the depth head (default: --cfg-scale)")
    p.add_argument("--fov-deg", type=float, default=DEFAULT_FOV_DEG,
                   help="horizontal field of view for the point cloud")
    p.add_argument("--sor", action="store_true", help="statistical outlier removal on the point cloud")
    p.add_argument("--edge-rtol", type=float, default=0.04, help="drop depth-edge pixels (0 disables)")
    p.add_argument(
        "--center",
        choices=("camera", "median"),
        default="camera",
        help="camera at the origin (default) or median-centred cloud (the reference)",
    )
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
    p.add_argument("--verbose", action="store_true")


class _DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """--help shows each default, except where the help text already says it or there is none to show."""

    def _get_help_string(self, action):
        h = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in h:
            return h
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    ap = argparse.ArgumentParser(prog="python -m mofo_core", description="Modality Forcing: RGB + depth generation")
    ap.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)
    HELP = _DefaultsHelp
    j = sub.add_parser("joint", formatter_class=HELP, help="text -> RGB + depth + point cloud")
    _common(j, cfg_default=4.0)
    j.add_argument("--log2-alpha", type=float, default=5.0, help="depth/RGB tilt; > 0 resolves RGB first")
    j.add_argument("--refine-depth", action="store_true", help="second pass: image -> depth on the generated RGB")
    i = sub.add_parser("i2d", formatter_class=HELP, help="image -> depth + point cloud (any aspect ratio)")
    _common(i, cfg_default=1.0)
    i.add_argument("--image", required=True)
    i.add_argument("--fit", choices=("letterbox", "stretch"), default="letterbox")
    d = sub.add_parser("d2i", formatter_class=HELP, help="depth -> image")
    _common(d, cfg_default=4.0)
    d.add_argument("--depth", required=True, help=".npy, 16-bit PNG/TIFF or EXR depth map")
    d.add_argument("--disparity", action="store_true", help="the map is disparity (near = bright), not depth")
    d.add_argument("--robust-depth", action="store_true", help="normalise over valid pixels only (holes, zeros)")
    e = sub.add_parser("edit", formatter_class=HELP, help="masked RGB-D editing: inpaint, outpaint, restyle, depth-fix")
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
    e.add_argument("--depth-denoise", type=float, default=1.0)
    e.add_argument("--log2-alpha", type=float, default=5.0, help="RGB + depth regenerated: depth/RGB tilt")
    e.add_argument("--disparity", action="store_true", help="--depth is disparity (near = bright)")
    e.add_argument("--robust-depth", action="store_true", help="normalise --depth over valid pixels only")
    demo = sub.add_parser("demo", formatter_class=HELP,
                          help="offline end-to-end run on tiny RANDOM weights (writes every output file)")
    demo.add_argument("--output-dir", default="./mofo_outputs/demo")
    demo.add_argument(
        "--cache-dir", default=None, help="where the tiny random models are built (default ~/.cache/mofo)"
    )
    demo.add_argument("--verbose", action="store_true")
    return ap


def _size(a) -> tuple[int | None, int | None]:
    if a.resolution is not None:
        return a.height or a.resolution, a.width or a.resolution
    return a.height, a.width


class _Progress:
    """A step bar created at the first step (an error before sampling prints nothing but the error)."""

    def __init__(self):
        self.bar = None

    def __call__(self, info):
        from tqdm.auto import tqdm

        if self.bar is None or self.bar.total != info.steps or info.step == 0:
            self.close()
            self.bar = tqdm(total=info.steps, unit="step", file=sys.stderr)
        self.bar.update(1)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _edit_job(a):
    """(params, inputs) of `edit`, checked before any weights load."""
    from .edit import EditParams, check_edit
    from .images import load_image
    from .masks import load_mask

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
        from .depth_io import load_depth

        inputs["depth"] = load_depth(a.depth, disparity=a.disparity)
    for key, path in (("mask", a.mask), ("depth_mask", a.depth_mask)):
        if path:
            inputs[key] = load_mask(path)
    image = load_image(a.image)
    check_edit(params, image, **inputs)
    return params, image, inputs


def run(a) -> list[Path]:

    from .pipeline import GenerateParams

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
        from .depth_io import load_depth

        depth = load_depth(a.depth, disparity=a.disparity)
    params.resolved(depth.shape if depth is not None else None).validate()  # fail before loading 40 GB
    return _run_with(a, lambda pipe, cb: pipe.generate(params, image=image, depth=depth, callback=cb))


def _check_cheap(a) -> None:
    """Everything that can be checked in a millisecond, before 40 GB of weights load (ValueError names the fix)."""
    import math
    import tempfile

    import torch

    if not (math.isfinite(a.fov_deg) and 0 < a.fov_deg < 180):
        raise ValueError(f"--fov-deg must be between 0 and 180 degrees, got {a.fov_deg}")
    if not (math.isfinite(a.edge_rtol) and a.edge_rtol >= 0):
        raise ValueError(f"--edge-rtol must be a finite number >= 0 (0 disables the edge filter), got {a.edge_rtol}")
    out = Path(a.output_dir).absolute()
    anc = next(p for p in (out, *out.parents) if p.exists())  # created only when the run is saved
    try:
        if not anc.is_dir():
            raise NotADirectoryError(f"{anc} is a file")
        with tempfile.TemporaryFile(dir=anc):
            pass
    except OSError as e:
        raise ValueError(f"cannot write to the output folder {out} ({e.strerror or e}); choose another "
                         "--output-dir") from e
    if a.device:
        dev = torch.device(a.device)
        if dev.type == "cuda" and (not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count()):
            have = f"{torch.cuda.device_count()} CUDA device(s)" if torch.cuda.is_available() else "no CUDA device"
            raise ValueError(f"--device {a.device}: this machine has {have}; use --device cpu or leave it out")
        if dev.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError(f"--device {a.device}: MPS is not available here; use --device cpu or leave it out")


def _run_with(a, job) -> list[Path]:
    """Load the pipeline, run job(pipe, progress callback), save the run; returns the written files."""
    import torch

    from .outputs import save_run
    from .pipeline import MofoPipeline

    _check_cheap(a)
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
    )
    progress = _Progress()
    try:
        result = job(pipe, progress)
    finally:
        progress.close()
    out = save_run(
        a.output_dir, result, fov_deg=a.fov_deg, edge_rtol=a.edge_rtol, sor=a.sor, center=a.center, exr=not a.no_exr
    )
    return [p for k, p in out.items() if k != "run_dir"]


def _terminate(signum, frame):
    raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C: no half-written run folder is left behind


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    logging.basicConfig(
        level=logging.INFO if a.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    from .depth_io import MissingDependencyError
    from .loading import CheckpointError
    from .pipeline import NonFiniteResultError
    from .weights import WeightsNotFoundError

    try:
        if a.command == "demo":
            from .demo import run_demo

            paths = run_demo(a.output_dir, cache_dir=a.cache_dir, say=lambda s: print(s, file=sys.stderr))
        else:
            paths = run(a)
    except (ValueError, WeightsNotFoundError, CheckpointError, MissingDependencyError, FileNotFoundError,
            NonFiniteResultError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        return 130
    for p in paths:
        print(p)
    return 0
