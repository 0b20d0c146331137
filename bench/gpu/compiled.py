"""Phase `compile` (inside `speed`): compiled blocks: warm-up, forward, CFG step, CUDA graphs on top, and on the
first variant the price of keeping eager's bf16 roundings (`exact_casts`)."""

from __future__ import annotations

import common as C
from common import Stopwatch, rel_l2, timeit

from mofo_core.model import perf

from .context import Bench, log, raise_compile_limits


def run(b: Bench, dit, cfg, x: dict, r: dict, variant: str) -> None:
    if not b.compile_ok:
        r["compiled"] = "skipped on CPU (use --cpu-compile)"
        return
    raise_compile_limits()
    eager_out = b.fwd(dit, x)()
    c = {}
    sw = Stopwatch(b.device)
    perf.compile_blocks(dit)
    out = b.fwd(dit, x)()
    c["warmup_forward_b1_s"] = sw.s()
    sw = Stopwatch(b.device)
    b.ours_cfg_step(dit, x, 1)()
    c["warmup_cfg_b2_s"] = sw.s()
    c["rel_err_vs_eager"] = max(rel_l2(out[0].float(), eager_out[0].float()), rel_l2(out[1], eager_out[1]))
    c["forward"] = t = b.time_fwd(dit, x, cfg)
    c["cfg_step_batched"] = b.time_step(lambda s: b.ours_cfg_step(dit, x, s), b.a.cfg_steps)
    c["attention"] = getattr(dit.attn_fn, "__name__", "?")
    c.update(b.graphed(dit, cfg, x, out))
    if variant == b.a.variants[0]:  # the cost of keeping eager's bf16 roundings: compile without
        C.uncompile(dit)
        perf.compile_blocks(dit, exact_casts=False)
        o2 = b.fwd(dit, x)()
        t2 = timeit(b.fwd(dit, x), b.device, warmup=b.a.warmup, reps=b.a.reps)
        c["inexact_casts"] = dict(forward=t2, rel_err_vs_eager=max(rel_l2(o2[0].float(), eager_out[0].float()),
                                                                   rel_l2(o2[1], eager_out[1])))
        log(f"  compiled without exact casts: forward {t2['median_ms']:.1f} ms, err "
            f"{c['inexact_casts']['rel_err_vs_eager']:.1e}")
        C.uncompile(dit)
        perf.compile_blocks(dit)
    r["compiled"] = c
    log(f"{variant} compiled: warm-up {c['warmup_forward_b1_s']:.1f} + {c['warmup_cfg_b2_s']:.1f} s, forward "
        f"{t['median_ms']:.1f} ms, CFG step {c['cfg_step_batched']['median_ms']:.1f} ms, "
        f"err {c['rel_err_vs_eager']:.1e}")
