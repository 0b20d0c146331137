"""Phase `load`: cold and warm loads of a full-size checkpoint from local disk: ours (`load_dit`, threaded and
safe_open readers, fp8 while streaming) against the reference runner's path. Also the checkpoint itself (written
by `speed` from its random DiT, or here when `speed` did not run) which the `mem` phase reads too."""

from __future__ import annotations

import json
from pathlib import Path

import common as C
import torch
from common import Stopwatch

import mofo_core as mc
from mofo_core.atomic import atomic_path

from .context import Bench, free, log


def ckpt_path(b: Bench) -> Path:
    return b.ckpt_dir / "model.safetensors"


def write_checkpoint(b: Bench, dit, variant: str) -> None:
    """model.safetensors ('dit.' keys, all bf16 as released) + config.json {"variant"}; atomic writes."""
    b.ckpt_dir.mkdir(parents=True, exist_ok=True)
    sw = Stopwatch(b.device)
    tensors = {f"dit.{k}": v.to(torch.bfloat16) if v.dtype == torch.float32 else v
               for k, v in dit.state_dict().items()}  # the release file is all bf16
    with atomic_path(ckpt_path(b)) as tmp:
        n = C.write_safetensors_streamed(tmp, tensors, {"format": "pt"})
    with atomic_path(b.ckpt_dir / "config.json") as tmp:
        tmp.write_text(json.dumps({"variant": variant}))
    b.res["checkpoint"] = dict(path=str(ckpt_path(b)), gb=n / 1e9, write_s=sw.s(), variant=variant)
    log(f"checkpoint written: {n / 1e9:.2f} GB in {b.res['checkpoint']['write_s']:.1f} s")


def ensure_checkpoint(b: Bench) -> str:
    """The checkpoint's variant, writing one of the first --variants (random weights) if there is none."""
    variant = b.a.variants[0]
    if not ckpt_path(b).is_file():
        dit = C.random_dit(b.cfg(variant), b.device)
        write_checkpoint(b, dit, variant)
        del dit
        free()
    return json.loads((b.ckpt_dir / "config.json").read_text())["variant"]


def run(b: Bench) -> None:
    variant = ensure_checkpoint(b)
    cfg = b.cfg(variant)
    ck = ckpt_path(b)
    res = b.res.setdefault("load", {"runs": []})
    res["page_cache_drop"] = C.drop_page_cache(ck)
    if not b.tiny:
        res["disk_read_gbps_1thread"] = C.disk_read_gbps(ck)

    def ours(reader: str, fp8: str | None = None):
        return lambda: mc.load_dit(ck, device=b.device, dtype=torch.bfloat16, reader=reader, fp8=fp8)

    def ref():
        return C.ref_load(b.fr, ck, cfg, variant, b.tiny, b.device)

    plan = [("ours", ours("threaded"), True), ("ref", ref, True), ("ours_safe_open", ours("safetensors"), True),
            ("ours", ours("threaded"), True), ("ref", ref, True), ("ours_fp8_stream", ours("threaded", "tensor"), True),
            ("ours", ours("threaded"), False), ("ref", ref, False)]  # (loader, fn, cold)
    for name, fn, cold in plan:
        if name == "ref" and b.fr is None:
            continue
        if cold:
            C.drop_page_cache(ck)
        if b.cuda:
            torch.cuda.reset_peak_memory_stats(b.device)
        sw = Stopwatch(b.device)
        m = fn()
        s = sw.s()
        res["runs"].append(dict(loader=name, cold=cold, s=s, **C.gpu_mem(b.device)))
        log(f"load {name} {'cold' if cold else 'warm'}: {s:.2f} s {C.gpu_mem(b.device)}")
        del m
        free()
    for name in dict.fromkeys(r["loader"] for r in res["runs"]):  # first-run order
        for cold in (True, False):
            v = sorted(r["s"] for r in res["runs"] if r["loader"] == name and r["cold"] == cold)
            if v:
                res[f"{name}_{'cold' if cold else 'warm'}_best_s"] = v[0]
