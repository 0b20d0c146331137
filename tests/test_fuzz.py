"""Property-based fuzzing of everything that reads or writes user files: safetensors headers, depth readers and
writers, the depth codec and the point-cloud writers. Hundreds of generated cases; the only exceptions allowed
are the documented ones (`CheckpointError`, `ValueError`, `FileNotFoundError`), and what succeeds must be sane.
Kept to a few seconds in all (max_examples per property, no deadline: first calls import Pillow / OpenEXR)."""

from __future__ import annotations

import json
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

hypothesis = pytest.importorskip("hypothesis", reason="the fuzz suite needs the test extra: pip install -e .[test]")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from mofo_core.depth.codec import check_depth_map, decode_depth, encode_depth  # noqa: E402
from mofo_core.depth.files import (  # noqa: E402
    load_depth,
    save_depth_exr,
    save_depth_npy,
    save_depth_png16,
    save_magma_png,
)
from mofo_core.errors import CheckpointError  # noqa: E402
from mofo_core.geometry.cloud_export import write_glb, write_ply  # noqa: E402
from mofo_core.geometry.pointcloud import depth_to_points  # noqa: E402
from mofo_core.weights.checkpoint import DTYPES, read_header  # noqa: E402

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WORK = Path(tempfile.mkdtemp(prefix="mofo_fuzz_"))  # hypothesis reruns a test body many times: no tmp_path

# -- safetensors headers -----------------------------------------------------------------------------------

_json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=8))
_entry = st.one_of(
    st.fixed_dictionaries(
        {
            "dtype": st.one_of(st.sampled_from(sorted(DTYPES)), st.text(max_size=6)),
            "shape": st.one_of(st.lists(st.integers(-2, 2**40), max_size=4), _json_scalar),
            "data_offsets": st.one_of(st.lists(st.integers(-8, 2**40), max_size=3), _json_scalar),
        }
    ),
    _json_scalar,
    st.lists(_json_scalar, max_size=3),
)
_doc = st.one_of(
    st.dictionaries(st.text(max_size=10), _entry, max_size=5),
    st.lists(_json_scalar, max_size=3),
    _json_scalar,
)


def _safetensors_bytes(doc, n_override, body: bytes) -> bytes:
    raw = json.dumps(doc).encode()
    n = len(raw) if n_override is None else n_override
    return struct.pack("<Q", n) + raw + body


@FUZZ
@given(doc=_doc, n_override=st.one_of(st.none(), st.integers(0, 2**64 - 1)), body=st.binary(max_size=64))
def test_read_header_refuses_anything_malformed_with_one_error(doc, n_override, body):
    path = WORK / "fuzz.safetensors"
    path.write_bytes(_safetensors_bytes(doc, n_override, body))
    try:
        header = read_header(path)
    except CheckpointError as e:
        assert str(path) in str(e) or path.name in str(e)
        return
    size = path.stat().st_size
    for info in header.tensors.values():  # what is accepted lies inside the file and has the size its shape needs
        assert 0 <= info.begin <= info.end and header.data_start + info.end <= size
        assert info.end - info.begin == int(np.prod(info.shape, dtype=object)) * DTYPES[info.dtype].itemsize


@FUZZ
@given(data=st.binary(max_size=200))
def test_read_header_on_random_bytes(data):
    path = WORK / "random.safetensors"
    path.write_bytes(data)
    try:
        read_header(path)
    except CheckpointError:
        pass


# -- depth readers ---------------------------------------------------------------------------------------


@FUZZ
@given(suffix=st.sampled_from([".npy", ".png", ".tif", ".exr"]), data=st.binary(max_size=300),
       disparity=st.booleans())
def test_load_depth_on_random_bytes(suffix, data, disparity):
    path = WORK / f"random{suffix}"
    path.write_bytes(data)
    try:
        d = load_depth(path, disparity=disparity)
    except ValueError:
        return
    assert d.ndim == 2 and d.dtype == np.float32 and d.size > 0


_depth_dtypes = st.sampled_from([np.float16, np.float32, np.float64, np.uint8, np.uint16, np.int32, np.int64,
                                 np.bool_, np.complex64])


@FUZZ
@given(arr=hnp.arrays(_depth_dtypes, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6)),
       disparity=st.booleans(), nan_ok=st.booleans())
def test_load_depth_npy_any_array(arr, disparity, nan_ok):
    path = WORK / "arr.npy"
    np.save(path, arr)
    try:
        d = load_depth(path, disparity=disparity, nan_ok=nan_ok)
    except ValueError:
        return
    assert d.ndim == 2 and d.size > 0 and d.dtype == np.float32
    assert nan_ok or not np.isnan(d).any()
    if arr.ndim == 3 and arr.shape[0] > 1 and arr.shape[2] > 4:
        pytest.fail(f"a channels-first stack {arr.shape} was read as one map")


@FUZZ
@given(values=hnp.arrays(np.uint16, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=6)),
       scale=st.one_of(st.floats(), st.text(max_size=6)))
