"""Depth files and previews: disparity normalisation, magma, PNG16 / npy / EXR round trips, loader errors."""

from __future__ import annotations

import logging
import struct
import subprocess
import sys
import zlib

import numpy as np
import OpenEXR  # test-only here: the package imports it lazily
import pytest
from helpers import ROOT
from PIL import Image

from mofo_core.depth import files as depth_io
from mofo_core.depth.files import (
    load_depth,
    save_depth_exr,
    save_depth_npy,
    save_depth_png16,
    save_magma_png,
)
from mofo_core.depth.maps import depth_to_disparity_vis, magma
from mofo_core.errors import MissingDependencyError
from mofo_core.geometry import cloud_export as export


@pytest.fixture
def depth():
    """(6, 8) float32 depth in [0.5, 3] with one pixel of each invalid kind."""
    d = np.random.default_rng(1).uniform(0.5, 3.0, size=(6, 8)).astype(np.float32)
    d[0, 0], d[0, 1], d[0, 2], d[0, 3] = 0.0, -1.0, np.inf, np.nan
    return d


# --------------------------------------------------------------------------------------------- preview


def test_disparity_vis_percentile_normalisation():
    k = np.arange(1, 101, dtype=np.float32)  # disparities 1..100
    d = (1.0 / k).reshape(10, 10)
    d[9, 9] = 0.0  # invalid: drops disparity 100 from the percentiles
    vis = depth_to_disparity_vis(d)
    assert vis.dtype == np.float64 and vis.shape == (10, 10)
    lo, hi = np.percentile(np.arange(1, 100), [5, 95])  # 5.9 and 94.1
    assert (lo, hi) == pytest.approx((5.9, 94.1))
    np.testing.assert_allclose(vis.ravel()[:99], np.clip((k[:99] - lo) / (hi - lo), 0, 1), atol=1e-6)
    assert vis[9, 9] == 0.0
    assert vis[0, 0] == 0.0 and vis[9, 8] == 1.0  # far (disparity 1) dark, near (disparity 99) bright


def test_disparity_vis_invalid_pixels_and_empty(depth):
    vis = depth_to_disparity_vis(depth)
    assert (vis[0, :4] == 0).all() and np.isfinite(vis).all() and vis.min() >= 0 and vis.max() <= 1
    np.testing.assert_array_equal(depth_to_disparity_vis(np.zeros((3, 3))), np.zeros((3, 3)))
    flat = depth_to_disparity_vis(np.full((3, 3), 2.0))  # hi == lo: guarded division, all 0
    np.testing.assert_array_equal(flat, 0.0)


def test_magma_known_values():
    # Values of matplotlib's cm.magma (uint8(255 * rgb)), checked against matplotlib 3.11.2.
    x = np.array([0.0, 1 / 256 - 1e-6, 1 / 256, 0.5, 0.999, 1.0, -0.5, 7.0])
    got = magma(x)
    assert got.dtype == np.uint8 and got.shape == (8, 3)
    expected = [
        [0, 0, 3],
        [0, 0, 3],
        [0, 0, 4],
        [182, 54, 121],
        [251, 252, 191],
        [251, 252, 191],
        [0, 0, 3],
        [251, 252, 191],
    ]
    np.testing.assert_array_equal(got, expected)
    ramp = magma(np.linspace(0, 1, 256)).astype(int)
    luma = ramp @ [299, 587, 114]
    assert (np.diff(luma) > 0).mean() > 0.95  # magma brightens almost monotonically
    assert magma(np.zeros((2, 5))).shape == (2, 5, 3)


def test_magma_rejects_nan():
    with pytest.raises(ValueError, match="nan_to_num"):
        magma(np.array([0.2, np.nan]))


def test_save_magma_png(tmp_path, depth):
    out = save_magma_png(tmp_path / "m.png", depth)
    img = Image.open(out)
    assert img.mode == "RGB" and img.size == (8, 6)
    np.testing.assert_array_equal(np.asarray(img), magma(depth_to_disparity_vis(depth)))


def test_save_magma_png_all_invalid_still_writes(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="mofo_core.depth.files"):
        out = save_magma_png(tmp_path / "m.png", np.zeros((4, 4)))
    assert "no finite positive pixel" in caplog.text
    np.testing.assert_array_equal(np.asarray(Image.open(out)), np.broadcast_to([0, 0, 3], (4, 4, 3)))


