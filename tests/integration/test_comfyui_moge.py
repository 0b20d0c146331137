"""Mofo Align Depth fed by ComfyUI's native MoGe (Load MoGe Model -> Run MoGe Inference) on a real server.

The MoGe checkpoint is tiny and random (tiny_moge.py): its depth is noise, so the test checks the plumbing that a
real model would go through: the socket types connect (MOGE_GEOMETRY into the pack's reference socket), the
geometry's masked pixels (inf depth, mask False) are left out of the fit, the reference is resized to our depth,
and the output is our depth times the reported scale. No Modality Forcing model is needed: the relative depth comes
from a depth image through Mofo Depth Encode / Decode.

ComfyUI 0.29 runs MoGe at the text-encoder dtype, which is fp16 on a CPU, where PyTorch has no fp16 antialiased
resize (MoGe's first step); the server therefore runs with --fp32-text-enc.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import comfy_harness as ch  # noqa: E402

pytestmark = pytest.mark.skipif(ch.comfy_dir() is None, reason="COMFYUI_DIR is not set to a ComfyUI checkout")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not (ch.comfy_dir() / "comfy" / "ldm" / "moge").is_dir():
        pytest.skip("this ComfyUI has no native MoGe nodes")
    base = ch.make_base(tmp_path_factory.mktemp("moge_base"), models_too=False)
    folder = base / "models" / "geometry_estimation"
    folder.mkdir(parents=True)
    script = Path(__file__).parent / "tiny_moge.py"
    subprocess.run([ch.comfy_python(), str(script), str(folder / "moge_tiny.safetensors")],
                   cwd=ch.comfy_dir(), env={**os.environ, "PYTHONPATH": str(ch.comfy_dir())}, check=True,
                   capture_output=True, timeout=300)
    with ch.ComfyServer(base, extra_args=["--fp32-text-enc"]) as s:
        yield s


def test_align_depth_to_native_moge_geometry(server):
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "depth_example.png"}},
        "2": {"class_type": "MofoDepthEncode", "inputs": {"depth_image": ["1", 0], "near_is_bright": True,
                                                          "robust": False}},
        "3": {"class_type": "MofoDepthDecode", "inputs": {"depth_latent": ["2", 0], "colormap": "grey"}},
        "4": {"class_type": "LoadMoGeModel", "inputs": {"model_name": "moge_tiny.safetensors"}},
        "5": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},  # 72 x 40: resized to our 64 x 64
        "6": {"class_type": "MoGeInference", "inputs": {"moge_model": ["4", 0], "image": ["5", 0],
                                                        "resolution_level": 0, "fov_x_degrees": 0.0, "batch_size": 1,
                                                        "force_projection": True, "apply_mask": True}},
        "7": {"class_type": "MofoAlignDepth", "inputs": {
            "depth": ["3", 0], "method": "fit to reference", "distance": 2.0, "at_x": -1, "at_y": -1,
            "measure": "planar depth", "fov_deg": 65.0, "fit": "scale", "space": "depth", "loss": "huber",
            "fit_over": "each image", "reference_is": "disparity (near = bright)", "reference": ["6", 0]}},
        "8": {"class_type": "MofoSaveDepth", "inputs": {"depth": ["3", 0], "filename_prefix": "moge/raw",
                                                        "format": "npy"}},
        "9": {"class_type": "MofoSaveDepth", "inputs": {"depth": ["7", 0], "filename_prefix": "moge/aligned",
                                                        "format": "npy"}},
        "10": {"class_type": "MofoDepthToMesh", "inputs": {
            "image": ["1", 0], "depth": ["7", 0], "fov_deg": 65.0, "edge_rtol": 0.0, "max_faces": 0, "texture": True,
            "extra_format": "none", "batch_index": 0, "filename_prefix": "moge/mesh"}},
    }
    outputs = server.run_prompt(prompt)["outputs"]
    (report,) = outputs["7"]["text"]
    scale = float(report.split("scale ")[1].split(" ")[0])
    pixels = int(report.split(" px")[0].rsplit(" ", 1)[1])
    assert 0 < pixels < 0.9 * 64 * 64  # MoGe's masked half (inf depth, mask False) is left out of the fit
    out = server.base / "output" / "moge"
    raw, aligned = (np.load(out / outputs[k]["depth_files"][0]["filename"]) for k in ("8", "9"))
    valid = raw > 0
    np.testing.assert_allclose(aligned[valid], scale * raw[valid], rtol=1e-4)
    import trimesh

    (glb,) = [f for f in outputs["10"]["3d"] if f["filename"].endswith(".glb")]
    (geom,) = trimesh.load(out / glb["filename"]).geometry.values()
    assert len(geom.faces) == 2 * 63 * 63  # every pixel valid, edge test off: the full grid
