"""The phases of bench/bench_gpu.py, one module each, on a shared `context.Bench`.

    context    the run's state (arguments, device, results), model inputs, timing helpers, child processes
    env        versions, the device and its two ceilings (bf16 GEMM, copy bandwidth)
    attn       attention kernels alone at the model's shape
    parity     the parity fixtures through every speed option
    speed      eager forward per kernel, CFG step, CUDA graphs, the reference; runs compiled / fp8 / profile
    compiled   compiled blocks (the `compile` phase, inside `speed`)
    fp8        fp8 weights: error against bf16 and speed (inside `speed`)
    profiling  kernel tables and time per kernel class (the `profile` phase, inside `speed`)
    load       the checkpoint on disk and cold / warm loads
    mem        peak memory of whole generations under a cap (child processes)
    cache      compile warm-up in a second process with inductor's cache warm
    report     results.json, profiles.txt and the summary table
"""

from __future__ import annotations

import sys
from pathlib import Path

_BENCH = Path(__file__).resolve().parents[1]
if str(_BENCH) not in sys.path:  # `common` (bench/common.py) is imported as a top-level module
    sys.path.insert(0, str(_BENCH))
