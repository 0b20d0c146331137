"""Phase `fp8` (inside `speed`, first variant): fp8 copies of the bf16 DiT, their error against bf16 (one forward
and a --sample-steps joint sample) and speed (eager, compiled, CFG step, CUDA graphs)."""

from __future__ import annotations

import common as C
from common import GiB, Stopwatch, rel_l2

from mofo_core.model import fp8 as F8
from mofo_core.model import perf

from .context import Bench, free, log, raise_compile_limits

# (scaling, fast accumulation, full): the library default (row, fast) gets compile + CFG step + graphs
PLAN = (("row", True, True), ("row", False, False), ("tensor", True, False))


def _err(o, ref_out) -> dict:
    return dict(rgb=rel_l2(o[0].float(), ref_out[0].float()), depth=rel_l2(o[1], ref_out[1]))


def run(b: Bench, dit, cfg, x: dict) -> None:
    res = b.res.setdefault("fp8", {})
    res["native"] = F8.fp8_supported(b.device)
    was_compiled = any(getattr(m, "_compiled_call_impl", None) is not None for m in dit.modules())
    C.uncompile(dit)
    ref_out = b.fwd(dit, x)()  # bf16 eager, auto attention
    steps = b.a.sample_steps
    base = b.ours_cfg_step(dit, x, steps)()  # bf16 eager joint sample, same seed / inputs
    for scaling, fast, full in (p for p in PLAN if p[0] in b.a.fp8_scalings):
        key = f"{scaling}_{'fast' if fast else 'exact'}_accum"
        m8 = F8.quantize_dit(C.shared_copy(dit), scaling=scaling, fast_accum=fast)
        s = res[key] = {}
        s["gib_weights"] = sum(p.numel() * p.element_size() for p in m8.parameters()) / GiB
        s["forward_rel_err_vs_bf16"] = _err(b.fwd(m8, x)(), ref_out)
        if full:
            s["eager_forward"] = t = b.time_fwd(m8, x, cfg)
            log(f"fp8 {key}: eager {t['median_ms']:.1f} ms, err {s['forward_rel_err_vs_bf16']}")
        if b.compile_ok:
            s["compiled"] = _compiled(b, m8, cfg, x, ref_out, key, full)
        if full or scaling == "tensor":  # a joint sample against the bf16 one (eager both)
            got = b.ours_cfg_step(m8, x, steps)()
            s[f"sample{steps}_rel_err_vs_bf16"] = dict(rgb=rel_l2(got[0], base[0]), depth=rel_l2(got[1], base[1]))
            log(f"fp8 {key}: {steps}-step sample err {s[f'sample{steps}_rel_err_vs_bf16']}")
        del m8
        free()
    # modulation heads in fp8 too (error only)
    m8 = F8.quantize_dit(C.shared_copy(dit), include_modulation=True)
    res["row_fast_incl_modulation_forward_rel_err"] = _err(b.fwd(m8, x)(), ref_out)
    del m8
    free()
    if b.compile_ok:  # compiled bf16 vs eager over the same sample
        perf.compile_blocks(dit)
        got = b.ours_cfg_step(dit, x, steps)()
        res[f"bf16_compiled_sample{steps}_rel_err_vs_eager"] = dict(rgb=rel_l2(got[0], base[0]),
                                                                    depth=rel_l2(got[1], base[1]))
        if not was_compiled:
            C.uncompile(dit)


def _compiled(b: Bench, m8, cfg, x: dict, ref_out, key: str, full: bool) -> dict:
    """Compile the fp8 model's blocks: warm-up, error, forward; with `full` its CFG step and CUDA graphs too."""
    raise_compile_limits()
    sw = Stopwatch(b.device)
    perf.compile_blocks(m8)
    o = b.fwd(m8, x)()
    c = {"warmup_forward_b1_s": sw.s()}
    c["forward_rel_err_vs_bf16"] = _err(o, ref_out)
    c["forward"] = t = b.time_fwd(m8, x, cfg)
    if full:
        c["cfg_step_batched"] = b.time_step(lambda st, m8=m8: b.ours_cfg_step(m8, x, st), b.a.cfg_steps)
        c.update(b.graphed(m8, cfg, x, o))
    log(f"fp8 {key} compiled: forward {t['median_ms']:.1f} ms, err {c['forward_rel_err_vs_bf16']}, "
        f"CFG step {c.get('cfg_step_batched', {}).get('median_ms')}")
    C.uncompile(m8)
    return c
