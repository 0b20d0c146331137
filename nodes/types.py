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
