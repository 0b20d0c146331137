"""Offline end-to-end demo on tiny RANDOM weights: every code path of the real job, no download.

Builds a tiny random DiT, FLUX.2 autoencoder, Qwen3 text encoder and tokenizer in a cache folder (in the
release's file layout, so the real loaders run), then runs text -> RGB + depth (with refine), image ->
depth on a non-square image, and depth -> image from the written 16-bit depth PNG, writing every output
file. The pictures are noise: the weights are random. Get the real model with
`python -m mofo_core joint --prompt ...` (downloads bartduis/modality_forcing and Qwen/Qwen3-8B).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch

log = logging.getLogger(__name__)

BANNER = "*** DEMO ON TINY RANDOM WEIGHTS: the images are noise; this only proves the pipeline runs end to end ***"
_VERSION = "v2"  # bump when the tiny assets change


def ensure_demo_assets(cache_dir: str | Path) -> tuple[Path, Path]:
    """(model folder, text-encoder folder) of tiny random models, built once under cache_dir."""
    from .tiny_assets import build_tiny_autoencoder_files, build_tiny_dit_files, build_tiny_qwen3

    root = Path(cache_dir) / f"demo-{_VERSION}"
    model, text = root / "modality_forcing_tiny_random", root / "qwen3_tiny_random"
    if not (root / ".complete").is_file():
        build_tiny_dit_files(model, seed=0)
        build_tiny_autoencoder_files(model, seed=0)
        build_tiny_qwen3(text, seed=0)
        (root / ".complete").write_text("tiny random demo weights\n")
    return model, text


def run_demo(output_dir: str | Path, *, cache_dir: str | Path | None = None,
             say: Callable[[str], None] = log.warning) -> list[Path]:
    from ..depth.files import load_depth
    from .outputs import save_run
    from .pipeline import GenerateParams, MofoPipeline

    say(BANNER)
    cache_dir = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "mofo"
    model, text = ensure_demo_assets(cache_dir)
    pipe = MofoPipeline.from_pretrained(str(model), text_encoder=str(text), offline=True, device="cpu",
                                        dtype=torch.float32)
    written: list[Path] = []

    def save(result):
        result.metadata["weights_note"] = "tiny RANDOM demo weights: the images are noise"
        out = save_run(output_dir, result, edge_rtol=0.0)  # random depth is all edges; keep every point
        say(f"{result.metadata['mode']}: {out['run_dir']}")
        written.extend(p for k, p in out.items() if k != "run_dir")
        return out

    joint = pipe.generate(GenerateParams(mode="joint", prompt="a small demo room with a window", steps=4,
                                         height=64, width=96, refine_depth=True, seed=1))
    first = save(joint)
    save(pipe.generate(GenerateParams(mode="i2d", steps=4, height=64, width=64, seed=2), image=joint.rgb[0]))
    depth = load_depth(first["depth16.png"])
    save(pipe.generate(GenerateParams(mode="d2i", prompt="the same room at night", steps=4, seed=3), depth=depth))
    say(BANNER)
    return written
