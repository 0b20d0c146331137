"""FLUX.2 autoencoder: parity with the reference fixtures, ComfyUI layouts, single-file loading, strictness.

Fixtures come from tools/fixtures_ae.py (reference `flux_rgbd/_flux2/autoencoder.py`, tiny config, fp32).
The last tests compare against a live reference checkout when one is available (MOFO_REF_DIR or
`.ref/modality-forcing`), covering the configs the fixtures leave out (channel changes, the release shapes).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch
from helpers import FIXTURES, ROOT, load_fixture, rel_l2
from safetensors.torch import load_file, save_file

import mofo_core as mc
from mofo_core.errors import AutoEncoderCheckpointError

ENC, DEC = FIXTURES / "ae_tiny_encoder.safetensors", FIXTURES / "ae_tiny_decoder.safetensors"
TOL = 1e-5


@pytest.fixture(scope="module")
def io() -> dict[str, torch.Tensor]:
    return load_fixture("ae_io.safetensors")[0]


@pytest.fixture(scope="module")
def ae() -> mc.Flux2AutoEncoder:
    return mc.load_autoencoder(encoder=ENC, decoder=DEC)


def single_file(layout: str = "bfl") -> dict[str, torch.Tensor]:
    """The split fixtures as one file: BFL/Comfy-Org `ae.safetensors` keys, or ComfyUI's in-memory layout."""
    enc, dec = load_file(ENC), load_file(DEC)
    sd = {k: v for k, v in enc.items() if k.startswith("bn.")}  # one shared copy, top level
    sd |= {f"encoder.{k}": v for k, v in enc.items() if not k.startswith("bn.")}
    sd |= {f"decoder.{k}": v for k, v in dec.items() if not k.startswith("bn.")}
    if layout == "comfy":  # comfy/sd.py:623 moves the quant convs to the top level
        sd = {k.split(".", 1)[1] if "quant_conv." in k else k: v for k, v in sd.items()}
    return sd


# -- parity with the reference ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["", "sq_"])
def test_inner_modules_match_reference_in_its_own_conventions(ae, io, case):
    with torch.no_grad():
        latent = ae.encoder(io[f"{case}enc.image"])  # NHWC in [-1, 1] -> NHWC latent
        image = ae.decoder(io[f"{case}dec.latent"])  # NHWC latent -> NHWC in ~[-1, 1]
    assert rel_l2(latent, io[f"{case}enc.latent"]) <= TOL
    assert rel_l2(image, io[f"{case}dec.image"]) <= TOL


@pytest.mark.parametrize("case", ["", "sq_"])
def test_public_api_matches_reference_after_layout_conversion(ae, io, case):
    ref_latent = io[f"{case}enc.latent"]  # (B, h, w, 128)
    b, h, w, c = ref_latent.shape
    latent = ae.encode((io[f"{case}enc.image"] + 1.0) / 2.0)  # ComfyUI IMAGE in [0, 1]
    assert latent.shape == (b, 128, h, w) and latent.dtype == torch.float32
    # our (B, 128, h, w) latent flattened to tokens == the reference's NHWC latent reshaped to (B, N, 128)
    assert rel_l2(mc.latent_to_tokens(latent), ref_latent.reshape(b, h * w, c)) <= TOL

    tokens = io[f"{case}dec.latent"].reshape(b, h * w, c)
    image = ae.decode(mc.tokens_to_latent(tokens, h, w))
    assert image.shape == (b, 16 * h, 16 * w, 3)
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert rel_l2(image, (io[f"{case}dec.image"] * 0.5 + 0.5).clamp(0, 1)) <= TOL


def test_latent_channel_index_is_c4_plus_2pi_plus_pj(ae, io):
    x = io["enc.image"]
    latent = ae.encode((x + 1) / 2)
    enc = ae.encoder
    with torch.no_grad():
        mean = enc.moments(x.permute(0, 3, 1, 2))[:, :32]  # (B, 32, H/8, W/8)
    m, v = enc.bn.running_mean, enc.bn.running_var
    for c, pi, pj in [(0, 0, 0), (0, 1, 0), (5, 0, 1), (31, 1, 1)]:
        k = c * 4 + pi * 2 + pj
        want = (mean[:, c, pi::2, pj::2] - m[k]) / torch.sqrt(v[k] + 1e-4)
        assert rel_l2(latent[:, k], want) <= TOL


