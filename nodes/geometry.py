"""Depth tools next to the generator: metric alignment, normal maps, depth pictures with a batch-wide range."""

from __future__ import annotations

import numpy as np
import torch
from comfy_api.latest import io

from ..mofo_core import (
    DEFAULT_FOV_DEG,
    DEFAULT_NORMAL_RTOL,
    NORMAL_CONVENTIONS,
    depth_to_image,
    depth_to_normals,
    fit_depth,
    image_to_depth,
    normals_to_image,
    scale_to_distance,
)
from .depth import COLORMAPS, NORMALIZE
from .messages import shows_warnings
from .types import MofoDepth, node_schema

METHODS = ["known distance", "fit to reference"]
MEASURES = {"planar depth": "planar", "along the ray": "ray"}
FITS = ["scale", "scale + shift"]
FIT_OVER = ["each image", "whole batch"]
REFERENCE_IS = ["disparity (near = bright)", "depth (far = bright)"]
# MOFO_DEPTH, and ComfyUI's MoGe / Depth Anything 3 geometry (dicts with "depth" (B, H, W), comfy_extras/nodes_moge.py
# and nodes_depth_anything_3.py): one socket that accepts all three (a comma-separated type list).
Reference = io.Custom("MOFO_DEPTH,MOGE_GEOMETRY,DA3_GEOMETRY")


def _resize_nearest(x: torch.Tensor, hw) -> torch.Tensor:
    """(B, h, w) -> (B, H, W) by nearest neighbour (never mixes valid and invalid depth)."""
    if tuple(x.shape[1:]) == tuple(hw):
        return x
    return torch.nn.functional.interpolate(x[:, None].float(), size=tuple(hw), mode="nearest")[:, 0]


def _reference_depth(reference, reference_image, reference_is, hw) -> torch.Tensor:
    """The reference as (B, H, W) depth at our size; invalid (sky, masked, <= 0, inf) = 0."""
    if (reference is None) == (reference_image is None):
        raise ValueError("method 'fit to reference' needs exactly one of reference (MOFO_DEPTH / MoGe / Depth "
                         "Anything 3 geometry) or reference_image (a depth IMAGE)")
    if reference is not None:
        if not isinstance(reference, dict) or "depth" not in reference:
            raise ValueError("reference holds no depth; connect Mofo Depth Decode / Mofo Align Depth, Run MoGe "
                             "Inference or Run Depth Anything 3")
        ref = reference["depth"].float().cpu().clone()  # (B, H, W)
        if "mask" in reference:  # MoGe: False = sky / invalid
            ref[~reference["mask"].cpu().bool()] = 0.0
        if "sky" in reference:  # Depth Anything 3 (mono / metric): sky probability
            ref[reference["sky"].cpu() >= 0.5] = 0.0
    else:
        ref = image_to_depth(reference_image.cpu(), reference_is == REFERENCE_IS[0])
    ref = torch.nan_to_num(ref, nan=0.0, posinf=0.0, neginf=0.0)
    return _resize_nearest(ref, hw)


def _mask(mask, shape) -> np.ndarray | None:
    """ComfyUI MASK (B, H, W) / (H, W) -> bool (B, H, W) at the depth's size, or None."""
    if mask is None:
        return None
    m = mask if mask.ndim == 3 else mask[None]
    m = torch.nn.functional.interpolate(m[:, None].float(), size=shape[1:], mode="nearest")[:, 0] > 0.5
    if m.shape[0] not in (1, shape[0]):
        raise ValueError(f"mask has {m.shape[0]} frames but the depth has {shape[0]}; give one mask or one per frame")
    return np.broadcast_to(m.cpu().numpy(), shape)


