"""Golden parity with the reference (fixtures made by tools/make_fixtures.py from Duisterhof/modality-forcing).

Tolerances are the project's contract: forward fp32 <= 1e-5 and bf16 <= 1e-2 relative L2, samplers fp32
<= 1e-4, schedules and depth codec <= 1e-6.
"""

from __future__ import annotations

import pytest
import torch
from helpers import FIXTURES, VARIANT_NAMES, load_fixture, rel_l2

import mofo_core as mc


@pytest.fixture(scope="module", params=VARIANT_NAMES)
def variant(request):
    io, meta = load_fixture(f"{request.param}_io.safetensors")
    return request.param, io, meta


def _model(name: str, **kw) -> mc.MofoDiT:
    return mc.load_dit(FIXTURES / f"{name}_weights.safetensors", **kw)


def test_fixture_variant_detected(variant):
    name, _, _ = variant
    model = _model(name)
    assert model.config.variant == name
    assert model.config.hidden_size == 32 and model.config.depth_double == 2


def test_forward_fp32(variant):
    name, io, meta = variant
    model = _model(name)
    r, d = model.predict(io["rgb"], io["depth"], io["ctx"], io["t_rgb"], io["t_depth"], meta["h"], meta["w"])
    assert rel_l2(r, io["out_fp32.rgb"]) <= 1e-5
    assert rel_l2(d, io["out_fp32.depth"]) <= 1e-5
    sq = meta["sq"]
    r, d = model.predict(io["sq_rgb"], io["sq_depth"], io["sq_ctx"], io["sq_t_rgb"], io["sq_t_depth"], sq, sq)
    assert rel_l2(r, io["sq_out_fp32.rgb"]) <= 1e-5
    assert rel_l2(d, io["sq_out_fp32.depth"]) <= 1e-5


def test_forward_bf16_body_fp32_depth_head(variant):
    name, io, meta = variant
    model = _model(name, dtype=torch.bfloat16)
    assert model.depth_final_layer.linear.weight.dtype == torch.float32
    assert model.final_layer.linear.weight.dtype == torch.bfloat16
    r, d = model.predict(io["rgb"], io["depth"], io["ctx"], io["t_rgb"], io["t_depth"], meta["h"], meta["w"])
    assert r.dtype == torch.bfloat16 and d.dtype == torch.float32
    assert rel_l2(r.float(), io["out_bf16.rgb"]) <= 1e-2
    assert rel_l2(d, io["out_bf16.depth"]) <= 1e-2


def test_sampler_joint_cfg_tilt(variant):
    name, io, m = variant
    rs, ds = mc.schedule(m["joint_steps"], mode="joint", log2_alpha=m["log2_alpha"])
    r, d = mc.sample(_model(name), io["ctx"], io["null_ctx"], rs, ds, height=m["h"], width=m["w"],
                     cfg=m["joint_cfg"], seed=m["joint_seed"])
    assert rel_l2(r, io["joint.rgb"]) <= 1e-4
    assert rel_l2(d, io["joint.depth"]) <= 1e-4


def test_sampler_joint_sequential_cfg_equals_batched(variant):
    name, io, m = variant
    model = _model(name)
    rs, ds = mc.schedule(3, mode="joint", log2_alpha=m["log2_alpha"])
    kw = dict(height=m["h"], width=m["w"], cfg=m["joint_cfg"], seed=m["joint_seed"])
    a = mc.sample(model, io["ctx"], io["null_ctx"], rs, ds, batch_cfg=True, **kw)
    b = mc.sample(model, io["ctx"], io["null_ctx"], rs, ds, batch_cfg=False, **kw)
    for x, y in zip(a, b):
        assert rel_l2(x, y) <= 1e-5


def test_sampler_i2d(variant):
    name, io, m = variant
    rs, ds = mc.schedule(m["i2d_steps"], mode="i2d")
    r, d = mc.sample(_model(name), io["ctx"], None, rs, ds, height=m["h"], width=m["w"], seed=m["i2d_seed"],
                     rgb=io["clean_rgb"])
    assert torch.equal(r, io["clean_rgb"])  # held clean: bit-identical
    assert rel_l2(r, io["i2d.rgb"]) <= 1e-4
    assert rel_l2(d, io["i2d.depth"]) <= 1e-4


def test_sampler_d2i(variant):
    name, io, m = variant
    rs, ds = mc.schedule(m["d2i_steps"], mode="d2i")
    r, d = mc.sample(_model(name), io["ctx"], io["null_ctx"], rs, ds, height=m["h"], width=m["w"],
                     cfg=m["d2i_cfg"], seed=m["d2i_seed"], depth=io["clean_depth"])
    assert torch.equal(d, io["clean_depth"])
    assert rel_l2(r, io["d2i.rgb"]) <= 1e-4
    assert rel_l2(d, io["d2i.depth"]) <= 1e-4


def test_schedules_match_reference():
    sched, meta = load_fixture("schedules.safetensors")
    tags = sorted({k.rsplit(".", 1)[0] for k in sched})
    assert len(tags) == 20
    for tag in tags:
        mode, steps, la = tag.split("_")
        rs, ds = mc.schedule(int(steps), mode=mode, mu=meta["mu"], log2_alpha=None if la == "none" else float(la))
        assert (rs - sched[f"{tag}.rgb"]).abs().max() <= 1e-6, tag
        assert (ds - sched[f"{tag}.depth"]).abs().max() <= 1e-6, tag


def test_schedule_reference_table_values():
    # reference-spec §6.1: S = 50, mu = 1.1, joint, log2_alpha = 5
    rs, ds = mc.schedule(50, log2_alpha=5.0)
    assert rs[25].item() == pytest.approx(0.7503, abs=1e-4)
    assert rs[49].item() == pytest.approx(0.0578, abs=1e-4)
    assert ds[48].item() == pytest.approx(0.8002, abs=1e-4)
    assert ds[49].item() == pytest.approx(0.6624, abs=1e-4)


def test_depth_codec_matches_reference():
    io, _ = load_fixture("depth_codec.safetensors")
    tokens = mc.encode_depth(io["depth"])
    assert tokens.shape == io["tokens"].shape == (2, 6, 256)
    assert (tokens - io["tokens"]).abs().max() <= 1e-6
    dec = mc.decode_depth(io["dec_tokens"], 32, 48)  # pixel size
    assert (dec - io["decoded"]).abs().max() / io["decoded"].abs().max() <= 1e-6
    assert torch.equal(mc.decode_depth(io["dec_tokens"], 2, 3), dec)  # latent grid size