# --------------------------------------------------------------------------------------------- writers + loader


def test_png16_roundtrip(tmp_path, depth):
    info = save_depth_png16(tmp_path / "d.png", depth)
    valid = np.isfinite(depth) & (depth > 0)
    max_depth = float(depth[valid].max())
    assert info["path"] == tmp_path / "d.png"
    assert info["max_depth"] == max_depth and info["scale"] == 65535 / max_depth
    img = Image.open(info["path"])
    raw = np.asarray(img)
    assert img.mode == "I;16" and raw.dtype == np.uint16
    assert float(img.text["mofo_depth_scale"]) == info["scale"]
    assert raw.max() == 65535 and raw[np.unravel_index(np.argmax(np.where(valid, depth, 0)), depth.shape)] == 65535
    assert (raw[0, :4] == 0).all()
    back = load_depth(info["path"])
    assert back.dtype == np.float32
    np.testing.assert_allclose(back[valid], depth[valid], atol=0.5 / info["scale"] + 1e-6)
    assert (back[~valid] == 0).all()


def test_npy_roundtrip_keeps_raw_values(tmp_path):
    d = np.array([[1.5, np.inf], [-2.0, 0.0]], dtype=np.float64)
    out = save_depth_npy(tmp_path / "d.raw", d)  # no ".npy" appended
    assert out.name == "d.raw" and np.load(out).dtype == np.float32
    np.testing.assert_array_equal(np.load(out), d.astype(np.float32))
    save_depth_npy(tmp_path / "d.npy", d)
    np.testing.assert_array_equal(load_depth(tmp_path / "d.npy"), d.astype(np.float32))


def test_exr_roundtrip(tmp_path, depth):
    d = np.nan_to_num(depth, nan=0.0)
    out = save_depth_exr(tmp_path / "d.exr", d)
    with OpenEXR.File(str(out), separate_channels=True) as f:  # read back with the bindings directly
        ch = {name: c.pixels.copy() for name, c in f.channels().items()}
    assert list(ch) == ["Z"] and ch["Z"].dtype == np.float32
    np.testing.assert_array_equal(ch["Z"], d)
    np.testing.assert_array_equal(load_depth(out), d)


def _write_exr(path, channels):
    OpenEXR.File({"type": OpenEXR.scanlineimage}, channels).write(str(path))


