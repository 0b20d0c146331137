"""Results on disk (OUT/results.json, OUT/profiles.txt; atomic writes) and the summary table printed last."""

from __future__ import annotations

import json
from pathlib import Path

from mofo_core.atomic import atomic_path

NAN = float("nan")


def save(out: Path, res: dict, profiles: list[str]) -> None:
    """Rewrite results.json (and profiles.txt when there are kernel tables); never a half-written file."""
    with atomic_path(out / "results.json") as tmp:
        tmp.write_text(json.dumps(res, indent=1, default=str))
    if profiles:
        with atomic_path(out / "profiles.txt") as tmp:
            tmp.write_text("\n\n".join(profiles))


def _ms(d: dict, *path: str):
    """d[path[0]][path[1]]... or None where a level is missing."""
    for k in path:
        d = d.get(k, {}) if isinstance(d, dict) else {}
    return d if isinstance(d, (int, float)) else None


def speed_rows(b) -> list[tuple[str, str, str, str, str]]:
    """(measurement, ms, TFLOP/s, ratio to the reference, goal) for every variant of the speed phase."""
    rows = []
    for variant, r in b.res.get("speed", {}).items():
        v = variant.rsplit("_", 1)[-1]
        ref_f, ref_s = _ms(r, "reference", "eager_forward", "median_ms"), _ms(r, "reference", "cfg_step", "median_ms")

        def row(name, ms, base, goal="", variant=variant, v=v):
            if ms is None:
                return
            ratio = f"{ms / base:.2f}x" if base else ""
            tf = f"{b.tflops(b.cfg(variant), ms, 2 if 'CFG' in name else 1):.0f}" if ms else ""
            rows.append((f"{v} {name}", f"{ms:.1f}", tf, ratio, goal))

        c = r.get("compiled") if isinstance(r.get("compiled"), dict) else {}
        row("forward eager sdpa (ref kernel)", _ms(r, "eager_forward", "sdpa", "median_ms"), ref_f)
        fb = r.get("fastest_backend")
        if fb:
            row(f"forward eager {fb}", _ms(r, "eager_forward", fb, "median_ms"), ref_f)
        row("forward eager + CUDA graphs", _ms(r, "eager_graphs", "graphs_forward", "median_ms"), ref_f)
        row("forward compiled", _ms(c, "forward", "median_ms"), ref_f, "<= 60 ms")
        row("forward compiled + CUDA graphs", _ms(c, "graphs_forward", "median_ms"), ref_f, "<= 60 ms")
        row("forward REFERENCE eager", ref_f, ref_f)
        row("CFG step eager batched (auto)", _ms(r, "cfg_step_batched", "median_ms"), ref_s)
        row("CFG step eager + CUDA graphs", _ms(r, "eager_graphs", "graphs_cfg_step_batched", "median_ms"), ref_s)
        row("CFG step compiled batched", _ms(c, "cfg_step_batched", "median_ms"), ref_s, "<= 0.6x ref")
        row("CFG step compiled + CUDA graphs", _ms(c, "graphs_cfg_step_batched", "median_ms"), ref_s, "<= 0.6x ref")
        row("CFG step REFERENCE (2 seq.)", ref_s, ref_s)
    return rows


def fp8_rows(res: dict) -> list[tuple[str, str, str, str, str]]:
    """The compiled fp8 timings, as ratios to the first variant's reference."""
    sp = res.get("speed", {})
    first = next(iter(sp.values())).get("reference", {}) if sp else {}
    ref_f, ref_s = _ms(first, "eager_forward", "median_ms"), _ms(first, "cfg_step", "median_ms")
    rows = []
    for key, fr in res.get("fp8", {}).items():
        c = fr.get("compiled") if isinstance(fr, dict) else None
        if not c:
            continue
        for label, ms, goal in (("forward compiled", c["forward"]["median_ms"], "<= 40 ms"),
                                ("forward compiled + graphs", _ms(c, "graphs_forward", "median_ms"), "<= 40 ms"),
                                ("CFG step compiled", _ms(c, "cfg_step_batched", "median_ms"), "<= 0.6x ref"),
                                ("CFG step compiled + graphs", _ms(c, "graphs_cfg_step_batched", "median_ms"),
                                 "<= 0.6x ref")):
            if ms is None:
                continue
            base = ref_s if "CFG" in label else ref_f
            rows.append((f"fp8 {key} {label}", f"{ms:.1f}", "", f"{ms / base:.2f}x" if base else "", goal))
    return rows


def table(b) -> None:
    """Print the summary: timings against the reference and the goals, loads, memory, fp8 error, errors."""
    res, steps = b.res, b.a.sample_steps
    print("\n" + "=" * 100)
    print(f"{'measurement':48s} {'ms':>9s} {'TFLOP/s':>8s} {'vs ref':>8s}  goal")
    for r in speed_rows(b) + fp8_rows(res):
        print(f"{r[0]:48s} {r[1]:>9s} {r[2]:>8s} {r[3]:>8s}  {r[4]}")
    ld = res.get("load", {})
    if ld:
        g = {k: ld.get(k, NAN) for k in ("ours_cold_best_s", "ref_cold_best_s", "ours_safe_open_cold_best_s",
                                         "ours_fp8_stream_cold_best_s", "ours_warm_best_s", "ref_warm_best_s")}
        print(f"cold load: ours {g['ours_cold_best_s']:.2f} s, ref {g['ref_cold_best_s']:.2f} s, ours safe_open "
              f"{g['ours_safe_open_cold_best_s']:.2f} s, fp8 streamed {g['ours_fp8_stream_cold_best_s']:.2f} s; "
              f"warm: ours {g['ours_warm_best_s']:.2f} s, ref {g['ref_warm_best_s']:.2f} s")
    for name, m in res.get("mem", {}).items():
        print(f"memory {name}: pass={m.get('pass')} peak reserved {m.get('peak_reserved_gib', NAN):.2f} "
              f"GiB (allocated {m.get('peak_allocated_gib', NAN):.2f}) generate {m.get('generate_s', 0):.1f} s "
              f"{m.get('error', '')}")
    for key, fr in res.get("fp8", {}).items():
        if isinstance(fr, dict) and "forward_rel_err_vs_bf16" in fr:
            print(f"fp8 {key} error vs bf16: forward {fr.get('forward_rel_err_vs_bf16')}, "
                  f"{steps}-step sample {fr.get(f'sample{steps}_rel_err_vs_bf16')}")
    cc = res.get("compile_cache")
    if isinstance(cc, dict):
        print(f"compile warm-up in a fresh process with a warm cache: {cc}")
    if res.get("errors"):
        print("ERRORS:", res["errors"])
    print("=" * 100)
