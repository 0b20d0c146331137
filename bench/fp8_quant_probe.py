"""fp8 activation quantisation: the one-pass Triton kernel (`mofo_core.fp8_kernels`) against PyTorch's version.

For every (rows, columns) shape the full-size DiT quantises in one forward at 512 x 512 (found by running the
model on the meta device with hooks), at batch 1 and batch 2 (batched CFG):

1. parity: the fused kernel's fp8 bytes and scales against `fp8.quantize_activation` (must be identical);
2. time per call (median, CUDA events via triton.testing.do_bench): PyTorch eager, PyTorch compiled, fused;
3. the sum over one forward, and the floor (read the bf16 rows once, write fp8 once, at the measured copy rate).

    python3 bench/fp8_quant_probe.py --out $OUT        # GPU; prints a table, writes fp8_quant_probe.json
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import mofo_core as mc  # noqa: E402
from mofo_core import fp8_kernels  # noqa: E402
from mofo_core.config import VARIANTS  # noqa: E402
from mofo_core.fp8 import FP8Linear, fp8_loader, quantize_activation  # noqa: E402


def forward_shapes(variant: str, batch: int, grid: int = 32) -> collections.Counter:
    """(rows, columns) of every FP8Linear input in one forward, counted (meta device: no memory, no time)."""
    cfg = VARIANTS[variant]
    with torch.device("meta"):
        m = mc.MofoDiT(cfg, dtype=torch.bfloat16)
    fp8_loader(m)
    m.body_dtype = torch.bfloat16
    shapes: collections.Counter = collections.Counter()
    for mod in m.modules():
        if isinstance(mod, FP8Linear):
            mod.register_forward_pre_hook(lambda _m, a: shapes.update([(a[0].numel() // a[0].shape[-1],
                                                                         a[0].shape[-1])]))
    n = grid * grid
    with torch.device("meta"), torch.no_grad():
        m.predict(torch.randn(batch, n, 128), torch.randn(batch, n, 256), torch.randn(batch, 512, cfg.context_in_dim),
                  torch.rand(batch), torch.rand(batch), grid, grid)
    return shapes


def activations(m: int, k: int, gen: torch.Generator) -> torch.Tensor:
    """bf16 rows with different magnitudes and a few outliers, like post-norm DiT activations."""
    x = torch.randn(m, k, generator=gen, device="cuda") * torch.rand(m, 1, generator=gen, device="cuda").mul(4).exp()
    x[:, :: max(k // 64, 1)] *= 8
    return x.to(torch.bfloat16)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench_out")
    ap.add_argument("--variant", default="flux_rgbd_9b_v2")
    a = ap.parse_args()
    import triton.testing

    assert torch.cuda.is_available() and fp8_kernels.register(), "needs a CUDA GPU and Triton"
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(0)
    compiled = torch.compile(quantize_activation, dynamic=False)
    fused = torch.ops.mofo.quantize_rows

    big = torch.empty(1 << 30, dtype=torch.uint8, device=dev)
    copy_ms = triton.testing.do_bench(big.clone, quantiles=[0.5])
    copy_bps = 2 * big.numel() / (copy_ms / 1e3)  # bytes read + written per second
    del big

    per_shape, mismatches = {}, []
    shapes = {b: forward_shapes(a.variant, b) for b in (1, 2)}
    for m, k in sorted(set().union(*shapes.values())):
        x = activations(m, k, gen)
        q_ref, s_ref = quantize_activation(x, "row")
        q, s = fused(x)
        same = int((q.view(torch.uint8) == q_ref.view(torch.uint8)).sum())
        if same != q.numel() or not torch.equal(s, s_ref):
            mismatches.append({"shape": [m, k], "bytes_differing": q.numel() - same,
                               "scales_equal": bool(torch.equal(s, s_ref))})
        t = {name: triton.testing.do_bench(lambda fn=fn, x=x: fn(x), quantiles=[0.5]) * 1e3 for name, fn in (
            ("eager_us", lambda v: quantize_activation(v, "row")), ("compiled_us", lambda v: compiled(v, "row")),
            ("fused_us", fused))}
        t["floor_us"] = (m * k * 3) / copy_bps * 1e6  # read bf16 (2 B) + write fp8 (1 B) per value
        per_shape[f"{m}x{k}"] = {k2: round(v, 2) for k2, v in t.items()}

    totals = {}
    for b, counter in shapes.items():
        tot = collections.Counter()
        for (m, k), n in counter.items():
            for key, v in per_shape[f"{m}x{k}"].items():
                tot[key] += n * v / 1e3
        totals[f"batch{b}_ms"] = {key: round(v, 3) for key, v in tot.items()}
        totals[f"batch{b}_calls"] = sum(counter.values())
    res = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "copy_tb_s": round(copy_bps / 1e12, 2),
           "per_shape": per_shape, "per_forward": totals, "parity_mismatches": mismatches}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fp8_quant_probe.json").write_text(json.dumps(res, indent=1))
    print(f"copy {res['copy_tb_s']} TB/s; parity: {'identical' if not mismatches else mismatches}")
    print(f"{'shape':>12}{'eager us':>10}{'compiled':>10}{'fused':>8}{'floor':>8}")
    for name, t in per_shape.items():
        print(f"{name:>12}{t['eager_us']:>10.1f}{t['compiled_us']:>10.1f}{t['fused_us']:>8.1f}{t['floor_us']:>8.1f}")
    for b in (1, 2):
        t = totals[f"batch{b}_ms"]
        print(f"one forward, batch {b} ({totals[f'batch{b}_calls']} calls): eager {t['eager_us']:.2f} ms, compiled "
              f"{t['compiled_us']:.2f} ms, fused {t['fused_us']:.2f} ms, floor {t['floor_us']:.2f} ms")
    return 0 if not mismatches else 1


if __name__ == "__main__":
    sys.exit(main())
