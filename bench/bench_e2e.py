"""What a user waits for: one whole text -> RGB + depth image, ours against the reference runner in the same run.

    python bench/bench_e2e.py --ref PATH/TO/modality-forcing --out OUT [--reps 3] [--steps 50] [--tiny]

Full-size random weights (v2) from the core's builders (bench/common.py): the DiT (drawn on the device), Qwen3-8B
(ours: the 27 layers it reads; the reference: its whole causal LM, as its runner loads it) and the FLUX.2 decoder;
the reference runs the same DiT and decoder weights. Timing does not depend on the random values. Models stay
resident; every image is: prompt -> text encoder -> 50 CFG steps (cfg 4, log2_alpha 5, 512 x 512) -> VAE decode
-> uint8 RGB + float depth, timed with the device synchronised at both ends. Each configuration generates one
warm-up image (its first image: compile warm-up included, reported as `first_s`), then `--reps` timed images
(median reported). The refine pass (i2d depth re-run) is timed as the difference of a refine image and a plain one.

Configurations: ours bf16 eager, ours bf16 compiled, ours fp8 (row scaling) compiled, the reference runner
(`FluxRGBDRunner.generate`, eager: what its scripts run). Goals (issue): <= 6.0 s bf16, <= 4.0 s fp8.
Writes OUT/e2e.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
import common as C  # noqa: E402

import mofo_core as mc  # noqa: E402
import mofo_core.app.pipeline as pl  # noqa: E402
import mofo_core.model.fp8  # noqa: E402,F401
import mofo_core.model.perf  # noqa: E402,F401

PROMPTS = ["a cozy living room with a stone fireplace, warm evening light", "a red bicycle leaning on a brick wall",
           "a bowl of ramen on a wooden table", "a lighthouse on a cliff at dawn", "a cat asleep on a windowsill"]
GOALS = {"ours_bf16_compiled": 6.0, "ours_fp8_compiled": 4.0, "ours_bf16_autotune": 6.0, "ours_fp8_autotune": 4.0}


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def timed(fn, dev) -> float:
    sync(dev)
    t = time.perf_counter()
    fn()
    sync(dev)
    return time.perf_counter() - t


def ours_pipeline(dit, dev, tiny: bool, *, compile: bool, mode: str | None = None) -> pl.MofoPipeline:
    """The pipeline with the given DiT and random text encoder / decoder already resident (nothing from disk)."""
    from mofo_core.encoders.text_encoder import QwenTextEmbedder

    unused = Path("/nonexistent")
    files = pl.ModelFiles(dit=unused, ae_encoder=unused, ae_decoder=unused, text_encoder=C.TINY_QWEN)
    pipe = pl.MofoPipeline(files, device=dev, dtype=torch.bfloat16, keep_text_encoder=True, compile=compile)
    tok = C.tiny_tokenizer()  # byte-level stand-in: prompts are padded to 512 tokens either way
    pipe._text = QwenTextEmbedder(tok, C.random_qwen(tiny, 27 if not tiny else 28, dev))
    pipe._tokenizer = QwenTextEmbedder(tok, None)
    pipe._ae = C.random_decoder(tiny, dev)
    mofo_core.model.perf.set_attention(dit, "auto")
    if compile:
        mofo_core.model.perf.compile_blocks(dit, mode=mode)
    pipe._dit, pipe._variant = dit, dit.config.variant
    return pipe


def ref_runner(fr, dev, tiny: bool, size: int):
    from flux_rgbd.runner import FluxRGBDRunner

    variant = "flux_rgbd_9b_v2"
    cfg = mc.config.tiny(variant, context_in_dim=48) if tiny else mc.VARIANTS[variant]
    model = C.ref_from_ours(fr, C.random_dit(cfg, dev, seed=0), variant, tiny)  # the same weights as ours
    with torch.device("meta"):
        _, dcfg, scfg = fr.factories.VARIANTS[variant]()
    dec = C.ref_decoder(fr, tiny, dev)
    lm = C.random_qwen(tiny, 28 if tiny else 36, dev, causal_lm=True)
    emb = C.ref_embedder(fr, C.tiny_tokenizer(), lm, dev)
    return FluxRGBDRunner(model, dec, emb, dcfg, scfg, device=str(dev), img_hw=(size, size))


def step_timeline(kernels: list[tuple[float, float, str]], marker: str) -> dict:
    """Where one sampler step's time goes on the GPU: `kernels` = (start us, end us, name) of one profiled run,
    whose step callback launched a `marker` kernel after every step. Takes the span between the 2nd and 3rd
    markers (a steady step): busy = union of kernel intervals, idle = the rest, and the largest gaps."""
    from gpu.profiling import kernel_class

    marks = [k for k in kernels if marker in k[2]]
    if len(marks) < 3:
        return {}
    t0, t1 = marks[1][1], marks[2][0]
    inside = sorted(k for k in kernels if t0 <= k[0] and k[1] <= t1 and marker not in k[2])
    busy, gaps, cls, end = 0.0, [], {}, t0
    prev = "(step start)"
    for s, e, name in inside:
        if s > end:
            gaps.append((s - end, prev, name))
        busy += max(0.0, e - max(s, end))
        end, prev = max(end, e), name
        cls[kernel_class(name)] = cls.get(kernel_class(name), 0.0) + (e - s) / 1e3
    if t1 > end:
        gaps.append((t1 - end, prev, "(step end)"))
    gaps.sort(reverse=True)
    return {"step_ms": round((t1 - t0) / 1e3, 3), "busy_ms": round(busy / 1e3, 3),
            "idle_ms": round((t1 - t0 - busy) / 1e3, 3), "kernels": len(inside),
            "by_class_ms": {k: round(v, 3) for k, v in cls.items()},
            "largest_gaps": [(round(g / 1e3, 3), a[:60], b[:60]) for g, a, b in gaps[:8]]}


def profile_step(pipe, dev, size: int) -> dict:
    """One 4-step image under torch.profiler; the step timeline of a steady step (see `step_timeline`)."""
    from torch.profiler import ProfilerActivity, profile

    def mark(_info):  # a tiny named kernel between steps, then the same sync as the timed runs
        torch.cuda._sleep(1)
        sync(dev)

    params = pl.GenerateParams(mode="joint", prompt=PROMPTS[0], steps=4, seed=0, width=size, height=size, cfg=4.0,
                               log2_alpha=5.0)
    pipe.generate(params, callback=mark)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        pipe.generate(params, callback=mark)
    kernels = [(e.time_range.start, e.time_range.end, e.name) for e in prof.events()
               if str(getattr(e, "device_type", "")).split(".")[-1] == "CUDA"]
    return step_timeline(kernels, "spin")


def measure(name: str, gen, dev, reps: int, refine=None) -> dict:
    """gen(prompt) makes one image; refine(prompt) one with the refine pass."""
    res = {"name": name, "first_s": round(timed(lambda: gen(PROMPTS[0]), dev), 2)}
    times = [timed(lambda p=p: gen(p), dev) for p in PROMPTS[1 : 1 + reps]]
    res.update(image_s=round(statistics.median(times), 3), images_s=[round(t, 3) for t in times])
    if refine is not None:
        refine(PROMPTS[0])  # warm-up: the i2d pass runs other shapes (no CFG batch), compiled anew
        r = [timed(lambda p=p: refine(p), dev) for p in PROMPTS[1:3]]
        res["refine_extra_s"] = round(statistics.median(r) - res["image_s"], 3)
    if dev.type == "cuda":
        res["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated(dev) / 2**30, 2)
    print(json.dumps(res), flush=True)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", default=None, help="reference checkout (Duisterhof/modality-forcing); omitted: ours only")
    ap.add_argument("--out", default="bench_out")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--configs", default="ref,ours_bf16_eager,ours_bf16_compiled,ours_fp8_compiled")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--profile-step", action="store_true",
                    help="also profile one steady sampler step per configuration (GPU busy / idle, largest gaps)")
    a = ap.parse_args()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tiny, size = a.tiny, 64 if a.tiny else 512
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    configs = [c for c in a.configs.split(",") if c]
    rows = []
    torch.backends.cuda.matmul.allow_tf32 = False
    with torch.inference_mode():
        if "ref" in configs and a.ref:
            fr = C.import_reference(Path(a.ref).resolve())
            runner = ref_runner(fr, dev, tiny, size)

            def ref_gen(prompt, refine=False):
                runner.generate(prompt, num_steps=a.steps, cfg_scale=4.0, seed=0, log2_alpha=5.0,
                                refine_depth_i2d=refine)

            rows.append(measure("ref", ref_gen, dev, a.reps, refine=lambda p: ref_gen(p, True)))
            del runner, fr
            if dev.type == "cuda":
                torch.cuda.empty_cache()
        ours = [c for c in configs if c.startswith("ours")]
        if ours:
            cfg = mc.config.tiny("flux_rgbd_9b_v2", context_in_dim=48) if tiny else mc.VARIANTS["flux_rgbd_9b_v2"]
            base = C.random_dit(cfg, dev, seed=0)
            for name in ours:
                fp8 = "fp8" in name
                dit = mofo_core.model.fp8.quantize_dit(C.shared_copy(base)) if fp8 else C.shared_copy(base)
                if fp8:
                    del base  # the bf16 block matrices are not needed once quantised
                    base = None
                autotune = "autotune" in name  # inductor's GEMM autotuning (minutes of compile), no CUDA graphs
                pipe = ours_pipeline(dit, dev, tiny, compile="compiled" in name or autotune,
                                     mode="max-autotune-no-cudagraphs" if autotune else None)
                if dev.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(dev)

                stamps: list[float] = []

                def tick(_info, stamps=stamps):  # per-step wall time, device synchronised (as ComfyUI's previews do)
                    sync(dev)
                    stamps.append(time.perf_counter())

                def gen(prompt, refine=False, pipe=pipe, stamps=stamps):
                    stamps.clear()
                    pipe.generate(pl.GenerateParams(mode="joint", prompt=prompt, steps=a.steps, seed=0, width=size,
                                                    height=size, cfg=4.0, log2_alpha=5.0, refine_depth=refine),
                                  callback=tick)

                rows.append(measure(name, gen, dev, a.reps,
                                    refine=(lambda p, g=gen: g(p, True)) if name == "ours_bf16_compiled" else None))
                gen(PROMPTS[0])
                gaps = [y - x for x, y in zip(stamps, stamps[1:])]
                rows[-1]["s_per_step"] = round(statistics.median(gaps), 4) if gaps else None
                if a.profile_step and dev.type == "cuda":
                    rows[-1]["step_profile"] = profile_step(pipe, dev, size)
                    print(json.dumps({"name": name, "step_profile": rows[-1]["step_profile"]}), flush=True)
                del pipe, dit
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
                if base is None:
                    break
    (out / "e2e.json").write_text(json.dumps(rows, indent=1))
    ref = next((r["image_s"] for r in rows if r["name"] == "ref"), None)
    print(f"\n{'configuration':<22}{'image s':>9}{'vs ref':>8}{'first s':>9}{'refine +s':>10}{'goal s':>8}")
    for r in rows:
        rel = f"{r['image_s'] / ref:.2f}x" if ref else "-"
        goal = GOALS.get(r["name"])
        print(f"{r['name']:<22}{r['image_s']:>9.2f}{rel:>8}{r['first_s']:>9.1f}{r.get('refine_extra_s', 0):>10.2f}"
              f"{(f'{goal:.1f} ' + ('met' if r['image_s'] <= goal else 'MISSED')) if goal else '':>14}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
