"""Normals from depth on synthetic scenes with known normals: tilted planes, a sphere, a step edge."""

from __future__ import annotations

import numpy as np
import pytest

from mofo_core.camera import fov_intrinsics
from mofo_core.geometry.normals import depth_to_normals, normals_to_image


def _plane_depth(h, w, normal, c, fov=60.0):
    """Planar depth of the plane n . P = c (glTF camera frame) seen by the pinhole of `fov`."""
    fx, fy, cx, cy = fov_intrinsics(w, h, fov)
    u = np.arange(w) + 0.5
    v = np.arange(h) + 0.5
    rx = (u[None, :] - cx) / fx  # the ray through each pixel at depth 1: (rx, ry, -1)
    ry = -(v[:, None] - cy) / fy
    n = np.asarray(normal, float) / np.linalg.norm(normal)
    return c / (n[0] * rx + n[1] * ry - n[2]), n


@pytest.mark.parametrize("normal", [(0, 0, 1), (0.4, 0, 1), (0, 0.5, 1), (-0.3, -0.6, 1), (0, 1, 0.6)])
def test_plane_normals_are_exact(normal):
    depth, n = _plane_depth(32, 40, normal, c=-3.0)
    assert (depth > 0).all()
    got = depth_to_normals(depth, fov_deg=60.0, edge_rtol=0.5)
    np.testing.assert_allclose(got.reshape(-1, 3), np.tile(n, (32 * 40, 1)), atol=1e-5)


def test_sphere_normals_point_from_the_centre():
    h = w = 64
    fx, fy, cx, cy = fov_intrinsics(w, h, 50.0)
    centre, radius = np.array([0.0, 0.0, -5.0]), 1.5
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    ray = np.stack([(u - cx) / fx, -(v - cy) / fy, -np.ones_like(u)], -1)  # depth-1 rays
    # |z ray - centre|^2 = r^2 -> the nearer root
    a, b, c = (ray * ray).sum(-1), -2 * (ray @ centre), centre @ centre - radius**2
    disc = b * b - 4 * a * c
    z = np.where(disc > 0, (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a), 0.0)
    n = depth_to_normals(z, fov_deg=50.0)
    p = ray * z[..., None]
    want = (p - centre) / radius
    inner = disc > 0.2 * disc.max()  # away from the silhouette, where the sphere is seen edge-on
    cos = (n[inner] * want[inner]).sum(-1)
    assert cos.min() > 0.995  # one-sided differences: first-order accurate
    assert not n[z == 0].any()  # no normal where there is no depth


def test_normals_at_a_step_edge_come_from_their_own_surface():
    depth = np.full((20, 30), 2.0)
    depth[:, 15:] = 6.0  # two walls facing the camera, one behind the other
    n = depth_to_normals(depth, fov_deg=60.0)
    np.testing.assert_allclose(n.reshape(-1, 3), np.tile([0.0, 0.0, 1.0], (600, 1)), atol=1e-6)
    # the columns on both sides of the step keep a normal (a central difference would tilt them towards X); even
    # with an edge_rtol that lets the step through, the neighbour closer in depth wins
    loose = depth_to_normals(depth, fov_deg=60.0, edge_rtol=5.0)
    np.testing.assert_allclose(loose[:, 14:16].reshape(-1, 3), np.tile([0.0, 0.0, 1.0], (40, 1)), atol=1e-6)


def test_isolated_pixel_and_holes_get_no_normal():
    depth = np.full((9, 9), 2.0)
    depth[4, :] = 0.0  # a row of holes: the rows next to it still have an up or down neighbour
    depth[0, 0] = 9.0  # a pixel far from both its neighbours
    n = depth_to_normals(depth)
    assert not n[4].any() and not n[0, 0].any()
    np.testing.assert_allclose(n[3, 3], [0, 0, 1], atol=1e-6)


def test_normal_map_colours_follow_the_stated_conventions():
    # a wall facing the camera is (0.5, 0.5, 1); one turned to face right (+X) / up (+Y):
    n = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 0]], np.float32)
    cn = normals_to_image(n, "controlnet")  # red = left, green = up, blue = front (ControlNet 1.1 README)
    np.testing.assert_allclose(cn, [[0.5, 0.5, 1], [0, 0.5, 0.5], [0.5, 1, 0.5], [0, 0, 0]])
    np.testing.assert_allclose(normals_to_image(n, "opengl")[1], [1, 0.5, 0.5])
    np.testing.assert_allclose(normals_to_image(n, "directx")[2], [0.5, 0, 0.5])
    with pytest.raises(ValueError, match="convention must be one of"):
        normals_to_image(n, "bae")


def test_errors():
    with pytest.raises(ValueError, match="no finite positive pixel"):
        depth_to_normals(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="edge_rtol must be"):
        depth_to_normals(np.ones((4, 4)), edge_rtol=0)
    with pytest.raises(ValueError, match="2-D"):
        depth_to_normals(np.ones((1, 4, 4)))


def test_example_room_normals_match_its_analytic_normals():
    """The shipped example room (tools/example_scene.py: ray-cast planes and a ball, 65° camera) carries its exact
    normals; away from surface boundaries the estimate matches them (planes exactly, the ball to first order)."""
    import importlib.util

    from helpers import ROOT
    from scipy.ndimage import maximum_filter, minimum_filter

    spec = importlib.util.spec_from_file_location("example_scene", ROOT / "tools" / "example_scene.py")
    scene = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scene)
    z, ids, want = scene.room(128)
    got = depth_to_normals(z, fov_deg=65.0)
    inside = maximum_filter(ids, 3) == minimum_filter(ids, 3)  # not on a boundary between two surfaces
    planes = inside & (ids != scene.BALL)
    np.testing.assert_allclose(got[planes], want[planes], atol=2e-4)
    ball = inside & (ids == scene.BALL)
    assert ball.sum() > 50 and (got[ball] * want[ball]).sum(-1).min() > 0.98
    # at occlusion edges (a depth jump: the table against the floor behind it) each normal is its own surface's;
    # central differences of the same points get most of them wrong. (At creases, where two planes meet without a
    # jump, a pixel may take either plane's normal: both neighbours are equally close in depth.)
    from mofo_core.camera import fov_intrinsics
    from mofo_core.geometry.normals import backproject
    from mofo_core.geometry.pointcloud import depth_edge_mask

    occlusion = depth_edge_mask(z, 0.1) & (ids != scene.BALL)
    right = np.abs(got - want).max(-1) < 1e-3
    dv, du = np.gradient(backproject(z, *fov_intrinsics(128, 128, 65.0)), axis=(0, 1))
    central = np.cross(dv, du)
    central /= np.linalg.norm(central, axis=-1, keepdims=True)
    central_right = np.abs(central - want).max(-1) < 1e-3
    assert occlusion.sum() > 200 and right[occlusion].mean() > 0.9 and central_right[occlusion].mean() < 0.3
