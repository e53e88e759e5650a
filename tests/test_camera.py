"""Camera conventions: hand-computed projections, look_at, ray/projection round trip, resize scaling."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from jointwsss.geometry.camera import (
    intrinsic_matrix,
    look_at,
    pixel_rays,
    project_points,
    scale_intrinsic,
    view_matrix,
    world_to_camera,
)

# A camera at (1, 2, 3) looking along world +x: camera x (right) = world -y, camera y (down) = world -z,
# camera z (forward) = world +x.
POSE_ALONG_X = np.array(
    [
        [0.0, 0.0, 1.0, 1.0],
        [-1.0, 0.0, 0.0, 2.0],
        [0.0, -1.0, 0.0, 3.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def test_intrinsic_matrix_layout():
    K = intrinsic_matrix(500.0, 400.0, 320.0, 240.0)
    assert K.dtype == np.float32 and K.shape == (4, 4)
    np.testing.assert_array_equal(
        K, [[500, 0, 320, 0], [0, 400, 240, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    )


def test_hand_computed_projection():
    K = intrinsic_matrix(500.0, 400.0, 320.0, 240.0)
    # World point (3, 1.5, 2.5) is (2, -0.5, -0.5) from the camera centre.
    # camera x = -(-0.5) = 0.5, camera y = -(-0.5) = 0.5, camera z = 2.
    # u = 500 * 0.5 / 2 + 320 = 445, v = 400 * 0.5 / 2 + 240 = 340, depth = 2.
    uv, depth = project_points(np.array([[3.0, 1.5, 2.5]]), K, POSE_ALONG_X)
    assert uv.dtype == np.float32 and depth.dtype == np.float32
    np.testing.assert_allclose(uv, [[445.0, 340.0]], atol=1e-5)
    np.testing.assert_allclose(depth, [2.0], atol=1e-6)
    # The paper's view matrix gives the same pixel after the perspective division.
    hom = view_matrix(K, POSE_ALONG_X) @ np.array([3.0, 1.5, 2.5, 1.0])
    np.testing.assert_allclose(hom / hom[2], [445.0, 340.0, 1.0], atol=1e-9)
    np.testing.assert_allclose(hom[2], 2.0, atol=1e-12)


def test_points_behind_camera_get_nan_pixels():
    K = intrinsic_matrix(500.0, 400.0, 320.0, 240.0)
    uv, depth = project_points(np.array([[0.0, 2.0, 3.0], [2.0, 2.0, 3.0]]), K, POSE_ALONG_X)
    np.testing.assert_allclose(depth, [-1.0, 1.0])
    assert np.all(np.isnan(uv[0]))
    np.testing.assert_allclose(uv[1], [320.0, 240.0])


def test_look_at_known_poses():
    np.testing.assert_allclose(look_at((1.0, 2.0, 3.0), (5.0, 2.0, 3.0)), POSE_ALONG_X, atol=1e-12)
    # Looking along +y from the origin: right = +x, down = -z, forward = +y.
    pose = look_at((0.0, 0.0, 0.0), (0.0, 1.0, 0.0))
    np.testing.assert_allclose(pose[:3, :3], [[1, 0, 0], [0, 0, 1], [0, -1, 0]], atol=1e-12)
    # Looking down at 45 degrees: the optical axis is (1, 0, -1) / sqrt(2) and right stays -y.
    pose = look_at((0.0, 0.0, 2.0), (1.0, 0.0, 1.0))
    s = np.sqrt(0.5)
    np.testing.assert_allclose(pose[:3, 2], [s, 0, -s], atol=1e-12)
    np.testing.assert_allclose(pose[:3, 0], [0, -1, 0], atol=1e-12)
    np.testing.assert_allclose(pose[:3, 1], [-s, 0, -s], atol=1e-12)
    with pytest.raises(ValueError, match="parallel"):
        look_at((0.0, 0.0, 0.0), (0.0, 0.0, -1.0))


def test_pixel_rays_project_back_to_their_pixels():
    rng = np.random.default_rng(3)
    K = intrinsic_matrix(80.0, 78.0, 19.3, 15.1)
    pose = look_at((0.5, -1.0, 1.4), (2.0, 1.0, 0.9))
    width, height = 40, 30
    origins, directions = pixel_rays(K, width, height, pose)
    assert origins.shape == directions.shape == (width * height, 3)
    # Camera-z component of every direction is 1, so t is depth.
    np.testing.assert_allclose(directions @ pose[:3, 2], 1.0, atol=1e-12)
    t = rng.uniform(0.5, 6.0, size=width * height)
    uv, depth = project_points(origins + t[:, None] * directions, K, pose)
    u, v = np.meshgrid(np.arange(width), np.arange(height))
    np.testing.assert_allclose(uv, np.stack([u.ravel(), v.ravel()], axis=1), atol=1e-3)
    np.testing.assert_allclose(depth, t, rtol=1e-6)


def test_world_to_camera_rejects_invalid_poses():
    np.testing.assert_allclose(world_to_camera(POSE_ALONG_X) @ POSE_ALONG_X, np.eye(4), atol=1e-12)
    with pytest.raises(ValueError, match="not finite"):
        world_to_camera(np.full((4, 4), -np.inf))
    with pytest.raises(ValueError, match="singular"):
        world_to_camera(np.zeros((4, 4)))


def test_scale_intrinsic_formula():
    K = intrinsic_matrix(1170.0, 1170.0, 647.75, 483.75)
    K4 = scale_intrinsic(K, (1296, 968), (324, 242))
    # fx * 0.25 = 292.5; (647.75 + 0.5) * 0.25 - 0.5 = 161.5625; (483.75 + 0.5) * 0.25 - 0.5 = 120.5625
    np.testing.assert_allclose(
        [K4[0, 0], K4[1, 1], K4[0, 2], K4[1, 2]], [292.5, 292.5, 161.5625, 120.5625], atol=1e-4
    )
    np.testing.assert_allclose(scale_intrinsic(K4, (324, 242), (1296, 968)), K, atol=1e-4)


def test_scale_intrinsic_agrees_with_cv2_resize_downscale():
    # A bright 4x4 block at columns 20..23, rows 8..11 of an 80x60 image: its centre is (21.5, 9.5).
    image = np.zeros((60, 80), dtype=np.float32)
    image[8:12, 20:24] = 1.0
    small = cv2.resize(image, (20, 15), interpolation=cv2.INTER_AREA)
    v, u = np.unravel_index(np.argmax(small), small.shape)
    assert small[v, u] == pytest.approx(1.0)
    K = intrinsic_matrix(50.0, 50.0, 21.5, 9.5)  # principal point on the block centre
    K_small = scale_intrinsic(K, (80, 60), (20, 15))
    assert (K_small[0, 2], K_small[1, 2]) == (pytest.approx(float(u)), pytest.approx(float(v)))


def test_scale_intrinsic_agrees_with_cv2_resize_upscale():
    # One bright pixel at (u, v) = (7, 4) in a 20x15 image, upsampled 3x bilinearly into a tent whose
    # intensity-weighted centroid is where the pixel centre lands.
    image = np.zeros((15, 20), dtype=np.float32)
    image[4, 7] = 1.0
    big = cv2.resize(image, (60, 45), interpolation=cv2.INTER_LINEAR)
    vv, uu = np.mgrid[0:45, 0:60]
    centroid = (float((big * uu).sum() / big.sum()), float((big * vv).sum() / big.sum()))
    K_big = scale_intrinsic(intrinsic_matrix(10.0, 10.0, 7.0, 4.0), (20, 15), (60, 45))
    np.testing.assert_allclose(centroid, (K_big[0, 2], K_big[1, 2]), atol=1e-4)
    # (7 + 0.5) * 3 - 0.5 = 22, (4 + 0.5) * 3 - 0.5 = 13
    assert (K_big[0, 2], K_big[1, 2]) == (pytest.approx(22.0), pytest.approx(13.0))
