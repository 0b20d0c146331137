"""ComfyUI V3 nodes for Modality Forcing. The only package here that imports ComfyUI; every node delegates
to mofo_core."""

from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from .depth import MofoDepthDecode, MofoDepthEncode, MofoFitImage, MofoSaveDepth
from .loader import MofoDownloadModel, MofoModelLoader
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
]


class MofoExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return NODES
