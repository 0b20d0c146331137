"""GPU benchmark of the Modality Forcing DiT (ours vs the reference) with full-size random weights.

Measures, at 512x512 (32x32 latent grid), 512 text tokens, batch 1:
  * one forward (latency, TFLOP/s) for each attention kernel, compiled blocks, fp8 weights;
  * one joint CFG step (ours: cond + uncond batched; reference: its sampler's two sequential forwards);
  * compile warm-up (cold, and in a second process with inductor's cache warm);
  * fp8 error against bf16 (one forward and a 20-step joint sample);
  * cold load of a full-size checkpoint from local disk (ours `load_dit`, the reference runner's path);
  * peak GPU memory of a complete joint generation (text encode with a random full-size Qwen3-8B -> free
    the encoder -> DiT sampling with CFG -> VAE decode), under `set_per_process_memory_fraction` caps.

    PYTHONUNBUFFERED=1 python bench/bench_gpu.py --ref .ref/modality-forcing --out $OUT 2>&1 | tee $OUT/log.txt
    python bench/bench_gpu.py --tiny --out /tmp/bench_tiny        # CPU smoke run with tiny models

Phases (--phases, comma separated): env, attn, speed, compile, fp8, profile, cache, load, mem. Results go to
OUT/results.json (rewritten after every phase), kernel tables to OUT/profiles.txt; a summary table is
printed last. The tokenizer is the tiny fixture tests/fixtures/tiny_qwen3 (only shapes matter: prompts
are padded to 512 tokens). Every model has random weights from the core's builders (bench/common.py): timing
and memory do not depend on their values.

This file is the command line; each phase lives in bench/gpu/ (one module per phase, report.py for the
results and the summary table).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu import attn, cache, env, load, mem, parity, report, speed  # noqa: E402
from gpu.context import ALL_PHASES, RESULT_MARK, Bench  # noqa: E402

PHASES = dict(env=env.run, attn=attn.run, parity=parity.run, speed=speed.run, load=load.run, mem=mem.run,
              cache=cache.run)


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="tiny configs (CPU smoke run)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--out", default=os.environ.get("OUT", "bench_out"))
    ap.add_argument("--ref", default=None, help="path of a reference checkout (Duisterhof/modality-forcing)")
    ap.add_argument("--phases", default=",".join(ALL_PHASES))
    ap.add_argument("--variants", nargs="+", default=["flux_rgbd_9b_v2", "flux_rgbd_9b_v1"])
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--cfg-steps", type=int, default=4, help="sampler steps per timed call (CFG step = call / k)")
    ap.add_argument("--step-reps", type=int, default=3)
    ap.add_argument("--sample-steps", type=int, default=20, help="steps of the fp8-vs-bf16 sample")
    ap.add_argument("--mem-steps", type=int, default=50, help="steps of the memory-capped generations")
    ap.add_argument("--fp8-scalings", nargs="+", default=["tensor", "row"])
    ap.add_argument("--mem-modes", nargs="+", default=["bf16", "fp8", "ref"], help="generations of the mem phase")
    ap.add_argument("--compile-first-only", action="store_true", help="compile only the first variant")
    ap.add_argument("--cpu-compile", action="store_true", help="also compile on CPU (slow: C++ toolchain)")
    ap.add_argument("--ckpt-dir", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "mofo_bench_ckpt"))
    ap.add_argument("--child-timeout", type=int, default=300)
    # child-process modes
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--child-compile", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mem-mode", choices=("bf16", "fp8", "ref"), default=None, help=argparse.SUPPRESS)
    ap.add_argument("--cap", type=float, default=0.0, help=argparse.SUPPRESS)
    ap.add_argument("--lowvram", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    a.phases = [p for p in a.phases.split(",") if p]
    if a.tiny:
        a.reps, a.warmup, a.cfg_steps, a.step_reps, a.sample_steps = 2, 1, 2, 1, 3
        a.mem_steps = min(a.mem_steps, 2)
        a.ckpt_dir = os.path.join(a.out, "ckpt")
    return a


def main(argv=None) -> int:
    a = parse(argv)
    torch.backends.cuda.matmul.allow_tf32 = False
    device = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if a.child:
        with torch.inference_mode():
            r = cache.child(a, device) if a.child_compile else mem.child(a, device)
        print(RESULT_MARK + json.dumps(r, default=str), flush=True)
        return 0
    b = Bench(a)
    with torch.inference_mode():
        for name in ("env", "attn", "parity", "speed", "load"):
            b.phase(name, PHASES[name])
        if "speed" not in a.phases:  # fp8 / compile / profile run inside speed on its first variant
            for name in ("compile", "fp8", "profile"):
                if name in a.phases:
                    b.res.setdefault("errors", {})[name] = "runs inside the speed phase; add 'speed'"
    b.phase("mem", PHASES["mem"])
    b.phase("cache", PHASES["cache"])
    b.save()
    report.table(b)
    return 1 if b.res.get("errors") else 0


if __name__ == "__main__":
    sys.exit(main())
