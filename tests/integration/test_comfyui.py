"""The pack inside a real ComfyUI: start-up, /object_info, and every shipped workflow run on tiny checkpoints.

Needs a ComfyUI checkout in COMFYUI_DIR (run by COMFYUI_PYTHON, default this interpreter); skips otherwise.
The text path of the tiny graphs is the pack's transformers loader (ComfyUI's native Qwen3-8B cannot be made
tiny), so CLIPLoader nodes are swapped for Mofo Text Encoder Loader at submit time; everything else runs as
shipped, with smaller sizes and fewer steps.
"""

from __future__ import annotations

import json
import sys
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import comfy_harness as ch  # noqa: E402
from ws_client import TEXT_EVENT, WebSocket, progress_text  # noqa: E402

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
    "MofoDepthToMesh": {"edge_rtol": 0.0},
}
DOCUMENTED = {  # node -> inputs documented in the README
    "MofoModelLoader": {"model_name", "weight_dtype", "attention", "compile"},
    "MofoDownloadModel": {"repo_id", "weight_dtype", "attention", "compile"},
    "MofoTextEncode": {"text", "clip", "text_encoder", "too_long"},
    "MofoTextEncoderLoader": {"folder", "dtype"},
    "MofoScheduler": {"steps", "mode", "mu", "log2_alpha", "rgb_denoise", "depth_denoise"},
    "MofoSampler": {"model", "positive", "negative", "rgb_sigmas", "depth_sigmas", "cfg", "depth_cfg", "seed", "width",
                    "height", "batch_size", "noise", "batch_cfg", "mask_feather", "rgb_latent", "depth_latent",
                    "rgb_mask", "depth_mask", "gpus"},
    "MofoDepthDecode": {"depth_latent", "colormap", "fit", "normalize"},
    "MofoDepthEncode": {"depth", "depth_image", "near_is_bright", "robust"},
    "MofoFitImage": {"image", "width", "height", "mode"},
    "MofoDepthToPointCloud": {"image", "depth", "fov_deg", "edge_rtol", "outlier_removal", "batch_index",
                              "filename_prefix"},
    "MofoSaveDepth": {"depth", "filename_prefix", "format", "png16_range", "png16_max_depth"},
    "MofoAlignDepth": {"depth", "method", "distance", "at_x", "at_y", "measure", "fov_deg", "fit", "space", "loss",
                       "fit_over", "reference_is", "mask", "reference", "reference_image"},
    "MofoDepthToMesh": {"image", "depth", "fov_deg", "edge_rtol", "max_faces", "texture", "extra_format",
                        "batch_index", "filename_prefix"},
    "MofoDepthNormals": {"depth", "fov_deg", "convention", "edge_rtol"},
    "MofoDepthToImage": {"depth", "colormap", "normalize", "near", "far"},
}


@pytest.fixture(scope="module", params=["v0.29-layers", "lazy-layers"])
def server(tmp_path_factory, request):
    """One server per layer-building behaviour: v0.29's default on Linux (layers built with weights), and the
    dynamic-VRAM lazy layers of newer ComfyUI (forced through a test-only custom node, see comfy_harness)."""
    base = ch.make_base(tmp_path_factory.mktemp("comfy_base"))
    if request.param == "lazy-layers":
        ch.force_lazy_layers(base)
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
        s.lazy_layers = request.param == "lazy-layers"
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
    assert "FILE_3D_GLB" in server.object_info["MofoDepthToMesh"]["output"]
    # one socket takes our depth and ComfyUI's MoGe / Depth Anything 3 geometry
    ref = server.object_info["MofoAlignDepth"]["input"]["optional"]["reference"][0]
    assert set(ref.split(",")) == {"MOFO_DEPTH", "MOGE_GEOMETRY", "DA3_GEOMETRY"}


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
            from mofo_core.depth.files import load_depth

            d = load_depth(path)
            assert np.isfinite(d[d > 0]).all() and (d > 0).any()
        if path.suffix == ".ply":
            from plyfile import PlyData

            ply = PlyData.read(path)
            assert len(ply["vertex"]) > 0 and {"x", "y", "z", "red"} <= {p.name for p in ply["vertex"].properties}
    if server.lazy_layers and any(n["class_type"] == "MofoModelLoader" for n in prompt.values()):
        assert ch.LAZY_LAYERS_MARK in server.log()  # the DiT really was built from weightless layers
    kinds = {p.suffix for p in saved}
    if "pointcloud" in wf.stem:
        assert ".ply" in kinds and ".glb" in kinds
    if "mesh" in wf.stem:  # a textured triangle mesh, read back by an independent library
        import trimesh

        (glb,) = [p for p in saved if p.suffix == ".glb"]
        (geom,) = trimesh.load(glb).geometry.values()
        assert len(geom.faces) > 0 and geom.visual.material.baseColorTexture is not None
        report = [t for o in outputs.values() for t in o.get("text", []) if "stated distance" in t]
        assert report, outputs  # Mofo Align Depth reported its scale
    if any(n["class_type"] == "MofoSaveDepth" for n in prompt.values()):
        assert kinds & {".png", ".exr", ".npy"}


