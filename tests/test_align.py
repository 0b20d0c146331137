"""Metric alignment on synthetic depth with a known transform and outliers; stated distances; batch ranges."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mofo_core.camera import fov_intrinsics
from mofo_core.depth.align import apply_fit, fit_depth, scale_to_distance
from mofo_core.depth.files import load_depth, save_depth_png16
from mofo_core.depth.maps import depth_to_disparity_vis
from mofo_core.depth.ranges import disparity_vis_batch, png16_max_depths


def _scene(seed=0, shape=(48, 64)):
    rng = np.random.default_rng(seed)
    return rng, rng.uniform(1.0, 5.0, shape)  # relative depth


def _with_outliers(rng, target, frac=0.25):
    t = target.copy()
    bad = rng.random(t.shape) < frac
    t[bad] = rng.uniform(0.05, 60.0, int(bad.sum()))  # wildly wrong reference pixels
    return t, bad


@pytest.mark.parametrize("loss", ["huber", "tukey"])
def test_scale_only_recovered_despite_outliers(loss):
    rng, src = _scene()
    target, bad = _with_outliers(rng, 2.75 * src * (1 + rng.normal(0, 0.002, src.shape)))
    aligned, rep = fit_depth(src, target, loss=loss)
    assert rep.scale == pytest.approx(2.75, rel=2e-3) and rep.shift == 0.0
    assert rep.inlier_fraction == pytest.approx(1 - bad.mean(), abs=0.02)
    assert rep.inlier_rmse < 0.03 and rep.rmse > 1.0  # the outliers count in the plain RMSE only
    np.testing.assert_allclose(aligned, 2.75 * src, rtol=3e-3)


@pytest.mark.parametrize("loss", ["huber", "tukey"])
def test_scale_and_shift_recovered_despite_outliers(loss):
    rng, src = _scene(1)
    target, _ = _with_outliers(rng, 0.6 * src + 1.25)
    _, rep = fit_depth(src, target, shift=True, loss=loss)
    assert rep.scale == pytest.approx(0.6, rel=1e-4) and rep.shift == pytest.approx(1.25, rel=1e-4)


def test_plain_least_squares_is_pulled_by_outliers_and_exact_without_them():
    rng, src = _scene(2)
    clean = 3.0 * src
    _, rep = fit_depth(src, clean, loss="l2")
    assert rep.scale == pytest.approx(3.0, rel=1e-12) and rep.rmse < 1e-6  # float32 output
    target, _ = _with_outliers(rng, clean)
    assert abs(fit_depth(src, target, loss="l2")[1].scale - 3.0) > 0.1


def test_disparity_space_fit_of_an_affine_disparity_reference():
    rng, src = _scene(3)
    ref_disp = 0.8 / src + 0.05  # e.g. a relative disparity map: affine in 1 / depth
    target, _ = _with_outliers(rng, 1.0 / ref_disp, frac=0.15)
    aligned, rep = fit_depth(src, target, shift=True, space="disparity", loss="tukey")
    assert rep.scale == pytest.approx(0.8, rel=1e-5) and rep.shift == pytest.approx(0.05, rel=1e-4)
    np.testing.assert_allclose(aligned, 1.0 / ref_disp, rtol=1e-4)
    # the same reference fitted in depth space cannot be exact (the map is not affine in depth)
    assert fit_depth(src, 1.0 / ref_disp, shift=True)[1].inlier_rmse > 10 * rep.inlier_rmse


def test_mask_restricts_the_fit_and_invalid_pixels_stay_invalid():
    rng, src = _scene(4)
    target = 2.0 * src
    target[:, 32:] = 7.0 * src[:, 32:]  # the right half is another object at another scale
    mask = np.zeros(src.shape, bool)
    mask[:, :32] = True
    src[0, 0] = 0.0
    src[1, 1] = np.nan
    aligned, rep = fit_depth(src, target, mask, loss="l2")
    assert rep.scale == pytest.approx(2.0) and rep.pixels == 48 * 32 - 2
    assert aligned[0, 0] == 0 and aligned[1, 1] == 0


def test_one_fit_over_a_batch():
    _, src = _scene(5, shape=(3, 16, 16))
    _, rep = fit_depth(src, 1.5 * src)
    assert rep.scale == pytest.approx(1.5) and rep.pixels == 3 * 256


def test_stated_distance_at_a_pixel_and_in_a_region():
    _, src = _scene(6)
    aligned, rep = scale_to_distance(src, 0.75, at=(10, 20), window=1)
    assert aligned[20, 10] == pytest.approx(0.75, rel=1e-6) and rep.method == "distance"
    np.testing.assert_allclose(aligned, src * (0.75 / src[20, 10]), rtol=1e-6)
    region = np.zeros(src.shape, bool)
    region[5:10, 5:10] = True
    aligned, _ = scale_to_distance(src, 2.0, region=region)
    assert np.median(aligned[region]) == pytest.approx(2.0, rel=1e-6)


def test_stated_distance_along_the_ray():
    depth = np.full((40, 60), 3.0)
    fx, fy, cx, cy = fov_intrinsics(60, 40, 90.0)
    aligned, _ = scale_to_distance(depth, 1.0, at=(0, 0), window=1, measure="ray", fov_deg=90.0)
    ray = np.array([(0.5 - cx) / fx, (0.5 - cy) / fy, 1.0])  # the corner pixel's ray at depth 1
    assert aligned[0, 0] * np.linalg.norm(ray) == pytest.approx(1.0, rel=1e-6)  # 1 m along the ray
    centre, _ = scale_to_distance(depth, 1.0, at=(30, 20), window=1, measure="ray", fov_deg=90.0)
    assert centre[20, 30] == pytest.approx(1.0 / math.sqrt(1 + 2 * (0.5 / fx) ** 2), rel=1e-9)


def test_alignment_errors_name_the_fix():
    _, src = _scene(7)
    with pytest.raises(ValueError, match="same shape"):
        fit_depth(src, src[:-1])
    with pytest.raises(ValueError, match="at least 10"):
        fit_depth(src, np.zeros_like(src))
    with pytest.raises(ValueError, match="do not agree"):
        fit_depth(src, 10 - src, shift=True, loss="l2")  # inverted: near and far swapped
    with pytest.raises(ValueError, match="loss must be one of"):
        fit_depth(src, src, loss="cauchy")
    with pytest.raises(ValueError, match="exactly one of"):
        scale_to_distance(src, 1.0)
    with pytest.raises(ValueError, match="outside"):
        scale_to_distance(src, 1.0, at=(64, 0))
    with pytest.raises(ValueError, match="distance must be"):
        scale_to_distance(src, -1.0, at=(1, 1))
    with pytest.raises(ValueError, match="no valid depth"):
        scale_to_distance(np.zeros((8, 8)), 1.0, at=(1, 1))


def test_apply_fit_in_disparity_beyond_infinity_is_invalid():
    out = apply_fit(np.array([1.0, 10.0, 0.0]), 1.0, -0.5, "disparity")  # 1/d - 0.5: > 0, < 0, invalid
    np.testing.assert_allclose(out, [2.0, 0.0, 0.0])


# --------------------------------------------------------------------------------------------- batch ranges


def test_batch_range_keeps_a_wall_the_same_brightness_in_every_frame():
    wall = np.full((16, 16), 4.0)
    frames = np.stack([wall.copy(), wall.copy()])
    frames[0, :, :4] = 1.0  # frame 0 has something near on the left, frame 1 something far
    frames[1, :, :4] = 20.0
    per_image = disparity_vis_batch(frames, "image")
    batch = disparity_vis_batch(frames, "batch")
    assert per_image[0, 8, 8] != per_image[1, 8, 8]  # today's default: the wall flickers
    assert batch[0, 8, 8] == batch[1, 8, 8]
    np.testing.assert_array_equal(disparity_vis_batch(frames[:1], "batch")[0], depth_to_disparity_vis(frames[0]))
    fixed = disparity_vis_batch(frames, "fixed", near=1.0, far=20.0)
    assert fixed[0, 0, 0] == 1.0 and fixed[1, 0, 0] == 0.0
    assert fixed[0, 8, 8] == pytest.approx((1 / 4 - 1 / 20) / (1 - 1 / 20))
    with pytest.raises(ValueError, match="near < far"):
        disparity_vis_batch(frames, "fixed", near=5.0, far=1.0)
    with pytest.raises(ValueError, match="mode must be one of"):
        disparity_vis_batch(frames, "video")


def test_png16_with_one_scale_for_the_batch(tmp_path):
    frames = np.stack([np.full((8, 8), 2.0), np.full((8, 8), 4.0)])
    tops = png16_max_depths(frames, "batch")
    assert tops == [4.0, 4.0] and png16_max_depths(frames) == [None, None]
    assert png16_max_depths(frames, "fixed", 10.0) == [10.0, 10.0]
    a = save_depth_png16(tmp_path / "a.png", frames[0], max_depth=tops[0])
    b = save_depth_png16(tmp_path / "b.png", frames[1], max_depth=tops[1])
    assert a["scale"] == b["scale"] == 65535 / 4.0
    np.testing.assert_allclose(load_depth(a["path"]), 2.0, rtol=1e-4)  # the scale travels in the file
    with pytest.raises(ValueError, match="max_depth must be"):
        save_depth_png16(tmp_path / "c.png", frames[0], max_depth=0.0)
    with pytest.raises(ValueError, match="max_depth > 0"):
        png16_max_depths(frames, "fixed")
