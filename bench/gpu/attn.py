"""Phase `attn`: the attention kernels alone at the model's shape, (B, 32, 2560, 128) bf16, B = 1 and 2."""

from __future__ import annotations

import torch
from common import Stopwatch, rel_l2, timeit

from mofo_core.model import perf

from .context import BACKENDS, Bench, errtext, log


def _entry(ms: float, flop: int, o, ref, **extra) -> dict:
    return dict(ms=ms, tflops=flop / (ms * 1e-3) / 1e12, rel_err_vs_fp32=rel_l2(o, ref), **extra)


def run(b: Bench) -> None:
    dev = b.device
    L = b.n_txt + 2 * b.grid * b.grid  # text + RGB + depth tokens
    heads, d = (2, 32) if b.tiny else (32, 128)
    out = {}
    for batch in (1, 2):
        g = torch.Generator(device=dev).manual_seed(batch)
        q, k, v = (torch.randn(batch, heads, L, d, device=dev, generator=g, dtype=torch.bfloat16)
                   for _ in range(3))  # (B, heads, L, d)
        ref = torch.nn.functional.scaled_dot_product_attention(q.float(), k.float(), v.float())
        flop = 4 * batch * heads * L * L * d  # QK^T and PV

        row = {}
        for be in BACKENDS:
            try:
                fn = perf.attention_fn(be)
                o = fn(q, k, v)
                t = timeit(lambda fn=fn, q=q, k=k, v=v: fn(q, k, v), dev, warmup=5, reps=20)
                row[be] = _entry(t["median_ms"], flop, o, ref)
            except Exception as ex:
                row[be] = dict(error=errtext(ex))
        if b.cuda and not b.tiny:
            try:
                from torch.nn.attention.flex_attention import flex_attention

                flex = torch.compile(flex_attention, dynamic=False)
                sw = Stopwatch(dev)
                o = flex(q, k, v)
                warm = sw.s()
                t = timeit(lambda f=flex, q=q, k=k, v=v: f(q, k, v), dev, warmup=5, reps=20)
                row["flex(compiled)"] = _entry(t["median_ms"], flop, o, ref, compile_s=warm)
            except Exception as ex:
                row["flex(compiled)"] = dict(error=errtext(ex))
        out[f"B{batch}"] = row
        log(f"attention B={batch}: " + ", ".join(f"{k}={v.get('ms', 'x'):.3}" if "ms" in v else f"{k}=err"
                                                 for k, v in row.items()))
    b.res["attn_micro"] = out
