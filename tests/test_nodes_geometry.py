"""The mesh / alignment / normals / depth-picture nodes and the batch ranges, against the ComfyUI stand-ins, on
synthetic scenes with known answers; image -> depth over an image batch with the tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from node_env import pipeline as _pipeline
from node_env import run

trimesh = pytest.importorskip("trimesh", reason="trimesh (a test dependency) reads the meshes back")

NEW_NODES = ("MofoAlignDepth", "MofoDepthToMesh", "MofoDepthNormals", "MofoDepthToImage")


def _step(h=24, w=32, near=2.0, far=4.0):
    d = torch.full((1, h, w), near)
    d[:, :, w // 2:] = far
    return {"depth": d}


def test_new_nodes_give_every_input_a_tooltip(env):
    _, nodes = env
    for node_id in NEW_NODES:
        schema = nodes[node_id].define_schema()
        assert all(i.tooltip for i in schema.inputs), [i.id for i in schema.inputs if not i.tooltip]
    for node_id, name in (("MofoDepthDecode", "normalize"), ("MofoSaveDepth", "png16_range")):
        (new,) = [i for i in nodes[node_id].define_schema().inputs if i.id == name]
        assert new.tooltip and new.optional  # optional: API prompts saved before it still validate


def test_mesh_node_writes_a_textured_glb_with_no_face_across_the_step(env):
    tmp, nodes = env
    depth = _step()
    image = torch.rand(1, 48, 64, 3)  # another size than the depth: resized
    out = nodes["MofoDepthToMesh"].execute(image=image, depth=depth, fov_deg=60.0, edge_rtol=0.04, max_faces=0,
                                           texture=True, extra_format="obj", batch_index=0,
                                           filename_prefix="mofo/mesh")
    rel, file3d = out.args
    path = tmp / "output" / rel
    assert path.suffix == ".glb" and file3d.format == "glb"
    (geom,) = trimesh.load(path).geometry.values()
    z = -np.asarray(geom.vertices)[:, 2][np.asarray(geom.faces)]  # (F, 3) corner depths
    assert (np.isclose(z, 2.0).all(1) | np.isclose(z, 4.0).all(1)).all()
    assert len(geom.faces) == 2 * 23 * (32 - 2 - 2)
    assert geom.visual.material.baseColorTexture.size == (32, 24)
    names = [f["filename"] for f in out.ui["3d"]]
    assert names[0].endswith(".glb") and {n.rsplit(".", 1)[1] for n in names} == {"glb", "obj", "mtl", "png"}
    assert out.ui["images"] and "faces" in out.ui["text"][0]
    small = nodes["MofoDepthToMesh"].execute(image=image, depth=depth, fov_deg=60.0, edge_rtol=0.04, max_faces=200,
                                             texture=False, extra_format="ply", batch_index=0,
                                             filename_prefix="mofo/mesh")
    (geom,) = trimesh.load(tmp / "output" / small.args[0]).geometry.values()
    assert 0 < len(geom.faces) <= 200
    with pytest.raises(ValueError, match="batch_index 3"):
        nodes["MofoDepthToMesh"].execute(image=image, depth=depth, fov_deg=60.0, edge_rtol=0.04, max_faces=0,
                                         texture=True, extra_format="none", batch_index=3, filename_prefix="m")
    noisy = {"depth": torch.rand(1, 16, 16) * 8 + 1}
    with pytest.raises(ValueError, match="every pixel is on a depth edge"):
        nodes["MofoDepthToMesh"].execute(image=image, depth=noisy, fov_deg=60.0, edge_rtol=0.001, max_faces=0,
                                         texture=True, extra_format="none", batch_index=0, filename_prefix="m")


ALIGN = dict(method="known distance", distance=2.0, at_x=-1, at_y=-1, measure="planar depth", fov_deg=65.0,
             fit="scale", space="depth", loss="huber", fit_over="each image", reference_is="disparity (near = bright)")


def _align(nodes, **kw):
    return nodes["MofoAlignDepth"].execute(**{**ALIGN, **kw})


def test_align_to_a_stated_distance_at_a_pixel_or_in_a_mask(env):
    _, nodes = env
    rel = torch.rand(2, 20, 30) + 0.5
    out = _align(nodes, depth={"depth": rel}, distance=0.75, at_x=4, at_y=6)
    d = out.args[0]["depth"]
    for i in range(2):  # the median of the 5 x 5 window around (x 4, y 6) is 0.75 in each image
        assert float(d[i, 4:9, 2:7].median()) == pytest.approx(0.75, rel=1e-5)
    assert "stated distance" in out.args[1] and out.ui["text"]
    mask = torch.zeros(1, 20, 30)
    mask[:, 10:, :] = 1  # the lower half is the floor region at 3 m
    d = _align(nodes, depth={"depth": rel}, distance=3.0, mask=mask, fit_over="whole batch").args[0]["depth"]
    assert float(d[:, 10:].flatten().median()) == pytest.approx(3.0, rel=1e-2)  # one scale for both frames
    np.testing.assert_allclose((d[0] / rel[0]).numpy(), (d[1] / rel[1]).numpy(), rtol=1e-5)


def test_align_fits_to_a_metric_reference_despite_outliers(env):
    _, nodes = env
    g = torch.Generator().manual_seed(0)
    rel = torch.rand(1, 24, 32, generator=g) + 1.0
    metric = 3.5 * rel
    bad = torch.rand(metric.shape, generator=g) < 0.2
    ref = torch.where(bad, torch.rand(metric.shape, generator=g) * 50, metric)
    out = _align(nodes, depth={"depth": rel}, method="fit to reference", reference={"depth": ref})
    assert out.args[2] == pytest.approx(3.5, rel=1e-4) and "huber" in out.args[1]
    # MoGe geometry: inf where masked, a mask, at twice the resolution
    moge = torch.nn.functional.interpolate(metric[:, None], scale_factor=2, mode="nearest")[:, 0]
    sky = torch.zeros_like(moge, dtype=torch.bool)
    sky[:, :10] = True
    moge_geom = {"depth": torch.where(sky, torch.full_like(moge, float("inf")), moge), "mask": ~sky,
                 "image": torch.rand(1, 48, 64, 3)}
    assert _align(nodes, depth={"depth": rel}, method="fit to reference", loss="l2",
                  reference=moge_geom).args[2] == pytest.approx(3.5, rel=1e-5)
    # Depth Anything 3 geometry: a sky probability; the sky's depth is garbage and must be left out
    da3 = {"depth": torch.where(sky, torch.full_like(moge, 1000.0), moge), "sky": sky.float(), "mode": "mono"}
    assert _align(nodes, depth={"depth": rel}, method="fit to reference", loss="l2",
                  reference=da3).args[2] == pytest.approx(3.5, rel=1e-5)


def test_align_to_a_disparity_image_in_disparity_space(env):
    _, nodes = env
    rel = torch.rand(1, 16, 16) * 3 + 1.0
    disp = (0.9 / rel + 0.02).clamp(0, 1)  # a ControlNet-style depth image: near = bright, affine in 1 / depth
    out = _align(nodes, depth={"depth": rel}, method="fit to reference", fit="scale + shift", space="disparity",
                 reference_image=disp[..., None].expand(-1, -1, -1, 3))
    np.testing.assert_allclose(out.args[0]["depth"].numpy(), (1 / disp).numpy(), rtol=1e-4)


def test_align_errors_name_the_fix(env):
    _, nodes = env
    rel = {"depth": torch.rand(1, 8, 8) + 1}
    with pytest.raises(ValueError, match="needs exactly one of reference"):
        _align(nodes, depth=rel, method="fit to reference")
    with pytest.raises(ValueError, match="outside"):
        _align(nodes, depth=rel, at_x=100)
    with pytest.raises(ValueError, match="reference has 3 maps"):
        _align(nodes, depth=rel, method="fit to reference", reference={"depth": torch.rand(3, 8, 8) + 1})


def test_normals_node_colours_a_wall_and_a_floor(env):
    _, nodes = env
    wall = {"depth": torch.full((1, 12, 16), 3.0)}
    (img,) = nodes["MofoDepthNormals"].execute(depth=wall, fov_deg=60.0, convention="controlnet", edge_rtol=0.1).args
    assert img.shape == (1, 12, 16, 3)
    np.testing.assert_allclose(img[0, 6, 8].numpy(), [0.5, 0.5, 1.0], atol=1e-6)
    (gl,) = nodes["MofoDepthNormals"].execute(depth=wall, fov_deg=60.0, convention="opengl", edge_rtol=0.1).args
    np.testing.assert_allclose(gl[0, 6, 8].numpy(), [0.5, 0.5, 1.0], atol=1e-6)


def _two_frames():
    wall = torch.full((2, 16, 16), 4.0)
    wall[0, :, :4] = 1.0  # frame 0: something near on the left; frame 1: something far
    wall[1, :, :4] = 20.0
    return wall


def test_depth_picture_over_a_batch_does_not_flicker(env):
    _, nodes = env
    frames = {"depth": _two_frames()}
    kw = dict(depth=frames, colormap="grey", near=1.0, far=20.0)
    (per,) = nodes["MofoDepthToImage"].execute(normalize="per image", **kw).args
    (batch,) = nodes["MofoDepthToImage"].execute(normalize="batch", **kw).args
    (fixed,) = nodes["MofoDepthToImage"].execute(normalize="fixed range", **kw).args
    assert per[0, 8, 8, 0] != per[1, 8, 8, 0] and batch[0, 8, 8, 0] == batch[1, 8, 8, 0]
    assert float(fixed[0, 0, 0, 0]) == 1.0 and float(fixed[1, 0, 0, 0]) == 0.0


def test_depth_decode_and_save_depth_over_a_batch(env):
    tmp, nodes = env
    from mofo_core import encode_depth
    from mofo_core.depth.files import load_depth

    frames = _two_frames()
    latent = {"samples": encode_depth(frames), "height": 1, "width": 1}
    _, per = run(nodes, "MofoDepthDecode", depth_latent=latent, colormap="grey")  # the default: per image
    depth, batch = run(nodes, "MofoDepthDecode", depth_latent=latent, colormap="grey", normalize="batch")
    assert per[0, 8, 8, 0] != per[1, 8, 8, 0]
    assert batch[0, 8, 8, 0] == pytest.approx(float(batch[1, 8, 8, 0]), abs=2e-3)  # same wall, same grey
    out = nodes["MofoSaveDepth"].execute(depth={"depth": frames}, filename_prefix="seq/d", format="png16",
                                         png16_range="batch")
    a, b = (load_depth(tmp / "output" / "seq" / f["filename"]) for f in out.ui["depth_files"])
    from PIL import Image

    raw = [np.asarray(Image.open(tmp / "output" / "seq" / f["filename"])) for f in out.ui["depth_files"]]
    assert raw[0][8, 8] == raw[1][8, 8]  # one scale: the wall has the same 16-bit value in both files
    np.testing.assert_allclose(a[8, 8], 4.0, rtol=1e-3) and np.testing.assert_allclose(b[8, 8], 4.0, rtol=1e-3)
    fixed = nodes["MofoSaveDepth"].execute(depth={"depth": frames}, filename_prefix="seq/f", format="png16",
                                           png16_range="fixed range", png16_max_depth=40.0)
    top = np.asarray(Image.open(tmp / "output" / "seq" / fixed.ui["depth_files"][1]["filename"]))
    assert int(top[0, 0]) == round(20.0 / 40.0 * 65535)


def test_image_to_depth_over_an_image_batch(env):
    """A batch of frames (e.g. a video's) through VAEEncode -> Mofo Sampler (i2d) -> Mofo Depth Decode: one depth
    map per frame, in order; the first frame's depth is the one it gets alone (CPU noise is drawn in batch order)."""
    tmp, nodes = env
    model, pos, neg = _pipeline(nodes, tmp)
    from mofo_core import AutoEncoderConfig, build_autoencoder

    vae = build_autoencoder(AutoEncoderConfig.tiny())
    frames = torch.rand(3, 32, 32, 3)
    rs, ds = run(nodes, "MofoScheduler", steps=2, mode="i2d", mu=1.1, log2_alpha=5.0, rgb_denoise=1.0,
                 depth_denoise=1.0)
    kw = dict(model=model, positive=pos, negative=neg, rgb_sigmas=rs, depth_sigmas=ds, cfg=1.0, depth_cfg=-1.0,
              seed=11, width=512, height=512, batch_size=1, noise="cpu")
    _, dl = run(nodes, "MofoSampler", rgb_latent={"samples": vae.encode(frames)}, **kw)
    depth, img = run(nodes, "MofoDepthDecode", depth_latent=dl, colormap="grey", normalize="batch")
    assert depth["depth"].shape == (3, 32, 32) and img.shape == (3, 32, 32, 3)
    _, one = run(nodes, "MofoSampler", rgb_latent={"samples": vae.encode(frames[:1])}, **kw)
    (alone, _) = run(nodes, "MofoDepthDecode", depth_latent=one, colormap="grey")
    torch.testing.assert_close(depth["depth"][0], alone["depth"][0], rtol=1e-4, atol=1e-4)
