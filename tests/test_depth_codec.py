"""Depth codec: round trips, the reference's quirks, and the opt-in robust path."""

from __future__ import annotations

import pytest
import torch

import mofo_core as mc
from mofo_core.depth.codec import contract, inverse_contract


def test_round_trip_recovers_depth_up_to_unit_mean_scale():
    d = torch.rand(2, 32, 64) * 20 + 0.1
    tokens = mc.encode_depth(d)
    assert tokens.shape == (2, 8, 256)
    back = mc.decode_depth(tokens, 32, 64)
    assert torch.allclose(back, d / d.mean(), rtol=1e-4)


def test_patch_order_is_row_major_inside_each_patch():
    d = torch.ones(1, 16, 32)
    d[0, 0, 1] = 0.5  # row 0, col 1 of the first patch -> channel 1
    d[0, 1, 16] = 0.25  # row 1, col 0 of the second patch -> token 1, channel 16
    t = mc.encode_depth(d)
    m = d.mean()
    assert float(t[0, 0, 1]) == pytest.approx(float(0.5 / m), rel=1e-6)
    assert float(t[0, 1, 16]) == pytest.approx(float(0.25 / m), rel=1e-6)


def test_contract_is_inverted_and_saturates_below_two():
    x = torch.tensor([0.0, 0.5, 1.0, 2.0, 10.0, 100.0])
    c = contract(x)
    assert torch.all(c < 2.0)
    assert torch.allclose(inverse_contract(c), x, rtol=1e-5)


def test_reference_decode_gives_inf_or_negative_and_robust_clamps():
    c = torch.tensor([2.0, 2.5, -0.5])
    raw = inverse_contract(c)
    assert torch.isinf(raw[0]) and raw[1] < 0 and raw[2] < 0
    robust = inverse_contract(c, robust=True)
    assert torch.isfinite(robust).all() and (robust >= 0).all() and float(robust[0]) == pytest.approx(1000.0, rel=1e-3)


def test_robust_unit_mean_ignores_invalid_pixels_per_map():
    d = torch.full((2, 16, 16), 4.0)
    d[0, :4] = float("nan")
    d[1, :2] = 0.0
    t = mc.encode_depth(d, robust=True)
    back = mc.decode_depth(t, 16, 16)
    assert torch.allclose(back[0, 4:], torch.ones(12, 16))  # valid pixels normalised to 1
    assert torch.all(back[0, :4] == 0) and torch.all(back[1, :2] == 0)


def test_bad_depth_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="NaN or inf"):
        mc.encode_depth(torch.tensor([[[float("nan")] + [1.0] * 15] * 16]))
    with pytest.raises(ValueError, match="no finite positive pixel"):
        mc.encode_depth(torch.zeros(1, 16, 16), robust=True)
    with pytest.raises(ValueError, match="no finite positive pixel"):
        mc.encode_depth(torch.zeros(1, 16, 16))
    with pytest.raises(ValueError, match="multiple of 16"):
        mc.encode_depth(torch.ones(1, 20, 16))
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        mc.encode_depth(torch.ones(16, 16))
    with pytest.raises(ValueError, match="do not fit"):
        mc.decode_depth(torch.zeros(1, 6, 256), 5, 5)


def test_negative_mean_depth_is_refused_unless_robust():
    d = torch.ones(1, 16, 16)
    d[:, :8] = -5.0  # half the map negative: the unit mean would be -2
    with pytest.raises(ValueError, match=r"mean of -2 .*robust"):
        mc.encode_depth(d)
    tokens = mc.encode_depth(d, robust=True)  # the negative half is "no depth" (0), the rest unit mean
    back = mc.decode_depth(tokens, 16, 16)
    assert torch.allclose(back[:, 8:], torch.ones(1, 8, 16)) and bool((back[:, :8] == 0).all())
