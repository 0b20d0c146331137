"""mofo_core: a standalone, ComfyUI-free inference package for Modality Forcing (arXiv 2606.13676).

One FLUX.2-based DiT with three token streams (text, RGB, depth), each image modality on its own noise
level: text -> RGB + depth, image -> depth, depth -> image. Public API:

    load_dit(source, *, device="cpu", dtype=torch.float32) -> MofoDiT   (model.predict(...))
    schedule(steps, *, mode="joint", mu=1.1, sigma=1.0, log2_alpha=None) -> (rgb_sigmas, depth_sigmas)
    sample(model, ctx, null_ctx, rgb_sigmas, depth_sigmas, *, height, width, ...) -> (rgb, depth) tokens
    encode_depth(depth (B, H, W)) -> tokens;  decode_depth(tokens, height, width) -> depth (B, H, W)

Everything a host application (the ComfyUI nodes, scripts) needs is importable from here; the subpackages
(model, encoders, sampling, weights, depth, geometry, app) hold the rest.
Nothing here imports ComfyUI, downloads, or prints.
"""

# release defaults and choices
from .config import (
    ATTENTION_BACKENDS,
    DEFAULT_FOV_DEG,
    RELEASE_MU,
    TEXT_TOKENS,
    VARIANTS,
    VERSION,
    DiTConfig,
    tiny,
)

# depth maps: codec, files, pictures, ranges, fitting, alignment
from .depth.align import fit_depth, scale_to_distance
from .depth.codec import decode_depth, encode_depth
from .depth.files import load_depth, save_depth_exr, save_depth_npy, save_depth_png16
from .depth.fit import fit_image, unfit_depth
from .depth.maps import depth_to_disparity_vis, image_to_depth
from .depth.ranges import RANGE_MODES, depth_to_image, png16_max_depths

# the models around the DiT
from .encoders.autoencoder import Flux2AutoEncoder, build_autoencoder, load_autoencoder
from .encoders.autoencoder_blocks import AutoEncoderConfig
from .encoders.text_encoder import QwenTextEmbedder
from .errors import (
    AutoEncoderCheckpointError,
    CheckpointError,
    MissingDependencyError,
    NonFiniteResultError,
    PromptTooLongError,
    WeightsNotFoundError,
)

# 3D from depth
from .geometry.cloud_export import write_glb, write_ply
from .geometry.mesh import depth_to_mesh
from .geometry.mesh_export import write_mesh_glb, write_mesh_obj, write_mesh_ply
from .geometry.normals import CONVENTIONS as NORMAL_CONVENTIONS
from .geometry.normals import DEFAULT_NORMAL_RTOL, depth_to_normals, normals_to_image
from .geometry.pointcloud import depth_to_points
from .geometry.render import render_points
from .latents import latent_to_tokens, tokens_to_latent

# the DiT and its speed options
from .model import MofoDiT
from .model.perf import compile_blocks, set_attention

# sampling
from .sampling.masks import fit_mask
from .sampling.parallel import ParallelDenoiser
from .sampling.preview import rgb_depth_preview
from .sampling.sampler import StepInfo, sample
from .sampling.schedules import MODES, schedule

# weights
from .weights.download import RELEASE_REPO, download_files
from .weights.loading import build_dit, infer_config, load_dit

__version__ = VERSION

__all__ = [
    "ATTENTION_BACKENDS",
    "DEFAULT_FOV_DEG",
    "DEFAULT_NORMAL_RTOL",
    "MODES",
    "NORMAL_CONVENTIONS",
    "RANGE_MODES",
    "RELEASE_MU",
    "RELEASE_REPO",
    "TEXT_TOKENS",
    "VARIANTS",
    "VERSION",
    "__version__",
    "AutoEncoderCheckpointError",
    "AutoEncoderConfig",
    "build_autoencoder",
    "build_dit",
    "CheckpointError",
    "compile_blocks",
    "decode_depth",
    "depth_to_disparity_vis",
    "depth_to_image",
    "depth_to_mesh",
    "depth_to_normals",
    "depth_to_points",
    "DiTConfig",
    "download_files",
    "encode_depth",
    "fit_depth",
    "fit_image",
    "fit_mask",
    "Flux2AutoEncoder",
    "image_to_depth",
    "infer_config",
    "latent_to_tokens",
    "load_autoencoder",
    "load_depth",
    "load_dit",
    "MissingDependencyError",
    "MofoDiT",
    "NonFiniteResultError",
    "normals_to_image",
    "ParallelDenoiser",
    "png16_max_depths",
    "PromptTooLongError",
    "QwenTextEmbedder",
    "render_points",
    "rgb_depth_preview",
    "sample",
    "save_depth_exr",
    "save_depth_npy",
    "save_depth_png16",
    "scale_to_distance",
    "schedule",
    "set_attention",
    "StepInfo",
    "tiny",
    "tokens_to_latent",
    "unfit_depth",
    "WeightsNotFoundError",
    "write_glb",
    "write_mesh_glb",
    "write_mesh_obj",
    "write_mesh_ply",
    "write_ply",
]
