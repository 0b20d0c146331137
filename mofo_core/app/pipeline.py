"""Text -> RGB + depth, image -> depth, depth -> image: the whole job in one object.

The same jobs as the reference scripts `joint.py`, `i2d.py`, `d2i.py` and `FluxRGBDRunner.generate`
(`Duisterhof/modality-forcing: flux_rgbd/runner.py`), with: any size that is a multiple of 16, batch >= 1,
i2d at any aspect ratio (letterbox in, crop and resize out: depth comes back at the input's size), the text
encoder released before the DiT loads, and every parameter recorded. Clean conditioning latents are
rounded to the DiT's body dtype as the reference runner does.
"""

from __future__ import annotations

import gc
import logging
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from ..config import LATENT_COMPRESSION, RELEASE_MU
from ..config import VERSION as __version__
from ..depth.codec import check_depth_map, decode_depth, encode_depth
from ..depth.fit import fit_image, nearest_depth, size_for, unfit_depth
from ..encoders.text_encoder import DEFAULT_TEXT_ENCODER, QwenTextEmbedder
from ..errors import NonFiniteResultError
from ..sampling.sampler import StepCallback, sample
from ..sampling.schedules import Mode, schedule
from ..weights.download import (
    AE_FILES,
    DIT_FILES,
    RELEASE_REPO,
    WeightsNotFoundError,
    resolve_model_files,
    resolve_text_encoder,
)

log = logging.getLogger(__name__)

MODE_CFG = {"joint": 4.0, "i2d": 1.0, "d2i": 4.0}  # the reference scripts' defaults


@dataclass(frozen=True)
class GenerateParams:
    """Everything that decides a generation (recorded verbatim in metadata.json)."""

    mode: Mode = "joint"
    prompt: str = ""
    steps: int = 50
    cfg: float | None = None  # None: 4.0 for joint / d2i, 1.0 for i2d (reference scripts)
    depth_cfg: float | None = None  # None: same as cfg (the reference guides both heads)
    log2_alpha: float | None = 5.0  # joint only: depth stays noisier longer (RGB first)
    refine_depth: bool = False  # joint only: second pass image -> depth on the generated RGB
    seed: int = 0
    width: int | None = None  # None: 512, or for d2i the depth's aspect with a 512 long side
    height: int | None = None
    batch: int = 1
    mu: float = RELEASE_MU
    depth_xpred_exact: bool = False  # opt-in fix of the x-prediction clamp residual (>= 59 steps)
    truncate_prompt: bool = False  # True: cut prompts over 512 tokens as the reference does
    fit: Literal["letterbox", "stretch"] = "letterbox"  # i2d: how a non-matching image is fitted
    robust_depth: bool = False  # d2i: unit-mean over valid pixels only (zeros / holes in the input)

    def resolved(self, input_shape: tuple[int, ...] | None = None) -> GenerateParams:
        """Defaults filled in; input_shape (H, W) of a d2i depth map sets the default size's aspect."""
        cfg = MODE_CFG[self.mode] if self.cfg is None else self.cfg
        h, w = self.height, self.width
        if h is None or w is None:
            dh, dw = size_for(input_shape, 512) if self.mode == "d2i" and input_shape else (512, 512)
            h, w = h or dh, w or dw
        return replace(
            self,
            cfg=cfg,
            height=h,
            width=w,
            depth_cfg=cfg if self.depth_cfg is None else self.depth_cfg,
            log2_alpha=self.log2_alpha if self.mode == "joint" else None,
            refine_depth=self.refine_depth and self.mode == "joint",
        )

    def validate(self) -> None:
        if self.mode not in MODE_CFG:
            raise ValueError(f"mode must be one of {sorted(MODE_CFG)}, got {self.mode!r}")
        for name in ("width", "height"):
            v = getattr(self, name)
            if v <= 0 or v % LATENT_COMPRESSION:
                raise ValueError(
                    f"{name} {v} is not a positive multiple of {LATENT_COMPRESSION}; try {max(16, round(v / 16) * 16)}"
                )
        if self.steps < 1 or self.batch < 1:
            raise ValueError("steps and batch must be at least 1")
        if self.mode == "joint" and not self.prompt.strip():
            raise ValueError("text -> RGB + depth needs a prompt describing the scene (the prompt is empty)")
        check_guidance(self.cfg, self.depth_cfg, self.log2_alpha, self.seed, self.mu)


