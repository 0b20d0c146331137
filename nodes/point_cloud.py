"""Depth + image -> coloured point cloud (PLY + GLB) under the output folder, with a preview."""

from __future__ import annotations

import numpy as np
import torch
from comfy_api.latest import io, ui

from ..mofo_core import DEFAULT_FOV_DEG, depth_to_points, render_points, write_glb, write_ply
from .files import output_paths
from .messages import shows_warnings
from .types import MofoDepth, node_schema


def _file3d_output():
    """The native FILE_3D_PLY output where this ComfyUI has it (feature-detected, ~0.12+), else nothing."""
    return [io.File3DPLY.Output(display_name="model_3d")] if hasattr(io, "File3DPLY") else []


class MofoDepthToPointCloud(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return node_schema(
            node_id="MofoDepthToPointCloud",
            display_name="Mofo Depth To Point Cloud",
            description="Back-projects relative depth with a pinhole camera (horizontal FOV) into a coloured point "
            "cloud in glTF axes (+Y up, camera at the origin looking down -Z) and saves PLY + GLB under output/. "
            "Connect model_3d to PreviewPointCloud / SavePointCloud, or ply_path to Preview3D.",
            inputs=[
                io.Image.Input("image", tooltip="colours; resized to the depth's size if they differ"),
                MofoDepth.Input("depth", tooltip="raw depth (Mofo Depth Decode)"),
                io.Float.Input("fov_deg", default=DEFAULT_FOV_DEG, min=1.0, max=179.0, step=0.5,
                               tooltip="horizontal field of view of the camera, degrees (65 = the reference)"),
                io.Float.Input("edge_rtol", default=0.04, min=0.0, max=1.0, step=0.005,
                               tooltip="drop pixels on depth edges (flying points); 0 keeps all"),
                io.Boolean.Input("outlier_removal", default=False,
                                 tooltip="drop statistical outliers (5 neighbours, 1 std, as the reference; slower)"),
                io.Int.Input("batch_index", default=0, min=0, max=4095, tooltip="which depth map of the batch"),
                io.String.Input("filename_prefix", default="mofo/cloud",
                                tooltip="under the output folder; PLY and GLB are both written"),
            ],
            outputs=[io.String.Output(display_name="ply_path"), io.String.Output(display_name="glb_path"),
                     *_file3d_output()],
            is_output_node=True,
        )

    @classmethod
    @shows_warnings
    def execute(cls, image, depth, fov_deg, edge_rtol, outlier_removal, batch_index, filename_prefix):
        d = depth["depth"]
        if batch_index >= d.shape[0]:
            raise ValueError(f"batch_index {batch_index} but the depth batch has {d.shape[0]} maps")
        colors = _colors(image[min(batch_index, image.shape[0] - 1)], d.shape[1:])
        pts, cols = depth_to_points(d[batch_index].cpu().numpy(), colors, fov_deg=fov_deg, edge_rtol=edge_rtol,
                                    sor=outlier_removal)
        (ply, ply_ui), = output_paths(filename_prefix, 1, ".ply")
        glb = ply.with_suffix(".glb")
        write_ply(ply, pts, cols)
        write_glb(glb, pts, cols)
        rel = f"{ply_ui['subfolder']}/{ply.name}".lstrip("/")
        preview = torch.from_numpy(render_points(pts, cols)).float()[None] / 255.0
        ui_out = {**ui.PreviewImage(preview, cls=cls).as_dict(),
                  "3d": [ply_ui, {**ply_ui, "filename": glb.name}]}
        extra = [_file3d(ply)] if _file3d_output() else []
        return io.NodeOutput(rel, rel.removesuffix(".ply") + ".glb", *extra, ui=ui_out)


def _colors(img: torch.Tensor, hw) -> np.ndarray:
    """IMAGE (H, W, 3) in [0, 1] -> uint8 (h, w, 3) at the depth's size."""
    if tuple(img.shape[:2]) != tuple(hw):
        img = torch.nn.functional.interpolate(img.permute(2, 0, 1)[None], size=tuple(hw), mode="bilinear",
                                              align_corners=False)[0].permute(1, 2, 0)
    return (img[..., :3].clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def _file3d(path):
    from comfy_api.latest import Types

    return Types.File3D(str(path))
