"""Sampler behaviour beyond the golden fixtures: held-clean, part-way starts, noise, callbacks, the clamp fix."""

from __future__ import annotations

import pytest
import torch
from helpers import rel_l2

import mofo_core as mc
from mofo_core.sampling.sampler import StepInfo


class Oracle:
    """A denoiser that knows the clean sample: velocity / x0 predictions are exact for x_t = (1-t) x0 + t eps."""

    in_channels, depth_channels = 128, 256

    def __init__(self, rgb0, depth0):
        self.rgb0, self.depth0, self.calls = rgb0, depth0, []

    def predict(self, rgb, depth, ctx, t_rgb, t_depth, h, w):
        self.calls.append((rgb.shape[0], t_rgb.clone(), t_depth.clone()))
        t = t_rgb.view(-1, 1, 1).clamp(min=1e-8)
        reps = rgb.shape[0] // self.rgb0.shape[0]  # cond + uncond batches repeat the state
        v = (rgb - self.rgb0.repeat(reps, 1, 1)) / t  # eps - x0
        return v, self.depth0.repeat(reps, 1, 1)


@pytest.fixture
def tiny_model():
    return mc.build_dit(mc.tiny("flux_rgbd_9b_v2", context_in_dim=24), seed=1)


def _ctx(b=1, length=6):
    return torch.randn(b, length, 24)


def test_held_clean_modality_without_latent_is_a_clear_error(tiny_model):
    rs, ds = mc.schedule(4, mode="i2d")
    with pytest.raises(ValueError, match="rgb is held clean .* no rgb latent was given"):
        mc.sample(tiny_model, _ctx(), None, rs, ds, height=2, width=2)
    rs, ds = mc.schedule(4, mode="d2i")
    with pytest.raises(ValueError, match="depth is held clean"):
        mc.sample(tiny_model, _ctx(), None, rs, ds, height=2, width=2)


def test_cfg_without_null_conditioning_is_an_error(tiny_model):
    rs, ds = mc.schedule(2)
    with pytest.raises(ValueError, match="null conditioning"):
        mc.sample(tiny_model, _ctx(), None, rs, ds, height=2, width=2, cfg=4.0)


def test_pixel_size_passed_as_grid_is_caught(tiny_model):
    rs, ds = mc.schedule(2)
    with pytest.raises(ValueError, match="latent grid"):
        mc.sample(tiny_model, _ctx(), None, rs, ds, height=1024, width=1024)


def test_bad_sigma_lists_are_errors(tiny_model):
    with pytest.raises(ValueError, match="must not increase"):
        mc.sample(tiny_model, _ctx(), None, [0.5, 1.0], [1.0, 0.0], height=2, width=2)
    with pytest.raises(ValueError, match="entries"):
        mc.sample(tiny_model, _ctx(), None, [1.0, 0.5, 0.0], [1.0, 0.0], height=2, width=2)


def test_seeded_noise_is_reproducible_and_explicit_noise_is_used(tiny_model):
    rs, ds = mc.schedule(3)
    ctx = _ctx()
    a = mc.sample(tiny_model, ctx, None, rs, ds, height=2, width=3, seed=42)
    b = mc.sample(tiny_model, ctx, None, rs, ds, height=2, width=3, seed=42)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    gen = torch.Generator().manual_seed(42)
    rn, dn = torch.randn(1, 6, 128, generator=gen), torch.randn(1, 6, 256, generator=gen)
    c = mc.sample(tiny_model, ctx, None, rs, ds, height=2, width=3, rgb_noise=rn, depth_noise=dn)
    assert torch.equal(a[0], c[0]) and torch.equal(a[1], c[1])  # same draw order as the reference: RGB first


def test_oracle_denoiser_recovers_clean_sample_and_batch_cfg_runs_one_forward():
    rgb0, depth0 = torch.randn(2, 6, 128), torch.randn(2, 6, 256)
    oracle = Oracle(rgb0, depth0)
    rs, ds = mc.schedule(8, log2_alpha=5.0)
    r, d = mc.sample(oracle, _ctx(2), _ctx(1), rs, ds, height=2, width=3, cfg=4.0, depth_cfg=2.0, seed=0)
    assert rel_l2(r, rgb0) < 1e-5 and rel_l2(d, depth0) < 1e-6
    assert len(oracle.calls) == 8 and all(c[0] == 4 for c in oracle.calls)  # cond + uncond in one batch of 2B


