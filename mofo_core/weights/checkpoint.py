"""Reading `.safetensors` checkpoints: the one home for headers, dtype and key checks, and tensor streaming.

Every loader in the package (DiT, autoencoder, text-encoder checks, benchmarks) reads files through here:

* `read_header(path)` parses and validates the header without touching the data: the 8-byte length (bounded,
  so a "header bomb" cannot make us read gigabytes of JSON), the JSON, every entry's dtype, shape and byte range
  (inside the file, of the size its shape needs). A truncated download or a foreign file is one
  `CheckpointError` that names the file and the fix, before anything is allocated.
* `check_keys(expected, found, what)` compares the keys and shapes a model needs with those a file holds and
  names the missing, unexpected and mis-shaped ones. `expected_shapes(build)` gives the model's side from a
  skeleton built on the meta device with plain torch layers -- never from a live module, whose layers may be
  built without weights (ComfyUI's `comfy.ops` under dynamic VRAM creates `Linear` with `weight = None` and fills
  it at load time: comfy/ops.py `disable_weight_init.Linear.__init__`).
* `check_dtypes(header, allowed)` refuses tensors a model cannot hold (integers, bools, complex) by name.
* `iter_tensors(path, device, reader=)` yields the tensors: safetensors' own `safe_open`, or the threaded reader
  (parallel `pread`s into pinned buffers, asynchronous copies to the GPU; what `load_dit` uses on CUDA).

Format facts (safetensors format description, huggingface/safetensors README): 8-byte little-endian header
length N, then N bytes of JSON mapping names to {dtype, shape, data_offsets [begin, end)} relative to the byte
after the header, plus an optional `__metadata__` map of strings; the library refuses headers over 100 MB.
"""

from __future__ import annotations

import json
import math
import os
import struct
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import CheckpointError

MAX_HEADER_BYTES = 100_000_000  # the safetensors library's own limit
SUFFIXES = (".safetensors", ".sft")
DTYPES: dict[str, torch.dtype] = {
    "BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32, "F64": torch.float64,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2, "I64": torch.int64, "I32": torch.int32,
    "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
}
FLOAT_DTYPES = frozenset({"BF16", "F16", "F32", "F64", "F8_E4M3", "F8_E5M2"})
Shapes = Mapping[str, tuple[int, ...]]


@dataclass(frozen=True)
class TensorInfo:
    dtype: str  # safetensors name, e.g. "BF16"
    shape: tuple[int, ...]
    begin: int  # byte range inside the data section
    end: int


@dataclass(frozen=True)
class Header:
    path: Path
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str] = field(default_factory=dict)
    data_start: int = 0  # file offset of the data section
    file_size: int = 0

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: v.shape for k, v in self.tensors.items()}

    @property
    def keys(self) -> list[str]:
        return list(self.tensors)


def _fail(error: type[CheckpointError], path: Path, why: str, fix: str) -> CheckpointError:
    return error(f"{path}: {why}; {fix}")


def read_header(
    path: str | os.PathLike, *, error: type[CheckpointError] = CheckpointError, fix: str = "download it again"
) -> Header:
    """Parse and validate a `.safetensors` header (see the module docstring); raises `error` naming `fix`."""
    path = Path(os.fspath(path)).expanduser()
    if path.suffix.lower() not in SUFFIXES:
        raise error(f"{path.name}: only .safetensors files are loaded (no pickle formats such as .ckpt / .pt / .bin)")
    if not path.is_file():
        raise error(f"no file at {path}")
    size = path.stat().st_size
    bad = "it is truncated or not a safetensors file"
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise _fail(error, path, f"{size} bytes, too short for a safetensors header; {bad}", fix)
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER_BYTES or n > size - 8:
            raise _fail(error, path, f"header length {n} does not fit the file ({size} bytes); {bad}", fix)
        raw = f.read(n)
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _fail(error, path, f"header is not valid JSON ({e.__class__.__name__}); {bad}", fix) from e
    if not isinstance(doc, dict):
        raise _fail(error, path, f"header is a JSON {type(doc).__name__}, not a table of tensors; {bad}", fix)
    meta = doc.pop("__metadata__", None) or {}
    if not isinstance(meta, dict):
        raise _fail(error, path, "header __metadata__ is not a table of strings", fix)
    tensors = {name: _tensor_info(name, info, lambda why: _fail(error, path, why, fix)) for name, info in doc.items()}
    need = 8 + n + max((t.end for t in tensors.values()), default=0)
    if need > size:
        raise _fail(error, path, f"the file is truncated: it has {size:,} of the {need:,} bytes its header describes",
                    fix)
    return Header(path, tensors, {str(k): str(v) for k, v in meta.items()}, 8 + n, size)