def test_state_dict_keys_equal_the_split_files_including_bn(ae):
    for module, path in ((ae.encoder, ENC), (ae.decoder, DEC)):
        keys = set(load_file(path))
        assert set(module.state_dict()) == keys
        assert {"bn.running_mean", "bn.running_var", "bn.num_batches_tracked"} <= keys
    assert ae.encoder.bn.num_batches_tracked.item() == 12345


def test_release_config_key_names_on_meta():
    with torch.device("meta"):
        model = mc.Flux2AutoEncoder()
    enc, dec = set(model.encoder.state_dict()), set(model.decoder.state_dict())

    def shortcuts(keys: set[str]) -> set[str]:
        return {k.split(".nin_shortcut.")[0] for k in keys if ".nin_shortcut." in k}

    assert shortcuts(enc) == {"down.1.block.0", "down.2.block.0"}  # 128 -> 256 -> 512
    assert shortcuts(dec) == {"up.1.block.0", "up.0.block.0"}  # 512 -> 256 -> 128
    assert {f"down.{i}.downsample.conv.weight" for i in range(3)} <= enc and "down.3.downsample.conv.weight" not in enc
    assert {f"up.{i}.upsample.conv.weight" for i in (1, 2, 3)} <= dec and "up.0.upsample.conv.weight" not in dec
    assert {"up.3.block.2.conv2.weight", "mid.attn_1.proj_out.bias", "post_quant_conv.weight"} <= dec
    assert model.encoder.state_dict()["quant_conv.weight"].shape == (64, 64, 1, 1)
    assert model.decoder.state_dict()["conv_in.weight"].shape == (512, 32, 3, 3)


# -- single-file VAE -------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["bfl", "comfy"])
def test_single_file_vae_loads_the_same_model(tmp_path, ae, io, layout):
    save_file(single_file(layout), tmp_path / "flux2-vae.safetensors")
    one = mc.load_autoencoder(vae=tmp_path / "flux2-vae.safetensors")
    assert one.config == ae.config  # inferred from the shapes, no config given
    for part in ("encoder", "decoder"):
        a, b = getattr(one, part).state_dict(), getattr(ae, part).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    images = (io["enc.image"] + 1) / 2
    assert torch.equal(one.encode(images), ae.encode(images))
    latent = mc.tokens_to_latent(io["dec.latent"].reshape(2, 6, 128), 2, 3)
    assert torch.equal(one.decode(latent), ae.decode(latent))


def test_config_is_inferred_from_shapes(ae):
    meta = load_fixture("ae_io.safetensors")[1]
    want = mc.AutoEncoderConfig(
        ch=meta["ch"],
        ch_mult=tuple(meta["ch_mult"]),
        num_res_blocks=meta["num_res_blocks"],
        z_channels=meta["z_channels"],
    )
    assert ae.config == want and ae.decoder_config == want


def test_parts_load_alone_and_bf16_keeps_bn_in_fp32(ae, io):
    dec_only = mc.load_autoencoder(decoder=DEC, dtype=torch.bfloat16)
    assert dec_only.encoder is None and dec_only.decoder.bn.running_var.dtype == torch.float32
    assert dec_only.decoder.conv_in.weight.dtype == torch.bfloat16
    latent = mc.tokens_to_latent(io["dec.latent"].reshape(2, 6, 128), 2, 3)
    out = dec_only.decode(latent)
    assert out.dtype == torch.float32 and rel_l2(out, ae.decode(latent)) < 3e-2
    with pytest.raises(ValueError, match="without its encoder"):
        dec_only.encode(torch.rand(1, 32, 32, 3))


# -- strictness and foreign files ---------------------------------------------------------------------------


