"""The live preview of a step: the host's RGB preview picture beside a grey disparity picture of the depth estimate.

The RGB half comes from the host (ComfyUI's latent previewer, or a decoded image); the depth half is the step's
clean depth estimate (`StepInfo.depth_x0`), decoded and shown as the reference's disparity preview.
"""

from __future__ import annotations

from torch import Tensor

from ..depth.codec import decode_depth
from ..depth.maps import depth_to_disparity_vis


def rgb_depth_preview(rgb_image, depth_x0: Tensor, height: int, width: int):
    """PIL image: `rgb_image` (PIL) on the left, the first sample's depth (tokens (B, N, 256) on a height x width
    latent grid) as grey disparity on the right, at the RGB picture's size."""
    from PIL import Image

    depth = decode_depth(depth_x0[:1], height, width)[0].cpu().numpy()  # (H, W)
    vis = (depth_to_disparity_vis(depth) * 255).astype("uint8")
    dimg = Image.fromarray(vis).convert("RGB").resize(rgb_image.size, Image.Resampling.NEAREST)
    both = Image.new("RGB", (rgb_image.width * 2, rgb_image.height))
    both.paste(rgb_image, (0, 0))
    both.paste(dimg, (rgb_image.width, 0))
    return both
