"""Helpers for bench_gpu.py and bench_e2e.py: FLOP count, timing, random full-size models, a streaming
safetensors writer, and the reference's loading path.

Random models come from the core's builders (`mofo_core.build_dit`, `mofo_core.encoders.autoencoder.build_autoencoder`)
and transformers' own Qwen3 initialisation, so the benchmarks and the tests share one set of weight statistics:
DiT matrices N(0, 1/fan_in), RMSNorm scales 1 + 0.1 N(0, 1), cross_alpha 0.5 N(0, 1); Qwen3 matrices and
embeddings N(0, 0.02^2), norms 1. The weights are only for timing and memory: kernel times depend on shapes and
dtypes, not on the exact random values (a different seed or generator gives the same timings).
"""

from __future__ import annotations

import json
import os
import statistics
import struct
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import mofo_core as mc  # noqa: E402
from mofo_core.config import DiTConfig  # noqa: E402

GiB = 1 << 30
TINY_QWEN = ROOT / "tests" / "fixtures" / "tiny_qwen3"
# Qwen3-8B (Qwen/Qwen3-8B config.json): the text encoder's shapes.
QWEN3_8B = dict(hidden_size=4096, num_hidden_layers=36, num_attention_heads=32, num_key_value_heads=8, head_dim=128,
                intermediate_size=12288, vocab_size=151936, max_position_embeddings=40960, rms_norm_eps=1e-6,
                rope_theta=1_000_000.0, tie_word_embeddings=False, attention_bias=False)


# -- FLOPs -------------------------------------------------------------------------------------------------


def dit_flops(cfg: DiTConfig, n_img: int, n_txt: int, batch: int = 1) -> float:
    """Multiply-add FLOPs (x2) of one forward: every token-wise matrix product plus attention (QK^T and PV).

    Per-sample vector work (time embedders, modulation heads: B rows) is counted too but is negligible.
    """
    H, M, heads_dim = cfg.hidden_size, cfg.mlp_hidden_dim, cfg.hidden_size
    n_d = n_img
    stream = 3 * H * H + H * H + 2 * M * H + M * H  # qkv, proj, mlp.0, mlp.2 of one stream
    single = (3 * H + 2 * M) * H + H * (H + M)
    L = n_txt + n_img + n_d
    f = 0.0
    f += 2 * (n_img * cfg.in_channels * H + n_txt * cfg.context_in_dim * H + n_d * cfg.depth_channels * H)
    f += cfg.depth_double * 2 * L * stream
    f += cfg.depth_single * 2 * L * single
    f += cfg.depth_decoder_num_layers * 2 * n_d * single
    attn = 4 * heads_dim  # QK^T + PV: 2 * 2 * L_q * L_k * D_total
    f += (cfg.depth_double + cfg.depth_single) * attn * L * L + cfg.depth_decoder_num_layers * attn * n_d * n_d
    f += 2 * n_img * H * cfg.in_channels + 2 * n_d * H * cfg.depth_channels  # heads
    vec = 2 * (256 * H + H * H) * (4 if cfg.cross_stream_timestep_mixing else 2)
    vec += 2 * H * H * (3 * 6 + 3 * 3 + 2 * 2)
    f += vec
    return float(batch * f)