def test_missing_unexpected_and_misshapen_keys_are_listed(tmp_path):
    sd = load_file(ENC)
    del sd["down.0.block.0.conv1.bias"]
    sd["down.0.block.0.extra.weight"] = torch.zeros(3)
    save_file(sd, tmp_path / "enc.safetensors")
    with pytest.raises(AutoEncoderCheckpointError, match="missing keys: down.0.block.0.conv1.bias") as e:
        mc.load_autoencoder(encoder=tmp_path / "enc.safetensors")
    assert "unexpected keys: down.0.block.0.extra.weight" in str(e.value)
    assert isinstance(e.value, ValueError) and isinstance(e.value, mc.CheckpointError)

    sd = single_file()
    sd["decoder.mid.attn_1.q.bias"] = torch.zeros(7)
    sd["something.else"] = torch.zeros(1)
    save_file(sd, tmp_path / "vae.safetensors")
    with pytest.raises(AutoEncoderCheckpointError, match="unexpected keys for a FLUX.2 VAE: \\['something.else'\\]"):
        mc.load_autoencoder(vae=tmp_path / "vae.safetensors")
    del sd["something.else"]
    save_file(sd, tmp_path / "vae.safetensors")
    with pytest.raises(AutoEncoderCheckpointError, match=r"wrong shapes: mid.attn_1.q.bias \(7,\) != \(32,\)"):
        mc.load_autoencoder(vae=tmp_path / "vae.safetensors")


def test_num_batches_tracked_may_be_missing(tmp_path):
    sd = load_file(DEC)
    del sd["bn.num_batches_tracked"]
    save_file(sd, tmp_path / "dec.safetensors")
    model = mc.load_autoencoder(decoder=tmp_path / "dec.safetensors")
    assert model.decoder.bn.num_batches_tracked.item() == 0


def test_flux1_style_vae_is_named(tmp_path):
    sd = {k: v for k, v in single_file().items() if not k.startswith("bn.") and "quant_conv" not in k}
    sd["decoder.conv_in.weight"] = torch.zeros(32, 16, 3, 3)
    sd["encoder.conv_out.weight"] = torch.zeros(32, 32, 3, 3)
    save_file(sd, tmp_path / "ae.safetensors")
    with pytest.raises(AutoEncoderCheckpointError, match="FLUX.1 / SD3-style VAE \\(16 latent channels\\)") as e:
        mc.load_autoencoder(vae=tmp_path / "ae.safetensors")
    assert "flux2-vae.safetensors" in str(e.value)


def test_dit_file_is_named():
    dit = FIXTURES / "flux_rgbd_9b_v2_weights.safetensors"
    for kw in ({"vae": dit}, {"encoder": dit}, {"decoder": dit}):
        with pytest.raises(AutoEncoderCheckpointError, match="diffusion model \\(DiT\\), not a VAE"):
            mc.load_autoencoder(**kw)


def test_wrong_slot_and_wrong_format_are_explained(tmp_path):
    with pytest.raises(AutoEncoderCheckpointError, match="pass it as decoder= instead"):
        mc.load_autoencoder(encoder=DEC)
    with pytest.raises(AutoEncoderCheckpointError, match="pass it as encoder= instead of vae="):
        mc.load_autoencoder(vae=ENC)
    save_file(single_file(), tmp_path / "vae.safetensors")
    with pytest.raises(AutoEncoderCheckpointError, match="pass it as vae= instead of encoder="):
        mc.load_autoencoder(encoder=tmp_path / "vae.safetensors")
    with pytest.raises(AutoEncoderCheckpointError, match="only .safetensors"):
        mc.load_autoencoder(vae=tmp_path / "vae.ckpt")
    with pytest.raises(ValueError, match="either vae="):
        mc.load_autoencoder(vae=tmp_path / "vae.safetensors", encoder=ENC)


# -- shapes, sizes, tokens --------------------------------------------------------------------------------


def test_size_not_multiple_of_16_is_an_error(ae):
    with pytest.raises(ValueError, match="not a multiple of 16; resize or crop .* e.g. 32x48"):
        ae.encode(torch.rand(1, 30, 50, 3))


