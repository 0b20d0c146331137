"""Checkpoint loading: key prefixes, variant detection, strictness, clear errors."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import FIXTURES, rel_l2
from safetensors.torch import load_file, save_file

import mofo_core as mc
from mofo_core.errors import CheckpointError
from mofo_core.model import MofoDiT
from mofo_core.weights.loading import check_dit_file


@pytest.mark.parametrize("name,params,tensors", [("flux_rgbd_9b_v1", 11_950_633_984, 273),
                                                 ("flux_rgbd_9b_v2", 11_986_285_570, 279)])
def test_full_size_parameter_counts_on_meta(name, params, tensors):
    with torch.device("meta"):
        model = MofoDiT(mc.VARIANTS[name])
    assert sum(p.numel() for p in model.parameters()) == params
    assert len(model.state_dict()) == tensors


def _sd(variant="flux_rgbd_9b_v2"):
    return load_file(FIXTURES / f"{variant}_weights.safetensors")


@pytest.mark.parametrize("prefixed", [True, False])
def test_prefix_and_bare_keys_load_the_same_model(tmp_path, prefixed):
    sd = _sd()
    if not prefixed:
        sd = {k.removeprefix("dit."): v for k, v in sd.items()}
    save_file(sd, tmp_path / "m.safetensors")
    a = mc.load_dit(tmp_path / "m.safetensors")
    b = mc.load_dit(sd)  # a state dict works too
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


def test_directory_with_config_json(tmp_path):
    save_file(_sd(), tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps({"variant": "flux_rgbd_9b_v2"}))
    assert mc.load_dit(tmp_path).config.variant == "flux_rgbd_9b_v2"


def test_config_variant_disagreeing_with_weights_is_an_error(tmp_path):
    save_file(_sd("flux_rgbd_9b_v2"), tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps({"variant": "flux_rgbd_9b_v1"}))
    with pytest.raises(CheckpointError, match="says 'flux_rgbd_9b_v1' but the weights are 'flux_rgbd_9b_v2'"):
        mc.load_dit(tmp_path)
    save_file(_sd("flux_rgbd_9b_v1"), tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps({"variant": "flux_rgbd_9b_v2"}))
    with pytest.raises(CheckpointError, match="cross-stream mixing"):
        mc.load_dit(tmp_path)


def test_unexpected_and_missing_keys_are_listed():
    sd = _sd("flux_rgbd_9b_v1")
    sd["dit.some_extra.weight"] = torch.zeros(3)
    with pytest.raises(CheckpointError, match=r"1 unexpected keys: some_extra\.weight"):
        mc.load_dit(sd)
    sd = _sd("flux_rgbd_9b_v1")
    del sd["dit.double_blocks.1.depth_mlp.2.weight"]
    with pytest.raises(CheckpointError, match=r"1 missing keys: double_blocks\.1\.depth_mlp\.2\.weight"):
        mc.load_dit(sd)
    sd = _sd("flux_rgbd_9b_v1")
    sd["dit.single_blocks.0.linear2.weight"] = torch.zeros(32, 7)
    with pytest.raises(CheckpointError, match="inconsistent DiT shapes"):
        mc.load_dit(sd)
    sd = _sd("flux_rgbd_9b_v1")
    sd["dit.double_blocks.0.img_mlp.0.weight"] = torch.zeros(190, 32)
    with pytest.raises(CheckpointError, match=r"wrong shapes: double_blocks\.0\.img_mlp\.0\.weight"):
        mc.load_dit(sd)


def test_flux2_klein_checkpoint_without_depth_keys_is_named(tmp_path):
    sd = {k.removeprefix("dit."): v for k, v in _sd().items() if "depth" not in k}
    save_file(sd, tmp_path / "flux-2-klein-9b.safetensors")
    with pytest.raises(CheckpointError, match=r"RGB-only FLUX\.2 transformer.*bartduis/modality_forcing"):
        mc.load_dit(tmp_path / "flux-2-klein-9b.safetensors")


def test_vae_file_is_named():
    with pytest.raises(CheckpointError, match="autoencoder"):
        mc.load_dit({"encoder.conv_in.weight": torch.zeros(1), "bn.running_mean": torch.zeros(1)})


def test_truncated_file_is_a_clear_error(tmp_path):
    save_file(_sd(), tmp_path / "model.safetensors")
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.safetensors: the file is truncated: it has .* bytes"):
        mc.load_dit(tmp_path / "cut.safetensors")
    (tmp_path / "cut.safetensors").write_bytes(data[:20])  # cut inside the header
    with pytest.raises(CheckpointError, match="header length .* does not fit the file.*download it again"):
        mc.load_dit(tmp_path / "cut.safetensors")


def test_pickle_formats_are_refused(tmp_path):
    (tmp_path / "model.ckpt").write_bytes(b"not loaded")
    with pytest.raises(CheckpointError, match="only .safetensors"):
        mc.load_dit(tmp_path / "model.ckpt")


def test_missing_path_says_what_to_get(tmp_path):
    with pytest.raises(CheckpointError, match="model.safetensors"):
        mc.load_dit(tmp_path)


def test_bf16_body_keeps_fp32_depth_head_and_rgb_head_in_body_dtype():
    m = mc.load_dit(_sd(), dtype=torch.bfloat16)
    assert m.img_in.weight.dtype == torch.bfloat16
    assert m.final_layer.linear.weight.dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in m.depth_final_layer.parameters())
    m = mc.load_dit(_sd(), dtype=torch.bfloat16, head_dtype=None)
    assert m.depth_final_layer.linear.weight.dtype == torch.bfloat16


def test_infer_config_reads_architecture_off_shapes():
    cfg = mc.infer_config({k.removeprefix("dit."): tuple(v.shape) for k, v in _sd().items()})
    assert (cfg.hidden_size, cfg.num_heads, cfg.axes_dim) == (32, 2, (4, 4, 4, 4))
    assert (cfg.depth_double, cfg.depth_single, cfg.depth_decoder_num_layers) == (2, 2, 1)
    assert cfg.context_in_dim == 24 and cfg.cross_stream_timestep_mixing


def test_operations_namespace_is_used_for_every_linear():
    made = []

    class CountingLinear(torch.nn.Linear):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            made.append(self)

    from types import SimpleNamespace

    m = mc.load_dit(_sd(), operations=SimpleNamespace(Linear=CountingLinear))
    linears = [mod for mod in m.modules() if isinstance(mod, torch.nn.Linear)]
    assert len(made) == len(linears) > 0 and all(isinstance(x, CountingLinear) for x in linears)


def test_build_dit_round_trips_through_a_file(tmp_path):
    m = mc.build_dit(mc.tiny("flux_rgbd_9b_v1"), seed=3)
    save_file({f"dit.{k}": v.contiguous() for k, v in m.state_dict().items()}, tmp_path / "t.safetensors")
    m2 = mc.load_dit(tmp_path / "t.safetensors", head_dtype=None)
    x = (torch.randn(1, 4, 128), torch.randn(1, 4, 256), torch.randn(1, 5, 48), torch.rand(1), torch.rand(1))
    a, b = m.predict(*x, 2, 2), m2.predict(*x, 2, 2)
    assert all(torch.equal(v, m2.state_dict()[k]) for k, v in m.state_dict().items())
    assert rel_l2(a[0], b[0]) <= 1e-6 and rel_l2(a[1], b[1]) <= 1e-6


def _header_file(path, shapes):
    save_file({k: torch.zeros(s) for k, s in shapes.items()}, path)
    return path


# Key layouts of the files people keep in models/ (tiny shapes; the names and the telling dimension are real).
_SD15_UNET = {"input_blocks.0.0.weight": (4, 4, 3, 3), "middle_block.0.in_layers.0.weight": (4,),
              "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (8, 768), "out.2.weight": (4, 4, 3, 3)}
_FOREIGN = [
    ("sd15_unet", _SD15_UNET, "Stable Diffusion 1.x UNet"),
    ("sdxl_unet", {**_SD15_UNET, "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (8, 2048),
                   "label_emb.0.0.weight": (8, 4)}, "SDXL UNet"),
    ("sd15_in_comfy_layout", {f"model.diffusion_model.{k}": s for k, s in _SD15_UNET.items()},
     "Stable Diffusion 1.x UNet"),
    ("sd15_full", {**{f"model.diffusion_model.{k}": s for k, s in _SD15_UNET.items()},
                   "first_stage_model.encoder.conv_in.weight": (4, 3, 3, 3),
                   "cond_stage_model.transformer.text_model.embeddings.position_ids": (1, 77)},
     r"full checkpoint \(Stable Diffusion 1.x UNet.*models/checkpoints"),
    ("lora", {"lora_unet_input_blocks_1_1_proj_in.lora_down.weight": (4, 8),
              "lora_unet_input_blocks_1_1_proj_in.lora_up.weight": (8, 4)}, "LoRA.*models/loras"),
    ("controlnet", {"input_hint_block.0.weight": (4, 3, 3, 3), "zero_convs.0.0.weight": (4, 4, 1, 1)},
     "ControlNet.*models/controlnet"),
    ("flux1", {"img_in.weight": (8, 64), "txt_in.weight": (8, 16), "double_blocks.0.img_mod.lin.weight": (48, 8)},
     "FLUX.1 transformer.*Load Diffusion Model"),
    ("sd3", {"joint_blocks.0.x_block.attn.qkv.weight": (24, 8), "x_embedder.proj.weight": (8, 16, 2, 2)},
     "SD3"),
    ("qwen", {"model.embed_tokens.weight": (16, 8), "model.layers.0.self_attn.q_proj.weight": (8, 8)},
     "text encoder.*models/text_encoders"),
]


@pytest.mark.parametrize("name,shapes,says", _FOREIGN, ids=[f[0] for f in _FOREIGN])
def test_a_wrong_file_says_what_it_is_and_where_it_belongs(tmp_path, name, shapes, says):
    path = _header_file(tmp_path / f"{name}.safetensors", shapes)
    with pytest.raises(CheckpointError, match=says) as e:
        mc.load_dit(path)
    assert "bartduis/modality_forcing" in str(e.value)  # and what to load instead
    with pytest.raises(CheckpointError, match=says):  # the cheap check says the same, reading no tensor data
        check_dit_file(path)


def test_errors_carry_the_package_name_comfyui_shows():
    # ComfyUI's error panel prints `cls.__module__ + "." + cls.__qualname__` (execution.py full_type_name)
    for cls in (CheckpointError, mc.AutoEncoderCheckpointError, mc.PromptTooLongError, mc.WeightsNotFoundError,
                mc.NonFiniteResultError, mc.MissingDependencyError):
        assert f"{cls.__module__}.{cls.__qualname__}" == f"mofo_core.{cls.__name__}"
        assert getattr(mc, cls.__name__) is cls
