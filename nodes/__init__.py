"""ComfyUI V3 nodes for Modality Forcing. The only package here that imports ComfyUI; every node delegates
to mofo_core."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from comfy_api.latest import ComfyExtension, io

from .depth import MofoDepthDecode, MofoDepthEncode, MofoFitImage, MofoSaveDepth
from .geometry import MofoAlignDepth, MofoDepthNormals, MofoDepthToImage
from .loader import MofoDownloadModel, MofoModelLoader
from .mesh import MofoDepthToMesh
from .point_cloud import MofoDepthToPointCloud
from .sampler import MofoSampler, MofoScheduler
from .text import MofoTextEncode, MofoTextEncoderLoader

NODES: list[type[io.ComfyNode]] = [
    MofoModelLoader,
    MofoDownloadModel,
    MofoTextEncode,
    MofoTextEncoderLoader,
    MofoScheduler,
    MofoSampler,
    MofoDepthDecode,
    MofoDepthEncode,
    MofoFitImage,
    MofoDepthToPointCloud,
    MofoSaveDepth,
    MofoAlignDepth,
    MofoDepthToMesh,
    MofoDepthNormals,
    MofoDepthToImage,
]


_ASSETS = Path(__file__).resolve().parents[1] / "assets"
EXAMPLE_INPUTS = [_ASSETS / "mofo_depth_example.png", _ASSETS / "mofo_edit_example.png"]


def provide_example_inputs() -> list[Path]:
    """Copy the shipped example inputs (the depth map and the photo + mask that the workflows load) into
    ComfyUI's input folder, so those workflows open without a missing-file error. Never overwrites; a read-only
    or unknown input folder is not an error. Returns the files it wrote."""
    written = []
    try:
        import folder_paths

        dst_dir = Path(folder_paths.get_input_directory())
        for src in EXAMPLE_INPUTS:
            dst = dst_dir / src.name
            if src.is_file() and not dst.exists():
                dst_dir.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
                written.append(dst)
    except (OSError, AttributeError, ImportError) as e:
        logging.info("ModalityForcing: example inputs not copied into the input folder (%s)", e)
    return written


class MofoExtension(ComfyExtension):
    async def on_load(self) -> None:
        provide_example_inputs()

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return NODES
