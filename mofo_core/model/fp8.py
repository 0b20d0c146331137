"""fp8 (e4m3) weights for the DiT's block matrices, run on the fp8 matrix units of Hopper / Ada GPUs.

`FP8Linear` stores its weight as `float8_e4m3fn` with a float32 scale, per output channel ("row", the
default) or per tensor ("tensor"), and quantises its input on the fly with a matching dynamic scale (per
token for "row", per tensor otherwise); the product runs through `torch._scaled_mm` (fp8 x fp8 -> bf16) on
CUDA devices of compute capability >= 8.9, with Hopper's fast fp8 accumulation by default (`fast_accum`:
measured 7% faster at the same error, BENCHMARKS.md). Elsewhere (CPU tests, older GPUs) the same quantised operands
are dequantised and multiplied in float32: the same function, slower.

Only the matrices inside the repeated blocks are converted (`qkv`, `proj`, `mlp.0`, `mlp.2`, `linear1`,
`linear2`: 95% of the weights and of the FLOPs). The embedders, the modulation heads and both output heads
stay in the body dtype, and the depth head stays fp32 as everywhere else. Memory: 12.0B -> ~11.9 GiB.

Entry points: `quantize_dit(dit)` converts a loaded model in place; `load_dit(..., fp8="tensor")` converts
each tensor as it is read, so the bf16 model never exists on the device (peak ~ the fp8 model + 1 window).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache

import torch
from torch import Tensor, nn

from ..config import FP8_SCALINGS

FP8 = torch.float8_e4m3fn
FP8_MAX = 448.0  # largest finite e4m3fn value
SCALINGS = FP8_SCALINGS
# State-dict names (prefix-free) of the matrices converted by default.
BLOCK_MATRIX = re.compile(
    r"^(double_blocks|single_blocks|depth_decoder_blocks)\.\d+\."
    r"(\w+_attn\.qkv|\w+_attn\.proj|\w+_mlp\.0|\w+_mlp\.2|linear1|linear2)\.weight$"
)
# Also the modulation heads (measured, not the default: BENCHMARKS.md).
MODULATION_MATRIX = re.compile(r"^(double_stream_modulation_\w+|single_stream_modulation\w*|depth_decoder_modulation)"
                               r"\.lin\.weight$")
_ROWS_PER_CHUNK = 4096  # rows quantised at a time: bounds the fp32 temporaries to 64 MiB for 4096 columns


@cache
def _scaled_mm_ok(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 9)


def quantize_weight(w: Tensor, scaling: str = "row") -> tuple[Tensor, Tensor]:
    """(N, K) weight -> (fp8 weight (N, K), float32 scale () or (N,)) with w ~ w_fp8 * scale."""
    if scaling not in SCALINGS:
        raise ValueError(f"fp8 scaling must be one of {SCALINGS}, got {scaling!r}")
    rows = range(0, w.shape[0], _ROWS_PER_CHUNK)
    if scaling == "tensor":
        amax = torch.stack([w[i : i + _ROWS_PER_CHUNK].abs().amax().float() for i in rows]).amax()
        scale = (amax / FP8_MAX).clamp(min=1e-12)
    else:
        scale = torch.cat([w[i : i + _ROWS_PER_CHUNK].abs().amax(dim=1).float() for i in rows]) / FP8_MAX
        scale = scale.clamp(min=1e-12)
    q = torch.empty(w.shape, dtype=FP8, device=w.device)
    for i in rows:
        s = scale if scaling == "tensor" else scale[i : i + _ROWS_PER_CHUNK, None]
        q[i : i + _ROWS_PER_CHUNK] = (w[i : i + _ROWS_PER_CHUNK].float() / s).clamp(-FP8_MAX, FP8_MAX).to(FP8)
    return q, scale


def quantize_activation(x: Tensor, scaling: str) -> tuple[Tensor, Tensor]:
    """(M, K) activations -> (fp8 (M, K), float32 scale () or (M, 1)), dynamic (from this call's amax)."""
    xf = x.float()
    amax = xf.abs().amax() if scaling == "tensor" else xf.abs().amax(dim=1, keepdim=True)
    scale = (amax / FP8_MAX).clamp(min=1e-12)
    return (xf / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8), scale


class FP8Linear(nn.Module):
    """Bias-free Linear with an e4m3 weight and dynamic e4m3 activations (see the module docstring)."""

    def __init__(self, in_features: int, out_features: int, *, scaling: str = "row", fast_accum: bool = True,
                 device=None):
        super().__init__()
        if scaling not in SCALINGS:
            raise ValueError(f"fp8 scaling must be one of {SCALINGS}, got {scaling!r}")
        self.in_features, self.out_features = in_features, out_features
        self.scaling, self.fast_accum = scaling, fast_accum
        self.bias = None
        # True on a device with fp8 matrix units; None = decide from the input's device at each call (weights
        # loaded on the CPU and moved by someone else, e.g. ComfyUI's model manager). Set by `set_native`.
        self.native: bool | None = None
        self.weight = nn.Parameter(torch.empty(out_features, in_features, dtype=FP8, device=device),
                                   requires_grad=False)
        scale_shape = () if scaling == "tensor" else (out_features,)
        self.weight_scale = nn.Parameter(torch.ones(scale_shape, dtype=torch.float32, device=device),
                                         requires_grad=False)

    @classmethod
    def from_weight(cls, w: Tensor, *, scaling: str = "row", fast_accum: bool = True) -> FP8Linear:
        q, s = quantize_weight(w, scaling)
        m = cls(w.shape[1], w.shape[0], scaling=scaling, fast_accum=fast_accum, device="meta")
        m.weight, m.weight_scale = nn.Parameter(q, requires_grad=False), nn.Parameter(s, requires_grad=False)
        return m

    def _apply(self, fn, recurse: bool = True):
        out = super()._apply(fn, recurse)
        self.native = True if _scaled_mm_ok(self.weight.device) else None  # .to() / .cuda() moved us
        return out

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, scaling={self.scaling}"

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)
        xq, sa = quantize_activation(x2, self.scaling)
        sb = self.weight_scale if self.scaling == "tensor" else self.weight_scale.view(1, -1)
        out_dtype = x.dtype if x.dtype in (torch.bfloat16, torch.float16, torch.float32) else torch.bfloat16
        native = self.native if self.native is not None else _scaled_mm_ok(x.device)
        if native and x.is_cuda:
            out = torch._scaled_mm(xq, self.weight.t(), scale_a=sa, scale_b=sb, out_dtype=out_dtype,
                                   use_fast_accum=self.fast_accum)
        else:  # same operands, dequantised: the reference function for tests and non-fp8 devices
            w = self.weight.float() * (sb if self.scaling == "tensor" else self.weight_scale[:, None])
            out = ((xq.float() * sa) @ w.t()).to(out_dtype)
        return out.reshape(*lead, self.out_features)