def test_partial_denoise_starts_from_mix_of_latent_and_noise():
    rgb0, depth0 = torch.randn(1, 4, 128), torch.randn(1, 4, 256)
    oracle = Oracle(rgb0, depth0)
    rs, ds = mc.schedule(10, rgb_denoise=0.5)
    assert 0 < rs[0] < 1 and ds[0] == 1
    noise = torch.randn(1, 4, 128)
    seen = []
    mc.sample(oracle, _ctx(), None, rs, ds, height=2, width=2, rgb=rgb0, rgb_noise=noise, seed=1,
              callback=seen.append)
    first_t = float(rs[0])
    assert torch.allclose(oracle.calls[0][1], torch.tensor([first_t]))
    assert len(seen) == 10 and isinstance(seen[0], StepInfo) and seen[-1].step == 9 and seen[-1].steps == 10
    with pytest.raises(ValueError, match="part-way"):
        mc.sample(oracle, _ctx(), None, rs, ds, height=2, width=2, seed=1)


def test_callback_can_interrupt(tiny_model):
    class Stop(Exception):
        pass

    def cb(info):
        if info.step == 1:
            raise Stop

    rs, ds = mc.schedule(5)
    with pytest.raises(Stop):
        mc.sample(tiny_model, _ctx(), None, rs, ds, height=2, width=2, seed=0, callback=cb)


def test_xpred_clamp_leaves_residual_noise_at_80_steps_and_the_fix_removes_it():
    rgb0, depth0 = torch.randn(1, 4, 128), torch.randn(1, 4, 256)
    rs, ds = mc.schedule(80, mode="i2d")
    assert 0 < float(ds[-2]) < 0.05  # the reference's last positive time is below the clamp
    ref = mc.sample(Oracle(rgb0, depth0), _ctx(), None, rs, ds, height=2, width=2, rgb=rgb0, seed=0)
    fix = mc.sample(Oracle(rgb0, depth0), _ctx(), None, rs, ds, height=2, width=2, rgb=rgb0, seed=0,
                    depth_xpred_exact=True)
    assert rel_l2(ref[1], depth0) > 1e-3  # the parity default keeps the reference's residual
    assert rel_l2(fix[1], depth0) < 1e-6
    r50, d50 = mc.schedule(50, mode="i2d")
    a = mc.sample(Oracle(rgb0, depth0), _ctx(), None, r50, d50, height=2, width=2, rgb=rgb0, seed=0)
    assert rel_l2(a[1], depth0) < 1e-6  # at 50 steps the clamp never fires


def test_depth_cfg_defaults_to_cfg(tiny_model):
    rs, ds = mc.schedule(2)
    ctx, null = _ctx(), _ctx()
    a = mc.sample(tiny_model, ctx, null, rs, ds, height=2, width=2, cfg=3.0, seed=1)
    b = mc.sample(tiny_model, ctx, null, rs, ds, height=2, width=2, cfg=3.0, depth_cfg=3.0, seed=1)
    c = mc.sample(tiny_model, ctx, null, rs, ds, height=2, width=2, cfg=3.0, depth_cfg=1.0, seed=1)
    assert torch.equal(a[1], b[1]) and not torch.equal(a[1], c[1])


def test_batch_one_latent_broadcasts_to_conditioning_batch(tiny_model):
    rs, ds = mc.schedule(2, mode="i2d")
    rgb = torch.randn(1, 4, 128)
    r, d = mc.sample(tiny_model, _ctx(3), None, rs, ds, height=2, width=2, rgb=rgb, seed=0)
    assert r.shape == (3, 4, 128) and d.shape == (3, 4, 256)
    assert torch.isfinite(d).all()


def test_predict_shape_errors(tiny_model):
    with pytest.raises(ValueError, match="rgb tokens must be"):
        tiny_model.predict(torch.randn(1, 5, 128), torch.randn(1, 4, 256), _ctx(), torch.rand(1), torch.rand(1), 2, 2)
    with pytest.raises(ValueError, match="Qwen3-8B"):
        tiny_model.predict(torch.randn(1, 4, 128), torch.randn(1, 4, 256), torch.randn(1, 6, 7), torch.rand(1),
                           torch.rand(1), 2, 2)


def test_schedule_modes_and_denoise():
    rs, ds = mc.schedule(10, mode="i2d")
    assert rs.abs().sum() == 0 and ds[0] == 1 and ds[-1] == 0 and len(rs) == 11
    rs, ds = mc.schedule(10, mode="d2i")
    assert ds.abs().sum() == 0 and rs[0] == 1
    rs, ds = mc.schedule(10, depth_denoise=0.0)
    assert ds.abs().sum() == 0
    with pytest.raises(ValueError):
        mc.schedule(0)
    with pytest.raises(ValueError, match="unknown mode"):
        mc.schedule(5, mode="x2y")