@pytest.mark.parametrize("weight_dtype", ["default", "bf16", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp32"])
def test_every_weight_mode_loads_and_samples(server, weight_dtype):
    prompt = {
        "1": {"class_type": "MofoModelLoader", "inputs": {"model_name": "modality_forcing/model.safetensors",
                                                           "weight_dtype": weight_dtype, "attention": "auto",
                                                           "compile": False}},
        "2": {"class_type": "MofoTextEncoderLoader", "inputs": {"folder": "qwen3_tiny", "dtype": "fp32"}},
        "3": {"class_type": "MofoTextEncode", "inputs": {"text": "a chair", "text_encoder": ["2", 0]}},
        "4": {"class_type": "MofoTextEncode", "inputs": {"text": "", "text_encoder": ["2", 0]}},
        "5": {"class_type": "MofoScheduler", "inputs": {"steps": 2, "mode": "joint", "mu": 1.1, "log2_alpha": 5.0,
                                                        "rgb_denoise": 1.0, "depth_denoise": 1.0}},
        "6": {"class_type": "MofoSampler", "inputs": {
            "model": ["1", 0], "positive": ["3", 0], "negative": ["4", 0], "rgb_sigmas": ["5", 0],
            "depth_sigmas": ["5", 1], "cfg": 3.0, "depth_cfg": -1.0, "seed": 5, "width": 32,
            "height": 32, "batch_size": 1, "noise": "cpu", "batch_cfg": True}},
        "7": {"class_type": "MofoDepthDecode", "inputs": {"depth_latent": ["6", 1], "colormap": "grey"}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 1], "filename_prefix": f"modes/{weight_dtype}"}},
    }
    outputs = server.run_prompt(prompt)["outputs"]
    (img,) = outputs["8"]["images"]
    from PIL import Image

    im = np.asarray(Image.open(server.base / "output" / img["subfolder"] / img["filename"]))
    assert im.shape[:2] == (32, 32) and im.std() > 0  # a depth picture, not a flat (NaN-cleared) image
    if server.lazy_layers:
        assert ch.LAZY_LAYERS_MARK in server.log()


def test_mask_of_another_size_is_resized_with_a_note_in_the_node(server):
    """The inpaint workflow's mask is the 512 x 512 photo's; the test scales the photo to 64 x 64, so the sampler
    resizes the mask and says so in its UI output (and the log)."""
    prompt = _prompt(server, ch.ROOT / "workflows" / "mofo_edit_inpaint.json")
    for node in prompt.values():
        if node["class_type"] == "MofoSampler":
            node["inputs"]["seed"] = 12345  # not cached from the workflow run
    outputs = server.run_prompt(prompt)["outputs"]
    samplers = [nid for nid, n in prompt.items() if n["class_type"] == "MofoSampler"]
    notes = [t for nid in samplers for t in outputs.get(nid, {}).get("mofo_warnings", [])]
    assert notes and all("rgb_mask is 512x512 but the image is 64x64" in t or "depth_mask" in t for t in notes)
    assert "resized to fit" in server.log()


def _encode_prompt(text: str, too_long: str) -> dict:
    return {
        "2": {"class_type": "MofoTextEncoderLoader", "inputs": {"folder": "qwen3_tiny", "dtype": "fp32"}},
        "3": {"class_type": "MofoTextEncode", "inputs": {"text": text, "text_encoder": ["2", 0], "too_long": too_long}},
        "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}},  # an output node, so that 3 runs
    }


def test_a_warning_reaches_the_browser_on_the_node_as_an_event_and_in_the_history(server):
    """What the browser gets over /ws while a too-long prompt is cut (web/mofo_warnings.js turns the event into a
    toast; ComfyUI's own frontend writes the progress text on the node)."""
    cid = uuid.uuid4().hex
    ws = WebSocket(server.port, cid, timeout=120)
    try:
        pid = server.queue(_encode_prompt("a long prompt " * 400, "truncate"), cid)
        events, texts = [], []
        while True:
            m = ws.receive()
            if isinstance(m, tuple) and m[0] == TEXT_EVENT:
                texts.append(progress_text(m[1]))
            elif isinstance(m, dict) and m["type"] == "mofo.warning":
                events.append(m["data"])
            elif isinstance(m, dict) and m["type"] in ("executing", "execution_error") and \
                    m["data"].get("prompt_id") == pid and (m["type"] == "execution_error" or m["data"]["node"] is None):
                break
    finally:
        ws.close()
    entry = server.finish(pid)
    assert entry["status"]["status_str"] == "success"
    (warning,) = entry["outputs"]["3"]["mofo_warnings"]
    assert "tokens with the chat template; the model reads 512: the last" in warning and "are dropped" in warning
    assert events == [{"node": "3", "message": warning}]
    assert texts == [("3", f"\u26a0 {warning}")]


def test_errors_shown_in_the_error_panel_have_clean_type_names(server):
    entry = server.finish(server.queue(_encode_prompt("a long prompt " * 400, "error")))
    (err,) = server.errors(entry)
    assert err["exception_type"] == "mofo_core.PromptTooLongError" and "too_long" in err["exception_message"]
    unet = {"input_blocks.0.0.weight": (4, 4, 3, 3), "middle_block.0.in_layers.0.weight": (4,),
            "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (8, 768)}
    from safetensors.numpy import save_file

    save_file({k: np.zeros(v, np.float32) for k, v in unet.items()},
              str(server.base / "models" / "diffusion_models" / "sd15_unet.safetensors"))
    prompt = {"1": {"class_type": "MofoModelLoader", "inputs": {"model_name": "sd15_unet.safetensors",
                                                                 "weight_dtype": "default", "attention": "auto",
                                                                 "compile": False}},
              "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    entry = server.finish(server.queue(prompt))
    (err,) = server.errors(entry)
    assert err["exception_type"] == "mofo_core.CheckpointError"
    assert "Stable Diffusion 1.x UNet" in err["exception_message"]


def test_the_web_extension_is_served(server):
    js = [e for e in server.get("/extensions") if e.endswith("/mofo_warnings.js")]
    assert js == [f"/extensions/{ch.PACK_NAME}/mofo_warnings.js"]  # once: a second copy would register twice
    with urllib.request.urlopen(server.url + js[0], timeout=30) as r:
        assert b"mofo.warning" in r.read()
