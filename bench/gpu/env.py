"""Phase `env`: versions, the device, and its two ceilings (METHOD.md): one big bf16 GEMM and a device copy."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone

import common as C
import torch
from common import GiB, timeit

from mofo_core.model import fp8 as F8
from mofo_core.model import perf

from .context import Bench, log

N = 8192  # GEMM side: (N, N) @ (N, N), 2 N^3 FLOPs
COPY_BYTES = 1 << 30


def run(b: Bench) -> None:
    dev = b.device
    e = dict(date=datetime.now(timezone.utc).isoformat(timespec="seconds"), torch=torch.__version__,
             cuda=torch.version.cuda, device=str(dev), python=sys.version.split()[0])
    try:
        e["git_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                         cwd=C.ROOT).stdout.strip()
    except OSError:
        pass
    if b.cuda:
        p = torch.cuda.get_device_properties(dev)
        e.update(gpu=p.name, capability=f"{p.major}.{p.minor}", sms=p.multi_processor_count,
                 memory_gib=round(p.total_memory / GiB, 2), cudnn=torch.backends.cudnn.version())
        try:
            import torch.nn.attention as tna

            e["flash_attention_impls"] = tna.list_flash_attention_impls()
        except Exception as ex:  # older torch
            e["flash_attention_impls"] = repr(ex)
        e["auto_attention"] = perf.resolve_attention("auto", dev, torch.bfloat16)
        e["fp8_native"] = F8.fp8_supported(dev)
        e.update(ceilings(dev))
    b.res["env"] = e
    log(json.dumps(e))


def ceilings(dev: torch.device) -> dict:
    """bf16 and fp8 GEMM TFLOP/s at N x N x N, device-to-device copy TB/s (read + write of 1 GiB)."""
    out = {}
    a = torch.randn(N, N, device=dev, dtype=torch.bfloat16)  # (N, N)
    t = timeit(lambda: a @ a, dev, warmup=3, reps=10)
    out["bf16_gemm_tflops"] = 2 * N**3 / (t["median_ms"] * 1e-3) / 1e12
    a8 = a.to(torch.float8_e4m3fn)
    one = torch.ones((), device=dev)
    try:
        t = timeit(lambda: torch._scaled_mm(a8, a8.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16),
                   dev, warmup=3, reps=10)
        out["fp8_gemm_tflops"] = 2 * N**3 / (t["median_ms"] * 1e-3) / 1e12
    except RuntimeError as ex:
        out["fp8_gemm_tflops"] = repr(ex)
    src = torch.empty(COPY_BYTES, dtype=torch.uint8, device=dev)
    dst = torch.empty_like(src)
    t = timeit(lambda: dst.copy_(src), dev, warmup=2, reps=10)
    out["copy_tbps"] = 2 * COPY_BYTES / (t["median_ms"] * 1e-3) / 1e12
    return out  # the tensors are freed on return
