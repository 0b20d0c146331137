"""Masked RGB-D editing end to end on tiny random models: each task keeps exactly what its masks keep."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from mofo_core.app.cli import main
from mofo_core.app.demo import ensure_demo_assets
from mofo_core.app.edit import EditParams
from mofo_core.app.pipeline import GenerateParams, MofoPipeline
from mofo_core.depth.codec import encode_depth
from mofo_core.latents import latent_to_tokens
from mofo_core.sampling.masks import token_mask


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    model, text = ensure_demo_assets(tmp_path_factory.mktemp("cache"))
    return str(model), str(text)


@pytest.fixture(scope="module")
def pipe(assets):
    model, text = assets
    return MofoPipeline.from_pretrained(model, text_encoder=text, offline=True, device="cpu", dtype=torch.float32,
                                        keep_text_encoder=True)


H, W = 48, 64  # non-square, multiples of 16: a 3 x 4 token grid


@pytest.fixture(scope="module")
def photo():
    return np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def depth():
    return np.linspace(1.0, 4.0, H * W, dtype=np.float32).reshape(H, W)


def _mask():
    m = np.zeros((H, W), np.float32)
    m[16:32, 16:48] = 1.0  # two tokens in the middle row
    return m


def _estimate(pipe, image, steps=2, seed=0):
    """The depth tokens image -> depth gives for `image` with an empty prompt (the edit's estimate)."""
    p = GenerateParams(mode="i2d", steps=steps, seed=seed, height=image.shape[0], width=image.shape[1], fit="stretch")
    return pipe.generate(p, image=image).depth_tokens


def _keep(mask_px, h, w):
    return token_mask(torch.as_tensor(mask_px), h, w)[0, :, 0] == 0  # (N,) tokens kept


def test_inpaint_keeps_rgb_and_estimated_depth_outside_and_regenerates_both_inside(pipe, photo):
    p = EditParams(task="inpaint", prompt="a red chair", steps=2, width=W, height=H, batch=2, seed=1)
    res = pipe.edit(p, photo, mask=_mask())
    keep = _keep(_mask(), 3, 4)
    rgb_given = pipe.encode_image(photo)[0]  # (N, 128)
    rgb_out = latent_to_tokens(res.rgb_latent)  # (B, N, 128)
    est = _estimate(pipe, photo, seed=1)[0]
    assert res.rgb.shape == (2, H, W, 3) and res.depth.shape == (2, H, W)
    for b in range(2):
        assert torch.equal(rgb_out[b, keep], rgb_given[keep]) and torch.equal(res.depth_tokens[b, keep], est[keep])
        assert (rgb_out[b, ~keep] - rgb_given[~keep]).abs().amax() > 1e-3
        assert (res.depth_tokens[b, ~keep] - est[~keep]).abs().amax() > 1e-3
    assert not torch.equal(rgb_out[0, ~keep], rgb_out[1, ~keep])  # batch elements differ inside
    assert res.metadata["mode"] == "edit-inpaint" and res.metadata["depth_source"].startswith("estimated")


def test_outpaint_grows_the_canvas_and_continues_rgb_and_depth(pipe, photo):
    p = EditParams(task="outpaint", prompt="more of the room", steps=2, width=W, height=H, pad=(0, 0, 0, 32))
    res = pipe.edit(p, photo)
    assert res.rgb.shape == (1, H, W + 32, 3) and res.depth.shape == (1, H, W + 32)
    grid = res.depth_tokens[0].view(3, 6, 256)
    est = _estimate(pipe, photo)[0].view(3, 4, 256)
    assert torch.equal(grid[:, :4], est)  # the original part keeps its image -> depth estimate exactly
    assert grid[:, 4:].abs().amax() > 1e-3  # the new columns are generated (they started as zeros)
    padded = np.pad(photo, ((0, 0), (0, 32), (0, 0)), mode="edge")
    rgb_given = pipe.encode_image(padded)[0].view(3, 6, 128)
    rgb_out = latent_to_tokens(res.rgb_latent)[0].view(3, 6, 128)
    assert torch.equal(rgb_out[:, :4], rgb_given[:, :4]) and not torch.equal(rgb_out[:, 4:], rgb_given[:, 4:])


def test_restyle_holds_the_given_depth_everywhere(pipe, photo, depth):
    corner = np.zeros((H, W), np.float32)
    corner[:16, :16] = 1.0  # the top-left token
    p = EditParams(task="restyle", prompt="a winter scene", steps=2, width=W, height=H, feather=6)
    res = pipe.edit(p, photo, depth=depth, mask=corner)
    given = encode_depth(torch.from_numpy(depth)[None])
    assert torch.equal(res.depth_tokens, given)
    fm = token_mask(torch.from_numpy(corner), 3, 4, feather=6)[0, :, 0]
    keep = fm == 0
    assert fm[0] == 1 and 0 < fm[1] < 1 and keep[3] and keep[8:].all()  # the feather reaches the neighbours, softly
    rgb_out, rgb_given = latent_to_tokens(res.rgb_latent)[0], pipe.encode_image(photo)[0]
    assert torch.equal(rgb_out[keep], rgb_given[keep]) and (rgb_out[~keep] - rgb_given[~keep]).abs().amax() > 1e-3
    whole = pipe.edit(EditParams(task="restyle", prompt="a winter scene", steps=2, width=W, height=H), photo)
    assert (latent_to_tokens(whole.rgb_latent)[0] - rgb_given).abs().amax(-1).min() > 1e-3  # no mask: all of it
    assert torch.equal(whole.depth_tokens, _estimate(pipe, photo))


def test_depth_fix_holds_rgb_and_returns_the_given_depth_outside_up_to_the_codec(pipe, photo, depth):
    p = EditParams(task="depth-fix", steps=2, width=W, height=H)
    res = pipe.edit(p, photo, depth=depth, mask=_mask())
    assert res.metadata["cfg"] == 1.0  # the image -> depth default
    assert torch.equal(latent_to_tokens(res.rgb_latent)[0], pipe.encode_image(photo)[0])
    keep = _keep(_mask(), 3, 4)
    given = encode_depth(torch.from_numpy(depth)[None])[0]
    assert torch.equal(res.depth_tokens[0, keep], given[keep])
    assert (res.depth_tokens[0, ~keep] - given[~keep]).abs().amax() > 1e-3
    kept_px = _mask() == 0
    expect = depth / depth.mean()  # the codec's unit mean
    assert np.abs(res.depth[0][kept_px] - expect[kept_px]).max() < 1e-5


@pytest.mark.parametrize(
    "params,inputs,message",
    [
        (dict(task="inpaint", prompt="x"), {}, "inpaint needs a mask"),
        (dict(task="depth-fix"), {"mask": True}, "depth-fix needs the depth map"),
        (dict(task="outpaint", prompt="x"), {}, "outpaint needs a pad"),
        (dict(task="outpaint", prompt="x", pad=(0, 0, 0, 20)), {}, "multiples of 16"),
        (dict(task="inpaint", prompt="x", pad=(0, 0, 0, 16)), {"mask": True}, "pad is for outpaint only"),
        (dict(task="inpaint"), {"mask": True}, "needs a prompt"),
        (dict(task="restyle", prompt="x"), {"depth_mask": True}, "depth mask needs depth regenerated"),
        (dict(task="outpaint", prompt="x", pad=(16, 0, 0, 0), regenerate="rgb"), {}, "regenerates RGB and depth"),
    ],
)
def test_bad_edits_fail_before_sampling(pipe, photo, params, inputs, message, monkeypatch):
    import mofo_core.app.edit as edit

    monkeypatch.setattr(edit, "sample", lambda *a, **k: pytest.fail("sampled"))
    inputs = {k: _mask() for k in inputs}
    with pytest.raises(ValueError, match=message):
        pipe.edit(EditParams(width=W, height=H, **params), photo, **inputs)


def _cli(assets, out, *args):
    model, text = assets
    return main(["edit", *args, "--model", model, "--text-encoder", text, "--device", "cpu", "--dtype", "fp32",
                 "--offline", "--num-steps", "2", "--output-dir", str(out), "--edge-rtol", "0"])


def test_cli_edit_modes_write_runs_and_a_wrong_size_mask_is_resized(assets, tmp_path, photo, caplog):
    Image.fromarray(photo).save(tmp_path / "in.png")
    Image.fromarray((_mask() * 255).astype(np.uint8)).resize((32, 24)).save(tmp_path / "small_mask.png")
    np.save(tmp_path / "d.npy", np.linspace(1.0, 4.0, H * W, dtype=np.float32).reshape(H, W))
    img, m, d = str(tmp_path / "in.png"), str(tmp_path / "small_mask.png"), str(tmp_path / "d.npy")
    out = tmp_path / "out"
    with caplog.at_level("WARNING"):
        assert _cli(assets, out, "inpaint", "--image", img, "--mask", m, "--prompt", "a vase") == 0
    assert "resized to fit" in caplog.text
    assert _cli(assets, out, "outpaint", "--image", img, "--pad-left", "16", "--prompt", "more", "--feather", "8") == 0
    assert _cli(assets, out, "restyle", "--image", img, "--depth", d, "--prompt", "winter") == 0
    assert _cli(assets, out, "depth-fix", "--image", img, "--depth", d, "--mask", m) == 0
    runs = sorted(out.iterdir())
    assert sorted(r.name.split("_")[2] for r in runs) == ["edit-depth-fix", "edit-inpaint", "edit-outpaint",
                                                          "edit-restyle"]
    for r in runs:
        meta = json.loads((r / "metadata.json").read_text())
        assert (r / "rgb.png").is_file() and (r / "depth.npy").is_file() and meta["task"] in r.name
    outp = next(r for r in runs if "outpaint" in r.name)
    assert np.load(outp / "depth.npy").shape == (H, W + 16)


def test_cli_edit_bad_input_is_one_error_and_writes_nothing(assets, tmp_path, photo, capsys):
    Image.fromarray(photo).save(tmp_path / "in.png")
    out = tmp_path / "out"
    assert _cli(assets, out, "inpaint", "--image", str(tmp_path / "in.png"), "--prompt", "x") == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "needs a mask" in err
    assert _cli(assets, out, "inpaint", "--image", str(tmp_path / "in.png"), "--prompt", "x", "--mask",
                str(tmp_path / "none.png")) == 2
    assert "does not exist" in capsys.readouterr().err and not out.exists()