def check_finite(rgb_tok: Tensor, depth_tok: Tensor) -> None:
    """A generation with NaN / inf latents is an error, never a black image saved as success."""
    bad = [name for name, t in (("RGB", rgb_tok), ("depth", depth_tok)) if not bool(torch.isfinite(t).all())]
    if bad:
        raise NonFiniteResultError(
            f"the {' and '.join(bad)} latents came out non-finite (NaN / inf), nothing was saved: the checkpoint "
            "may hold NaN weights (re-download it) or the dtype overflowed (try --dtype bf16 or fp32)"
        )


MAX_LOG2_ALPHA = 20.0  # 2**20: the depth stream is then held at noise for all but the last steps
MAX_SEED = 2**64 - 1  # torch.Generator.manual_seed takes 64 bits


def check_guidance(cfg, depth_cfg, log2_alpha, seed, mu=RELEASE_MU) -> None:
    """Refuse non-finite guidance / shift, an out-of-range tilt and a seed torch cannot take (before any weights
    load): NaN / inf guidance gives black images, not errors."""
    if not math.isfinite(mu):
        raise ValueError(f"mu must be a finite number, got {mu}; the release uses {RELEASE_MU}")
    for name, flag, v in (("cfg", "--cfg-scale", cfg), ("depth_cfg", "--depth-cfg", depth_cfg)):
        if v is not None and not math.isfinite(v):
            raise ValueError(f"{name} (CLI {flag}) must be a finite number, got {v}; the default is 4.0 (1.0 for i2d)")
    if log2_alpha is not None and not (math.isfinite(log2_alpha) and abs(log2_alpha) <= MAX_LOG2_ALPHA):
        raise ValueError(
            f"log2_alpha (CLI --log2-alpha) must be a finite number in [-{MAX_LOG2_ALPHA:g}, {MAX_LOG2_ALPHA:g}], "
            f"got {log2_alpha}; the default is 5"
        )
    if not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"seed (CLI --seed) must be in [0, 2**64 - 1], got {seed}")


@dataclass
class GenerationResult:
    rgb: np.ndarray  # (B, H, W, 3) uint8: generated (joint, d2i) or the input image (i2d)
    depth: np.ndarray  # (B, H, W) float32 relative depth (positive = farther; may hold inf / <= 0 = invalid)
    rgb_latent: Tensor  # (B, 128, h, w) FLUX.2 latent of the generation grid
    depth_tokens: Tensor  # (B, h*w, 256)
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ModelFiles:
    dit: Path  # model.safetensors
    ae_encoder: Path
    ae_decoder: Path
    text_encoder: Path  # a Qwen3 folder
    config_json: Path | None = None
    model_spec: str = ""
    text_encoder_spec: str = ""


