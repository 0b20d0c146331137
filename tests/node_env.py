"""The pack loaded against stand-ins of the ComfyUI modules (tests/comfy_stubs), for the node tests.

The real ComfyUI runs in tests/integration; these stand-ins make the node logic testable in CI without it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import sys

from helpers import FIXTURES, ROOT

from mofo_core.app.tiny_assets import build_tiny_dit_files

sys.path.insert(0, str(ROOT / "tests" / "comfy_stubs"))
import stubs  # noqa: E402

# Saved workflows store widget values by position: these orders are a compatibility promise.
WIDGETS = {
    "MofoModelLoader": ["model_name", "weight_dtype", "attention", "compile"],
    "MofoDownloadModel": ["repo_id", "weight_dtype", "attention", "compile"],
    "MofoTextEncode": ["text", "too_long"],  # too_long optional: API prompts without it still run
    "MofoTextEncoderLoader": ["folder", "dtype"],
    "MofoScheduler": ["steps", "mode", "mu", "log2_alpha", "rgb_denoise", "depth_denoise"],
    "MofoSampler": ["cfg", "depth_cfg", "seed", "width", "height", "batch_size", "noise", "batch_cfg", "mask_feather",
                    "gpus"],
    "MofoDepthDecode": ["colormap", "normalize"],
    "MofoDepthEncode": ["near_is_bright", "robust"],
    "MofoFitImage": ["width", "height", "mode"],
    "MofoDepthToPointCloud": ["fov_deg", "edge_rtol", "outlier_removal", "batch_index", "filename_prefix"],
    "MofoSaveDepth": ["filename_prefix", "format", "png16_range", "png16_max_depth"],
    "MofoAlignDepth": ["method", "distance", "at_x", "at_y", "measure", "fov_deg", "fit", "space", "loss", "fit_over",
                       "reference_is"],
    "MofoDepthToMesh": ["fov_deg", "edge_rtol", "max_faces", "texture", "extra_format", "batch_index",
                        "filename_prefix"],
    "MofoDepthNormals": ["fov_deg", "convention", "edge_rtol"],
    "MofoDepthToImage": ["colormap", "normalize", "near", "far"],
}


def _load_pack(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def pack_env(tmp_path_factory):
    """Generator behind the `env` fixture (conftest.py): stand-ins installed, the pack loaded, tiny weights."""
    tmp = tmp_path_factory.mktemp("comfy")
    saved = stubs.install(tmp)
    pack = _load_pack("mofo_pack")
    assert "mofo_pack.nodes" not in sys.modules  # the root __init__ imports nothing at load time
    ext = asyncio.run(pack.comfy_entrypoint())
    nodes = {cls.define_schema().node_id: cls for cls in asyncio.run(ext.get_node_list())}
    build_tiny_dit_files(tmp / "models" / "diffusion_models" / "mofo_tiny", seed=0)
    shutil.copytree(FIXTURES / "tiny_qwen3", tmp / "models" / "text_encoders" / "qwen3_tiny")
    yield tmp, nodes
    for k in [k for k in sys.modules if k == "mofo_pack" or k.startswith("mofo_pack.")]:
        del sys.modules[k]
    for k, v in saved.items():
        if v is None:
            sys.modules.pop(k, None)
        else:
            sys.modules[k] = v


def run(nodes, node_id, **kw):
    return nodes[node_id].execute(**kw).args


def pipeline(nodes, tmp, **sampler_kw):
    (model,) = run(nodes, "MofoModelLoader", model_name="mofo_tiny/model.safetensors", weight_dtype="default")
    (te,) = run(nodes, "MofoTextEncoderLoader", folder="qwen3_tiny", dtype="fp32")
    (pos,) = run(nodes, "MofoTextEncode", text="a red chair", text_encoder=te)
    (neg,) = run(nodes, "MofoTextEncode", text="", text_encoder=te)
    return model, pos, neg
