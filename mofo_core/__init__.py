"""mofo_core: a standalone, ComfyUI-free inference package for Modality Forcing (arXiv 2606.13676).

One FLUX.2-based DiT with three token streams (text, RGB, depth), each image modality on its own noise
level: text -> RGB + depth, image -> depth, depth -> image. Public API:

    load_dit(source, *, device="cpu", dtype=torch.float32) -> MofoDiT   (model.predict(...))
    schedule(steps, *, mode="joint", mu=1.1, sigma=1.0, log2_alpha=None) -> (rgb_sigmas, depth_sigmas)
    sample(model, ctx, null_ctx, rgb_sigmas, depth_sigmas, *, height, width, ...) -> (rgb, depth) tokens
    encode_depth(depth (B, H, W)) -> tokens;  decode_depth(tokens, height, width) -> depth (B, H, W)

Nothing here imports ComfyUI, downloads, or prints.
"""

from .config import VARIANTS, DiTConfig, tiny
from .depth.codec import decode_depth, encode_depth
from .encoders.autoencoder import Flux2AutoEncoder, build_autoencoder, load_autoencoder
from .encoders.autoencoder_blocks import AutoEncoderConfig
from .errors import (
    AutoEncoderCheckpointError,
    CheckpointError,
    MissingDependencyError,
    NonFiniteResultError,
    PromptTooLongError,
    WeightsNotFoundError,
)
from .latents import latent_to_tokens, tokens_to_latent
from .model import MofoDiT
from .sampling.sampler import StepInfo, sample
from .sampling.schedules import schedule
from .weights.loading import build_dit, infer_config, load_dit

__version__ = "0.1.0"

__all__ = [
    "VARIANTS",
    "AutoEncoderCheckpointError",
    "AutoEncoderConfig",
    "CheckpointError",
    "DiTConfig",
    "Flux2AutoEncoder",
    "MissingDependencyError",
    "MofoDiT",
    "NonFiniteResultError",
    "PromptTooLongError",
    "StepInfo",
    "WeightsNotFoundError",
    "__version__",
    "build_autoencoder",
    "build_dit",
    "decode_depth",
    "encode_depth",
    "infer_config",
    "latent_to_tokens",
    "load_autoencoder",
    "load_dit",
    "sample",
    "schedule",
    "tiny",
    "tokens_to_latent",
]