def to_uint8(images: Tensor) -> np.ndarray:
    """IMAGE (B, H, W, 3) float in [0, 1] -> uint8 (B, H, W, 3) numpy, rounded."""
    return (images.float().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy()


def check_files(files: ModelFiles) -> None:
    """Every file's header, config and tensor names / shapes / dtypes, without loading weights (a few ms per file):
    a bad text encoder or autoencoder is refused before the DiT's 24 GB load, and the other way round."""
    from ..encoders.autoencoder import _split_file
    from ..encoders.text_encoder import check_text_encoder_files
    from ..weights.loading import check_dit_file, read_config_json

    check_dit_file(files.dit, read_config_json(files.config_json) if files.config_json else None)
    _split_file(files.ae_encoder, "encoder")
    _split_file(files.ae_decoder, "decoder")
    check_text_encoder_files(files.text_encoder)


class MofoPipeline:
    """Loads components on first use; by default frees the text encoder before the DiT runs."""

    def __init__(
        self,
        files: ModelFiles,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.bfloat16,
        text_dtype: torch.dtype | None = None,
        keep_text_encoder: bool = False,
        compile: bool = False,
        attention: str = "auto",
        fp8: str | None = None,
        lowvram: bool = False,
        devices: list[str] | None = None,
    ):
        """dtype: DiT body dtype; fp8: None, "row" or "tensor" (e4m3 block matrices, `mofo_core.model.fp8`);
        attention: "auto", "sdpa", "flash", "cudnn" or "efficient" (`mofo_core.model.perf`); compile: compile the
        repeated blocks (CUDA; ~20 s warm-up, ~12 s from inductor's cache); lowvram: cond and uncond one
        after the other, and the DiT freed for the VAE decode and reloaded by the next job; devices: two or more
        devices for CFG-parallel sampling (`mofo_core.sampling.parallel`: cond on the first, uncond on the
        second, one DiT replica each, loaded at the first forward that has a batch to split); the first is the
        main device."""
        self.files = files
        self.devices, self._parallel = None, None
        if devices is not None and len(devices) > 1:
            from ..sampling.parallel import check_devices

            self.devices = check_devices(devices, main=device, lowvram=lowvram)
            device = self.devices[0]
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = dtype
        self.text_dtype = text_dtype or (torch.bfloat16 if dtype != torch.float32 else torch.float32)
        self.keep_text_encoder = keep_text_encoder
        self.compile = compile
        self.attention, self.fp8, self.lowvram = attention, fp8, lowvram
        self._dit = self._ae = self._text = None
        self._variant: str | None = None
        self._null: Tensor | None = None
        self._tokenizer: QwenTextEmbedder | None = None  # for prompt checks before any weights load

    @classmethod
    def from_pretrained(
        cls,
        model: str = RELEASE_REPO,
        *,
        text_encoder: str = DEFAULT_TEXT_ENCODER,
        offline: bool | None = None,
        cache_dir: str | Path | None = None,
        **kwargs,
    ) -> MofoPipeline:
        """model: a folder with the release files or a repo id; text_encoder: a Qwen3-8B folder or repo id."""
        errors = []  # every missing file in one message: DiT, autoencoder and text encoder
        try:
            found = resolve_model_files(
                model, DIT_FILES[1:] + AE_FILES, offline=offline, cache_dir=cache_dir, optional=("config.json",)
            )
        except WeightsNotFoundError as e:
            errors.append(f"model (CLI --model, or model=): {e}")
        try:
            te = resolve_text_encoder(text_encoder, offline=offline, cache_dir=cache_dir)
        except WeightsNotFoundError as e:
            errors.append(f"text encoder (CLI --text-encoder, or text_encoder=): {e}")
        if errors:
            raise WeightsNotFoundError("missing weights:\n  " + "\n  ".join(errors))
        files = ModelFiles(
            dit=found["model.safetensors"],
            ae_encoder=found["ae_encoder.safetensors"],
            ae_decoder=found["ae_decoder.safetensors"],
            text_encoder=te,
            config_json=found.get("config.json"),
            model_spec=str(model),
            text_encoder_spec=str(text_encoder),
        )
        check_files(files)
        return cls(files, **kwargs)

    # -- components -------------------------------------------------------------------------------------
    @property
    def dit(self):
        if self._dit is None:
            self._dit = self._load_dit(self.device)
            self._variant = self._dit.config.variant
        return self._dit

    def _load_dit(self, device):
        from ..model.perf import compile_blocks, set_attention
        from ..weights.loading import load_dit, read_config_json

        cfg = read_config_json(self.files.config_json) if self.files.config_json else None
        dit = load_dit(self.files.dit, device=device, dtype=self.dtype, config_json=cfg, fp8=self.fp8)
        set_attention(dit, self.attention)
        if self.compile:
            compile_blocks(dit)
        return dit

    def denoiser(self, forward_batch: int):
        """What `sample` runs: the DiT, or with several `devices` and a forward batch >= 2 (cond + uncond, or
        batch >= 2) the `ParallelDenoiser` over one replica per device (the replicas load on first use)."""
        dit = self.dit
        if self.devices is None or forward_batch < 2:
            if self.devices is not None:
                log.info("one forward of batch 1 per step (cfg 1, batch 1): nothing to split, runs on %s alone",
                         self.device)
            return dit
        if self._parallel is None:
            from ..sampling.parallel import ParallelDenoiser

            log.info("loading DiT replicas on %s", ", ".join(str(d) for d in self.devices[1:]))
            self._parallel = ParallelDenoiser([dit, *(self._load_dit(d) for d in self.devices[1:])])
        return self._parallel

    def autoencoder(self, *, encoder: bool):
        from ..encoders.autoencoder import load_autoencoder

        if self._ae is None or (encoder and self._ae.encoder is None):
            self._ae = load_autoencoder(
                encoder=self.files.ae_encoder if encoder else None, decoder=self.files.ae_decoder, device=self.device
            )
        return self._ae

    def text_encoder(self) -> QwenTextEmbedder:
        if self._text is None:
            self._text = QwenTextEmbedder.from_pretrained(
                self.files.text_encoder, device=self.device, dtype=self.text_dtype
            )
        return self._text

    def encode_text(self, prompt: str, *, batch: int, need_null: bool, truncate: bool = False):
        """(ctx (B, 512, C), null (1, 512, C) or None), fp32 on the device; frees the encoder unless kept."""
        te = self.text_encoder()
        ctx = te.encode([prompt], truncate=truncate).to(self.device).expand(batch, -1, -1)
        if need_null and self._null is None:
            self._null = te.encode([""]).to(self.device)
        if not self.keep_text_encoder:
            te.release()  # collects: transformers models hold reference cycles (~11 GiB lingered; bench/NOTES.md)
            self._text = None
        return ctx, (self._null if need_null else None)

    def prepare(self, prompt: str, *, batch: int, need_null: bool, truncate: bool = False):
        """(ctx, null or None, DiT): the prompt checked by the tokenizer, encoded, then the DiT loaded."""
        if self._tokenizer is None:
            self._tokenizer = QwenTextEmbedder.tokenizer_only(self.files.text_encoder)
        self._tokenizer.tokenize([prompt], truncate=truncate)
        ctx, null = self.encode_text(prompt, batch=batch, need_null=need_null, truncate=truncate)
        dit = self.dit
        if ctx.shape[-1] != dit.config.context_in_dim:
            raise ValueError(
                f"the text encoder gives {ctx.shape[-1]} features but the DiT needs "
                f"{dit.config.context_in_dim}: use Qwen3-8B (3 x 4096) as the text encoder"
            )
        return ctx, null, dit

    def encode_image(self, image: np.ndarray) -> Tensor:
        """uint8 (H, W, 3) -> (1, H/16 * W/16, 128) RGB tokens, rounded to the DiT's body dtype (as the reference)."""
        from ..latents import latent_to_tokens

        lat = self.autoencoder(encoder=True).encode(torch.tensor(image, device=self.device).float()[None] / 255.0)
        return latent_to_tokens(lat).to(self.dit.dtype).float()

    def edit(self, params, image: np.ndarray, **inputs) -> GenerationResult:
        """Masked RGB-D editing (inpaint, outpaint, restyle, depth fix-up): see `mofo_core.app.edit.run_edit`."""
        from .edit import run_edit

        return run_edit(self, params, image, **inputs)

    # -- the job -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        params: GenerateParams,
        *,
        image: np.ndarray | None = None,
        depth: np.ndarray | None = None,
        callback: StepCallback | None = None,
    ) -> GenerationResult:
        """Run one job. image: uint8 (H, W, 3) for i2d; depth: float (H, W) for d2i (relative or metric)."""
        p = params.resolved(depth.shape if depth is not None else None)
        p.validate()
        if p.mode == "i2d" and image is None:
            raise ValueError("image -> depth needs an image")
        if p.mode == "d2i" and depth is None:
            raise ValueError("depth -> image needs a depth map")
        if p.mode == "d2i":
            check_depth_map(depth, robust=p.robust_depth)
        h, w = p.height // LATENT_COMPRESSION, p.width // LATENT_COMPRESSION

        # 1. text (checked with the tokenizer alone first; the encoder is freed before the DiT loads)
        need_null = p.cfg != 1.0 or p.depth_cfg != 1.0
        ctx, null, dit = self.prepare(p.prompt, batch=p.batch, need_null=need_null, truncate=p.truncate_prompt)

        # 2. clean conditioning, rounded to the body dtype as the reference runner does
        rgb_clean = depth_clean = None
        box = None
        if p.mode == "i2d":
            img, box = fit_image(image, p.height, p.width, p.fit)
            rgb_clean = self.encode_image(img)
        if p.mode == "d2i":
            d = torch.from_numpy(nearest_depth(depth, p.height, p.width)).to(self.device)[None]
            depth_clean = encode_depth(d, robust=p.robust_depth).to(dit.dtype).float()

        # 3. sample (+ refine)
        rs, ds = schedule(p.steps, mode=p.mode, mu=p.mu, log2_alpha=p.log2_alpha)
        kw = dict(
            height=h,
            width=w,
            seed=p.seed,
            callback=callback,
            depth_xpred_exact=p.depth_xpred_exact,
            batch_cfg=not self.lowvram,
        )
        rgb_tok, depth_tok = sample(
            self.denoiser(p.batch * (2 if need_null else 1)), ctx, null, rs, ds, cfg=p.cfg, depth_cfg=p.depth_cfg,
            rgb=rgb_clean, depth=depth_clean, **kw,
        )
        if p.refine_depth:
            rs2, ds2 = schedule(p.steps, mode="i2d", mu=p.mu)
            _, depth_tok = sample(self.denoiser(p.batch), ctx, None, rs2, ds2, cfg=1.0, rgb=rgb_tok, **kw)

        # 4. decode
        from ..latents import tokens_to_latent

        if self.lowvram and self.device.type == "cuda":
            # free the DiT for the decode; the next job reloads it (~1 s from the page cache, vs ~20 s for
            # a round trip through CPU memory: bench/NOTES.md)
            del dit
            self._dit = None
            gc.collect()
            torch.cuda.empty_cache()
        check_finite(rgb_tok, depth_tok)
        rgb_latent = tokens_to_latent(rgb_tok, h, w)
        depth_map = decode_depth(depth_tok, h, w).cpu().numpy()  # (B, H, W)
        if p.mode == "i2d":
            rgb_u8 = np.repeat(image[None], p.batch, axis=0)
            depth_map = np.stack([unfit_depth(dm, box, image.shape[:2]) for dm in depth_map])
        else:
            rgb_u8 = to_uint8(self.autoencoder(encoder=False).decode(rgb_latent.float()))
        return GenerationResult(
            rgb=rgb_u8,
            depth=depth_map.astype(np.float32),
            rgb_latent=rgb_latent.cpu(),
            depth_tokens=depth_tok.cpu(),
            metadata=self._metadata(p, image, depth),
        )

    # -- helpers ---------------------------------------------------------------------------------------------
    def _metadata(self, p: GenerateParams, image, depth) -> dict:
        meta = {k: v for k, v in asdict(p).items()}
        meta.update(
            variant=self._variant,
            model=self.files.model_spec or str(self.files.dit),
            text_encoder=self.files.text_encoder_spec or str(self.files.text_encoder),
            dtype=str(self.dtype).removeprefix("torch."),
            fp8=self.fp8,
            attention=self.attention,
            device=str(self.device),
            devices=[str(d) for d in self.devices] if self.devices else None,
            package="comfyui-modality-forcing",
            package_version=__version__,
            input_size=list(image.shape[:2])
            if image is not None
            else (list(depth.shape) if depth is not None else None),
        )
        return meta


__all__ = ["GenerateParams", "GenerationResult", "MofoPipeline", "ModelFiles"]
