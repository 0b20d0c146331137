"""Custom socket types of the pack, and the ComfyUI <-> mofo_core conversions.

MOFO_MODEL          `MofoModelHandle` (nodes/runtime.py): the DiT inside a ModelPatcher + its config.
MOFO_DEPTH_LATENT   dict {"samples": Tensor (B, N, 256) fp32 depth tokens, "height": h, "width": w} where
                    h x w = N is the latent grid (pixels / 16). Not a LATENT: VAEs must never decode it.
MOFO_DEPTH          dict {"depth": Tensor (B, H, W) fp32 relative depth, positive = farther; <= 0 or
                    non-finite = invalid}. MofoDepthEncode also takes any depth node's IMAGE.
MOFO_TEXT_ENCODER   `TextEncoderHandle` (nodes/text.py): a transformers Qwen3 embedder + its ModelPatcher.
MOFO_FIT            dict {"box": (top, left, h, w) content box in the fitted image or None (stretch),
                    "size": (H, W) of the original image, "mode": "letterbox" | "stretch"}.

ComfyUI tensors: IMAGE (B, H, W, 3) float in [0, 1]; FLUX.2 LATENT {"samples": (B, 128, H/16, W/16)}.
"""

from __future__ import annotations

from comfy_api.latest import io

from ..mofo_core import VARIANTS

MofoModel = io.Custom("MOFO_MODEL")
MofoDepthLatent = io.Custom("MOFO_DEPTH_LATENT")
MofoDepth = io.Custom("MOFO_DEPTH")
MofoFit = io.Custom("MOFO_FIT")
MofoTextEncoder = io.Custom("MOFO_TEXT_ENCODER")

CATEGORY = "ModalityForcing"


def node_schema(**kw) -> io.Schema:
    """io.Schema with the pack's category and the node's id as a hidden input (to show warnings on the node)."""
    hidden = [io.Hidden.unique_id] if hasattr(io, "Hidden") else []
    return io.Schema(category=CATEGORY, hidden=hidden, **kw)


WIDTH = VARIANTS["flux_rgbd_9b_v1"].context_in_dim  # 3 x 4096: Qwen3-8B hidden states 9, 18, 27


def check_conditioning(cond, what: str = "conditioning", width: int = WIDTH):
    """(B, L, width) tensor of a CONDITIONING, or a ValueError that names the right text encoder."""
    if not cond:
        raise ValueError(f"{what} is empty")
    if len(cond) > 1:
        raise ValueError(f"{what} holds {len(cond)} entries (combined / area conditionings); the Modality Forcing "
                         "sampler takes a single text conditioning")
    t = cond[0][0]
    if t.ndim != 3 or t.shape[-1] != width:
        raise ValueError(
            f"{what} is {tuple(t.shape)}, the model needs {width} features per token (Qwen3-8B). Load "
            "qwen_3_8b.safetensors (or qwen_3_8b_fp8mixed) with CLIPLoader, type flux2 -- the FLUX.2 [klein] 9B "
            "text encoder; Qwen3-4B (klein 4B) or Mistral (FLUX.2 dev) encoders do not fit"
        )
    return t
