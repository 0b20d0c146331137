"""The state every phase shares: arguments, device, sizes, results; model inputs, sampler calls, timing helpers."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import common as C
import torch
from common import Stopwatch, rel_l2, timeit

import mofo_core as mc
from mofo_core.model import perf

from . import report

ALL_PHASES = ("env", "attn", "parity", "speed", "compile", "fp8", "profile", "cache", "load", "mem")
BACKENDS = ("sdpa", "flash", "cudnn", "efficient")
PROMPT = "a cozy living room with a stone fireplace, warm evening light"
RESULT_MARK = "@@RESULT "  # a child process prints its result as one line after this mark
SCRIPT = Path(__file__).resolve().parents[1] / "bench_gpu.py"  # what child processes run


def log(*a) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *a, flush=True)


def free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def raise_compile_limits() -> None:
    """Room for the recompiles of many blocks x batch sizes x models in one process."""
    import torch._dynamo.config as dc

    for name, val in (("cache_size_limit", 64), ("recompile_limit", 64), ("accumulated_cache_size_limit", 512),
                      ("accumulated_recompile_limit", 512)):
        if hasattr(dc, name):
            setattr(dc, name, val)


def errtext(ex: Exception, n: int = 200) -> str:
    return f"{type(ex).__name__}: {str(ex)[:n]}"


class Bench:
    """One run: arguments, device, sizes, the results dict (saved after every phase) and shared helpers."""

    def __init__(self, a):
        self.a = a
        self.tiny = a.tiny
        self.device = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.out = Path(a.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.res: dict = {"args": vars(a)}
        self.profiles: list[str] = []
        self.grid = 4 if self.tiny else 32  # latent side: 64 px (tiny) or 512 px
        self.n_txt = 16 if self.tiny else mc.config.TEXT_TOKENS
        self.ckpt_dir = Path(a.ckpt_dir)
        self.fr = C.import_reference(Path(a.ref).resolve()) if a.ref else None

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def compile_ok(self) -> bool:
        """Compile here: always on CUDA, on the CPU only when asked (inductor's C++ toolchain is slow)."""
        return self.cuda or self.a.cpu_compile

    # -- bookkeeping -----------------------------------------------------------------------------------
    def save(self) -> None:
        report.save(self.out, self.res, self.profiles)

    def phase(self, name: str, fn: Callable[[Bench], None]) -> None:
        if name not in self.a.phases:
            return
        log(f"== phase {name}")
        sw = time.perf_counter()
        try:
            fn(self)
        except Exception as e:  # keep going: one broken phase must not waste the device run
            self.res.setdefault("errors", {})[name] = f"{type(e).__name__}: {e}"
            log(f"!! phase {name} failed:\n{traceback.format_exc()}")
        self.res.setdefault("phase_s", {})[name] = round(time.perf_counter() - sw, 1)
        free()
        self.save()

    # -- models and inputs -----------------------------------------------------------------------------
    def cfg(self, variant: str) -> mc.DiTConfig:
        return mc.config.tiny(variant, context_in_dim=48) if self.tiny else mc.VARIANTS[variant]

    def inputs(self, cfg: mc.DiTConfig, seed: int = 0) -> dict:
        """Random model inputs: rgb (1, N, 128), depth (1, N, 256), ctx / null (1, T, C), t / td (1,)."""
        g = torch.Generator(device=self.device).manual_seed(seed)
        n, dev = self.grid * self.grid, self.device

        def r(*s):
            return torch.randn(*s, device=dev, generator=g)

        return dict(rgb=r(1, n, 128), depth=r(1, n, 256), ctx=r(1, self.n_txt, cfg.context_in_dim),
                    null=r(1, self.n_txt, cfg.context_in_dim), t=torch.tensor([0.7], device=dev),
                    td=torch.tensor([0.9], device=dev))

    def fwd(self, model, x):
        return lambda: model.predict(x["rgb"], x["depth"], x["ctx"], x["t"], x["td"], self.grid, self.grid)

    def ours_cfg_step(self, model, x, steps: int, batch_cfg: bool = True):
        rs, ds = mc.schedule(steps, mode="joint", log2_alpha=5.0)
        return lambda: mc.sample(model, x["ctx"], x["null"], rs, ds, height=self.grid, width=self.grid, cfg=4.0,
                                 seed=0, batch_cfg=batch_cfg)

    def ref_cfg_step(self, ref, x, steps: int):
        from flux_rgbd.depth.schedule import ScheduleConfig

        sc = ScheduleConfig(rgb_shift_mu=1.1, depth_shift_mu=1.1)
        return lambda: ref.sample(ctx=x["ctx"], img_height=self.grid, img_width=self.grid, num_steps=steps,
                                  mode="joint", schedule_config=sc, cfg_scale=4.0, seed=0, null_text_embed=x["null"],
                                  log2_alpha=5.0)

    # -- timing ----------------------------------------------------------------------------------------
    def time_fwd(self, model, x, cfg) -> dict:
        """Median / min / max ms of one forward (--warmup, --reps) and its TFLOP/s."""
        t = timeit(self.fwd(model, x), self.device, warmup=self.a.warmup, reps=self.a.reps)
        return t | dict(tflops=self.tflops(cfg, t["median_ms"]))

    def time_step(self, fn_for_steps, steps: int) -> dict:
        """Per-step ms of a k-step sampler call (median of repeats), after a 1-step warm-up call."""
        fn_for_steps(1)()
        t = timeit(fn_for_steps(steps), self.device, warmup=0 if self.tiny else 1, reps=self.a.step_reps)
        return {k: (v / steps if k.endswith("_ms") else v) for k, v in t.items()} | {"steps_per_call": steps}

    def flops(self, cfg) -> float:
        return C.dit_flops(cfg, self.grid * self.grid, self.n_txt)

    def tflops(self, cfg, ms: float, batch: int = 1) -> float:
        return batch * self.flops(cfg) / (ms * 1e-3) / 1e12

    def graphed(self, model, cfg, x, ref_out) -> dict:
        """Forward and CFG step replayed from CUDA graphs (`perf.CudaGraphDiT`); {} off CUDA."""
        if not self.cuda:
            return {}
        g = perf.CudaGraphDiT(model)
        try:
            sw = Stopwatch(self.device)
            o = self.fwd(g, x)()
            c = {"graphs_capture_b1_s": sw.s()}
            c["graphs_rel_err"] = max(rel_l2(o[0].float(), ref_out[0].float()), rel_l2(o[1], ref_out[1]))
            c["graphs_forward"] = t = self.time_fwd(g, x, cfg)
            c["graphs_cfg_step_batched"] = self.time_step(lambda s, g=g: self.ours_cfg_step(g, x, s), self.a.cfg_steps)
            log(f"  + CUDA graphs: forward {t['median_ms']:.1f} ms, CFG step "
                f"{c['graphs_cfg_step_batched']['median_ms']:.1f} ms, err {c['graphs_rel_err']:.1e}")
        except Exception as ex:
            c = {"graphs_error": errtext(ex, 300)}
            log(f"  CUDA graphs failed: {c['graphs_error']}")
        g.clear()
        del g
        free()
        return c

    # -- child processes -------------------------------------------------------------------------------
    def child(self, extra: list[str]) -> dict:
        """Run bench_gpu.py --child ... in a fresh process; its result line, or the error and stderr's tail."""
        cmd = [sys.executable, str(SCRIPT), "--child", "--out", str(self.out), "--ckpt-dir", str(self.ckpt_dir),
               "--mem-steps", str(self.a.mem_steps), "--variants", *self.a.variants]
        cmd += ["--tiny"] if self.tiny else []
        cmd += ["--device", str(self.device)] + (["--ref", self.a.ref] if self.a.ref else []) + extra
        sw = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=self.a.child_timeout)
        for line in (p.stdout + p.stderr).splitlines():
            if not line.startswith(RESULT_MARK):
                print("   |", line, flush=True)
        found = [json.loads(line[len(RESULT_MARK):]) for line in p.stdout.splitlines() if line.startswith(RESULT_MARK)]
        out = found[-1] if found else {"error": f"exit {p.returncode}", "stderr_tail": p.stderr[-1500:]}
        out["process_s"] = time.perf_counter() - sw
        return out
