"""Phase `speed`, per variant: eager forward for each attention kernel, the joint CFG step (batched and
sequential), CUDA graphs, the reference on the same tensors. On the first variant it also runs the `compile`,
`fp8` and `profile` phases (when asked) and writes the checkpoint the `load` phase reads.

The DiT has random weights (common.random_dit, the core's `build_dit`): timing does not depend on their values.
"""

from __future__ import annotations

import common as C
from common import Stopwatch, rel_l2, timeit

from mofo_core.model import perf

from . import compiled, fp8, load, profiling
from .context import BACKENDS, Bench, errtext, free, log


def run(b: Bench) -> None:
    for vi, variant in enumerate(b.a.variants):
        b.res.setdefault("speed", {})[variant] = r = {}
        cfg = b.cfg(variant)
        sw = Stopwatch(b.device)
        dit = C.random_dit(cfg, b.device)
        r["build_s"] = sw.s()
        r["params"] = sum(p.numel() for p in dit.parameters())
        r["flops_per_forward"] = b.flops(cfg)
        x = b.inputs(cfg)
        # 1. eager forward per attention kernel
        outs, eager = {}, {}
        for be in BACKENDS:
            try:
                dit.attn_fn = perf.attention_fn(be)
                outs[be] = b.fwd(dit, x)()
                eager[be] = b.time_fwd(dit, x, cfg)
            except Exception as ex:
                eager[be] = dict(error=errtext(ex))
        base = outs["sdpa"]
        for be, o in outs.items():
            eager[be]["rel_err_vs_sdpa"] = max(rel_l2(o[0].float(), base[0].float()), rel_l2(o[1], base[1]))
        r["eager_forward"] = eager
        ok = {k: v["median_ms"] for k, v in eager.items() if "median_ms" in v}
        r["fastest_backend"] = min(ok, key=ok.get)
        auto = perf.set_attention(dit, "auto")
        r["auto_backend"] = auto
        log(f"{variant} eager forward: " + ", ".join(f"{k} {v:.1f} ms" for k, v in ok.items()) + f"; auto={auto}")
        # 2. CFG step (auto kernel, batched) and the default kernel, sequential for reference
        k = b.a.cfg_steps
        r["cfg_step_batched"] = b.time_step(lambda s, m=dit, x=x: b.ours_cfg_step(m, x, s), k)
        dit.attn_fn = perf.attention_fn("sdpa")
        r["cfg_step_batched_sdpa"] = b.time_step(lambda s, m=dit, x=x: b.ours_cfg_step(m, x, s), k)
        if vi == 0:
            r["cfg_step_sequential_sdpa"] = b.time_step(lambda s, m=dit, x=x: b.ours_cfg_step(m, x, s, False), k)
        perf.set_attention(dit, auto)
        log(f"{variant} CFG step batched ({auto}) {r['cfg_step_batched']['median_ms']:.1f} ms")
        if vi == 0:
            r["eager_graphs"] = b.graphed(dit, cfg, x, b.fwd(dit, x)())
        # 3. the reference on the same tensors
        if b.fr is not None:
            reference(b, dit, cfg, variant, x, base, r)
        # 4. compiled blocks (and fp8 for the first variant)
        if "compile" in b.a.phases and (vi == 0 or not b.a.compile_first_only):
            compiled.run(b, dit, cfg, x, r, variant)
        if "fp8" in b.a.phases and vi == 0:
            fp8.run(b, dit, cfg, x)
        if "profile" in b.a.phases and vi == 0:
            profiling.run(b, dit, x)
        if "load" in b.a.phases and vi == 0:
            load.write_checkpoint(b, dit, variant)
        del dit, outs, base
        free()
        b.save()


def reference(b: Bench, dit, cfg, variant: str, x: dict, ours_out, r: dict) -> None:
    """The reference's FluxRGBD sharing our weights: forward parity and time, its CFG step, sample parity."""
    ref = C.ref_from_ours(b.fr, dit, variant, b.tiny)

    def ref_fwd(ref=ref):
        return ref(img=x["rgb"], timesteps=x["t"], ctx=x["ctx"], img_height=b.grid, img_width=b.grid,
                   depth=x["depth"], depth_timesteps=x["td"])

    o = ref_fwd()
    rr = {"parity_rel_err_vs_ours_sdpa": max(rel_l2(o[0].float(), ours_out[0].float()), rel_l2(o[1], ours_out[1]))}
    t = timeit(ref_fwd, b.device, warmup=b.a.warmup, reps=b.a.reps)
    rr["eager_forward"] = t | dict(tflops=b.tflops(cfg, t["median_ms"]))
    rr["cfg_step"] = b.time_step(lambda s, ref=ref: b.ref_cfg_step(ref, x, s), b.a.cfg_steps)
    # joint sample parity at full size (ours batched CFG, sdpa) over cfg_steps steps
    theirs = b.ref_cfg_step(ref, x, b.a.cfg_steps)()
    fn = dit.attn_fn
    dit.attn_fn = perf.attention_fn("sdpa")
    mine = b.ours_cfg_step(dit, x, b.a.cfg_steps)()
    dit.attn_fn = fn
    rr["sample_parity_rel_err"] = dict(rgb=rel_l2(mine[0], theirs[0]), depth=rel_l2(mine[1], theirs[1]))
    r["reference"] = rr
    log(f"reference forward {t['median_ms']:.1f} ms, CFG step {rr['cfg_step']['median_ms']:.1f} ms, "
        f"parity {rr['parity_rel_err_vs_ours_sdpa']:.2e}")
    del ref
