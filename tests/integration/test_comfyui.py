"""The pack inside a real ComfyUI: start-up, /object_info, and every shipped workflow run on tiny checkpoints.

Needs a ComfyUI checkout in COMFYUI_DIR (run by COMFYUI_PYTHON, default this interpreter); skips otherwise.
The text path of the tiny graphs is the pack's transformers loader (ComfyUI's native Qwen3-8B cannot be made
tiny), so CLIPLoader nodes are swapped for Mofo Text Encoder Loader at submit time; everything else runs as
shipped, with smaller sizes and fewer steps.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import comfy_harness as ch  # noqa: E402

pytestmark = pytest.mark.skipif(ch.comfy_dir() is None, reason="COMFYUI_DIR is not set to a ComfyUI checkout")

WORKFLOWS = sorted((ch.ROOT / "workflows").glob("*.json"))
SMALL = {  # class_type -> input overrides for CPU speed
    "MofoScheduler": {"steps": 2},
    "MofoSampler": {"width": 64, "height": 48},
    "MofoFitImage": {"width": 64, "height": 64},
    "ImageScale": {"width": 64, "height": 64},
    "EmptyLatentImage": {"width": 64, "height": 64},
    "KSampler": {"steps": 2},
    "MofoDepthToPointCloud": {"edge_rtol": 0.0},  # random-weight depth is all edges
}
DOCUMENTED = {  # node -> inputs documented in the README
    "MofoModelLoader": {"model_name", "weight_dtype", "attention", "compile"},
    "MofoDownloadModel": {"repo_id", "weight_dtype", "attention", "compile"},
    "MofoTextEncode": {"text", "clip", "text_encoder"},
    "MofoTextEncoderLoader": {"folder", "dtype"},
    "MofoScheduler": {"steps", "mode", "mu", "log2_alpha", "rgb_denoise", "depth_denoise"},
    "MofoSampler": {"model", "positive", "negative", "rgb_sigmas", "depth_sigmas", "cfg", "depth_cfg", "seed", "width",
                    "height", "batch_size", "noise", "batch_cfg", "rgb_latent", "depth_latent"},
    "MofoDepthDecode": {"depth_latent", "colormap", "fit"},
    "MofoDepthEncode": {"depth", "depth_image", "near_is_bright", "robust"},
    "MofoFitImage": {"image", "width", "height", "mode"},
    "MofoDepthToPointCloud": {"image", "depth", "fov_deg", "edge_rtol", "outlier_removal", "batch_index",
                              "filename_prefix"},
    "MofoSaveDepth": {"depth", "filename_prefix", "format"},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = ch.make_base(tmp_path_factory.mktemp("comfy_base"))
    sd_ready = False
    try:
        from tiny_sd import write_tiny_sd15

        (base / "models" / "checkpoints").mkdir(parents=True, exist_ok=True)
        (base / "models" / "controlnet").mkdir(parents=True, exist_ok=True)
        write_tiny_sd15(base / "models/checkpoints/v1-5-pruned-emaonly-fp16.safetensors",
                        base / "models/controlnet/control_v11f1p_sd15_depth_fp16.safetensors", full_clip=True)
        sd_ready = True
    except ImportError:
        pass
    with ch.ComfyServer(base) as s:
        s.sd_ready = sd_ready
        s.object_info = s.get("/object_info")
        yield s


def test_pack_imports_cleanly(server):
    log = server.log()
    assert ch.PACK_NAME in log and "IMPORT FAILED" not in "".join(
        line for line in log.splitlines() if ch.PACK_NAME in line)


def test_every_node_is_listed_with_its_documented_inputs(server):
    for node, names in DOCUMENTED.items():
        info = server.object_info[node]
        got = set(info["input"].get("required", {})) | set(info["input"].get("optional", {}))
        assert got == names, node
        assert info["category"] == "ModalityForcing"
    assert "FILE_3D_PLY" in server.object_info["MofoDepthToPointCloud"]["output"]


def _prompt(server, wf_path: Path) -> dict:
    prompt = ch.ui_to_api(json.loads(wf_path.read_text()), server.object_info)
    for nid, node in list(prompt.items()):
        if node["class_type"] == "CLIPLoader":  # the tiny text path (see module docstring)
            prompt[nid] = {"class_type": "MofoTextEncoderLoader", "inputs": {"folder": "qwen3_tiny", "dtype": "fp32"}}
        for k, v in SMALL.get(node["class_type"], {}).items():
            node["inputs"][k] = v
    for node in prompt.values():
        if node["class_type"] == "MofoTextEncode" and "clip" in node["inputs"]:
            node["inputs"]["text_encoder"] = node["inputs"].pop("clip")
    return prompt


@pytest.mark.parametrize("wf", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_workflow_runs_to_completion(server, wf):
    prompt = _prompt(server, wf)
    if any(n["class_type"] == "CheckpointLoaderSimple" for n in prompt.values()) and not server.sd_ready:
        pytest.skip("tiny SD 1.5 + ControlNet files unavailable (tests/integration/tiny_sd.py)")
    entry = server.run_prompt(prompt)
    outputs = entry["outputs"]
    out_dir = server.base / "output"
    files = [(o.get("subfolder", ""), o["filename"], o.get("type")) for node in outputs.values()
             for key in ("images", "3d", "depth_files") for o in node.get(key, [])]
    assert files, f"no outputs reported: {outputs}"
    saved = [out_dir / sub / name for sub, name, typ in files if typ == "output"]
    for path in saved:
        assert path.is_file() and path.stat().st_size > 0, path
    from PIL import Image

    for path in saved:
        if path.suffix == ".png":
            im = np.asarray(Image.open(path))
            assert im.size > 0 and np.isfinite(im.astype(float)).all()
        if path.suffix == ".exr":
            from mofo_core.depth_io import load_depth

            d = load_depth(path)
            assert np.isfinite(d[d > 0]).all() and (d > 0).any()
        if path.suffix == ".ply":
            from plyfile import PlyData

            ply = PlyData.read(path)
            assert len(ply["vertex"]) > 0 and {"x", "y", "z", "red"} <= {p.name for p in ply["vertex"].properties}
    kinds = {p.suffix for p in saved}
    if "pointcloud" in wf.stem:
        assert ".ply" in kinds and ".glb" in kinds
    if any(n["class_type"] == "MofoSaveDepth" for n in prompt.values()):
        assert kinds & {".png", ".exr", ".npy"}