def _tensor_info(name: str, info, fail: Callable[[str], CheckpointError]) -> TensorInfo:
    if not isinstance(info, dict):
        raise fail(f"tensor {name!r} has no dtype / shape / data_offsets entry")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if dtype not in DTYPES:
        raise fail(f"tensor {name!r} has dtype {dtype!r}, which torch cannot load here")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise fail(f"tensor {name!r} has a malformed shape {shape!r}")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
        raise fail(f"tensor {name!r} has malformed data_offsets {offsets!r}")
    begin, end = offsets
    need = math.prod(shape) * DTYPES[dtype].itemsize
    if not 0 <= begin <= end or end - begin != need:
        raise fail(f"tensor {name!r} spans bytes {begin}..{end}, but {dtype} {tuple(shape)} needs {need}")
    return TensorInfo(dtype, tuple(shape), begin, end)


def check_dtypes(header: Header, what: str, *, allowed: Iterable[str] = FLOAT_DTYPES,
                 exempt: Iterable[str] = (), error: type[CheckpointError] = CheckpointError) -> None:
    """Refuse tensors whose dtype the model cannot hold (e.g. integer weights), naming them."""
    allowed, exempt = set(allowed), set(exempt)
    bad = sorted(f"{k} ({v.dtype})" for k, v in header.tensors.items() if v.dtype not in allowed and k not in exempt)
    if bad:
        raise error(f"{header.path}: {len(bad)} tensors of a dtype {what} cannot hold ({', '.join(bad[:6])}"
                    f"{' ...' if len(bad) > 6 else ''}); expected floating-point weights -- the file is not {what}")