def test_exr_channel_choice(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(3, 4) + 1
    _write_exr(tmp_path / "y.exr", {"Y": a, "A": np.ones_like(a)})
    np.testing.assert_array_equal(load_depth(tmp_path / "y.exr"), a)
    _write_exr(tmp_path / "rgb.exr", {"R": a, "G": a, "B": a})
    np.testing.assert_array_equal(load_depth(tmp_path / "rgb.exr"), a)
    _write_exr(tmp_path / "half.exr", {"depth": a.astype(np.float16)})
    np.testing.assert_array_equal(load_depth(tmp_path / "half.exr"), a)
    _write_exr(tmp_path / "col.exr", {"R": a, "G": a * 2, "B": a})
    with pytest.raises(ValueError, match="different channels"):
        load_depth(tmp_path / "col.exr")
    _write_exr(tmp_path / "odd.exr", {"foo": a, "bar": a})
    with pytest.raises(ValueError, match="none is named Z/Y/R"):
        load_depth(tmp_path / "odd.exr")


def test_exr_missing_library(tmp_path, monkeypatch, depth):
    monkeypatch.setitem(sys.modules, "OpenEXR", None)  # makes `import OpenEXR` fail
    with pytest.raises(MissingDependencyError, match="pip install OpenEXR") as e:
        save_depth_exr(tmp_path / "d.exr", depth)
    assert isinstance(e.value, ImportError)
    assert not (tmp_path / "d.exr").exists()
    (tmp_path / "x.exr").write_bytes(b"\x76\x2f\x31\x01")
    with pytest.raises(MissingDependencyError, match="pip install OpenEXR"):
        load_depth(tmp_path / "x.exr")


def test_tiff16_and_float_tiff_read_as_is(tmp_path):
    a = (np.arange(20, dtype=np.uint16) * 3000).reshape(4, 5)
    Image.fromarray(a).save(tmp_path / "d.tif")
    np.testing.assert_array_equal(load_depth(tmp_path / "d.tif"), a.astype(np.float32))
    Image.fromarray(a).save(tmp_path / "plain.png")  # 16-bit PNG without our scale: read as-is
    np.testing.assert_array_equal(load_depth(tmp_path / "plain.png"), a.astype(np.float32))
    f = np.linspace(0.1, 9.0, 20, dtype=np.float32).reshape(4, 5)
    Image.fromarray(f).save(tmp_path / "f.tiff")
    np.testing.assert_array_equal(load_depth(tmp_path / "f.tiff"), f)


def test_eight_bit_needs_disparity_flag(tmp_path):
    a = np.array([[0, 1, 2], [4, 128, 255]], dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "disp.png")
    with pytest.raises(ValueError, match=r"8-bit image: depth needs 16-bit PNG/TIFF, EXR or \.npy.*disparity=True"):
        load_depth(tmp_path / "disp.png")
    d = load_depth(tmp_path / "disp.png", disparity=True)
    np.testing.assert_allclose(d, [[0, 1, 0.5], [0.25, 1 / 128, 1 / 255]], rtol=1e-6)
    # Grey stored as RGB (equal channels) is fine; a colour image is not.
    Image.fromarray(np.repeat(a[..., None], 3, axis=2)).save(tmp_path / "grey_rgb.png")
    np.testing.assert_allclose(load_depth(tmp_path / "grey_rgb.png", disparity=True), d)
    Image.fromarray(magma(a / 255.0)).save(tmp_path / "magma.png")
    with pytest.raises(ValueError, match="colour-mapped depth preview"):
        load_depth(tmp_path / "magma.png", disparity=True)
    with pytest.raises(ValueError, match="different channels"):
        load_depth(tmp_path / "magma.png")


def test_disparity_from_npy_and_png16_depth_refused(tmp_path):
    np.save(tmp_path / "disp.npy", np.array([[2.0, 0.0], [-1.0, np.inf]], np.float32))
    np.testing.assert_array_equal(load_depth(tmp_path / "disp.npy", disparity=True), [[0.5, 0.0], [0.0, 0.0]])
    save_depth_png16(tmp_path / "d.png", np.ones((2, 2)))
    with pytest.raises(ValueError, match="holds depth, not disparity"):
        load_depth(tmp_path / "d.png", disparity=True)


def _png16_rgb(path, rgb16: np.ndarray) -> None:
    """Minimal encoder for a 16-bit RGB PNG (colour type 2), which Pillow cannot write."""
    h, w, _ = rgb16.shape
    raw = b"".join(b"\x00" + rgb16[r].astype(">u2").tobytes() for r in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


def test_sixteen_bit_colour_png_refused(tmp_path):
    _png16_rgb(tmp_path / "c.png", np.full((2, 3, 3), 40000, np.uint16))
    assert Image.open(tmp_path / "c.png").mode == "RGB"  # what Pillow would silently give: 8 bits
    with pytest.raises(ValueError, match="16-bit colour or grey\\+alpha PNG"):
        load_depth(tmp_path / "c.png")


def test_multichannel_npy(tmp_path):
    a = np.arange(6, dtype=np.float32).reshape(2, 3) + 1
    np.save(tmp_path / "same.npy", np.stack([a, a, a], -1))
    np.testing.assert_array_equal(load_depth(tmp_path / "same.npy"), a)
    np.save(tmp_path / "one.npy", a[..., None])
    np.testing.assert_array_equal(load_depth(tmp_path / "one.npy"), a)
    np.save(tmp_path / "diff.npy", np.stack([a, a + 1], -1))
    with pytest.raises(ValueError, match="different channels"):
        load_depth(tmp_path / "diff.npy")
    np.save(tmp_path / "4d.npy", np.zeros((1, 2, 3, 1)))
    with pytest.raises(ValueError, match=r"depth must be \(H, W\)"):
        load_depth(tmp_path / "4d.npy")


def test_nan_rejected(tmp_path):
    np.save(tmp_path / "n.npy", np.array([[1.0, np.nan]], np.float32))
    with pytest.raises(ValueError, match=r"depth contains NaN at 1 pixels.*nan_to_num"):
        load_depth(tmp_path / "n.npy")
    save_depth_exr(tmp_path / "n.exr", np.array([[1.0, np.nan]], np.float32))
    with pytest.raises(ValueError, match="depth contains NaN"):
        load_depth(tmp_path / "n.exr")


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("d.jpg", b"\xff\xd8\xff", "unsupported depth file"),
        ("d.png", b"not a png at all", "cannot read"),
        pytest.param(
            "d.tif", b"II*\x00garbage", "cannot read", marks=pytest.mark.filterwarnings("ignore:Corrupt EXIF")
        ),
        ("d.npy", b"\x93NUMPY garbage", "cannot read"),
        ("d.exr", b"\x76\x2f\x31\x01garbage", "cannot read"),
    ],
)
def test_unreadable_files(tmp_path, name, content, match):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ValueError, match=match):
        load_depth(tmp_path / name)


