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
are padded to 512 tokens).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402
from common import GiB, Stopwatch, rel_l2, timeit  # noqa: E402

import mofo_core as mc  # noqa: E402
from mofo_core import fp8 as F8  # noqa: E402
from mofo_core import perf  # noqa: E402

ALL_PHASES = ("env", "attn", "parity", "speed", "compile", "fp8", "profile", "cache", "load", "mem")
BACKENDS = ("sdpa", "flash", "cudnn", "efficient")
PROMPT = "a cozy living room with a stone fireplace, warm evening light"
RESULT_MARK = "@@RESULT "


def log(*a) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *a, flush=True)


def free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class Bench:
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
        self.fr = None
        if a.ref:
            self.fr = C.import_reference(Path(a.ref).resolve())

    # -- bookkeeping -----------------------------------------------------------------------------------
    def save(self) -> None:
        (self.out / "results.json").write_text(json.dumps(self.res, indent=1, default=str))
        if self.profiles:
            (self.out / "profiles.txt").write_text("\n\n".join(self.profiles))

    def phase(self, name: str, fn) -> None:
        if name not in self.a.phases:
            return
        log(f"== phase {name}")
        sw = time.perf_counter()
        try:
            fn()
        except Exception as e:  # keep going: one broken phase must not waste the device run
            self.res.setdefault("errors", {})[name] = f"{type(e).__name__}: {e}"
            log(f"!! phase {name} failed:\n{traceback.format_exc()}")
        self.res.setdefault("phase_s", {})[name] = round(time.perf_counter() - sw, 1)
        free()
        self.save()

    def cfg(self, variant: str) -> mc.DiTConfig:
        return mc.config.tiny(variant, context_in_dim=48) if self.tiny else mc.VARIANTS[variant]

    def inputs(self, cfg: mc.DiTConfig, seed: int = 0) -> dict:
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

    def time_step(self, fn_for_steps, steps: int) -> dict:
        """Per-step ms of a k-step sampler call (median of repeats), after a 1-step warm-up call."""
        fn_for_steps(1)()
        t = timeit(fn_for_steps(steps), self.device, warmup=0 if self.tiny else 1, reps=self.a.step_reps)
        return {k: (v / steps if k.endswith("_ms") else v) for k, v in t.items()} | {"steps_per_call": steps}

    def flops(self, cfg) -> float:
        return C.dit_flops(cfg, self.grid * self.grid, self.n_txt)

    def tflops(self, cfg, ms: float, batch: int = 1) -> float:
        return batch * self.flops(cfg) / (ms * 1e-3) / 1e12

    # -- phases ------------------------------------------------------------------------------------------
    def env(self) -> None:
        e = dict(date=datetime.now(timezone.utc).isoformat(timespec="seconds"), torch=torch.__version__,
                 cuda=torch.version.cuda, device=str(self.device), python=sys.version.split()[0])
        try:
            e["git_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                             cwd=C.ROOT).stdout.strip()
        except OSError:
            pass
        if self.device.type == "cuda":
            p = torch.cuda.get_device_properties(self.device)
            e.update(gpu=p.name, capability=f"{p.major}.{p.minor}", sms=p.multi_processor_count,
                     memory_gib=round(p.total_memory / GiB, 2), cudnn=torch.backends.cudnn.version())
            try:
                import torch.nn.attention as tna

                e["flash_attention_impls"] = tna.list_flash_attention_impls()
            except Exception as ex:  # older torch
                e["flash_attention_impls"] = repr(ex)
            e["auto_attention"] = perf.resolve_attention("auto", self.device, torch.bfloat16)
            e["fp8_native"] = F8.fp8_supported(self.device)
            # the two ceilings (METHOD.md): one big bf16 GEMM and a device-to-device copy
            a = torch.randn(8192, 8192, device=self.device, dtype=torch.bfloat16)
            t = timeit(lambda: a @ a, self.device, warmup=3, reps=10)
            e["bf16_gemm_tflops"] = 2 * 8192**3 / (t["median_ms"] * 1e-3) / 1e12
            a8 = a.to(torch.float8_e4m3fn)
            one = torch.ones((), device=self.device)
            try:
                t = timeit(lambda: torch._scaled_mm(a8, a8.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16),
                           self.device, warmup=3, reps=10)
                e["fp8_gemm_tflops"] = 2 * 8192**3 / (t["median_ms"] * 1e-3) / 1e12
            except RuntimeError as ex:
                e["fp8_gemm_tflops"] = repr(ex)
            b = torch.empty(1 << 30, dtype=torch.uint8, device=self.device)
            c = torch.empty_like(b)
            t = timeit(lambda: c.copy_(b), self.device, warmup=2, reps=10)
            e["copy_tbps"] = 2 * (1 << 30) / (t["median_ms"] * 1e-3) / 1e12
            del a, a8, b, c
        self.res["env"] = e
        log(json.dumps(e))

    def attn(self) -> None:
        """Attention kernels alone at the model's shape: (B, 32, 2560, 128) bf16."""
        L = self.n_txt + 2 * self.grid * self.grid
        heads, d = (2, 32) if self.tiny else (32, 128)
        out = {}
        for b in (1, 2):
            g = torch.Generator(device=self.device).manual_seed(b)
            q, k, v = (torch.randn(b, heads, L, d, device=self.device, generator=g, dtype=torch.bfloat16)
                       for _ in range(3))
            ref = torch.nn.functional.scaled_dot_product_attention(q.float(), k.float(), v.float())
            flop = 4 * b * heads * L * L * d
            row = {}
            for be in BACKENDS:
                try:
                    fn = perf.attention_fn(be)
                    o = fn(q, k, v)
                    t = timeit(lambda fn=fn, q=q, k=k, v=v: fn(q, k, v), self.device, warmup=5, reps=20)
                    row[be] = dict(ms=t["median_ms"], tflops=flop / (t["median_ms"] * 1e-3) / 1e12,
                                   rel_err_vs_fp32=rel_l2(o, ref))
                except Exception as ex:
                    row[be] = dict(error=f"{type(ex).__name__}: {str(ex)[:200]}")
            if self.device.type == "cuda" and not self.tiny:
                try:
                    from torch.nn.attention.flex_attention import flex_attention

                    flex = torch.compile(flex_attention, dynamic=False)
                    sw = Stopwatch(self.device)
                    o = flex(q, k, v)
                    warm = sw.s()
                    t = timeit(lambda f=flex, q=q, k=k, v=v: f(q, k, v), self.device, warmup=5, reps=20)
                    row["flex(compiled)"] = dict(ms=t["median_ms"], tflops=flop / (t["median_ms"] * 1e-3) / 1e12,
                                                 rel_err_vs_fp32=rel_l2(o, ref), compile_s=warm)
                except Exception as ex:
                    row["flex(compiled)"] = dict(error=f"{type(ex).__name__}: {str(ex)[:200]}")
            out[f"B{b}"] = row
            log(f"attention B={b}: " + ", ".join(f"{k}={v.get('ms', 'x'):.3}" if "ms" in v else f"{k}=err"
                                                   for k, v in row.items()))
        self.res["attn_micro"] = out

    def parity(self) -> None:
        """The parity fixtures (tests/fixtures, reference outputs) through every speed option on this device:
        fp32 forward <= 1e-5 and bf16 <= 1e-2 relative L2, as tests/test_parity.py demands of the default."""
        from safetensors import safe_open

        fx = C.ROOT / "tests" / "fixtures"
        self._raise_compile_limits()
        out, worst = {}, {}
        for variant in ("flux_rgbd_9b_v1", "flux_rgbd_9b_v2"):
            with safe_open(str(fx / f"{variant}_io.safetensors"), framework="pt") as f:
                meta = {k: json.loads(v) for k, v in (f.metadata() or {}).items()}
                io = {k: f.get_tensor(k).to(self.device) for k in f.keys()}
            for dtype, tag, tol in ((torch.float32, "fp32", 1e-5), (torch.bfloat16, "bf16", 1e-2)):
                model = mc.load_dit(fx / f"{variant}_weights.safetensors", device=self.device, dtype=dtype)
                opts = ["sdpa", "auto"] + (["flash", "cudnn", "efficient"] if tag == "bf16" else ["efficient"])
                cases = [(o, False, False) for o in opts]
                if self.device.type == "cuda" or self.a.cpu_compile:
                    cases += [("auto", True, False), ("auto", True, True)]
                for attn, comp, graphs in cases:
                    name = f"{variant}/{tag}/{attn}" + ("+compile" if comp else "") + ("+graphs" if graphs else "")
                    try:
                        C.uncompile(model)
                        used = perf.set_attention(model, attn)
                        if comp:
                            perf.compile_blocks(model)
                        m = perf.CudaGraphDiT(model) if graphs else model
                        errs = []
                        for pre, h, w in (("", meta["h"], meta["w"]), ("sq_", meta["sq"], meta["sq"])):
                            if f"{pre}out_{tag}.rgb" not in io:
                                continue
                            r, d = m.predict(io[f"{pre}rgb"], io[f"{pre}depth"], io[f"{pre}ctx"], io[f"{pre}t_rgb"],
                                             io[f"{pre}t_depth"], h, w)
                            errs += [rel_l2(r.float(), io[f"{pre}out_{tag}.rgb"]),
                                     rel_l2(d, io[f"{pre}out_{tag}.depth"])]
                        e = max(errs)
                        out[name] = dict(max_rel_err=e, tol=tol, ok=e <= tol, kernel=used)
                        worst[tag] = max(worst.get(tag, 0.0), e)
                    except Exception as ex:
                        out[name] = dict(error=f"{type(ex).__name__}: {str(ex)[:200]}", ok=False)
                C.uncompile(model)
                del model
        self.res["parity"] = dict(cases=out, all_ok=all(v["ok"] for v in out.values()), worst=worst)
        bad = {k: v for k, v in out.items() if not v["ok"]}
        log(f"parity on {self.device}: {len(out)} cases, worst {worst}, failing: {bad or 'none'}")

    def speed(self) -> None:
        for vi, variant in enumerate(self.a.variants):
            self.res.setdefault("speed", {})[variant] = r = {}
            cfg = self.cfg(variant)
            sw = Stopwatch(self.device)
            dit = C.random_dit(cfg, self.device)
            r["build_s"] = sw.s()
            r["params"] = sum(p.numel() for p in dit.parameters())
            r["flops_per_forward"] = self.flops(cfg)
            x = self.inputs(cfg)
            # 1. eager forward per attention kernel
            outs, eager = {}, {}
            for be in BACKENDS:
                try:
                    dit.attn_fn = perf.attention_fn(be)
                    outs[be] = self.fwd(dit, x)()
                    t = timeit(self.fwd(dit, x), self.device, warmup=self.a.warmup, reps=self.a.reps)
                    eager[be] = t | dict(tflops=self.tflops(cfg, t["median_ms"]))
                except Exception as ex:
                    eager[be] = dict(error=f"{type(ex).__name__}: {str(ex)[:200]}")
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
            k = self.a.cfg_steps
            r["cfg_step_batched"] = self.time_step(lambda s, m=dit, x=x: self.ours_cfg_step(m, x, s), k)
            dit.attn_fn = perf.attention_fn("sdpa")
            r["cfg_step_batched_sdpa"] = self.time_step(lambda s, m=dit, x=x: self.ours_cfg_step(m, x, s), k)
            if vi == 0:
                r["cfg_step_sequential_sdpa"] = self.time_step(
                    lambda s, m=dit, x=x: self.ours_cfg_step(m, x, s, False), k)
            perf.set_attention(dit, auto)
            log(f"{variant} CFG step batched ({auto}) {r['cfg_step_batched']['median_ms']:.1f} ms")
            if vi == 0:
                r["eager_graphs"] = self.graphed(dit, cfg, x, self.fwd(dit, x)())
            # 3. the reference on the same tensors
            if self.fr is not None:
                self.reference(dit, cfg, variant, x, base, r)
            # 4. compiled blocks (and fp8 for the first variant)
            if "compile" in self.a.phases and (vi == 0 or not self.a.compile_first_only):
                self.compiled(dit, cfg, x, r, variant)
            if "fp8" in self.a.phases and vi == 0:
                self.fp8(dit, cfg, x)
            if "profile" in self.a.phases and vi == 0:
                self.profile(dit, cfg, x)
            if "load" in self.a.phases and vi == 0:
                self.write_checkpoint(dit, variant)
            del dit, outs, base
            free()
            self.save()

    def reference(self, dit, cfg, variant, x, ours_out, r) -> None:
        ref = C.ref_meta_model(self.fr, cfg, variant, self.tiny)
        ref.load_state_dict({f"dit.{k}": v for k, v in dit.state_dict().items()}, strict=True, assign=True)
        ref.eval()

        def ref_fwd(ref=ref):
            return ref(img=x["rgb"], timesteps=x["t"], ctx=x["ctx"], img_height=self.grid, img_width=self.grid,
                       depth=x["depth"], depth_timesteps=x["td"])

        o = ref_fwd()
        rr = {"parity_rel_err_vs_ours_sdpa": max(rel_l2(o[0].float(), ours_out[0].float()), rel_l2(o[1], ours_out[1]))}
        t = timeit(ref_fwd, self.device, warmup=self.a.warmup, reps=self.a.reps)
        rr["eager_forward"] = t | dict(tflops=self.tflops(cfg, t["median_ms"]))
        rr["cfg_step"] = self.time_step(lambda s, ref=ref: self.ref_cfg_step(ref, x, s), self.a.cfg_steps)
        # joint sample parity at full size (ours batched CFG, sdpa) over cfg_steps steps
        theirs = self.ref_cfg_step(ref, x, self.a.cfg_steps)()
        fn = dit.attn_fn
        dit.attn_fn = perf.attention_fn("sdpa")
        mine = self.ours_cfg_step(dit, x, self.a.cfg_steps)()
        dit.attn_fn = fn
        rr["sample_parity_rel_err"] = dict(rgb=rel_l2(mine[0], theirs[0]), depth=rel_l2(mine[1], theirs[1]))
        r["reference"] = rr
        log(f"reference forward {t['median_ms']:.1f} ms, CFG step {rr['cfg_step']['median_ms']:.1f} ms, "
            f"parity {rr['parity_rel_err_vs_ours_sdpa']:.2e}")
        del ref

    def _raise_compile_limits(self) -> None:
        import torch._dynamo.config as dc

        for name, val in (("cache_size_limit", 64), ("recompile_limit", 64), ("accumulated_cache_size_limit", 512),
                          ("accumulated_recompile_limit", 512)):
            if hasattr(dc, name):
                setattr(dc, name, val)

    def compiled(self, dit, cfg, x, r, variant: str) -> None:
        if self.device.type != "cuda" and not self.a.cpu_compile:
            r["compiled"] = "skipped on CPU (use --cpu-compile)"
            return
        self._raise_compile_limits()
        eager_out = self.fwd(dit, x)()
        c = {}
        sw = Stopwatch(self.device)
        perf.compile_blocks(dit)
        out = self.fwd(dit, x)()
        c["warmup_forward_b1_s"] = sw.s()
        sw = Stopwatch(self.device)
        self.ours_cfg_step(dit, x, 1)()
        c["warmup_cfg_b2_s"] = sw.s()
        c["rel_err_vs_eager"] = max(rel_l2(out[0].float(), eager_out[0].float()), rel_l2(out[1], eager_out[1]))
        t = timeit(self.fwd(dit, x), self.device, warmup=self.a.warmup, reps=self.a.reps)
        c["forward"] = t | dict(tflops=self.tflops(cfg, t["median_ms"]))
        c["cfg_step_batched"] = self.time_step(lambda s: self.ours_cfg_step(dit, x, s), self.a.cfg_steps)
        c["attention"] = getattr(dit.attn_fn, "__name__", "?")
        c.update(self.graphed(dit, cfg, x, out))
        if variant == self.a.variants[0]:  # the cost of keeping eager's bf16 roundings: compile without
            C.uncompile(dit)
            perf.compile_blocks(dit, exact_casts=False)
            o2 = self.fwd(dit, x)()
            t2 = timeit(self.fwd(dit, x), self.device, warmup=self.a.warmup, reps=self.a.reps)
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

    def graphed(self, model, cfg, x, ref_out) -> dict:
        """Forward and CFG step replayed from CUDA graphs (`perf.CudaGraphDiT`)."""
        if self.device.type != "cuda":
            return {}
        g = perf.CudaGraphDiT(model)
        try:
            sw = Stopwatch(self.device)
            o = self.fwd(g, x)()
            c = {"graphs_capture_b1_s": sw.s()}
            c["graphs_rel_err"] = max(rel_l2(o[0].float(), ref_out[0].float()), rel_l2(o[1], ref_out[1]))
            t = timeit(self.fwd(g, x), self.device, warmup=self.a.warmup, reps=self.a.reps)
            c["graphs_forward"] = t | dict(tflops=self.tflops(cfg, t["median_ms"]))
            c["graphs_cfg_step_batched"] = self.time_step(lambda s, g=g: self.ours_cfg_step(g, x, s), self.a.cfg_steps)
            log(f"  + CUDA graphs: forward {t['median_ms']:.1f} ms, CFG step "
                f"{c['graphs_cfg_step_batched']['median_ms']:.1f} ms, err {c['graphs_rel_err']:.1e}")
        except Exception as ex:
            c = {"graphs_error": f"{type(ex).__name__}: {str(ex)[:300]}"}
            log(f"  CUDA graphs failed: {c['graphs_error']}")
        g.clear()
        del g
        free()
        return c

    def fp8(self, dit, cfg, x) -> None:
        res = self.res.setdefault("fp8", {})
        res["native"] = F8.fp8_supported(self.device)
        was_compiled = any(getattr(m, "_compiled_call_impl", None) is not None for m in dit.modules())
        C.uncompile(dit)
        ref_out = self.fwd(dit, x)()  # bf16 eager, auto attention
        compile_ok = self.device.type == "cuda" or self.a.cpu_compile
        steps = self.a.sample_steps
        base = self.ours_cfg_step(dit, x, steps)()  # bf16 eager joint sample, same seed / inputs
        # (scaling, fast accumulation, full): the library default (row, fast) gets compile + CFG step + graphs
        plan = [("row", True, True), ("row", False, False), ("tensor", True, False)]
        plan = [p for p in plan if p[0] in self.a.fp8_scalings]
        for scaling, fast, full in plan:
            key = f"{scaling}_{'fast' if fast else 'exact'}_accum"
            m8 = F8.quantize_dit(C.shared_copy(dit), scaling=scaling, fast_accum=fast)
            s = res[key] = {}
            s["gib_weights"] = sum(p.numel() * p.element_size() for p in m8.parameters()) / GiB
            o = self.fwd(m8, x)()
            s["forward_rel_err_vs_bf16"] = dict(rgb=rel_l2(o[0].float(), ref_out[0].float()),
                                                depth=rel_l2(o[1], ref_out[1]))
            if full:
                t = timeit(self.fwd(m8, x), self.device, warmup=self.a.warmup, reps=self.a.reps)
                s["eager_forward"] = t | dict(tflops=self.tflops(cfg, t["median_ms"]))
                log(f"fp8 {key}: eager {t['median_ms']:.1f} ms, err {s['forward_rel_err_vs_bf16']}")
            if compile_ok:
                self._raise_compile_limits()
                sw = Stopwatch(self.device)
                perf.compile_blocks(m8)
                o = self.fwd(m8, x)()
                c = {"warmup_forward_b1_s": sw.s()}
                c["forward_rel_err_vs_bf16"] = dict(rgb=rel_l2(o[0].float(), ref_out[0].float()),
                                                    depth=rel_l2(o[1], ref_out[1]))
                t = timeit(self.fwd(m8, x), self.device, warmup=self.a.warmup, reps=self.a.reps)
                c["forward"] = t | dict(tflops=self.tflops(cfg, t["median_ms"]))
                if full:
                    c["cfg_step_batched"] = self.time_step(lambda st, m8=m8: self.ours_cfg_step(m8, x, st),
                                                           self.a.cfg_steps)
                    c.update(self.graphed(m8, cfg, x, o))
                s["compiled"] = c
                log(f"fp8 {key} compiled: forward {t['median_ms']:.1f} ms, err {c['forward_rel_err_vs_bf16']}, "
                    f"CFG step {c.get('cfg_step_batched', {}).get('median_ms')}")
                C.uncompile(m8)
            if full or scaling == "tensor":  # a joint sample against the bf16 one (eager both)
                got = self.ours_cfg_step(m8, x, steps)()
                s[f"sample{steps}_rel_err_vs_bf16"] = dict(rgb=rel_l2(got[0], base[0]), depth=rel_l2(got[1], base[1]))
                log(f"fp8 {key}: {steps}-step sample err {s[f'sample{steps}_rel_err_vs_bf16']}")
            del m8
            free()
        # modulation heads in fp8 too (error only)
        m8 = F8.quantize_dit(C.shared_copy(dit), include_modulation=True)
        o = self.fwd(m8, x)()
        res["row_fast_incl_modulation_forward_rel_err"] = dict(rgb=rel_l2(o[0].float(), ref_out[0].float()),
                                                             depth=rel_l2(o[1], ref_out[1]))
        del m8
        free()
        if compile_ok:  # compiled bf16 vs eager over the same sample
            perf.compile_blocks(dit)
            got = self.ours_cfg_step(dit, x, steps)()
            res[f"bf16_compiled_sample{steps}_rel_err_vs_eager"] = dict(rgb=rel_l2(got[0], base[0]),
                                                                        depth=rel_l2(got[1], base[1]))
            if not was_compiled:
                C.uncompile(dit)

    def profile(self, dit, cfg, x) -> None:
        from torch.profiler import ProfilerActivity, profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.device.type == "cuda" else [])
        summary = self.res.setdefault("profile", {})
        runs = [("bf16 eager (auto attention)", dit, False)]
        compile_ok = self.device.type == "cuda" or self.a.cpu_compile
        if compile_ok:
            runs.append(("bf16 compiled", dit, True))
        m8 = None
        if "fp8" in self.a.phases and compile_ok:
            m8 = F8.quantize_dit(C.shared_copy(dit))
            runs.append(("fp8 (row, fast accum) compiled", m8, True))
        for name, model, comp in runs:
            C.uncompile(model)
            if comp:
                perf.compile_blocks(model)
            f = self.fwd(model, x)
            f()
            f()
            C.sync(self.device)
            with profile(activities=acts) as prof:
                sw = Stopwatch(self.device)
                f()
                wall = sw.s()
            ka = prof.key_averages()
            key = "self_device_time_total" if hasattr(ka[0], "self_device_time_total") else "self_cuda_time_total"
            try:
                table = ka.table(sort_by=key, row_limit=18, max_name_column_width=70)
            except Exception:
                table = ka.table(sort_by="self_cpu_time_total", row_limit=18)
            self.profiles.append(f"### {name}: one forward, wall {wall * 1e3:.1f} ms\n{table}")
            cats = {"gemm": 0.0, "attention": 0.0, "triton_fused": 0.0, "other": 0.0}
            for e in prof.events():  # kernels only (device-side events): no double counting with operators
                if str(getattr(e, "device_type", "")).split(".")[-1] != "CUDA":
                    continue
                us = e.time_range.elapsed_us()
                n = e.name.lower()
                if n.startswith("triton"):
                    cats["triton_fused"] += us
                elif any(t in n for t in ("fmha", "flash", "sdpa", "attention")):
                    cats["attention"] += us
                elif any(t in n for t in ("gemm", "cutlass", "xmma", "nvjet", "cublas", "f8f8", "scaled_mm")):
                    cats["gemm"] += us
                else:
                    cats["other"] += us
            busy = sum(cats.values()) / 1e3
            summary[name] = dict(wall_ms=wall * 1e3, gpu_busy_ms=busy, **{f"{k}_ms": v / 1e3 for k, v in cats.items()})
            log(f"profile {name}: {summary[name]}")
            C.uncompile(model)
        del m8

    # -- checkpoint, loads, memory -----------------------------------------------------------------------
    def ckpt_path(self) -> Path:
        return self.ckpt_dir / "model.safetensors"

    def write_checkpoint(self, dit, variant: str) -> None:
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        sw = Stopwatch(self.device)
        tensors = {f"dit.{k}": v.to(torch.bfloat16) if v.dtype == torch.float32 else v
                   for k, v in dit.state_dict().items()}  # the release file is all bf16
        n = C.write_safetensors_streamed(self.ckpt_path(), tensors, {"format": "pt"})
        (self.ckpt_dir / "config.json").write_text(json.dumps({"variant": variant}))
        self.res["checkpoint"] = dict(path=str(self.ckpt_path()), gb=n / 1e9, write_s=sw.s(), variant=variant)
        log(f"checkpoint written: {n / 1e9:.2f} GB in {self.res['checkpoint']['write_s']:.1f} s")

    def ensure_checkpoint(self) -> str:
        variant = self.a.variants[0]
        if not self.ckpt_path().is_file():
            dit = C.random_dit(self.cfg(variant), self.device)
            self.write_checkpoint(dit, variant)
            del dit
            free()
        return json.loads((self.ckpt_dir / "config.json").read_text())["variant"]

    def load(self) -> None:
        variant = self.ensure_checkpoint()
        cfg = self.cfg(variant)
        ck = self.ckpt_path()
        res = self.res.setdefault("load", {"runs": []})
        res["page_cache_drop"] = C.drop_page_cache(ck)
        if not self.tiny:
            res["disk_read_gbps_1thread"] = C.disk_read_gbps(ck)

        def ours(reader: str, fp8: str | None = None):
            return lambda: mc.load_dit(ck, device=self.device, dtype=torch.bfloat16, reader=reader, fp8=fp8)

        def ref():
            return C.ref_load(self.fr, ck, cfg, variant, self.tiny, self.device)

        plan = [("ours", ours("threaded"), True), ("ref", ref, True), ("ours_safe_open", ours("safetensors"), True),
                ("ours", ours("threaded"), True), ("ref", ref, True), ("ours_fp8_stream", ours("threaded", "tensor"),
                                                                        True),
                ("ours", ours("threaded"), False), ("ref", ref, False)]
        for name, fn, cold in plan:
            if name == "ref" and self.fr is None:
                continue
            if cold:
                C.drop_page_cache(ck)
            if self.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(self.device)
            sw = Stopwatch(self.device)
            m = fn()
            s = sw.s()
            row = dict(loader=name, cold=cold, s=s, **C.gpu_mem(self.device))
            res["runs"].append(row)
            log(f"load {name} {'cold' if cold else 'warm'}: {s:.2f} s {C.gpu_mem(self.device)}")
            del m
            free()
        for name in {r["loader"] for r in res["runs"]}:
            for cold in (True, False):
                v = sorted(r["s"] for r in res["runs"] if r["loader"] == name and r["cold"] == cold)
                if v:
                    res[f"{name}_{'cold' if cold else 'warm'}_best_s"] = v[0]

    def mem(self) -> None:
        self.ensure_checkpoint()
        res = self.res.setdefault("mem", {})
        runs = [("bf16_cap24", ["--mem-mode", "bf16", "--cap", "24"]),
                ("fp8_cap16", ["--mem-mode", "fp8", "--cap", "16"]),
                ("reference_uncapped", ["--mem-mode", "ref", "--cap", "0"])]
        runs = [r for r in runs if r[1][1] in self.a.mem_modes and (r[1][1] != "ref" or self.fr is not None)]
        for name, extra in runs:
            res[name] = self.child(extra)
            log(f"mem {name}: {res[name]}")
            self.save()
            if name == "bf16_cap24" and self.device.type == "cuda":  # lowvram: sequential CFG, DiT offloaded
                res["bf16_cap24_lowvram"] = self.child(extra + ["--lowvram"])
                log(f"mem bf16_cap24_lowvram: {res['bf16_cap24_lowvram']}")

    def cache(self) -> None:
        if self.device.type != "cuda" and not self.a.cpu_compile:
            self.res["compile_cache"] = "skipped on CPU"
            return
        self.res["compile_cache"] = self.child(["--child-compile"])
        log(f"compile in a second process (warm inductor cache): {self.res['compile_cache']}")

    def child(self, extra: list[str]) -> dict:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--out", str(self.out), "--ckpt-dir",
               str(self.ckpt_dir), "--mem-steps", str(self.a.mem_steps), "--variants", *self.a.variants]
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

    # -- summary -------------------------------------------------------------------------------------------
    def table(self) -> None:
        rows = []
        sp = self.res.get("speed", {})
        for variant, r in sp.items():
            v = variant.rsplit("_", 1)[-1]
            ref = r.get("reference", {})
            ref_f = ref.get("eager_forward", {}).get("median_ms")
            ref_s = ref.get("cfg_step", {}).get("median_ms")

            def row(name, ms, base, goal="", variant=variant, v=v):
                if ms is None:
                    return
                ratio = f"{ms / base:.2f}x" if base else ""
                tf = f"{self.tflops(self.cfg(variant), ms, 2 if 'CFG' in name else 1):.0f}" if ms else ""
                rows.append((f"{v} {name}", f"{ms:.1f}", tf, ratio, goal))

            ef = r.get("eager_forward", {})
            row("forward eager sdpa (ref kernel)", ef.get("sdpa", {}).get("median_ms"), ref_f)
            fb = r.get("fastest_backend")
            if fb:
                row(f"forward eager {fb}", ef.get(fb, {}).get("median_ms"), ref_f)
            c = r.get("compiled") if isinstance(r.get("compiled"), dict) else {}
            eg = r.get("eager_graphs", {})
            row("forward eager + CUDA graphs", eg.get("graphs_forward", {}).get("median_ms"), ref_f)
            row("forward compiled", c.get("forward", {}).get("median_ms"), ref_f, "<= 60 ms")
            row("forward compiled + CUDA graphs", c.get("graphs_forward", {}).get("median_ms"), ref_f, "<= 60 ms")
            row("forward REFERENCE eager", ref_f, ref_f)
            row("CFG step eager batched (auto)", r.get("cfg_step_batched", {}).get("median_ms"), ref_s)
            row("CFG step eager + CUDA graphs", eg.get("graphs_cfg_step_batched", {}).get("median_ms"), ref_s)
            row("CFG step compiled batched", c.get("cfg_step_batched", {}).get("median_ms"), ref_s, "<= 0.6x ref")
            row("CFG step compiled + CUDA graphs", c.get("graphs_cfg_step_batched", {}).get("median_ms"), ref_s,
                "<= 0.6x ref")
            row("CFG step REFERENCE (2 seq.)", ref_s, ref_s)
        f8 = self.res.get("fp8", {})
        ref_f = ref_s = None
        if sp:
            first = next(iter(sp.values())).get("reference", {})
            ref_f = first.get("eager_forward", {}).get("median_ms")
            ref_s = first.get("cfg_step", {}).get("median_ms")
        for key, fr in f8.items():
            c = fr.get("compiled") if isinstance(fr, dict) else None
            if not c:
                continue
            for label, ms, goal in (("forward compiled", c["forward"]["median_ms"], "<= 40 ms"),
                                    ("forward compiled + graphs", c.get("graphs_forward", {}).get("median_ms"),
                                     "<= 40 ms"),
                                    ("CFG step compiled", c.get("cfg_step_batched", {}).get("median_ms"),
                                     "<= 0.6x ref"),
                                    ("CFG step compiled + graphs",
                                     c.get("graphs_cfg_step_batched", {}).get("median_ms"), "<= 0.6x ref")):
                if ms is None:
                    continue
                base = ref_s if "CFG" in label else ref_f
                rows.append((f"fp8 {key} {label}", f"{ms:.1f}", "", f"{ms / base:.2f}x" if base else "", goal))
        print("\n" + "=" * 100)
        print(f"{'measurement':48s} {'ms':>9s} {'TFLOP/s':>8s} {'vs ref':>8s}  goal")
        for r in rows:
            print(f"{r[0]:48s} {r[1]:>9s} {r[2]:>8s} {r[3]:>8s}  {r[4]}")
        ld = self.res.get("load", {})
        if ld:
            print(f"cold load: ours {ld.get('ours_cold_best_s', float('nan')):.2f} s, ref "
                  f"{ld.get('ref_cold_best_s', float('nan')):.2f} s, ours safe_open "
                  f"{ld.get('ours_safe_open_cold_best_s', float('nan')):.2f} s, fp8 streamed "
                  f"{ld.get('ours_fp8_stream_cold_best_s', float('nan')):.2f} s; warm: ours "
                  f"{ld.get('ours_warm_best_s', float('nan')):.2f} s, ref "
                  f"{ld.get('ref_warm_best_s', float('nan')):.2f} s")
        for name, m in self.res.get("mem", {}).items():
            print(f"memory {name}: pass={m.get('pass')} peak reserved {m.get('peak_reserved_gib', float('nan')):.2f} "
                  f"GiB (allocated {m.get('peak_allocated_gib', float('nan')):.2f}) "
                  f"generate {m.get('generate_s', 0):.1f} s "
                  f"{m.get('error', '')}")
        for key, fr in f8.items():
            if isinstance(fr, dict) and "forward_rel_err_vs_bf16" in fr:
                print(f"fp8 {key} error vs bf16: forward {fr.get('forward_rel_err_vs_bf16')}, "
                      f"{self.a.sample_steps}-step sample {fr.get(f'sample{self.a.sample_steps}_rel_err_vs_bf16')}")
        cc = self.res.get("compile_cache")
        if isinstance(cc, dict):
            print(f"compile warm-up in a fresh process with a warm cache: {cc}")
        if self.res.get("errors"):
            print("ERRORS:", self.res["errors"])
        print("=" * 100)