class MofoAlignDepth(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return node_schema(
            node_id="MofoAlignDepth",
            display_name="Mofo Align Depth (metric)",
            description="Gives relative depth units. 'known distance': one scale so that a pixel (at_x, at_y; -1 = the "
            "centre) or the mask region is `distance` away (e.g. the table is 0.75 m). 'fit to reference': a robust "
            "scale (and shift) fit to another depth map over the pixels valid in both (and inside the mask): "
            "ComfyUI's MoGe / Depth Anything 3 metric geometry, a MOFO_DEPTH, or any depth IMAGE. Reports the fit "
            "and its error.",
            inputs=[
                MofoDepth.Input("depth", tooltip="the depth to align (Mofo Depth Decode)"),
                io.Combo.Input("method", options=METHODS, default=METHODS[0],
                               tooltip="known distance: you state one distance; fit to reference: match another "
                               "depth map (connect reference or reference_image)"),
                io.Float.Input("distance", default=2.0, min=0.001, max=100000.0, step=0.01,
                               tooltip="known distance: how far the pixel / mask region is, in the unit you want "
                               "(metres)"),
                io.Int.Input("at_x", default=-1, min=-1, max=16384,
                             tooltip="known distance: pixel column of the thing you know the distance of (a 5x5 "
                             "median around it); -1 = the image centre. Ignored when a mask is connected"),
                io.Int.Input("at_y", default=-1, min=-1, max=16384,
                             tooltip="known distance: pixel row (from the top); -1 = the image centre"),
                io.Combo.Input("measure", options=list(MEASURES), default="planar depth",
                               tooltip="known distance: the depth map's z (planar) or the straight-line distance "
                               "from the camera (along the ray; same at the centre)"),
                io.Float.Input("fov_deg", default=DEFAULT_FOV_DEG, min=1.0, max=179.0, step=0.5,
                               tooltip="horizontal field of view, degrees (only for 'along the ray')"),
                io.Combo.Input("fit", options=FITS, default=FITS[0],
                               tooltip="fit to reference: scale only (metric references), or scale + shift "
                               "(relative / disparity references)"),
                io.Combo.Input("space", options=["depth", "disparity"], default="depth",
                               tooltip="fit to reference: fit in depth, or in 1/depth (for a disparity reference, "
                               "e.g. most ControlNet depth images: use disparity with scale + shift)"),
                io.Combo.Input("loss", options=["huber", "tukey", "l2"], default="huber",
                               tooltip="fit to reference: robust Huber / Tukey weights (outliers barely count), or "
                               "plain least squares"),
                io.Combo.Input("fit_over", options=FIT_OVER, default=FIT_OVER[0],
                               tooltip="one scale per image, or one for the whole batch (no flicker over a sequence)"),
                io.Combo.Input("reference_is", options=REFERENCE_IS, default=REFERENCE_IS[0],
                               tooltip="what reference_image holds (ignored for the reference socket)"),
                io.Mask.Input("mask", optional=True,
                              tooltip="known distance: the region at `distance`; fit to reference: where to fit "
                              "(1 = use)"),
                Reference.Input("reference", optional=True,
                                tooltip="MOFO_DEPTH, or MoGe / Depth Anything 3 geometry (Run MoGe Inference, Run "
                                "Depth Anything 3): sky / masked pixels are left out"),
                io.Image.Input("reference_image", optional=True,
                               tooltip="any depth IMAGE (set reference_is); resized to the depth's size"),
            ],
            outputs=[MofoDepth.Output(display_name="depth"), io.String.Output(display_name="report"),
                     io.Float.Output(display_name="scale")],
        )

    @classmethod
    @shows_warnings
    def execute(cls, depth, method, distance, at_x, at_y, measure, fov_deg, fit, space, loss, fit_over, reference_is,
                mask=None, reference=None, reference_image=None) -> io.NodeOutput:
        d = depth["depth"].float().cpu().numpy()  # (B, H, W)
        b, h, w = d.shape
        m = _mask(mask, d.shape)
        groups = [slice(0, b)] if fit_over == FIT_OVER[1] else [slice(i, i + 1) for i in range(b)]
        out, reports = np.zeros_like(d), []
        if method == METHODS[0]:
            at = None
            if m is None:
                at = (w // 2 if at_x < 0 else at_x, h // 2 if at_y < 0 else at_y)
            for g in groups:
                out[g], rep = scale_to_distance(d[g], distance, at=at, region=None if m is None else m[g],
                                                measure=MEASURES[measure], fov_deg=fov_deg)
                reports.append(rep)
        elif method == METHODS[1]:
            ref = _reference_depth(reference, reference_image, reference_is, (h, w)).numpy()
            if ref.shape[0] not in (1, b):
                raise ValueError(f"the reference has {ref.shape[0]} maps but the depth has {b}; give one or one each")
            ref = np.broadcast_to(ref, d.shape)
            for g in groups:
                out[g], rep = fit_depth(d[g], ref[g], None if m is None else m[g], shift=fit == FITS[1], space=space,
                                        loss=loss)
                reports.append(rep)
        else:
            raise ValueError(f"method must be one of {METHODS}")
        lines = [r.summary() for r in reports]
        text = lines[0] if len(lines) == 1 else "\n".join(f"image {i}: {t}" for i, t in enumerate(lines))
        return io.NodeOutput({"depth": torch.from_numpy(out)}, text, float(reports[0].scale), ui={"text": [text]})


class MofoDepthNormals(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return node_schema(
            node_id="MofoDepthNormals",
            display_name="Mofo Depth To Normals",
            description="Camera-space normal map from depth and the field of view, robust at depth edges (each "
            "normal comes from its own surface). 'controlnet' = the normal ControlNet's colours (red = left, green = "
            "up, blue = towards the camera: a wall facing you is light blue); 'opengl' / 'directx' for 3D tools. "
            "Pixels without depth are black.",
            inputs=[
                MofoDepth.Input("depth", tooltip="depth (relative or metric: the normals do not depend on the scale)"),
                io.Float.Input("fov_deg", default=DEFAULT_FOV_DEG, min=1.0, max=179.0, step=0.5,
                               tooltip="horizontal field of view, degrees (65 = the model's default)"),
                io.Combo.Input("convention", options=list(NORMAL_CONVENTIONS), default="controlnet",
                               tooltip="controlnet: R = left, G = up, B = front (ControlNet 1.1 normalbae); opengl: "
                               "R = right, G = up; directx: R = right, G = down"),
                io.Float.Input("edge_rtol", default=DEFAULT_NORMAL_RTOL, min=0.001, max=10.0, step=0.01,
                               tooltip="a neighbour this much (relative) nearer or farther is another surface and "
                               "is not used"),
            ],
            outputs=[io.Image.Output(display_name="normal_image")],
        )

    @classmethod
    @shows_warnings
    def execute(cls, depth, fov_deg, convention, edge_rtol) -> io.NodeOutput:
        maps = [normals_to_image(depth_to_normals(x, fov_deg=fov_deg, edge_rtol=edge_rtol), convention)
                for x in depth["depth"].float().cpu().numpy()]
        return io.NodeOutput(torch.from_numpy(np.stack(maps)))  # (B, H, W, 3) in [0, 1]


class MofoDepthToImage(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return node_schema(
            node_id="MofoDepthToImage",
            display_name="Mofo Depth To Image",
            description="MOFO_DEPTH (e.g. aligned, metric) -> a depth IMAGE in the ControlNet convention (near = "
            "white), normalised per image, over the whole batch (no flicker over a sequence), or to a fixed near / "
            "far range in depth units (the same for every run).",
            inputs=[
                MofoDepth.Input("depth", tooltip="depth from Mofo Depth Decode or Mofo Align Depth"),
                io.Combo.Input("colormap", options=COLORMAPS, default="grey", tooltip="grey (ControlNet) or magma"),
                io.Combo.Input("normalize", options=NORMALIZE + ["fixed range"], default=NORMALIZE[0],
                               tooltip="per image: each its own range; batch: one range for all frames; fixed "
                               "range: near -> white, far -> black"),
                io.Float.Input("near", default=0.5, min=0.0001, max=100000.0, step=0.1,
                               tooltip="fixed range: the depth shown white (depth units, e.g. metres)"),
                io.Float.Input("far", default=10.0, min=0.0001, max=100000.0, step=0.1,
                               tooltip="fixed range: the depth shown black"),
            ],
            outputs=[io.Image.Output(display_name="depth_image")],
        )

    @classmethod
    @shows_warnings
    def execute(cls, depth, colormap, normalize, near, far) -> io.NodeOutput:
        return io.NodeOutput(depth_to_image(depth["depth"], colormap, normalize, near=near, far=far))