def _targets(include_modulation: bool) -> Callable[[str], bool]:
    def is_target(name: str) -> bool:
        return bool(BLOCK_MATRIX.match(name) or (include_modulation and MODULATION_MATRIX.match(name)))

    return is_target


def _swap(model: nn.Module, module_name: str, new: nn.Module) -> None:
    parent_name, _, leaf = module_name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, leaf, new)


def quantize_dit(dit: nn.Module, *, scaling: str = "row", fast_accum: bool = True,
                 include_modulation: bool = False) -> nn.Module:
    """Convert the block matrices of a loaded DiT to `FP8Linear` in place (frees each bf16 weight); returns it."""
    body = dit.dtype
    is_target = _targets(include_modulation)
    names = [n for n, _ in dit.named_parameters() if is_target(n)]
    for n in names:
        mod_name = n.removesuffix(".weight")
        old = dit.get_submodule(mod_name)
        _swap(dit, mod_name, FP8Linear.from_weight(old.weight.detach(), scaling=scaling, fast_accum=fast_accum))
        del old
    dit.body_dtype = body
    return set_native(dit)


def set_native(model: nn.Module) -> nn.Module:
    """Fix each `FP8Linear`'s path from its weight's device (fp8 units: `torch._scaled_mm`; else decided per call)."""
    for m in model.modules():
        if isinstance(m, FP8Linear):
            m.native = True if _scaled_mm_ok(m.weight.device) else None
    return model


def fp8_loader(model: nn.Module, *, scaling: str = "row", fast_accum: bool = True,
               include_modulation: bool = False) -> Callable[[str, Tensor], dict[str, Tensor]]:
    """Swap the target Linears of a meta-device model for meta `FP8Linear`s; return name, tensor -> entries.

    Used by `load_dit(..., fp8=...)`: each weight is quantised as it arrives from the file.
    """
    is_target = _targets(include_modulation)
    # Walk the Linear modules by their declared sizes, not their parameters: a host's lazy layers (ComfyUI's
    # comfy.ops under dynamic VRAM) have no weight until the state dict is loaded.
    for n, m in list(model.named_modules()):
        if is_target(f"{n}.weight") and hasattr(m, "in_features") and hasattr(m, "out_features"):
            _swap(model, n, FP8Linear(m.in_features, m.out_features, scaling=scaling, fast_accum=fast_accum,
                                      device="meta"))

    def convert(name: str, t: Tensor) -> dict[str, Tensor]:
        if not is_target(name):
            return {name: t}
        q, s = quantize_weight(t, scaling)
        return {name: q, name.removesuffix("weight") + "weight_scale": s}

    return convert


def fp8_supported(device: torch.device | str) -> bool:
    """True where `FP8Linear` runs on fp8 matrix units (CUDA, compute capability >= 8.9)."""
    return _scaled_mm_ok(torch.device(device))


__all__ = ["FP8Linear", "SCALINGS", "fp8_loader", "fp8_supported", "quantize_dit", "quantize_weight", "set_native"]