def test_npy_bad_dtype(tmp_path):
    np.save(tmp_path / "b.npy", np.ones((2, 2), bool))
    with pytest.raises(ValueError, match="real-valued"):
        load_depth(tmp_path / "b.npy")
    np.save(tmp_path / "o.npy", np.array([[None]], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="cannot read"):
        load_depth(tmp_path / "o.npy")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_depth(tmp_path / "nope.npy")


# --------------------------------------------------------------------------------------------- writer errors


@pytest.mark.parametrize("writer", [save_depth_png16, save_depth_npy, save_depth_exr, save_magma_png])
def test_writers_reject_bad_depth_and_folder(tmp_path, writer):
    with pytest.raises(ValueError, match="2-D"):
        writer(tmp_path / "x", np.ones((1, 4, 4)))
    with pytest.raises(ValueError, match="create it first"):
        writer(tmp_path / "missing" / "x", np.ones((4, 4)))
    assert list(tmp_path.iterdir()) == []


def test_png16_needs_a_valid_pixel(tmp_path):
    with pytest.raises(ValueError, match="no finite positive pixel"):
        save_depth_png16(tmp_path / "d.png", np.full((2, 2), np.nan))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("writer", [save_depth_png16, save_depth_npy, save_depth_exr, save_magma_png])
def test_writers_are_atomic(tmp_path, monkeypatch, writer, depth):
    target = tmp_path / "d.out"
    target.write_bytes(b"old")

    def boom(*_args):
        raise OSError("disk full")

    monkeypatch.setattr(export.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        writer(target, depth)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["d.out"]


def test_light_imports():
    """Importing the depth / point-cloud modules pulls none of the optional heavy libraries."""
    code = (
        "import sys, mofo_core.geometry.pointcloud, mofo_core.geometry.cloud_export, mofo_core.depth.files;"
        "bad = sorted(m for m in ('scipy', 'PIL', 'OpenEXR', 'matplotlib', 'trimesh', 'plyfile') if m in sys.modules);"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert depth_io.PNG_SCALE_KEY == "mofo_depth_scale"


def test_channel_first_or_empty_npy_is_refused(tmp_path):
    np.save(tmp_path / "two.npy", np.ones((2, 8, 8), np.float32))  # two maps, not an (H, W, C) image
    with pytest.raises(ValueError, match=r"shape \(2, 8, 8\); depth must be \(H, W\) -- one map per .npy"):
        load_depth(tmp_path / "two.npy")
    np.save(tmp_path / "empty.npy", np.ones((0, 0), np.float32))
    with pytest.raises(ValueError, match="empty array"):
        load_depth(tmp_path / "empty.npy")


def test_npy_whose_header_declares_more_than_the_file_holds_is_refused_before_allocating(tmp_path):
    from numpy.lib import format as npy

    path = tmp_path / "huge.npy"
    with open(path, "wb") as f:  # a header that declares 16 TB, then 100 bytes
        npy.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (2_000_000, 2_000_000)})
        f.write(b"\0" * 100)
    with pytest.raises(ValueError, match=r"declares a float32 array of shape \(2000000, 2000000\).*holds 100"):
        load_depth(path)
    ok = np.random.default_rng(0).random((4, 6)).astype(np.float32) + 0.5
    np.save(tmp_path / "ok.npy", ok)
    np.testing.assert_array_equal(load_depth(tmp_path / "ok.npy"), ok)  # the check passes a whole file
    data = (tmp_path / "ok.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[:-8])
    with pytest.raises(ValueError, match="truncated or damaged"):
        load_depth(tmp_path / "cut.npy")
