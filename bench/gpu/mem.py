"""Phase `mem`: peak GPU memory of a complete joint generation (text encode with a random full-size Qwen3-8B ->
free the encoder -> DiT sampling with CFG -> VAE decode), each in a fresh process under a
`set_per_process_memory_fraction` cap: ours bf16 (24 GiB, and lowvram), ours fp8 (16 GiB), the reference runner.

The text encoder and decoder have random weights (common.random_qwen, common.random_decoder: the core's
`build_autoencoder`); memory and timing do not depend on their values.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import common as C
import torch
from common import GiB

import mofo_core as mc

from .context import PROMPT, Bench, log
from .load import ensure_checkpoint

RUNS = (("bf16_cap24", ["--mem-mode", "bf16", "--cap", "24"]),
        ("fp8_cap16", ["--mem-mode", "fp8", "--cap", "16"]),
        ("reference_uncapped", ["--mem-mode", "ref", "--cap", "0"]))


def run(b: Bench) -> None:
    ensure_checkpoint(b)
    res = b.res.setdefault("mem", {})
    runs = [r for r in RUNS if r[1][1] in b.a.mem_modes and (r[1][1] != "ref" or b.fr is not None)]
    for name, extra in runs:
        res[name] = b.child(extra)
        log(f"mem {name}: {res[name]}")
        b.save()
        if name == "bf16_cap24" and b.cuda:  # lowvram: sequential CFG, DiT offloaded
            res["bf16_cap24_lowvram"] = b.child(extra + ["--lowvram"])
            log(f"mem bf16_cap24_lowvram: {res['bf16_cap24_lowvram']}")


def child(a, device: torch.device) -> dict:
    """One complete joint generation under a memory cap: ours (pipeline) or the reference runner."""
    ckpt_dir = Path(a.ckpt_dir)
    variant = json.loads((ckpt_dir / "config.json").read_text())["variant"]
    res: dict = dict(mode=a.mem_mode, cap_gib=a.cap, steps=a.mem_steps, lowvram=a.lowvram)
    cuda = device.type == "cuda"
    if cuda and a.cap:
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(a.cap * GiB / total, device.index or 0)
    phases: dict = {}

    def mark(name: str) -> None:
        """Peak memory since the last mark, under `name`."""
        if cuda:
            torch.cuda.synchronize(device)
            phases[name] = C.gpu_mem(device)
            torch.cuda.reset_peak_memory_stats(device)

    sw = time.perf_counter()
    try:
        if a.mem_mode == "ref":
            _reference(a, device, ckpt_dir, variant, res, mark)
        else:
            _ours(a, device, ckpt_dir, res, mark)
        mark("decode" if a.mem_mode != "ref" else "generate")
        res["ok"] = True
    except torch.cuda.OutOfMemoryError as e:
        res["ok"] = False
        res["error"] = f"OOM: {str(e)[:300]}"
        mark("oom")
    res["phases"] = phases
    if cuda:
        res["peak_reserved_gib"] = max(p["peak_reserved_gib"] for p in phases.values())
        res["peak_allocated_gib"] = max(p["peak_allocated_gib"] for p in phases.values())
        res["pass"] = bool(res["ok"] and (not a.cap or res["peak_reserved_gib"] <= a.cap))
    else:
        res["pass"] = res["ok"]
    res["wall_s"] = time.perf_counter() - sw
    return res


def _size(a) -> int:
    return 64 if a.tiny else 512


def _reference(a, device, ckpt_dir: Path, variant: str, res: dict, mark) -> None:
    """The reference runner with its DiT loaded its way, a random causal LM and our random decoder's weights."""
    from flux_rgbd.runner import FluxRGBDRunner

    fr = C.import_reference(Path(a.ref).resolve())
    cfg = mc.config.tiny(variant, context_in_dim=48) if a.tiny else mc.VARIANTS[variant]
    model = C.ref_load(fr, ckpt_dir / "model.safetensors", cfg, variant, a.tiny, device)
    with torch.device("meta"):
        _, dcfg, scfg = fr.factories.VARIANTS[variant]()
    lm = C.random_qwen(a.tiny, 28 if a.tiny else 36, device, causal_lm=True)
    dec = C.ref_decoder(fr, a.tiny, device)
    emb = C.ref_embedder(fr, C.tiny_tokenizer(), lm, device)
    size = _size(a)
    runner = FluxRGBDRunner(model, dec, emb, dcfg, scfg, device=str(device), img_hw=(size, size))
    res["resident_before_generate_gib"] = C.gpu_mem(device).get("allocated_gib")
    mark("load")
    t = time.perf_counter()
    out = runner.generate(PROMPT, num_steps=a.mem_steps, cfg_scale=4.0, seed=0, log2_alpha=5.0)
    res["generate_s"] = time.perf_counter() - t
    res["rgb_shape"] = list(out["rgb"].shape)


def _ours(a, device, ckpt_dir: Path, res: dict, mark) -> None:
    """Our pipeline from the checkpoint, the text encoder and decoder swapped for random ones, memory marked
    at each stage boundary (text encoder built, text encoded, DiT loaded, sampling done, decoded)."""
    import mofo_core.app.pipeline as pl
    from mofo_core.encoders.text_encoder import QwenTextEmbedder

    cuda = device.type == "cuda"
    unused = ckpt_dir / "unused"
    files = pl.ModelFiles(dit=ckpt_dir / "model.safetensors", ae_encoder=unused, ae_decoder=unused,
                          text_encoder=C.TINY_QWEN, config_json=ckpt_dir / "config.json")  # tokenizer only
    pipe = pl.MofoPipeline(files, device=device, dtype=torch.bfloat16, attention="auto",
                           fp8="row" if a.mem_mode == "fp8" else None, lowvram=a.lowvram)
    # the decoder is built on the host now and moved to the device when the pipeline asks for it (as a load would)
    host_ae = C.random_decoder(a.tiny, torch.device("cpu"))
    pipe._text = QwenTextEmbedder(C.tiny_tokenizer(), C.random_qwen(a.tiny, 27, device))
    mark("text_encoder_built")
    holder = {}

    def autoencoder(*, encoder: bool):
        if "ae" not in holder:
            mark("sampling")
            holder["ae"] = host_ae.to(device)
        return holder["ae"]

    pipe.autoencoder = autoencoder
    enc = pipe.encode_text

    def encode_text(*args, **kw):
        out = enc(*args, **kw)
        mark("text_encode")
        if cuda:
            res["allocated_after_text_release_gib"] = torch.cuda.memory_allocated(device) / GiB
        return out

    pipe.encode_text = encode_text
    orig_sample = pl.sample
    first = {}

    def sample(*args, **kw):
        if not first:
            first[1] = True
            mark("dit_load")
        return orig_sample(*args, **kw)

    pl.sample = sample
    size = _size(a)
    t = time.perf_counter()
    out = pipe.generate(pl.GenerateParams(mode="joint", prompt=PROMPT, steps=a.mem_steps, seed=0, width=size,
                                          height=size))
    res["generate_s"] = time.perf_counter() - t
    res["rgb_shape"] = list(out.rgb.shape)
    res["depth_finite"] = bool(torch.isfinite(torch.from_numpy(out.depth)).all())
