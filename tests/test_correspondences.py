"""Correspondences (paper eq. 3-4): a hand-computed projection, visibility and occlusion."""

from __future__ import annotations

import numpy as np
import pytest

from jointwsss.geometry.camera import intrinsic_matrix, look_at
from jointwsss.preprocess.correspondences import VisibilityParams, view_correspondences

# Colour camera: 100 x 80 px, fx = fy = 100, principal point (50, 40).
K_COLOR = intrinsic_matrix(100.0, 100.0, 50.0, 40.0)
# Depth camera: 50 x 40 px, fx = fy = 50, principal point (25, 20); depth shift 1000 (millimetres).
K_DEPTH = intrinsic_matrix(50.0, 50.0, 25.0, 20.0)
# Camera at (0, 0, 1.5) looking along world +x: camera x = world -y, camera y = world -z, camera z = world +x.
POSE = look_at((0.0, 0.0, 1.5), (1.0, 0.0, 1.5))


def depth_map_with(value_mm: int, at=(33, 38)) -> np.ndarray:
    depth = np.zeros((40, 50), dtype=np.uint16)
    depth[at] = value_mm
    return depth


def test_hand_computed_projection_matches_exactly():
    # P = (2.0, -0.5, 1.0): relative to the camera (2.0, -0.5, -0.5) -> camera (x, y, z) = (0.5, 0.5, 2.0)
    # colour: u = 100 * 0.5 / 2 + 50 = 75, v = 100 * 0.5 / 2 + 40 = 65, depth 2.0 m
    # depth camera: u_d = 50 * 0.25 + 25 = 37.5 -> nearest pixel column 38; v_d = 32.5 -> row 33
    xyz = np.array([[2.0, -0.5, 1.0]], dtype=np.float32)
    idx, uv, z = view_correspondences(xyz, POSE, K_COLOR, (100, 80), depth_map_with(2010), K_DEPTH, 1000.0,
                                      VisibilityParams(0.05, "relative"))
    assert idx.tolist() == [0]
    assert uv.tolist() == [[75.0, 65.0]]
    assert z.tolist() == [2.0]
    assert idx.dtype == np.int32 and uv.dtype == np.float32 and z.dtype == np.float32


def test_occluded_out_of_image_and_behind_points_are_dropped():
    camera = np.array([0.0, 0.0, 1.5])
    visible = np.array([2.0, -0.5, 1.0])
    behind_it = camera + 1.5 * (visible - camera)          # same pixel, depth 3.0 m: occluded by the 2.01 m surface
    outside = np.array([2.0, -5.0, 1.5])                    # u = 100 * 5 / 2 + 50 = 300 > 100
    behind_camera = np.array([-1.0, 0.0, 1.5])              # z = -1
    xyz = np.stack([behind_it, outside, visible, behind_camera]).astype(np.float32)
    idx, uv, z = view_correspondences(xyz, POSE, K_COLOR, (100, 80), depth_map_with(2010), K_DEPTH, 1000.0,
                                      VisibilityParams(0.05, "relative"))
    assert idx.tolist() == [2]
    np.testing.assert_allclose(z, [2.0])


@pytest.mark.parametrize(
    "measured_mm, tolerance, mode, expected",
    [
        (2090, 0.05, "relative", True),    # |2.09 - 2.0| = 0.09 <= 0.05 * 2.09 = 0.1045
        (2120, 0.05, "relative", False),   # 0.12 > 0.106
        (2040, 0.05, "absolute", True),    # 0.04 <= 0.05 m
        (2060, 0.05, "absolute", False),   # 0.06 > 0.05 m
        (0, 0.5, "relative", False),       # a hole in the depth map cannot confirm visibility
    ],
)
def test_depth_tolerance_modes(measured_mm, tolerance, mode, expected):
    xyz = np.array([[2.0, -0.5, 1.0]], dtype=np.float32)
    idx, _, _ = view_correspondences(xyz, POSE, K_COLOR, (100, 80), depth_map_with(measured_mm), K_DEPTH, 1000.0,
                                     VisibilityParams(tolerance, mode))
    assert (idx.size == 1) is expected