def expected_shapes(build: Callable[[], nn.Module]) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the tensors `build()` needs, from a meta-device skeleton (nothing is allocated).

    `build` must construct the module with plain torch layers (e.g. `operations=torch_ops`), so that the answer
    does not depend on how a host application builds its layers (lazy layers have no weight before loading).
    """
    with torch.device("meta"):
        skeleton = build()
    return {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}


def check_keys(expected: Shapes, found: Shapes, what: str, *, optional: Iterable[str] = (),
               error: type[CheckpointError] = CheckpointError) -> None:
    """Raise `error` listing the missing, unexpected and mis-shaped keys, if any."""
    missing = sorted(set(expected) - set(found) - set(optional))
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(k for k in set(expected) & set(found) if tuple(expected[k]) != tuple(found[k]))
    if not (missing or unexpected or wrong):
        return
    parts = [f"{len(ks)} {name} keys: {', '.join(ks[:12])}{' ...' if len(ks) > 12 else ''}"
             for name, ks in (("missing", missing), ("unexpected", unexpected)) if ks]
    if wrong:
        parts.append("wrong shapes: " + ", ".join(f"{k} {tuple(found[k])} != {tuple(expected[k])}" for k in wrong[:8]))
    raise error(f"{what}: " + "; ".join(parts))


def unloaded_tensors(module: nn.Module) -> list[str]:
    """Names of parameters still on the meta device and of layers still without a weight (lazy layers)."""
    left = [n for n, p in module.named_parameters() if p.is_meta]
    left += [f"{n}.weight" for n, m in module.named_modules()
             if hasattr(m, "in_features") and getattr(m, "weight", 0) is None]
    return left


# -- reading tensors ---------------------------------------------------------------------------------------


def iter_tensors(path: str | os.PathLike, device: torch.device | str = "cpu", *, reader: str = "auto",
                 header: Header | None = None) -> Iterator[tuple[str, Tensor]]:
    """Yield (name, tensor on `device`) for every tensor of the file.

    reader: "threaded" (`iter_threaded`), "safetensors" (`safe_open`), or "auto" (threaded on CUDA).
    """
    if reader not in ("auto", "threaded", "safetensors"):
        raise ValueError(f"reader must be auto, threaded or safetensors, got {reader!r}")
    if reader == "threaded" or (reader == "auto" and torch.device(device).type == "cuda"):
        yield from iter_threaded(path, device, header=header)
        return
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device=str(device)) as f:
        for k in f.keys():
            yield k, f.get_tensor(k)


def iter_threaded(
    path: str | os.PathLike,
    device: torch.device | str = "cuda",
    *,
    threads: int = 8,
    chunk_bytes: int = 64 << 20,
    window_bytes: int = 2 << 30,
    header: Header | None = None,
) -> Iterator[tuple[str, Tensor]]:
    """Yield (name, tensor on `device`) in file order, reading with `threads` parallel `pread`s.

    Tensors are read a window (~2 GiB) at a time, so at most one window is in flight beyond what the caller
    keeps (a caller that converts each tensor on arrival, e.g. fp8 quantisation, peaks at its own size plus
    one window). On CUDA the chunks go through pinned buffers and per-thread streams.
    """
    device = torch.device(device)
    header = header or read_header(path)
    items = sorted(header.tensors.items(), key=lambda kv: kv[1].begin)
    base = header.data_start
    cuda = device.type == "cuda"
    fd = os.open(str(path), os.O_RDONLY)
    local = threading.local()
    inference = torch.is_inference_mode_enabled()  # worker threads must match the caller's tensors

    def buffers() -> tuple[Tensor, torch.cuda.Stream | None]:
        if not hasattr(local, "buf"):
            local.buf = torch.empty(chunk_bytes, dtype=torch.uint8, pin_memory=cuda)
            local.stream = torch.cuda.Stream(device) if cuda else None
        return local.buf, local.stream

    def read(dst: Tensor, file_off: int, n: int, ready) -> None:
        """Read n bytes at file_off into the flat uint8 view dst (n <= chunk_bytes)."""
        buf, stream = buffers()
        view = memoryview(buf.numpy())[:n]
        got = 0
        while got < n:
            r = os.preadv(fd, [view[got:]], file_off + got)
            if r <= 0:
                raise CheckpointError(f"{path}: unexpected end of file at byte {file_off + got}; download it again")
            got += r
        with torch.inference_mode(inference):
            if cuda:
                stream.wait_event(ready)  # dst may reuse memory the caller's stream is still reading
                with torch.cuda.stream(stream):
                    dst.copy_(buf[:n], non_blocking=True)
                stream.synchronize()  # the pinned buffer is reused by this thread's next chunk
            else:
                dst.copy_(buf[:n])

    try:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            i = 0
            while i < len(items):
                window, size = [], 0
                while i < len(items) and (not window or size < window_bytes):
                    window.append(items[i])
                    size += items[i][1].end - items[i][1].begin
                    i += 1
                jobs, out = [], []
                tensors = [torch.empty(info.shape, dtype=DTYPES[info.dtype], device=device) for _, info in window]
                ready = None
                if cuda:
                    ready = torch.cuda.Event()
                    ready.record()
                for (name, info), t in zip(window, tensors):
                    flat = t.view(-1).view(torch.uint8) if t.numel() else t
                    for off in range(0, info.end - info.begin, chunk_bytes):
                        n = min(chunk_bytes, info.end - info.begin - off)
                        jobs.append(pool.submit(read, flat[off : off + n], base + info.begin + off, n, ready))
                    out.append((name, t))
                for j in jobs:
                    j.result()
                del tensors, jobs
                for k in range(len(out)):  # drop our reference as each tensor is handed over
                    item, out[k] = out[k], None
                    yield item
    finally:
        os.close(fd)


def read_tensors(path: str | os.PathLike, device: torch.device | str = "cpu", *, reader: str = "auto",
                 keys: Iterable[str] | None = None) -> dict[str, Tensor]:
    """All tensors of a file (or those named in `keys`) on `device`."""
    if keys is None:
        return dict(iter_tensors(path, device, reader=reader))
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device=str(device)) as f:
        return {k: f.get_tensor(k) for k in keys}


__all__ = ["CheckpointError", "DTYPES", "FLOAT_DTYPES", "Header", "MAX_HEADER_BYTES", "TensorInfo", "check_dtypes",
           "check_keys", "expected_shapes", "iter_tensors", "iter_threaded", "read_header", "read_tensors",
           "unloaded_tensors"]
