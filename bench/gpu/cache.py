"""Phase `cache`: compile warm-up in a fresh process whose inductor on-disk cache the `speed` phase filled.

The DiT has random weights (common.random_dit, the core's `build_dit`): compile and run times do not depend on
their values.
"""

from __future__ import annotations

import os

import common as C
import torch
from common import Stopwatch

from mofo_core.model import perf

from .context import Bench, log, raise_compile_limits


def run(b: Bench) -> None:
    if not b.compile_ok:
        b.res["compile_cache"] = "skipped on CPU"
        return
    b.res["compile_cache"] = b.child(["--child-compile"])
    log(f"compile in a second process (warm inductor cache): {b.res['compile_cache']}")


def child(a, device: torch.device) -> dict:
    """In the child process: compile the first variant's blocks, time the first forward and first CFG step."""
    b = Bench(a)
    raise_compile_limits()
    cfg = b.cfg(a.variants[0])
    dit = C.random_dit(cfg, device)
    perf.set_attention(dit, "auto")
    x = b.inputs(cfg)
    sw = Stopwatch(device)
    perf.compile_blocks(dit)
    b.fwd(dit, x)()
    r = {"warmup_forward_b1_s": sw.s()}
    sw = Stopwatch(device)
    b.ours_cfg_step(dit, x, 1)()
    r["warmup_cfg_b2_s"] = sw.s()
    r["cache_dir"] = os.environ.get("TORCHINDUCTOR_CACHE_DIR", "default (/tmp/torchinductor_$USER)")
    return r