def test_encode_decode_shape_round_trip():
    model = mc.build_autoencoder(mc.AutoEncoderConfig.tiny(), seed=1)
    assert all(model.get_submodule(p).bn.running_var.min() > 0 for p in ("encoder", "decoder"))
    images = torch.rand(3, 48, 80, 3)
    latent = model.encode(images)
    assert latent.shape == (3, 128, 3, 5)
    out = model.decode(latent)
    assert out.shape == images.shape and 0 <= out.min() and out.max() <= 1
    again = mc.build_autoencoder(mc.AutoEncoderConfig.tiny(), seed=1)
    assert torch.equal(again.encode(images), latent)


def test_tokens_latent_round_trip():
    latent = torch.randn(2, 128, 3, 5)
    tokens = mc.latent_to_tokens(latent)
    assert tokens.shape == (2, 15, 128)
    assert torch.equal(tokens[:, 1 * 5 + 2], latent[:, :, 1, 2])  # row-major: token i*w + j
    assert torch.equal(mc.tokens_to_latent(tokens, 3, 5), latent)
    with pytest.raises(ValueError, match="expected tokens"):
        mc.tokens_to_latent(tokens, 5, 5)


# -- live reference (optional) ---------------------------------------------------------------------------

REF = Path(os.environ.get("MOFO_REF_DIR", ROOT / ".ref" / "modality-forcing"))
live = pytest.mark.skipif(
    not (REF / "flux_rgbd" / "_flux2" / "autoencoder.py").is_file(),
    reason=f"reference checkout not found at {REF} (set MOFO_REF_DIR)",
)


@pytest.fixture(scope="module")
def ref_ae():
    spec = importlib.util.spec_from_file_location("fixtures_ae", ROOT / "tools" / "fixtures_ae.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool.import_reference(REF)


def _ref_kwargs(cfg: mc.AutoEncoderConfig) -> dict:
    return dict(ch=cfg.ch, ch_mult=cfg.ch_mult, num_res_blocks=cfg.num_res_blocks, z_channels=cfg.z_channels)


@live
def test_release_shapes_equal_the_reference(ref_ae):
    with torch.device("meta"):
        ours = mc.Flux2AutoEncoder()
        ref_enc, ref_dec = ref_ae.Flux2Encoder(), ref_ae.Flux2Decoder()
    for a, b in ((ours.encoder, ref_enc), (ours.decoder, ref_dec)):
        assert {k: v.shape for k, v in a.state_dict().items()} == {k: v.shape for k, v in b.state_dict().items()}


@live
@pytest.mark.parametrize(
    "cfg,size",
    [
        (mc.AutoEncoderConfig.tiny(), (2, 32, 64)),
        (mc.AutoEncoderConfig(ch=32, ch_mult=(1, 2, 2, 1), num_res_blocks=2), (1, 48, 32)),
    ],
)
def test_channel_changing_configs_match_the_reference(ref_ae, cfg, size):
    model = mc.build_autoencoder(cfg, seed=5)
    ref_enc, ref_dec = ref_ae.Flux2Encoder(**_ref_kwargs(cfg)), ref_ae.Flux2Decoder(**_ref_kwargs(cfg))
    ref_enc.load_state_dict(model.encoder.state_dict(), strict=True)
    ref_dec.load_state_dict(model.decoder.state_dict(), strict=True)
    g = torch.Generator().manual_seed(6)
    b, hh, ww = size
    images = torch.rand(b, hh, ww, 3, generator=g)
    latent = torch.randn(b, 128, hh // 16, ww // 16, generator=g)
    with torch.no_grad():
        ref_latent = ref_enc.eval()(images * 2 - 1)
        ref_images = (ref_dec.eval()(latent.permute(0, 2, 3, 1)) * 0.5 + 0.5).clamp(0, 1)
    assert rel_l2(model.encode(images), ref_latent.permute(0, 3, 1, 2)) <= TOL
    assert rel_l2(model.decode(latent), ref_images) <= TOL