# -- child processes -----------------------------------------------------------------------------------------


def child_mem(a, device: torch.device) -> dict:
    """One complete joint generation under a memory cap: ours (pipeline) or the reference runner."""
    import mofo_core.pipeline as pl

    tiny = a.tiny
    ckpt_dir = Path(a.ckpt_dir)
    variant = json.loads((ckpt_dir / "config.json").read_text())["variant"]
    res: dict = dict(mode=a.mem_mode, cap_gib=a.cap, steps=a.mem_steps, lowvram=a.lowvram)
    cuda = device.type == "cuda"
    if cuda and a.cap:
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(a.cap * GiB / total, device.index or 0)
    phases: dict = {}

    def mark(name: str) -> None:
        if cuda:
            torch.cuda.synchronize(device)
            phases[name] = C.gpu_mem(device)
            torch.cuda.reset_peak_memory_stats(device)

    size = 64 if tiny else 512
    sw = time.perf_counter()
    try:
        if a.mem_mode == "ref":
            fr = C.import_reference(Path(a.ref).resolve())
            cfg = mc.config.tiny(variant, context_in_dim=48) if tiny else mc.VARIANTS[variant]
            model = C.ref_load(fr, ckpt_dir / "model.safetensors", cfg, variant, tiny, device)
            with torch.device("meta"):
                _, dcfg, scfg = fr.factories.VARIANTS[variant]()
            lm = C.random_qwen(tiny, 28 if tiny else 36, device, causal_lm=True)
            from flux_rgbd._flux2.autoencoder import Flux2Decoder
            from flux_rgbd.runner import FluxRGBDRunner

            with torch.device("meta"):
                dec = Flux2Decoder(ch=32, ch_mult=(1, 2, 2, 2), num_res_blocks=1) if tiny else Flux2Decoder()
            C.fill_conv_net_(dec, device, 2)
            emb = C.ref_embedder(fr, C.tiny_tokenizer(), lm, device)
            runner = FluxRGBDRunner(model, dec.eval(), emb, dcfg, scfg, device=str(device), img_hw=(size, size))
            res["resident_before_generate_gib"] = C.gpu_mem(device).get("allocated_gib")
            mark("load")
            t = time.perf_counter()
            out = runner.generate(PROMPT, num_steps=a.mem_steps, cfg_scale=4.0, seed=0, log2_alpha=5.0)
            res["generate_s"] = time.perf_counter() - t
            res["rgb_shape"] = list(out["rgb"].shape)
        else:
            ModelFiles, MofoPipeline = pl.ModelFiles, pl.MofoPipeline
            unused = ckpt_dir / "unused"
            files = ModelFiles(dit=ckpt_dir / "model.safetensors", ae_encoder=unused, ae_decoder=unused,
                               text_encoder=C.TINY_QWEN, config_json=ckpt_dir / "config.json")  # tokenizer only
            pipe = MofoPipeline(files, device=device, dtype=torch.bfloat16, attention="auto",
                                fp8="row" if a.mem_mode == "fp8" else None, lowvram=a.lowvram)
            from mofo_core.text_encoder import QwenTextEmbedder

            pipe._text = QwenTextEmbedder(C.tiny_tokenizer(), C.random_qwen(tiny, 27, device))
            mark("text_encoder_built")
            holder = {}

            def autoencoder(*, encoder: bool):
                if "ae" not in holder:
                    mark("sampling")
                    holder["ae"] = C.random_decoder(tiny, device)
                return holder["ae"]

            pipe.autoencoder = autoencoder
            enc = pipe.encode_text

            def encode_text(*args, **kw):
                out = enc(*args, **kw)
                mark("text_encode")
                if cuda:
                    res["allocated_after_text_release_gib"] = torch.cuda.memory_allocated(device) / GiB
                return out

            pipe.encode_text = encode_text
            orig_sample = pl.sample
            first = {}

            def sample(*args, **kw):
                if not first:
                    first[1] = True
                    mark("dit_load")
                return orig_sample(*args, **kw)

            pl.sample = sample
            t = time.perf_counter()
            out = pipe.generate(pl.GenerateParams(mode="joint", prompt=PROMPT, steps=a.mem_steps, seed=0,
                                                  width=size, height=size))
            res["generate_s"] = time.perf_counter() - t
            res["rgb_shape"] = list(out.rgb.shape)
            res["depth_finite"] = bool(torch.isfinite(torch.from_numpy(out.depth)).all())
        mark("decode" if a.mem_mode != "ref" else "generate")
        res["ok"] = True
    except torch.cuda.OutOfMemoryError as e:
        res["ok"] = False
        res["error"] = f"OOM: {str(e)[:300]}"
        mark("oom")
    res["phases"] = phases
    if cuda:
        res["peak_reserved_gib"] = max(p["peak_reserved_gib"] for p in phases.values())
        res["peak_allocated_gib"] = max(p["peak_allocated_gib"] for p in phases.values())
        res["pass"] = bool(res["ok"] and (not a.cap or res["peak_reserved_gib"] <= a.cap))
    else:
        res["pass"] = res["ok"]
    res["wall_s"] = time.perf_counter() - sw
    return res


def child_compile(a, device: torch.device) -> dict:
    """Compile warm-up in a fresh process (inductor's on-disk cache filled by the parent)."""
    b = Bench(a)
    b._raise_compile_limits()
    variant = a.variants[0]
    cfg = b.cfg(variant)
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
            r = child_compile(a, device) if a.child_compile else child_mem(a, device)
        print(RESULT_MARK + json.dumps(r, default=str), flush=True)
        return 0
    b = Bench(a)
    with torch.inference_mode():
        for name in ("env", "attn", "parity", "speed", "load"):
            b.phase(name, getattr(b, name))
        if "speed" not in a.phases:  # fp8 / compile / profile run inside speed on its first variant
            for name in ("compile", "fp8", "profile"):
                if name in a.phases:
                    b.res.setdefault("errors", {})[name] = "runs inside the speed phase; add 'speed'"
    b.phase("mem", b.mem)
    b.phase("cache", b.cache)
    b.save()
    b.table()
    return 1 if b.res.get("errors") else 0


if __name__ == "__main__":
    sys.exit(main())
