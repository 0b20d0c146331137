"""Node tests against stand-ins of the ComfyUI modules (the real ComfyUI runs in tests/integration)."""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest
import torch
from helpers import ROOT
from node_env import WIDGETS, run, stubs
from node_env import pipeline as _pipeline


def test_root_init_exports_two_names_only():
    """What ComfyUI reads off the pack's root module: the web folder and the V3 entry point, and nothing is
    imported until it asks (no V1 mappings that would load every node at start-up)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("mofo_root_probe", ROOT / "__init__.py",
                                                  submodule_search_locations=[str(ROOT)])
    mod = importlib.util.module_from_spec(spec)
    before = set(sys.modules)
    spec.loader.exec_module(mod)
    public = {k for k in vars(mod) if not k.startswith("_")} - {"annotations"}
    assert public == {"WEB_DIRECTORY", "comfy_entrypoint"}
    assert (ROOT / mod.WEB_DIRECTORY / "mofo_warnings.js").is_file()
    assert not {m for m in set(sys.modules) - before if "mofo" in m or m.startswith("torch")}


def test_every_node_registers_with_stable_id_category_and_widget_order(env):
    _, nodes = env
    assert sorted(nodes) == sorted(WIDGETS)
    for node_id, cls in nodes.items():
        schema = cls.define_schema()
        assert schema.category == "ModalityForcing" and schema.description
        widgets = [i.id for i in schema.inputs if getattr(i, "widget", False)]
        assert widgets == WIDGETS[node_id], node_id


def test_text_to_rgb_depth_point_cloud(env):
    tmp, nodes = env
    model, pos, neg = _pipeline(nodes, tmp)
    assert pos[0][0].shape == (1, 512, 48)
    rs, ds = run(
        nodes, "MofoScheduler", steps=3, mode="joint", mu=1.1, log2_alpha=5.0, rgb_denoise=1.0, depth_denoise=1.0
    )
    stubs.ProgressBar.log.clear()
    rgb, dl = run(
        nodes,
        "MofoSampler",
        model=model,
        positive=pos,
        negative=neg,
        rgb_sigmas=rs,
        depth_sigmas=ds,
        cfg=4.0,
        depth_cfg=-1.0,
        seed=7,
        width=48,
        height=32,
        batch_size=2,
        noise="cpu",
    )
    assert rgb["samples"].shape == (2, 128, 2, 3) and dl["samples"].shape == (2, 6, 256)
    assert [v for v, _, _ in stubs.ProgressBar.log] == [1, 2, 3]
    depth, img = run(nodes, "MofoDepthDecode", depth_latent=dl, colormap="grey")
    assert depth["depth"].shape == (2, 32, 48) and img.shape == (2, 32, 48, 3)
    assert float(img.min()) >= 0 and float(img.max()) <= 1 and torch.equal(img[..., 0], img[..., 2])
    color = torch.rand(2, 32, 48, 3)
    out = nodes["MofoDepthToPointCloud"].execute(
        image=color,
        depth=depth,
        fov_deg=65.0,
        edge_rtol=0.0,
        outlier_removal=False,
        batch_index=1,
        filename_prefix="mofo/cloud",
    )
    ply_rel, glb_rel, file3d = out.args
    from plyfile import PlyData

    ply = PlyData.read(tmp / "output" / ply_rel)
    valid = np.isfinite(depth["depth"][1].numpy()) & (depth["depth"][1].numpy() > 0)
    assert len(ply["vertex"]) == int(valid.sum()) > 0
    assert (tmp / "output" / glb_rel).is_file() and file3d.format == "ply"
    assert out.ui["images"] and out.ui["3d"][0]["filename"].endswith(".ply")


def test_cpu_noise_is_reproducible_and_device_noise_matches_the_core_sampler(env):
    tmp, nodes = env
    model, pos, neg = _pipeline(nodes, tmp)
    rs, ds = run(
        nodes, "MofoScheduler", steps=2, mode="joint", mu=1.1, log2_alpha=0.0, rgb_denoise=1.0, depth_denoise=1.0
    )
    kw = dict(
        model=model,
        positive=pos,
        negative=neg,
        rgb_sigmas=rs,
        depth_sigmas=ds,
        cfg=1.0,
        depth_cfg=-1.0,
        seed=3,
        width=32,
        height=32,
        batch_size=1,
    )
    a = run(nodes, "MofoSampler", noise="cpu", **kw)
    b = run(nodes, "MofoSampler", noise="cpu", **kw)
    assert torch.equal(a[0]["samples"], b[0]["samples"])
    import mofo_core as mc

    c = run(nodes, "MofoSampler", noise="device (reference)", **kw)
    r, d = mc.sample(model.dit, pos[0][0], None, rs, ds, height=2, width=2, seed=3)
    assert torch.equal(c[1]["samples"], d)


def test_image_to_depth_with_letterbox_returns_input_size(env):
    tmp, nodes = env
    model, pos, neg = _pipeline(nodes, tmp)
    image = torch.rand(1, 40, 72, 3)
    fitted, fit = run(nodes, "MofoFitImage", image=image, width=48, height=48, mode="letterbox")
    assert fitted.shape == (1, 48, 48, 3) and fit["box"] is not None
    from mofo_core import AutoEncoderConfig, build_autoencoder

    latent = {"samples": build_autoencoder(AutoEncoderConfig.tiny()).encode(fitted)}  # stands in for VAEEncode
    rs, ds = run(
        nodes, "MofoScheduler", steps=2, mode="i2d", mu=1.1, log2_alpha=5.0, rgb_denoise=1.0, depth_denoise=1.0
    )
    rgb, dl = run(
        nodes,
        "MofoSampler",
        model=model,
        positive=pos,
        negative=neg,
        rgb_sigmas=rs,
        depth_sigmas=ds,
        cfg=1.0,
        depth_cfg=-1.0,
        seed=0,
        width=512,
        height=512,
        batch_size=1,
        noise="cpu",
        rgb_latent=latent,
    )
    assert torch.equal(rgb["samples"], latent["samples"].to(torch.float32))  # held clean (fp32 body: exact)
    depth, img = run(nodes, "MofoDepthDecode", depth_latent=dl, colormap="magma", fit=fit)
    assert depth["depth"].shape == (1, 40, 72) and img.shape == (1, 40, 72, 3)


def test_depth_to_image_from_a_controlnet_style_depth_image(env):
    tmp, nodes = env
    model, pos, neg = _pipeline(nodes, tmp)
    disp = torch.linspace(0.2, 1.0, 32)[None, :, None, None].expand(1, 32, 48, 3).contiguous()
    (dl,) = run(nodes, "MofoDepthEncode", depth_image=disp, near_is_bright=True, robust=False)
    assert dl["samples"].shape == (1, 6, 256) and (dl["height"], dl["width"]) == (2, 3)
    rs, ds = run(
        nodes, "MofoScheduler", steps=2, mode="d2i", mu=1.1, log2_alpha=5.0, rgb_denoise=1.0, depth_denoise=1.0
    )
    rgb, dl2 = run(
        nodes,
        "MofoSampler",
        model=model,
        positive=pos,
        negative=neg,
        rgb_sigmas=rs,
        depth_sigmas=ds,
        cfg=3.0,
        depth_cfg=-1.0,
        seed=0,
        width=512,
        height=512,
        batch_size=1,
        noise="cpu",
        depth_latent=dl,
    )
    assert rgb["samples"].shape == (1, 128, 2, 3) and torch.equal(dl2["samples"], dl["samples"])


def test_clear_errors(env):
    tmp, nodes = env
    model, pos, neg = _pipeline(nodes, tmp)
    rs, ds = run(
        nodes, "MofoScheduler", steps=2, mode="i2d", mu=1.1, log2_alpha=5.0, rgb_denoise=1.0, depth_denoise=1.0
    )
    base = dict(
        model=model,
        positive=pos,
        negative=neg,
        rgb_sigmas=rs,
        depth_sigmas=ds,
        cfg=1.0,
        depth_cfg=-1.0,
        seed=0,
        width=32,
        height=32,
        batch_size=1,
        noise="cpu",
    )
    with pytest.raises(ValueError, match="held clean"):
        run(nodes, "MofoSampler", **base)
    bad = [[torch.zeros(1, 512, 40), {}]]  # the wrong text encoder for this (tiny) model
    with pytest.raises(ValueError, match="qwen_3_8b.safetensors"):
        run(nodes, "MofoSampler", **{**base, "positive": bad})
    with pytest.raises(ValueError, match="exactly one text encoder"):
        run(nodes, "MofoTextEncode", text="x")
    with pytest.raises(ValueError, match="not a multiple of 16"):
        run(nodes, "MofoSampler", **{**base, "width": 40})
    with pytest.raises(ValueError, match="FLUX.2 latent"):
        run(nodes, "MofoSampler", **{**base, "rgb_latent": {"samples": torch.zeros(1, 16, 4, 4)}})
    with pytest.raises(ValueError, match="RGB-only FLUX.2"):
        from safetensors.torch import load_file, save_file

        sd = load_file(tmp / "models/diffusion_models/mofo_tiny/model.safetensors")
        save_file({k: v for k, v in sd.items() if "depth" not in k}, tmp / "models/diffusion_models/klein.safetensors")
        run(nodes, "MofoModelLoader", model_name="klein.safetensors", weight_dtype="default")


def test_interrupt_stops_sampling(env):
    tmp, nodes = env
    model, pos, neg = _pipeline(nodes, tmp)
    rs, ds = run(
        nodes, "MofoScheduler", steps=5, mode="joint", mu=1.1, log2_alpha=5.0, rgb_denoise=1.0, depth_denoise=1.0
    )
    stubs.MM.calls, stubs.MM.interrupt_at = 0, 2
    try:
        with pytest.raises(stubs.Interrupted):
            run(
                nodes,
                "MofoSampler",
                model=model,
                positive=pos,
                negative=neg,
                rgb_sigmas=rs,
                depth_sigmas=ds,
                cfg=1.0,
                depth_cfg=-1.0,
                seed=0,
                width=32,
                height=32,
                batch_size=1,
                noise="cpu",
            )
        assert stubs.MM.calls == 2
    finally:
        stubs.MM.interrupt_at = None


def test_save_depth_writes_16bit_png(env):
    tmp, nodes = env
    depth = {"depth": torch.rand(1, 32, 48) + 0.5}
    out = nodes["MofoSaveDepth"].execute(depth=depth, filename_prefix="mofo/depth", format="png16")
    from PIL import Image

    files = sorted((tmp / "output" / "mofo").glob("depth_*.png"))
    assert (
        files
        and Image.open(files[-1]).mode in ("I;16", "I")
        and out.ui["images"]
        and out.ui["depth_files"][0]["filename"].endswith(".png")
    )


def test_point_cloud_node_without_native_3d_types_still_saves_and_previews(env, monkeypatch):
    tmp, nodes = env
    io = sys.modules["comfy_api.latest.io"]
    monkeypatch.delattr(io, "File3DPLY")  # ComfyUI before ~0.12 has no FILE_3D_* types
    cls = nodes["MofoDepthToPointCloud"]
    assert [o.io_type for o in cls.define_schema().outputs] == ["STRING", "STRING"]
    depth = {"depth": torch.rand(1, 16, 16) + 1.0}
    out = cls.execute(
        image=torch.rand(1, 16, 16, 3),
        depth=depth,
        fov_deg=60.0,
        edge_rtol=0.0,
        outlier_removal=False,
        batch_index=0,
        filename_prefix="old/cloud",
    )
    assert len(out.args) == 2 and (tmp / "output" / out.args[0]).is_file() and out.ui["images"]


def test_download_node_offline_explains_the_manual_steps(env, monkeypatch):
    tmp, nodes = env
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    readme_folder = tmp / "models" / "diffusion_models" / "modality_forcing"  # where the README says
    with pytest.raises(FileNotFoundError, match=rf"offline mode is on .*by hand into {readme_folder}"):
        run(nodes, "MofoDownloadModel", repo_id="bartduis/modality_forcing", weight_dtype="default")
    # placed by hand where the README says, without config.json: nothing is fetched, the model loads
    src = tmp / "models" / "diffusion_models" / "mofo_tiny" / "model.safetensors"
    for folder in (readme_folder, tmp / "models" / "unet" / "modality_forcing"):  # any registered folder
        folder.mkdir(parents=True)
        shutil.copy(src, folder / "model.safetensors")
        (model,) = run(nodes, "MofoDownloadModel", repo_id="bartduis/modality_forcing", weight_dtype="default")
        assert model.name == "modality_forcing/model.safetensors" and model.dit.config.variant == "flux_rgbd_9b_v2"
        shutil.rmtree(folder)


def test_fast_fp8_weights_and_sequential_cfg(env):
    tmp, nodes = env
    (model,) = run(
        nodes,
        "MofoModelLoader",
        model_name="mofo_tiny/model.safetensors",
        weight_dtype="fp8_e4m3fn_fast",
        attention="sdpa",
        compile=False,
    )
    from mofo_core.model.fp8 import FP8Linear

    assert any(type(m).__name__ == FP8Linear.__name__ for m in model.dit.modules())
    _, pos, neg = _pipeline(nodes, tmp)
    rs, ds = run(
        nodes, "MofoScheduler", steps=2, mode="joint", mu=1.1, log2_alpha=5.0, rgb_denoise=1.0, depth_denoise=1.0
    )
    kw = dict(
        model=model,
        positive=pos,
        negative=neg,
        rgb_sigmas=rs,
        depth_sigmas=ds,
        cfg=3.0,
        depth_cfg=-1.0,
        seed=1,
        width=32,
        height=32,
        batch_size=1,
        noise="cpu",
    )
    a = run(nodes, "MofoSampler", batch_cfg=True, **kw)
    b = run(nodes, "MofoSampler", batch_cfg=False, **kw)
    for x, y in ((a[0]["samples"], b[0]["samples"]), (a[1]["samples"], b[1]["samples"])):
        assert torch.isfinite(x).all() and (x - y).norm() / y.norm() < 1e-2  # same math, bf16 compute


@pytest.mark.parametrize("weight_dtype", ["default", "bf16", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp32"])
def test_every_weight_mode_loads_and_samples_with_lazy_and_eager_layers(env, weight_dtype):
    """Dynamic VRAM builds comfy.ops Linear layers without weights; loading must not depend on that."""
    tmp, nodes = env
    _, pos, neg = _pipeline(nodes, tmp)
    rs, ds = run(nodes, "MofoScheduler", steps=2, mode="joint", mu=1.1, log2_alpha=5.0, rgb_denoise=1.0,
                 depth_denoise=1.0)
    out = {}
    for lazy in (False, True):
        stubs.set_lazy_layers(lazy)
        try:
            (model,) = run(nodes, "MofoModelLoader", model_name="mofo_tiny/model.safetensors",
                           weight_dtype=weight_dtype)
        finally:
            stubs.set_lazy_layers(False)
        built_lazy = [n for n, m in model.dit.named_modules() if hasattr(m, "comfy_need_lazy_init_bias")]
        assert bool(built_lazy) == lazy  # the stand-in really built weightless layers
        linears = [m for m in model.dit.modules() if hasattr(m, "in_features")]
        assert linears and all(m.weight is not None and not m.weight.is_meta for m in linears)
        out[lazy] = run(nodes, "MofoSampler", model=model, positive=pos, negative=neg, rgb_sigmas=rs, depth_sigmas=ds,
                        cfg=3.0, depth_cfg=-1.0, seed=3, width=32, height=32, batch_size=1, noise="cpu")
    for eager, lazy in zip(out[False], out[True]):
        assert torch.isfinite(lazy["samples"]).all() and torch.equal(eager["samples"], lazy["samples"])


def test_lazy_layers_keep_the_strict_key_check(env):
    tmp, nodes = env
    from safetensors.torch import load_file, save_file

    src = tmp / "models" / "diffusion_models" / "mofo_tiny" / "model.safetensors"
    sd = load_file(src)
    bad = tmp / "models" / "diffusion_models" / "damaged.safetensors"
    drop = next(k for k in sd if k.endswith("linear1.weight"))
    save_file({**{k: v for k, v in sd.items() if k != drop}, "dit.extra.weight": torch.zeros(2)}, bad)
    stubs.set_lazy_layers(True)
    try:
        for mode in ("default", "fp8_e4m3fn_fast"):
            with pytest.raises(ValueError, match=rf"1 missing keys: {drop[4:]}; 1 unexpected keys: extra\.weight"):
                run(nodes, "MofoModelLoader", model_name="damaged.safetensors", weight_dtype=mode)
    finally:
        stubs.set_lazy_layers(False)
        bad.unlink()


def test_sampler_masks_keep_the_latents_outside_and_warn_on_a_resized_mask(env):
    tmp, nodes = env
    model, pos, neg = _pipeline(nodes, tmp)
    rs, ds = run(
        nodes, "MofoScheduler", steps=2, mode="joint", mu=1.1, log2_alpha=5.0, rgb_denoise=1.0, depth_denoise=1.0
    )
    rgb_in = {"samples": torch.randn(1, 128, 2, 3)}  # a 32 x 48 image
    depth_in = {"samples": torch.randn(1, 6, 256), "height": 2, "width": 3}
    rgb_mask = torch.zeros(1, 32, 48)
    rgb_mask[:, :16, :16] = 1.0  # top-left token
    depth_mask = torch.zeros(16, 24)  # (H, W), half size: resized with a warning
    depth_mask[8:, 12:] = 1.0  # bottom-right quarter (tokens 4 and 5)
    kw = dict(model=model, positive=pos, negative=neg, rgb_sigmas=rs, depth_sigmas=ds, cfg=2.0, depth_cfg=-1.0,
              seed=4, width=512, height=512, batch_size=1, noise="cpu", rgb_latent=rgb_in, depth_latent=depth_in)
    out = nodes["MofoSampler"].execute(rgb_mask=rgb_mask, depth_mask=depth_mask, **kw)
    rgb, dl = out.args
    (note,) = out.ui["mofo_warnings"]  # shown on the node, in a toast and in the history (nodes/messages.py)
    assert "depth_mask is 24x16" in note and "resized" in note
    r_in, r_out = rgb_in["samples"].flatten(2), rgb["samples"].flatten(2)  # (1, 128, 6)
    assert torch.equal(r_out[..., 1:], r_in[..., 1:]) and not torch.equal(r_out[..., 0], r_in[..., 0])
    d_in, d_out = depth_in["samples"], dl["samples"]
    # the upscaled (bilinear) mask reaches one pixel row/column past the quarter: the left column stays exact
    assert torch.equal(d_out[:, [0, 3]], d_in[:, [0, 3]]) and (d_out[:, 4:] - d_in[:, 4:]).abs().amax() > 1e-3
    plain = nodes["MofoSampler"].execute(**kw)
    assert plain.ui is None  # unconnected masks: the reference behaviour, no note
    with pytest.raises(ValueError, match="rgb_mask is connected but rgb_latent is not"):
        run(nodes, "MofoSampler", **{**kw, "rgb_latent": None}, rgb_mask=rgb_mask)


def test_a_compiled_model_skips_dynamic_vram_like_core_compile(env, monkeypatch):
    """Core's TorchCompileModel clones with disable_dynamic=True; under dynamic VRAM every layer's weight fetch
    is a graph break. So compile -> the plain ModelPatcher, otherwise CoreModelPatcher (dynamic where it is on)."""
    import comfy.model_patcher

    class DynamicPatcher(comfy.model_patcher.ModelPatcher):  # stands for ModelPatcherDynamic
        pass

    monkeypatch.setattr(comfy.model_patcher, "CoreModelPatcher", DynamicPatcher)
    _, nodes = env
    kw = dict(model_name="mofo_tiny/model.safetensors", weight_dtype="default")
    (plain,) = run(nodes, "MofoModelLoader", **kw)
    (compiled,) = run(nodes, "MofoModelLoader", compile=True, **kw)
    assert type(plain.patcher) is DynamicPatcher
    assert type(compiled.patcher) is comfy.model_patcher.ModelPatcher
    assert compiled.dit.single_blocks[0]._compiled_call_impl is not None  # nn.Module.compile() was applied
    assert plain.dit.single_blocks[0]._compiled_call_impl is None