def test_image_border_uses_pixel_centres():
    # u = -0.5 is the left edge of pixel 0 (inside); u = 99.5 is the right edge of pixel 99 (outside).
    # camera x = (u - 50) * z / 100 with z = 2: u = -0.5 -> x = -1.01 -> world y = 1.01
    depth = np.full((40, 50), 2000, dtype=np.uint16)
    # second point: camera x = 0.99 -> u = 100 * 0.99 / 2 + 50 = 99.5, just outside
    xyz = np.array([[2.0, 1.01, 1.5], [2.0, -0.99, 1.5]], dtype=np.float32)
    idx, uv, _ = view_correspondences(xyz, POSE, K_COLOR, (100, 80), depth, K_DEPTH, 1000.0,
                                      VisibilityParams(0.05, "relative"))
    np.testing.assert_allclose(uv[:, 0], [-0.5], atol=1e-4)
    assert idx.tolist() == [0]


def test_invalid_pose_is_rejected():
    xyz = np.zeros((1, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="not finite"):
        view_correspondences(xyz, np.full((4, 4), -np.inf), K_COLOR, (100, 80), depth_map_with(1), K_DEPTH, 1000.0,
                             VisibilityParams())


# A colour camera of 100 x 80 px with fx = fy = 128 and principal point (50, 40): at depth 2 m the image edges
# u = -0.5, 99.5 and v = -0.5, 79.5 lie at camera x = (u - 50) * 2 / 128 and y = (v - 40) * 2 / 128, exact binary
# fractions, so the projections land exactly on the edges. A depth camera with a wider view (fx = fy = 20 on its
# 50 x 40 map) puts every such point's depth pixel on the map (column floor(20 x / 2 + 25.5), row floor(20 y / 2
# + 20.5): 17..33 and 14..28), so only the colour edge decides.
K_COLOR_128 = intrinsic_matrix(128.0, 128.0, 50.0, 40.0)
K_DEPTH_WIDE = intrinsic_matrix(20.0, 20.0, 25.0, 20.0)


def _point_at_pixel(u: float, v: float, z: float = 2.0) -> list[float]:
    """The world point that the camera POSE sees at colour pixel (u, v), depth z (camera x = world -y, y = -z)."""
    x_cam, y_cam = (u - 50.0) * z / 128.0, (v - 40.0) * z / 128.0
    return [z, -x_cam, 1.5 - y_cam]


@pytest.mark.parametrize("u, v, inside", [
    (-0.5, 40.0, True), (-0.5 - 1 / 64, 40.0, False),      # left edge: u = -0.5 is inside, a little less is not
    (99.5 - 1 / 64, 40.0, True), (99.5, 40.0, False),      # right edge: u < W - 0.5
    (50.0, -0.5, True), (50.0, -0.5 - 1 / 64, False),      # top edge
    (50.0, 79.5 - 1 / 64, True), (50.0, 79.5, False),      # bottom edge: v < H - 0.5
])
def test_all_four_image_edges_with_the_depth_pixel_on_the_map(u, v, inside):
    xyz = np.array([_point_at_pixel(u, v)], dtype=np.float32)
    depth = np.full((40, 50), 2000, dtype=np.uint16)       # 2 m everywhere: the depth test passes wherever it looks
    idx, uv, _ = view_correspondences(xyz, POSE, K_COLOR_128, (100, 80), depth, K_DEPTH_WIDE, 1000.0,
                                      VisibilityParams(0.02, "relative"))
    # the depth pixel is on the map, so a dropped point is dropped by the colour edge alone
    ud, vd = np.floor(20 * (u - 50) / 128 + 25.5), np.floor(20 * (v - 40) / 128 + 20.5)
    assert 0 <= ud < 50 and 0 <= vd < 40
    assert idx.tolist() == ([0] if inside else [])
    if inside:
        assert uv.tolist() == [[u, v]]


@pytest.mark.parametrize("measured_mm, tolerance, expected", [
    (2100, 0.0488, True),    # |2.1 - 2.0| = 0.1 <= 0.0488 * 2.1 (measured) = 0.1025, but > 0.0488 * 2.0 (point) = 0.0976
    (1900, 0.0513, False),   # |1.9 - 2.0| = 0.1 > 0.0513 * 1.9 = 0.0975, but <= 0.0513 * 2.0 = 0.1026
])
def test_relative_tolerance_is_a_fraction_of_the_measured_depth(measured_mm, tolerance, expected):
    xyz = np.array([[2.0, -0.5, 1.0]], dtype=np.float32)
    idx, _, _ = view_correspondences(xyz, POSE, K_COLOR, (100, 80), depth_map_with(measured_mm), K_DEPTH, 1000.0,
                                     VisibilityParams(tolerance, "relative"))
    assert (idx.size == 1) is expected


@pytest.mark.parametrize("tolerance, mode", [(0.0, "relative"), (-0.01, "absolute"), (0.02, "metres")])
def test_visibility_params_reject_a_tolerance_that_is_not_positive_and_unknown_modes(tolerance, mode):
    with pytest.raises(ValueError, match="positive" if mode != "metres" else "relative' or 'absolute"):
        VisibilityParams(tolerance, mode)


@pytest.mark.parametrize("tolerance, mode, point_z, measured_mm, expected", [
    (0.25, "relative", 1.5, 2000, True),     # |2.0 - 1.5| = 0.5 = 0.25 * 2.0: on the tolerance is visible
    (0.5, "absolute", 1.5, 2000, True),      # |2.0 - 1.5| = 0.5 m = the tolerance
    (0.02, "relative", 0.8, 800, True),      # closer than 1 m
    (0.05, "absolute", 0.04, 0, False),      # a hole: not visible, even where |0 - z| <= the tolerance
])
def test_depth_rule_at_its_boundaries(tolerance, mode, point_z, measured_mm, expected):
    # the point on the optical axis at depth point_z: colour pixel (50, 40), depth pixel (25, 20) (on the map)
    xyz = np.array([[point_z, 0.0, 1.5]], dtype=np.float32)
    depth = np.zeros((40, 50), dtype=np.uint16)
    depth[20, 25] = measured_mm
    idx, _, _ = view_correspondences(xyz, POSE, K_COLOR, (100, 80), depth, K_DEPTH, 1000.0,
                                     VisibilityParams(tolerance, mode))
    assert (idx.size == 1) is expected


@pytest.mark.parametrize("u_d, v_d", [(0, 20), (49, 20), (25, 0), (25, 39)])
def test_points_on_the_depth_maps_outermost_pixels_are_checked_there(u_d, v_d):
    """The depth map's first and last columns and rows are on the map: a point whose nearest depth pixel is one of
    them is visible where that pixel agrees (the colour camera is the wide one here, so the colour edge never
    decides)."""
    # depth pixel centre (u_d, v_d) <- normalised (x, y) = ((u_d - 25) / 50, (v_d - 20) / 50); at depth 2 m
    x_cam, y_cam = (u_d - 25) / 50 * 2.0, (v_d - 20) / 50 * 2.0
    xyz = np.array([[2.0, -x_cam, 1.5 - y_cam]], dtype=np.float32)
    depth = np.zeros((40, 50), dtype=np.uint16)
    depth[v_d, u_d] = 2000
    wide_colour = intrinsic_matrix(20.0, 20.0, 50.0, 40.0)   # 100 x 80 px covering more than the depth map
    idx, _, _ = view_correspondences(xyz, POSE, wide_colour, (100, 80), depth, K_DEPTH, 1000.0,
                                     VisibilityParams(0.02, "relative"))
    assert idx.tolist() == [0]
