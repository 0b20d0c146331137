"""Phase `profile` (inside `speed`, first variant): one forward under torch.profiler for bf16 eager, bf16
compiled and fp8 compiled; kernel tables go to OUT/profiles.txt, device time per kernel class to results.json."""

from __future__ import annotations

import common as C
from common import Stopwatch

from mofo_core.model import fp8 as F8
from mofo_core.model import perf

from .context import Bench, log

ATTENTION = ("fmha", "flash", "sdpa", "attention")
GEMM = ("gemm", "cutlass", "xmma", "nvjet", "cublas", "f8f8", "scaled_mm")


def kernel_class(name: str) -> str:
    n = name.lower()
    if n.startswith("triton"):
        return "triton_fused"
    if any(t in n for t in ATTENTION):
        return "attention"
    if any(t in n for t in GEMM):
        return "gemm"
    return "other"


def run(b: Bench, dit, x: dict) -> None:
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if b.cuda else [])
    summary = b.res.setdefault("profile", {})
    runs = [("bf16 eager (auto attention)", dit, False)]
    if b.compile_ok:
        runs.append(("bf16 compiled", dit, True))
    m8 = None
    if "fp8" in b.a.phases and b.compile_ok:
        m8 = F8.quantize_dit(C.shared_copy(dit))
        runs.append(("fp8 (row, fast accum) compiled", m8, True))
    for name, model, comp in runs:
        C.uncompile(model)
        if comp:
            perf.compile_blocks(model)
        f = b.fwd(model, x)
        f()
        f()
        C.sync(b.device)
        with profile(activities=acts) as prof:
            sw = Stopwatch(b.device)
            f()
            wall = sw.s()
        ka = prof.key_averages()
        key = "self_device_time_total" if hasattr(ka[0], "self_device_time_total") else "self_cuda_time_total"
        try:
            table = ka.table(sort_by=key, row_limit=18, max_name_column_width=70)
        except Exception:
            table = ka.table(sort_by="self_cpu_time_total", row_limit=18)
        b.profiles.append(f"### {name}: one forward, wall {wall * 1e3:.1f} ms\n{table}")
        cats = {"gemm": 0.0, "attention": 0.0, "triton_fused": 0.0, "other": 0.0}  # microseconds
        for e in prof.events():  # kernels only (device-side events): no double counting with operators
            if str(getattr(e, "device_type", "")).split(".")[-1] != "CUDA":
                continue
            cats[kernel_class(e.name)] += e.time_range.elapsed_us()
        busy = sum(cats.values()) / 1e3
        summary[name] = dict(wall_ms=wall * 1e3, gpu_busy_ms=busy, **{f"{k}_ms": v / 1e3 for k, v in cats.items()})
        log(f"profile {name}: {summary[name]}")
        C.uncompile(model)
    del m8