def test_load_depth_png_with_any_stored_scale(values, scale):
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("mofo_depth_scale", repr(scale) if isinstance(scale, float) else scale)
    path = WORK / "scaled.png"
    Image.fromarray(values).save(path, pnginfo=info)
    try:
        d = load_depth(path)
    except ValueError:
        return
    stored = values > 0
    assert np.isfinite(d).all() and (d[stored] > 0).all() and (d[~stored] == 0).all()


# -- depth writers and round trips -------------------------------------------------------------------------

_depth_maps = hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=8),
                         elements=st.floats(width=32, allow_subnormal=True))


@FUZZ
@given(depth=_depth_maps)
def test_writers_round_trip_or_refuse(depth):
    try:
        info = save_depth_png16(WORK / "d16.png", depth)
    except ValueError:
        assert not (np.isfinite(depth) & (depth > 0)).any()
    else:
        back = load_depth(info["path"])
        valid = np.isfinite(depth) & (depth > 0)
        assert back.shape == depth.shape and np.isfinite(back).all() and (back >= 0).all()
        assert (back[~valid] == 0).all()
        # quantised to 65535 levels of the largest valid depth (pixels below half a level read 0)
        tol = info["max_depth"] / 65535 * 0.5 + 1e-6 * info["max_depth"]
        np.testing.assert_allclose(back[valid], depth[valid], atol=tol, rtol=1e-5)
    np.testing.assert_array_equal(load_depth(save_depth_npy(WORK / "d.npy", depth), nan_ok=True), depth)
    exr = load_depth(save_depth_exr(WORK / "d.exr", depth), nan_ok=True)
    np.testing.assert_array_equal(exr, depth)
    save_magma_png(WORK / "m.png", depth)


# -- depth codec -------------------------------------------------------------------------------------------


@FUZZ
@given(depth=hnp.arrays(np.float32, st.tuples(st.integers(1, 2), st.sampled_from([16, 32]),
                                               st.sampled_from([16, 32])),
                        elements=st.floats(width=32, allow_subnormal=True)),
       robust=st.booleans())
def test_codec_checked_maps_encode_to_finite_tokens(depth, robust):
    try:
        check_depth_map(depth, robust=robust)
    except ValueError:
        return
    tokens = encode_depth(torch.from_numpy(depth), robust=robust)
    assert tokens.shape == (depth.shape[0], depth.shape[1] * depth.shape[2] // 256, 256)
    assert torch.isfinite(tokens).all(), "a map that passed check_depth_map encoded to non-finite tokens"


@FUZZ
@given(tokens=hnp.arrays(np.float32, st.tuples(st.integers(1, 2), st.just(2), st.just(256)),
                         elements=st.floats(width=32)),
       robust=st.booleans())
def test_codec_decodes_any_tokens(tokens, robust):
    depth = decode_depth(torch.from_numpy(tokens), 16, 32, robust=robust)
    assert depth.shape == (tokens.shape[0], 16, 32)
    finite_in = np.isfinite(tokens).all()
    if robust and finite_in:
        assert torch.isfinite(depth).all() and (depth >= 0).all()


# -- point clouds ------------------------------------------------------------------------------------------


@FUZZ
@given(depth=_depth_maps, fov=st.floats(), edge_rtol=st.floats(), max_points=st.one_of(st.none(),
                                                                                      st.integers(-1, 20)),
       sor=st.booleans())
def test_point_cloud_and_writers(depth, fov, edge_rtol, max_points, sor):
    colors = np.zeros(depth.shape + (3,), np.uint8)
    try:
        pts, cols = depth_to_points(depth, colors, fov_deg=fov, edge_rtol=edge_rtol, max_points=max_points, sor=sor)
    except ValueError:
        return
    assert pts.dtype == np.float32 and pts.shape[1] == 3 and len(pts) == len(cols)
    assert max_points is None or len(pts) <= max_points
    try:
        write_ply(WORK / "c.ply", pts, cols)
        write_glb(WORK / "c.glb", pts, cols)
    except ValueError:  # points overflowing float32 (depth near float32 max, tiny fov) are refused, not written
        assert not np.isfinite(pts).all()
        return
    head = (WORK / "c.ply").read_bytes()[:200]
    assert f"element vertex {len(pts)}".encode() in head
    assert (WORK / "c.glb").read_bytes()[:4] == b"glTF"


def test_capped_cloud_is_the_reference_subset():
    """Drawn before back-projection, the cap still gives exactly the reference's subset (same rng, same order)."""
    depth = np.random.default_rng(3).uniform(1, 2, (40, 50)).astype(np.float32)
    full, full_cols = depth_to_points(depth, None, edge_rtol=0)
    idx = np.random.default_rng(0).choice(len(full), 300, replace=False)
    pts, _ = depth_to_points(depth, None, edge_rtol=0, max_points=300)
    np.testing.assert_array_equal(pts, full[idx])
    with_sor, _ = depth_to_points(depth, None, edge_rtol=0, max_points=300, sor=True)
    assert len(with_sor) == 300
