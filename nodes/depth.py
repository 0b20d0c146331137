"""Depth latent <-> depth map / ControlNet IMAGE, fitting images to the model size, saving depth files."""

from __future__ import annotations

import logging

import numpy as np
import torch
from comfy_api.latest import io, ui

from ..mofo_core import RANGE_MODES, decode_depth, depth_to_image, encode_depth, fit_image, image_to_depth, unfit_depth
from .messages import shows_warnings
from .types import MofoDepth, MofoDepthLatent, MofoFit, node_schema

log = logging.getLogger(__name__)
COLORMAPS = ["grey", "magma"]
PNG16_RANGES = ["per image", "batch", "fixed range"]
NORMALIZE = ["per image", "batch"]  # depth_range modes "image" / "batch" (+ "fixed range" where near / far exist)


class MofoDepthDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return node_schema(
            node_id="MofoDepthDecode",
            display_name="Mofo Depth Decode",
            description="Depth latent -> raw relative depth (MOFO_DEPTH, for point clouds and 16-bit/EXR files) and "
            "a depth IMAGE in the ControlNet convention (near = white, normalised per image). Connect the MOFO_FIT "
            "of Mofo Fit Image to get the depth back at the original image's size, without bars.",
            inputs=[
                MofoDepthLatent.Input("depth_latent", tooltip="the sampler's depth_latent"),
                io.Combo.Input("colormap", options=COLORMAPS, default="grey",
                               tooltip="of depth_image: grey (ControlNet, near = white) or magma (for viewing)"),
                MofoFit.Input("fit", optional=True,
                              tooltip="Mofo Fit Image's fit: crop the bars, return depth at the input's size"),
                io.Combo.Input("normalize", options=NORMALIZE, default=NORMALIZE[0], optional=True,
                               tooltip="depth_image range: per image (each frame its own), or one range over the "
                               "whole batch so the frames of a sequence do not flicker"),
            ],
            outputs=[MofoDepth.Output(display_name="depth"), io.Image.Output(display_name="depth_image")],
        )

    @classmethod
    @shows_warnings
    def execute(cls, depth_latent, colormap, fit=None, normalize="per image") -> io.NodeOutput:
        d = decode_depth(depth_latent["samples"], depth_latent["height"], depth_latent["width"])
        bad = int((~(torch.isfinite(d) & (d > 0))).sum())
        if bad:  # the model predicted c >= 2 (infinitely far or beyond): black in depth_image, skipped in 3D
            log.warning("%d of %d decoded depth pixels (%.1f%%) are invalid (inf or <= 0): black in depth_image, "
                        "left out of point clouds", bad, d.numel(), 100.0 * bad / d.numel())
        if fit is not None:
            d = torch.from_numpy(np.stack([unfit_depth(x, fit["box"], fit["size"]) for x in d.cpu().numpy()]))
        return io.NodeOutput({"depth": d.float().cpu()}, depth_to_image(d, colormap, normalize))


class MofoDepthEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return node_schema(
            node_id="MofoDepthEncode",
            display_name="Mofo Depth Encode",
            description="A depth map -> depth latent for depth -> image or depth-guided edits. Takes MOFO_DEPTH, or "
            "an IMAGE from any depth node (most ControlNet preprocessors output disparity: near is bright). The "
            "size must be a multiple of 16 (use Mofo Fit Image / ImageScale first).",
            inputs=[
                MofoDepth.Input("depth", optional=True, tooltip="raw depth (Mofo Depth Decode), or depth_image"),
                io.Image.Input("depth_image", optional=True,
                               tooltip="a depth IMAGE from any depth node (MiDaS, Depth Anything, ...)"),
                io.Boolean.Input("near_is_bright", default=True, tooltip="the IMAGE is disparity-like (ControlNet)"),
                io.Boolean.Input("robust", default=False, tooltip="normalise over valid pixels only (holes, sky)"),
            ],
            outputs=[MofoDepthLatent.Output(display_name="depth_latent")],
        )

    @classmethod
    @shows_warnings
    def execute(cls, near_is_bright, robust, depth=None, depth_image=None) -> io.NodeOutput:
        if (depth is None) == (depth_image is None):
            raise ValueError("connect exactly one of depth (MOFO_DEPTH) or depth_image (IMAGE)")
        d = depth["depth"] if depth is not None else image_to_depth(depth_image, near_is_bright)
        tokens = encode_depth(d, robust=robust)
        return io.NodeOutput({"samples": tokens, "height": d.shape[1] // 16, "width": d.shape[2] // 16})


class MofoFitImage(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return node_schema(
            node_id="MofoFitImage",
            display_name="Mofo Fit Image",
            description="Fits an image of any aspect ratio to the generation size: letterbox keeps the aspect (black "
            "bars, as the reference demo), stretch distorts (the reference CLI). Pass MOFO_FIT to Mofo Depth Decode "
            "to crop the bars away and return depth at the input's size.",
            inputs=[
                io.Image.Input("image", tooltip="the photo to fit (any size and aspect ratio)"),
                io.Int.Input("width", default=512, min=16, max=4096, step=16, tooltip="generation width, pixels"),
                io.Int.Input("height", default=512, min=16, max=4096, step=16, tooltip="generation height, pixels"),
                io.Combo.Input("mode", options=["letterbox", "stretch"], default="letterbox",
                               tooltip="letterbox keeps the aspect (bars, cropped away again with fit); stretch "
                               "distorts"),
            ],
            outputs=[io.Image.Output(display_name="image"), MofoFit.Output(display_name="fit")],
        )

    @classmethod
    @shows_warnings
    def execute(cls, image, width, height, mode) -> io.NodeOutput:
        u8 = (image[..., :3].clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
        fitted = [fit_image(x, height, width, mode) for x in u8]
        out = torch.from_numpy(np.stack([f[0] for f in fitted])).float() / 255.0
        return io.NodeOutput(out, {"box": fitted[0][1], "size": tuple(image.shape[1:3]), "mode": mode})


class MofoSaveDepth(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return node_schema(
            node_id="MofoSaveDepth",
            display_name="Mofo Save Depth",
            description="Saves relative depth under the output folder as 16-bit PNG (scale in the file's text chunk), "
            "float EXR, or NPY, with a preview.",
            inputs=[
                MofoDepth.Input("depth", tooltip="raw depth (Mofo Depth Decode)"),
                io.String.Input("filename_prefix", default="mofo/depth",
                                tooltip="under the output folder; %date% and subfolders work as in Save Image"),
                io.Combo.Input("format", options=["png16", "exr", "npy"], default="png16",
                               tooltip="png16: 16-bit PNG with the scale in its text chunk; exr: float32; npy: "
                               "NumPy float32"),
                io.Combo.Input("png16_range", options=PNG16_RANGES, default=PNG16_RANGES[0], optional=True,
                               tooltip="png16: 65535 = each map's largest depth (per image), the batch's largest "
                               "(one scale for a sequence), or png16_max_depth (fixed)"),
                io.Float.Input("png16_max_depth", default=10.0, min=0.0001, max=1000000.0, step=0.1, optional=True,
                               tooltip="png16 with png16_range fixed: the depth stored as 65535 (deeper clips)"),
            ],
            outputs=[],
            is_output_node=True,
        )

    @classmethod
    @shows_warnings
    def execute(cls, depth, filename_prefix, format, png16_range="per image", png16_max_depth=10.0) -> io.NodeOutput:
        from ..mofo_core import png16_max_depths
        from .files import save_depth_files

        if png16_range not in PNG16_RANGES:
            raise ValueError(f"png16_range must be one of {PNG16_RANGES}")
        tops = None
        if format == "png16":  # exr / npy store the values as they are
            tops = png16_max_depths(depth["depth"].float().cpu().numpy(), RANGE_MODES[png16_range], png16_max_depth)
        saved = save_depth_files(depth["depth"], filename_prefix, format, max_depths=tops)
        shown = "batch" if png16_range == "batch" else "per image"
        preview = ui.PreviewImage(depth_to_image(depth["depth"], normalize=shown), cls=cls).as_dict()
        return io.NodeOutput(ui={**preview, "depth_files": saved})  # the saved files, listed in the history
