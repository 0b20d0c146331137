"""One-pass per-row fp8 activation quantisation on the GPU (a Triton kernel behind a PyTorch custom op).

`fp8.quantize_activation(x, "row")` in PyTorch ops takes several passes over the activations (an fp32 copy, the
per-row amax, the scaled cast): profiled at ~9.9 ms of a ~52 ms fp8 forward, against ~1.2 ms to read the bf16
activations once and write their fp8 copy at the card's bandwidth (BENCHMARKS.md). This kernel does it in one
pass: each program loads one row once, takes its amax, and writes the fp8 row and its scale. Same arithmetic as
the PyTorch function, IEEE division included (`div_rn`), so the bytes are identical (checked by
bench/fp8_quant_probe.py on the GPU).

Registered as the custom op `mofo::quantize_rows` with a fake (meta) implementation, so torch.compile keeps it as
one opaque kernel inside the compiled blocks instead of breaking the graph. Imported only where Triton and a CUDA
device are present (`available()`); everywhere else `fp8.quantize_activation` runs.
"""

from __future__ import annotations

import os
from functools import cache

import torch
from torch import Tensor

FP8 = torch.float8_e4m3fn
FP8_MAX = 448.0
_MAX_ROW = 32768  # widest row one program holds in registers (the DiT's widest input is 16384)


@cache
def available() -> bool:
    """Triton importable, a CUDA device present, and not switched off (MOFO_FP8_FUSED_QUANT=0, for A/B runs)."""
    if os.environ.get("MOFO_FP8_FUSED_QUANT", "1") == "0" or not torch.cuda.is_available():
        return False
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except ImportError:
        return False
    return True


@cache
def _kernel():
    import triton
    import triton.language as tl

    @triton.jit
    def quantize_rows_kernel(x_ptr, q_ptr, s_ptr, n_cols, x_stride, q_stride, BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        cols = tl.arange(0, BLOCK)
        mask = cols < n_cols
        x = tl.load(x_ptr + row * x_stride + cols, mask=mask, other=0.0).to(tl.float32)
        amax = tl.max(tl.abs(x), axis=0)
        scale = tl.maximum(tl.math.div_rn(amax, 448.0), 1e-12)
        q = tl.minimum(tl.maximum(tl.math.div_rn(x, scale), -448.0), 448.0)
        tl.store(q_ptr + row * q_stride + cols, q.to(tl.float8e4nv), mask=mask)
        tl.store(s_ptr + row, scale)

    return triton, quantize_rows_kernel


def _quantize_rows(x: Tensor) -> tuple[Tensor, Tensor]:
    """(M, K) bf16 / fp16 / fp32 CUDA activations -> (fp8 (M, K), float32 scales (M, 1)), one pass."""
    m, k = x.shape
    if x.stride(1) != 1:
        x = x.contiguous()
    q = torch.empty((m, k), dtype=FP8, device=x.device)
    s = torch.empty((m, 1), dtype=torch.float32, device=x.device)
    if m == 0:
        return q, s
    triton, kernel = _kernel()
    block = triton.next_power_of_2(k)
    if block > _MAX_ROW:
        raise ValueError(f"rows of {k} values are wider than the fused kernel's {_MAX_ROW}")
    warps = 4 if block <= 2048 else 8 if block <= 8192 else 16
    kernel[(m,)](x, q, s, k, x.stride(0), q.stride(0), BLOCK=block, num_warps=warps)
    return q, s


def _fake(x: Tensor) -> tuple[Tensor, Tensor]:
    m, k = x.shape
    return x.new_empty((m, k), dtype=FP8), x.new_empty((m, 1), dtype=torch.float32)


def register() -> bool:
    """Define `torch.ops.mofo.quantize_rows` once per process (this module may be imported under two package
    names, e.g. by ComfyUI and by a script); True when the fused kernel can run here."""
    if not available():
        return False
    try:
        torch.ops.mofo.quantize_rows  # noqa: B018 - already defined
    except (AttributeError, RuntimeError):
        op = torch.library.custom_op("mofo::quantize_rows", _quantize_rows, mutates_args=())
        op.register_fake(_fake)
    return True
