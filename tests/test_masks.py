"""Region masks in the sampler: outside the mask the given latent comes back exactly, inside it is regenerated."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import rel_l2
from PIL import Image

import mofo_core as mc
from mofo_core.sampling.masks import feather_mask, fit_mask, load_mask, token_mask


@pytest.fixture(scope="module")
def model():
    return mc.build_dit(mc.tiny("flux_rgbd_9b_v2", context_in_dim=24), seed=1)


def _ctx(b=1):
    return torch.randn(b, 6, 24)


def _masks(b, h, w):
    """Pixel masks (b, 16h, 16w) with different regions per batch element and per modality."""
    rgb = torch.zeros(b, 16 * h, 16 * w)
    depth = torch.zeros(b, 16 * h, 16 * w)
    rgb[0, :16, :16] = 1.0  # element 0: top-left token
    depth[0, 16:, 32:] = 1.0  # element 0: bottom-right token
    if b > 1:
        rgb[1, :, 16:32] = 1.0  # element 1: middle column
        depth[1] = 1.0  # element 1: all of depth
    return rgb, depth


@pytest.mark.parametrize("batch", [1, 2])
def test_outside_the_mask_is_the_given_latent_exactly_and_inside_changes(model, batch):
    h, w = 2, 3  # non-square grid, 32 x 48 pixel masks
    rgb0, depth0 = torch.randn(batch, h * w, 128), torch.randn(batch, h * w, 256)
    rm, dm = _masks(batch, h, w)
    rs, ds = mc.schedule(4, log2_alpha=5.0)
    null = _ctx()
    r, d = mc.sample(model, _ctx(batch), null, rs, ds, height=h, width=w, cfg=3.0, seed=5, rgb=rgb0, depth=depth0,
                     rgb_mask=rm, depth_mask=dm)
    keep_r = token_mask(rm, h, w)[..., 0] == 0  # (B, N)
    keep_d = token_mask(dm, h, w)[..., 0] == 0
    assert torch.equal(r[keep_r], rgb0[keep_r]) and torch.equal(d[keep_d], depth0[keep_d])
    assert (r[~keep_r] - rgb0[~keep_r]).abs().min(-1).values.gt(0).all()  # every regenerated token changed
    assert (d[~keep_d] - depth0[~keep_d]).abs().amax(-1).gt(1e-3).all()


def test_held_region_is_renoised_with_the_modalitys_own_initial_noise(model):
    h, w = 2, 2
    rgb0, depth0 = torch.randn(1, 4, 128), torch.randn(1, 4, 256)
    rm = torch.zeros(32, 32)
    rm[:16, :16] = 1.0
    rs, ds = mc.schedule(3, log2_alpha=2.0)
    seen = []
    mc.sample(model, _ctx(), None, rs, ds, height=h, width=w, seed=9, rgb=rgb0, depth=depth0, rgb_mask=rm,
              depth_mask=rm.flip(0), callback=seen.append)
    gen = torch.Generator().manual_seed(9)  # the reference's draw order: RGB first, then depth
    eps_r, eps_d = torch.randn(1, 4, 128, generator=gen), torch.randn(1, 4, 256, generator=gen)
    for info in seen:
        tr, td = rs[info.step + 1], ds[info.step + 1]
        assert torch.allclose(info.rgb[:, 1:], (1 - tr) * rgb0[:, 1:] + tr * eps_r[:, 1:], atol=1e-6)
        assert torch.allclose(info.depth[:, :2], (1 - td) * depth0[:, :2] + td * eps_d[:, :2], atol=1e-6)
        assert torch.equal(info.rgb_x0[:, 1:], rgb0[:, 1:])  # previews show the kept part as it is


def test_full_mask_equals_no_mask_and_no_mask_is_untouched(model):
    rgb0 = torch.randn(1, 4, 128)
    rs, ds = mc.schedule(3, rgb_denoise=0.7)
    kw = dict(height=2, width=2, seed=3, rgb=rgb0)
    ctx = _ctx()
    a = mc.sample(model, ctx, None, rs, ds, **kw)
    b = mc.sample(model, ctx, None, rs, ds, rgb_mask=torch.ones(32, 32), **kw)
    assert rel_l2(b[0], a[0]) < 1e-6 and rel_l2(b[1], a[1]) < 1e-6
    c = mc.sample(model, ctx, None, rs, ds, rgb_mask=torch.zeros(2, 2), **kw)  # grid-sized, nothing to redo
    assert torch.equal(c[0], rgb0)


def test_soft_mask_blends_and_feather_only_grows_the_region(model):
    m = torch.zeros(1, 64, 64)
    m[:, 16:48, 16:48] = 1.0
    f = feather_mask(m, 12)
    assert torch.equal(f[m == 1], m[m == 1]) and (f[m == 0] > 0).any() and f[:, 0, 0] == 0
    grid = token_mask(m, 4, 4, feather=12)[0, :, 0].view(4, 4)
    assert torch.equal(grid[1:3, 1:3], torch.ones(2, 2)) and 0 < grid[0, 1] < 1 and grid[0, 0] >= 0
    half = torch.zeros(32, 32)
    half[:, :8] = 1.0  # half of the first token column
    assert token_mask(half, 2, 2)[0, :, 0].tolist() == [0.5, 0.0, 0.5, 0.0]


def test_mask_errors_say_what_to_do(model):
    rs, ds = mc.schedule(2)
    base = dict(height=2, width=3, seed=0)
    with pytest.raises(ValueError, match="rgb_mask is given but no rgb latent"):
        mc.sample(model, _ctx(), None, rs, ds, rgb_mask=torch.ones(32, 48), **base)
    with pytest.raises(ValueError, match="depth_mask is given but no depth latent"):
        mc.sample(model, _ctx(), None, rs, ds, depth_mask=torch.ones(32, 48), **base)
    rgb0 = torch.randn(1, 6, 128)
    ri, di = mc.schedule(2, mode="i2d")
    with pytest.raises(ValueError, match="held clean everywhere"):
        mc.sample(model, _ctx(), None, ri, di, rgb=rgb0, rgb_mask=torch.ones(32, 48), **base)
    with pytest.raises(ValueError, match="resize the mask to the image size"):
        mc.sample(model, _ctx(), None, rs, ds, rgb=rgb0, rgb_mask=torch.ones(48, 32), **base)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        mc.sample(model, _ctx(), None, rs, ds, rgb=rgb0, rgb_mask=torch.full((32, 48), 2.0), **base)
    with pytest.raises(ValueError, match="batch 3"):
        mc.sample(model, _ctx(2), None, rs, ds, rgb=rgb0, rgb_mask=torch.ones(3, 32, 48), **base)
    with pytest.raises(ValueError, match="feather needs a pixel mask"):
        mc.sample(model, _ctx(), None, rs, ds, rgb=rgb0, rgb_mask=torch.ones(2, 3), mask_feather=4, **base)


def test_fit_mask_resizes_with_a_warning(caplog):
    m = torch.zeros(1, 30, 50)
    m[:, :, 25:] = 1.0
    same, msg = fit_mask(torch.ones(32, 48), 32, 48)
    assert msg is None and same.shape == (1, 32, 48)
    with caplog.at_level("WARNING"):
        out, msg = fit_mask(m, 64, 96)
    assert out.shape == (1, 64, 96) and "resized" in msg and "resized" in caplog.text
    assert out[0, :, :40].max() < 0.5 and out[0, :, 56:].min() > 0.5


def test_load_mask_reads_grey_and_alpha(tmp_path):
    grey = np.zeros((16, 32), np.uint8)
    grey[:, 16:] = 255
    Image.fromarray(grey).save(tmp_path / "m.png")
    m = load_mask(tmp_path / "m.png")
    assert m.shape == (16, 32) and m[:, :16].max() == 0 and m[:, 16:].min() == 1
    rgba = np.full((16, 32, 4), 200, np.uint8)
    rgba[..., 3] = 255
    rgba[:8, :, 3] = 0  # transparent = regenerate (ComfyUI's LoadImage convention)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    a = load_mask(tmp_path / "a.png")
    assert a[:8].min() == 1 and a[8:].max() == 0
    with pytest.raises(FileNotFoundError):
        load_mask(tmp_path / "none.png")
