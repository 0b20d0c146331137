"""Depth + image -> triangle mesh (GLB, optionally PLY / OBJ) under the output folder, for ComfyUI's 3D viewer."""

from __future__ import annotations

import torch
from comfy_api.latest import io, ui

from ..mofo_core import DEFAULT_FOV_DEG, depth_to_mesh, render_points, write_mesh_glb, write_mesh_obj, write_mesh_ply
from .files import output_paths
from .messages import shows_warnings
from .point_cloud import _colors
from .types import MofoDepth, node_schema

EXTRA_FORMATS = ["none", "ply", "obj"]
DEFAULT_MAX_FACES = 2_500_000  # > 2 x 1023² (a whole 1024² grid); a 12-megapixel photo is subsampled to fit


def _glb_output():
    """The native FILE_3D_GLB output where this ComfyUI has it (feature-detected, ~0.12+), else nothing."""
    return [io.File3DGLB.Output(display_name="model_3d")] if hasattr(io, "File3DGLB") else []


class MofoDepthToMesh(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return node_schema(
            node_id="MofoDepthToMesh",
            display_name="Mofo Depth To Mesh",
            description="Triangulates depth on its pixel grid (two triangles per quad of valid pixels, none across "
            "depth edges: the point cloud's edge test) into a mesh in glTF axes (+Y up, camera at the origin looking "
            "down -Z), textured with the image or vertex-coloured, and saves a GLB under output/. Connect glb_path "
            "(or model_3d) to Preview3D. Relative depth gives a relative-size mesh: use Mofo Align Depth first for "
            "metres.",
            inputs=[
                io.Image.Input("image", tooltip="the colours / texture; resized to the depth's size if they differ"),
                MofoDepth.Input("depth", tooltip="depth (relative, or metric from Mofo Align Depth)"),
                io.Float.Input("fov_deg", default=DEFAULT_FOV_DEG, min=1.0, max=179.0, step=0.5,
                               tooltip="horizontal field of view of the camera, degrees (the model's default: 65)"),
                io.Float.Input("edge_rtol", default=0.04, min=0.0, max=1.0, step=0.005,
                               tooltip="relative depth jump that cuts the mesh (no stretched walls between "
                               "foreground and background); 0 connects everything"),
                io.Int.Input("max_faces", default=DEFAULT_MAX_FACES, min=0, max=50_000_000,
                             tooltip="face budget: the grid is subsampled (every 2nd, 3rd ... pixel) until the mesh "
                             "fits (2.5 M keeps a 1024 x 1024 map whole); 0 = every pixel, 2 triangles each"),
                io.Boolean.Input("texture", default=True,
                                 tooltip="embed the image as a texture (sharp); off: one colour per vertex"),
                io.Combo.Input("extra_format", options=EXTRA_FORMATS, default="none",
                               tooltip="also save a PLY (vertex colours) or OBJ (+ .mtl and .png) next to the GLB"),
                io.Int.Input("batch_index", default=0, min=0, max=4095, tooltip="which depth map of the batch"),
                io.String.Input("filename_prefix", default="mofo/mesh",
                                tooltip="file name under ComfyUI's output folder (subfolders allowed)"),
            ],
            outputs=[io.String.Output(display_name="glb_path"), *_glb_output()],
            is_output_node=True,
        )

    @classmethod
    @shows_warnings
    def execute(cls, image, depth, fov_deg, edge_rtol, max_faces, texture, extra_format, batch_index,
                filename_prefix) -> io.NodeOutput:
        d = depth["depth"]
        if batch_index >= d.shape[0]:
            raise ValueError(f"batch_index {batch_index} but the depth batch has {d.shape[0]} maps")
        if extra_format not in EXTRA_FORMATS:
            raise ValueError(f"extra_format must be one of {EXTRA_FORMATS}")
        colors = _colors(image[min(batch_index, image.shape[0] - 1)], d.shape[1:])
        mesh = depth_to_mesh(d[batch_index].cpu().numpy(), colors, fov_deg=fov_deg, edge_rtol=edge_rtol,
                             max_faces=max_faces or None, texture=texture)
        if not mesh.face_count:
            raise ValueError(f"the mesh is empty: every pixel is on a depth edge at edge_rtol={edge_rtol} (noisy "
                             "depth); raise edge_rtol, or 0 to connect everything")
        (glb, glb_ui), = output_paths(filename_prefix, 1, ".glb")
        write_mesh_glb(glb, mesh, texture=texture)
        files = [glb_ui]
        if extra_format == "ply":
            write_mesh_ply(glb.with_suffix(".ply"), mesh)
            files.append({**glb_ui, "filename": glb.with_suffix(".ply").name})
        elif extra_format == "obj":
            for p in write_mesh_obj(glb.with_suffix(".obj"), mesh, texture=texture):
                files.append({**glb_ui, "filename": p.name})
        rel = f"{glb_ui['subfolder']}/{glb.name}".lstrip("/")
        picture = render_points(mesh.vertices, mesh.colors, splat=2)
        preview = torch.from_numpy(picture).float()[None] / 255.0
        ui_out = {**ui.PreviewImage(preview, cls=cls).as_dict(), "3d": files,
                  "text": [f"{mesh.face_count} faces, {len(mesh.vertices)} vertices (grid stride {mesh.stride})"]}
        extra = [_file3d(glb)] if _glb_output() else []
        return io.NodeOutput(rel, *extra, ui=ui_out)


def _file3d(path):
    from comfy_api.latest import Types

    return Types.File3D(str(path))
