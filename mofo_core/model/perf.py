"""Speed options for the DiT: the attention kernel, regional compilation and CUDA graphs.

(The fast threaded checkpoint reader lives with the other checkpoint code:
`mofo_core.weights.checkpoint.iter_threaded`.)

* `set_attention(dit, "auto" | "sdpa" | "flash" | "cudnn" | "efficient")` swaps `MofoDiT.attn_fn`. "sdpa"
  is PyTorch's own choice (the reference's call); the others pin one SDPA kernel. "auto" is "sdpa" off CUDA
  and the kernel measured fastest on the device's architecture otherwise (`AUTO_ATTENTION`, from
  `bench/bench_gpu.py` runs: BENCHMARKS.md), falling back to "sdpa" when that kernel refuses a probe call.
* `compile_blocks(dit)` runs `torch.compile` on each repeated block (regional compilation): the 8 triple,
  24 single and 4 depth-decoder blocks share two compiled graphs, so the warm-up is that of two blocks, and
  inductor's on-disk cache makes later processes start warm. This fuses the LayerNorm + modulation, the
  QK-RMSNorm + RoPE and the gated-SiLU + concat passes around the matrix products.
* `CudaGraphDiT(dit)` replays whole forwards from CUDA graphs (opt-in; pays only at batch 1).

Numerics: every attention kernel computes the same softmax attention (bf16 differences ~1e-3 relative);
compiled blocks compute the eager function with fused kernels, keeping the eager code's bf16 roundings.
"""

from __future__ import annotations

import logging
from functools import cache

import torch
from torch import Tensor, nn

from ..config import ATTENTION_BACKENDS
from .math import AttentionFn, sdpa

log = logging.getLogger(__name__)

_SDP = {"flash": "FLASH_ATTENTION", "cudnn": "CUDNN_ATTENTION", "efficient": "EFFICIENT_ATTENTION"}
# Measured choice per CUDA compute capability (major, minor); anything else uses PyTorch's own choice.
AUTO_ATTENTION: dict[tuple[int, int], str] = {(9, 0): "cudnn"}