# -- timing ------------------------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timeit(fn: Callable[[], object], device: torch.device, *, warmup: int = 3, reps: int = 10) -> dict:
    """Median / min / max milliseconds of fn() over reps (CUDA events on GPU), after warmup calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    if device.type == "cuda":
        for _ in range(reps):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b))
    else:
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            times.append(1e3 * (time.perf_counter() - t))
    return dict(median_ms=statistics.median(times), min_ms=min(times), max_ms=max(times), reps=reps)


class Stopwatch:
    def __init__(self, device: torch.device):
        self.device = device
        sync(device)
        self.t0 = time.perf_counter()

    def s(self) -> float:
        sync(self.device)
        return time.perf_counter() - self.t0


def rel_l2(a: Tensor, b: Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm().clamp(min=1e-30))


def gpu_mem(device: torch.device) -> dict:
    if device.type != "cuda":
        return {}
    return dict(peak_allocated_gib=torch.cuda.max_memory_allocated(device) / GiB,
                peak_reserved_gib=torch.cuda.max_memory_reserved(device) / GiB,
                allocated_gib=torch.cuda.memory_allocated(device) / GiB)


# -- random models: the core's builders ---------------------------------------------------------------


def random_dit(cfg: DiTConfig, device: torch.device, dtype=torch.bfloat16, head_dtype=torch.float32, seed=0):
    """The core's `build_dit`, its random numbers drawn on `device`, the depth head in `head_dtype` (as `load_dit`).

    `build_dit(seed=None)` draws from the default generator of the default device; with `device` as the default
    device no tensor of a 9B model goes through the host. Seeded with `seed` inside `fork_rng`, so the caller's
    random state is left as it was. On the CPU the values equal `build_dit(seed=seed)`; elsewhere they differ
    with the same distributions (timing does not depend on the values).
    """
    device = torch.device(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.device(device):
        torch.manual_seed(seed)
        model = mc.build_dit(cfg, dtype=dtype, device=device, seed=None)
    model.depth_final_layer.to(head_dtype)
    return model


def shared_copy(dit: mc.MofoDiT) -> mc.MofoDiT:
    """A second MofoDiT object whose tensors are the same storage (for converting one copy to fp8)."""
    with torch.device("meta"):
        m = mc.MofoDiT(dit.config)
    m.load_state_dict(dit.state_dict(), strict=True, assign=True)
    m.body_dtype, m.attn_fn = dit.body_dtype, dit.attn_fn
    return m.eval().requires_grad_(False)


def uncompile(model: nn.Module) -> None:
    for m in model.modules():
        if getattr(m, "_compiled_call_impl", None) is not None:
            m._compiled_call_impl = None


def qwen_config(tiny: bool, layers: int):
    from transformers import AutoConfig, Qwen3Config

    if tiny:
        cfg = AutoConfig.from_pretrained(str(TINY_QWEN))
        cfg.num_hidden_layers = layers
        cfg.layer_types = cfg.layer_types[:layers]
        return cfg
    return Qwen3Config(**{**QWEN3_8B, "num_hidden_layers": layers})


def random_qwen(tiny: bool, layers: int, device: torch.device, *, causal_lm: bool = False, seed: int = 1):
    """A random Qwen3 (Qwen3-8B shapes unless tiny) built in bf16 directly on the device, initialised by
    transformers itself (`initializer_range` 0.02: matrices and embeddings N(0, 0.02^2), norms 1), seeded."""
    from transformers import AutoModel, AutoModelForCausalLM

    device = torch.device(device)
    cfg = qwen_config(tiny, layers)
    cls = AutoModelForCausalLM if causal_lm else AutoModel
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.device(device):
            torch.manual_seed(seed)
            model = cls.from_config(cfg)
    finally:
        torch.set_default_dtype(old)
    return model.to(torch.bfloat16).eval().requires_grad_(False)


def tiny_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(TINY_QWEN))


def random_decoder(tiny: bool, device: torch.device, seed: int = 2) -> mc.Flux2AutoEncoder:
    """The core's `build_autoencoder` (release shapes unless tiny), fp32, keeping only its decoder, on `device`.

    Built on the host (the whole autoencoder is ~84M numbers) and moved, so the device holds the decoder alone,
    as a decode-only pipeline does.
    """
    from mofo_core.encoders.autoencoder import build_autoencoder

    ae = build_autoencoder(mc.AutoEncoderConfig.tiny() if tiny else mc.AutoEncoderConfig(), seed=seed)
    ae.encoder = None
    return ae.to(device)


# -- checkpoint on disk -----------------------------------------------------------------------------------

_ST_NAMES = {torch.bfloat16: "BF16", torch.float16: "F16", torch.float32: "F32", torch.float8_e4m3fn: "F8_E4M3"}


def write_safetensors_streamed(path: Path, tensors: dict[str, Tensor], metadata: dict | None = None) -> int:
    """Write a .safetensors file one tensor at a time (device -> host per tensor, never the whole model)."""
    header, off = {}, 0
    for k, t in tensors.items():
        n = t.numel() * t.element_size()
        header[k] = {"dtype": _ST_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + n]}
        off += n
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for t in tensors.values():
            f.write(t.detach().contiguous().view(-1).view(torch.uint8).cpu().numpy().tobytes())
        f.flush()
        os.fsync(f.fileno())
    return off


def drop_page_cache(path: Path) -> bool:
    """Ask the kernel to drop this file's cached pages (a cold read follows); False if unsupported."""
    try:
        fd = os.open(str(path), os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        return True
    except (AttributeError, OSError):
        return False


def disk_read_gbps(path: Path, nbytes: int = 4 << 30) -> float:
    """Sequential read speed of the first nbytes (after dropping the cache), 16 MiB reads, one thread."""
    drop_page_cache(path)
    buf = bytearray(16 << 20)
    mv = memoryview(buf)
    t = time.perf_counter()
    done = 0
    with open(path, "rb", buffering=0) as f:
        while done < nbytes:
            r = f.readinto(mv)
            if not r:
                break
            done += r
    return done / (time.perf_counter() - t) / 1e9


# -- the reference -----------------------------------------------------------------------------------------


def import_reference(ref: Path):
    """Import the reference package `flux_rgbd` from a checkout (cv2 / matplotlib / jaxtyping stubbed if
    absent: the paths timed here do not use them)."""
    for mod in ("cv2", "matplotlib", "matplotlib.cm"):
        try:
            __import__(mod)
        except ImportError:
            sys.modules[mod] = types.ModuleType(mod)
    if "matplotlib" in sys.modules and not hasattr(sys.modules["matplotlib"], "cm"):
        sys.modules["matplotlib"].cm = sys.modules.get("matplotlib.cm", types.ModuleType("matplotlib.cm"))
    try:
        import jaxtyping  # noqa: F401  (annotations only)
    except ImportError:
        stub = types.ModuleType("jaxtyping")

        class _Annotation:
            def __class_getitem__(cls, item):
                return Tensor

        stub.Float = stub.Int = stub.Bool = stub.Shaped = _Annotation
        sys.modules["jaxtyping"] = stub
    if str(ref) not in sys.path:
        sys.path.insert(0, str(ref))
    import flux_rgbd.dit
    import flux_rgbd.factories
    import flux_rgbd.model

    return flux_rgbd


def ref_meta_model(fr, cfg: DiTConfig, variant: str, tiny: bool):
    """The reference FluxRGBD on the meta device: its variant builder, or the same class at tiny size."""
    with torch.device("meta"):
        if not tiny:
            model, _, _ = fr.factories.VARIANTS[variant]()
            return model
        dit = fr.dit.FluxRGBDDiT(in_channels=128, depth_channels=256, context_in_dim=cfg.context_in_dim,
                                 hidden_size=cfg.hidden_size, num_heads=cfg.num_heads, depth_double=cfg.depth_double,
                                 depth_single=cfg.depth_single, depth_decoder_num_layers=cfg.depth_decoder_num_layers,
                                 axes_dim=cfg.axes_dim, theta=cfg.theta, mlp_ratio=cfg.mlp_ratio,
                                 cross_stream_timestep_mixing=cfg.cross_stream_timestep_mixing)
        return fr.model.FluxRGBD(dit)


def ref_load(fr, ckpt: Path, cfg: DiTConfig, variant: str, tiny: bool, device: torch.device):
    """The reference runner's DiT loading (runner.from_pretrained steps 1-7): meta build, safetensors
    load_file straight onto the device, cast every tensor to bf16, assign-load, eval, depth head to fp32. The
    reference loads non-strictly; here the keys match exactly, so a strict load does the same work and cannot
    hide a mismatch. The decoder / text-encoder loads that follow it there are not part of this."""
    from safetensors.torch import load_file

    model = ref_meta_model(fr, cfg, variant, tiny)
    sd = load_file(str(ckpt), device=str(device))
    sd = {k: v.to(torch.bfloat16) for k, v in sd.items()}
    model.load_state_dict(sd, strict=True, assign=True)
    model.eval()
    model.dit.depth_final_layer.to(torch.float32)
    return model


def ref_embedder(fr, tokenizer, lm, device: torch.device):
    """The reference's `Qwen3Embedder` around an already built (random) causal LM, skipping its hub download."""
    from flux_rgbd.text_encoder import Qwen3Embedder

    emb = Qwen3Embedder.__new__(Qwen3Embedder)
    nn.Module.__init__(emb)
    emb.model_spec, emb._device, emb.max_length, emb.output_layers = "random", device, 512, (9, 18, 27)
    emb._tokenizer, emb._model, emb._pad_id = tokenizer, lm, tokenizer.pad_token_id or 0
    return emb.eval()


def ref_from_ours(fr, dit: mc.MofoDiT, variant: str, tiny: bool):
    """The reference's FluxRGBD sharing `dit`'s tensors (its state dict is ours under `dit.`; a strict load)."""
    ref = ref_meta_model(fr, dit.config, variant, tiny)
    ref.load_state_dict({f"dit.{k}": v for k, v in dit.state_dict().items()}, strict=True, assign=True)
    return ref.eval()


def ref_decoder(fr, tiny: bool, device: torch.device, seed: int = 2):
    """The reference's `Flux2Decoder` holding `random_decoder`'s weights. Both take the release's
    ae_decoder.safetensors strictly, so the key names agree (tests/fixtures/ae_tiny_decoder.safetensors holds the
    reference's decoder keys)."""
    from flux_rgbd._flux2.autoencoder import Flux2Decoder

    cfg = mc.AutoEncoderConfig.tiny() if tiny else mc.AutoEncoderConfig()
    with torch.device("meta"):
        dec = Flux2Decoder(ch=cfg.ch, ch_mult=cfg.ch_mult, num_res_blocks=cfg.num_res_blocks, z_channels=cfg.z_channels)
    dec.load_state_dict(random_decoder(tiny, device, seed).decoder.state_dict(), strict=True, assign=True)
    return dec.eval()
