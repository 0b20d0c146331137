"""Phase `parity`: the parity fixtures (tests/fixtures, reference outputs) through every speed option on this
device: fp32 forward <= 1e-5 and bf16 <= 1e-2 relative L2, as tests/test_parity.py demands of the default."""

from __future__ import annotations

import json

import common as C
import torch
from common import rel_l2

import mofo_core as mc
from mofo_core.model import perf

from .context import Bench, errtext, log, raise_compile_limits

VARIANTS = ("flux_rgbd_9b_v1", "flux_rgbd_9b_v2")
DTYPES = ((torch.float32, "fp32", 1e-5), (torch.bfloat16, "bf16", 1e-2))  # (dtype, tag, max relative L2)


def run(b: Bench) -> None:
    from safetensors import safe_open

    fx = C.ROOT / "tests" / "fixtures"
    raise_compile_limits()
    out, worst = {}, {}
    for variant in VARIANTS:
        with safe_open(str(fx / f"{variant}_io.safetensors"), framework="pt") as f:
            meta = {k: json.loads(v) for k, v in (f.metadata() or {}).items()}
            io = {k: f.get_tensor(k).to(b.device) for k in f.keys()}
        for dtype, tag, tol in DTYPES:
            model = mc.load_dit(fx / f"{variant}_weights.safetensors", device=b.device, dtype=dtype)
            opts = ["sdpa", "auto"] + (["flash", "cudnn", "efficient"] if tag == "bf16" else ["efficient"])
            cases = [(o, False, False) for o in opts]  # (attention, compile, CUDA graphs)
            if b.compile_ok:
                cases += [("auto", True, False), ("auto", True, True)]
            for attn, comp, graphs in cases:
                name = f"{variant}/{tag}/{attn}" + ("+compile" if comp else "") + ("+graphs" if graphs else "")
                try:
                    e, used = _case(model, io, meta, tag, attn, comp, graphs)
                    out[name] = dict(max_rel_err=e, tol=tol, ok=e <= tol, kernel=used)
                    worst[tag] = max(worst.get(tag, 0.0), e)
                except Exception as ex:
                    out[name] = dict(error=errtext(ex), ok=False)
            C.uncompile(model)
            del model
    b.res["parity"] = dict(cases=out, all_ok=all(v["ok"] for v in out.values()), worst=worst)
    bad = {k: v for k, v in out.items() if not v["ok"]}
    log(f"parity on {b.device}: {len(out)} cases, worst {worst}, failing: {bad or 'none'}")


def _case(model, io: dict, meta: dict, tag: str, attn: str, comp: bool, graphs: bool) -> tuple[float, str]:
    """Largest relative L2 error over the fixture's cases (rectangular, square) and the kernel used."""
    C.uncompile(model)
    used = perf.set_attention(model, attn)
    if comp:
        perf.compile_blocks(model)
    m = perf.CudaGraphDiT(model) if graphs else model
    errs = []
    for pre, h, w in (("", meta["h"], meta["w"]), ("sq_", meta["sq"], meta["sq"])):
        if f"{pre}out_{tag}.rgb" not in io:
            continue
        r, d = m.predict(io[f"{pre}rgb"], io[f"{pre}depth"], io[f"{pre}ctx"], io[f"{pre}t_rgb"], io[f"{pre}t_depth"],
                         h, w)
        errs += [rel_l2(r.float(), io[f"{pre}out_{tag}.rgb"]), rel_l2(d, io[f"{pre}out_{tag}.depth"])]
    return max(errs), used