@cache
def attention_fn(backend: str) -> AttentionFn:
    """The attention callable for one backend name ("auto" is resolved by `set_attention`).

    One function object per name, so compiled blocks keep their graphs when the kernel is set again.
    """
    if backend == "sdpa":
        return sdpa
    if backend not in _SDP:
        raise ValueError(f"attention backend must be one of {ATTENTION_BACKENDS}, got {backend!r}")
    from torch.nn.attention import SDPBackend, sdpa_kernel

    kernel = getattr(SDPBackend, _SDP[backend])

    def fn(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        with sdpa_kernel(kernel):
            return torch.nn.functional.scaled_dot_product_attention(q, k, v)

    fn.__name__ = f"sdpa_{backend}"
    return fn


def _works(fn: AttentionFn, device: torch.device, dtype: torch.dtype, head_dim: int) -> bool:
    try:
        q = torch.randn(1, 2, 64, head_dim, device=device, dtype=dtype)
        out = fn(q, q, q)
        ref = sdpa(q.float(), q.float(), q.float())
        return bool(torch.isfinite(out).all()) and float((out.float() - ref).norm() / ref.norm()) < 2e-2
    except RuntimeError as e:  # "No available kernel", unsupported dtype / arch
        log.info("attention kernel %s refused a probe call: %s", getattr(fn, "__name__", fn), e)
        return False


def _pytorch_choice(device: torch.device, dtype: torch.dtype, heads: int, head_dim: int) -> str | None:
    """The kernel PyTorch's own SDPA dispatch picks for the model's attention shape (None if unknown)."""
    try:
        from torch.nn.attention import SDPBackend

        q = torch.empty(1, heads, 2560, head_dim, device=device, dtype=dtype)
        idx = int(torch._fused_sdp_choice(q, q, q))
        names = {int(getattr(SDPBackend, v)): k for k, v in _SDP.items()}
        return names.get(idx)
    except (AttributeError, RuntimeError, TypeError):
        return None


def resolve_attention(
    backend: str, device: torch.device | str, dtype: torch.dtype, head_dim: int = 128, heads: int = 32
) -> str:
    """The concrete backend name "auto" stands for on this device (and a pinned one that cannot run -> sdpa).

    "auto" on CUDA: the measured-fastest kernel of the architecture (`AUTO_ATTENTION`); when PyTorch's own
    dispatch already picks it, plain "sdpa" is returned (same kernel, no per-call context manager).
    """
    device = torch.device(device)
    if backend not in ATTENTION_BACKENDS:
        raise ValueError(f"attention backend must be one of {ATTENTION_BACKENDS}, got {backend!r}")
    if device.type != "cuda":
        if backend not in ("auto", "sdpa"):
            log.warning("attention %r needs CUDA; using PyTorch's SDPA on %s", backend, device)
        return "sdpa"
    if backend == "auto":
        backend = AUTO_ATTENTION.get(torch.cuda.get_device_capability(device), "sdpa")
        if backend != "sdpa" and _pytorch_choice(device, dtype, heads, head_dim) == backend:
            return "sdpa"
    if backend != "sdpa" and not _works(attention_fn(backend), device, dtype, head_dim):
        log.warning("attention %r cannot run here (%s, %s); using PyTorch's SDPA", backend, device, dtype)
        return "sdpa"
    return backend


def set_attention(dit: nn.Module, backend: str = "auto") -> str:
    """Point `dit.attn_fn` at a kernel; returns the backend actually used."""
    p = dit.img_in.weight
    name = resolve_attention(backend, p.device, dit.dtype, dit.config.head_dim, dit.config.num_heads)
    dit.attn_fn = attention_fn(name)
    return name


RECOMPILE_LIMIT = 64  # compiled entries per block code object (see compile_blocks)


def compile_blocks(
    dit: nn.Module, *, mode: str | None = None, dynamic: bool | None = False, exact_casts: bool = True
) -> nn.Module:
    """`torch.compile` every repeated block in place (regional compilation); returns `dit`.

    Blocks of one class share compiled code (their parameters are graph inputs), so one forward at a new
    batch size or grid compiles each block class once. The first forward pays the compile (~20 s on an
    H100; ~12 s in a later process, from inductor's disk cache). exact_casts keeps every explicit bf16
    rounding of the eager code inside the fused kernels (inductor's `emulate_precision_casts`): without it
    the compiled bf16 forward drifts 1.2-1.5% from the reference (over the 1e-2 parity tolerance), with it
    it is bit-identical to eager on CPU. `mode` (e.g. "max-autotune-no-cudagraphs") replaces those options.

    Every distinct input (batch size, grid, sequence length: the depth decoder's differs from the main stack's)
    and every kind of model (bf16 / fp8 / fp32 layers) adds one compiled entry to the same block code, and dynamo
    stops compiling a code object after `recompile_limit` entries (8 in torch 2.11-2.13): those blocks then run
    eager, ~1.4x slower, with only a console warning. One ComfyUI session that tries a few sizes on two weight
    dtypes passes 8 (a server log here: CFG batch 2 x {main stack, depth decoder} x {bf16, fp8} = 4 entries of
    the single-block code already), so the limit is raised to at least `RECOMPILE_LIMIT` (never lowered).
    KJNodes' compile nodes default to the same (their `dynamo_cache_size_limit` input, 64).
    """
    limit = torch._dynamo.config.recompile_limit
    torch._dynamo.config.recompile_limit = max(limit, RECOMPILE_LIMIT)
    kw = dict(mode=mode) if mode else dict(options={"emulate_precision_casts": exact_casts})
    for blocks in (dit.double_blocks, dit.single_blocks, dit.depth_decoder_blocks):
        for block in blocks:
            block.compile(dynamic=dynamic, **kw)
    return dit


class CudaGraphDiT:
    """`dit.predict` replayed from CUDA graphs, one per input signature (shapes, dtypes, grid). Opt-in.

    Removes the kernel-launch gaps, which show only at batch 1 (measured on an H100: eager 101.5 -> 95.9 ms,
    compiled 70.7 -> 69.7, fp8 49.9 -> 47.1; a batched CFG step gains <= 1%: BENCHMARKS.md), so the
    pipeline does not use it. Each graph keeps its own activation memory (~0.6 GiB per sample at 512^2);
    the weights must stay where they are (no offload); outputs are copies. Everything else is forwarded to
    the wrapped model, so it is a `Denoiser` for `sample`.
    """

    def __init__(self, dit: nn.Module, *, warmup: int = 2):
        self.dit, self.warmup = dit, warmup
        self._graphs: dict[tuple, tuple] = {}

    def __getattr__(self, name: str):
        return getattr(self.__dict__["dit"], name)

    def clear(self) -> None:
        """Drop the captured graphs (and their memory)."""
        self._graphs.clear()

    @torch.no_grad()
    def predict(self, rgb: Tensor, depth: Tensor, ctx: Tensor, t_rgb: Tensor, t_depth: Tensor, height: int,
                width: int) -> tuple[Tensor, Tensor]:
        args = (rgb, depth, ctx, t_rgb, t_depth)
        if not rgb.is_cuda:
            return self.dit.predict(*args, height, width)
        key = tuple((tuple(a.shape), a.dtype) for a in args) + (height, width, rgb.device)
        entry = self._graphs.get(key)
        if entry is None:
            entry = self._graphs[key] = self._capture(args, height, width)
        graph, inputs, outputs = entry
        for dst, src in zip(inputs, args):
            dst.copy_(src)
        graph.replay()
        return tuple(o.clone() for o in outputs)

    def _capture(self, args, height: int, width: int):
        inputs = [a.detach().clone() for a in args]
        side = torch.cuda.Stream(inputs[0].device)
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up: compiles, cuDNN plans, cuBLAS workspaces
            for _ in range(self.warmup):
                self.dit.predict(*inputs, height, width)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            outputs = self.dit.predict(*inputs, height, width)
        return graph, inputs, outputs


__all__ = ["ATTENTION_BACKENDS", "AUTO_ATTENTION", "CudaGraphDiT", "attention_fn", "compile_blocks",
           "resolve_attention", "set_attention"]
