"""Pinhole cameras in ScanNet's conventions (no file formats here).

Conventions, shared by the synthetic data, the preprocessing and the losses:

- World: metres, z up (ScanNet meshes and camera poses share one world frame).
- ``camera_to_world`` (4, 4): maps homogeneous camera coordinates to world coordinates.
- Camera coordinates are OpenCV-style: x right, y down, z forward; the *depth* of a point is its
  camera z (distance along the optical axis), which is what ScanNet depth maps store.
- Intrinsics are 4x4 matrices as stored in a ScanNet ``.sens`` header: fx, fy on the diagonal,
  cx, cy in column 3 (index 2), in pixels. Pixel centres lie at integer coordinates, so the pixel
  (column u, row v) covers [u - 0.5, u + 0.5] x [v - 0.5, v + 0.5] and ``u = fx * x / z + cx``.
- Image sizes are given as ``(width, height)`` in pixels.

The paper's view matrix (eq. 3) is ``V = K @ inv(camera_to_world)``: see :func:`view_matrix`.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "intrinsic_matrix",
    "scale_intrinsic",
    "look_at",
    "pixel_rays",
    "world_to_camera",
    "view_matrix",
    "project_points",
]


def intrinsic_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """(4, 4) float32 intrinsic matrix: focal lengths ``fx, fy`` and principal point ``cx, cy`` in pixels."""
    K = np.eye(4, dtype=np.float32)
    K[0, 0] = fx
    K[1, 1] = fy
    K[0, 2] = cx
    K[1, 2] = cy
    return K


def scale_intrinsic(K: np.ndarray, from_size: tuple[int, int], to_size: tuple[int, int]) -> np.ndarray:
    """Intrinsics of an image resized from ``from_size`` to ``to_size`` (both ``(width, height)``).

    Uses the pixel-centre convention of ``cv2.resize`` (all interpolation modes except nearest): the
    edges of the image map onto each other, so a source coordinate ``u`` lands at
    ``(u + 0.5) * s - 0.5`` with ``s = to_width / from_width``. Hence ``fx' = fx * s`` and
    ``cx' = (cx + 0.5) * s - 0.5`` (likewise for y). Returns (4, 4) in K's float dtype (float32 for
    int input).
    """
    K = np.asarray(K)
    if K.shape != (4, 4):
        raise ValueError(f"intrinsic matrix must be 4x4, got shape {K.shape}")
    (w0, h0), (w1, h1) = from_size, to_size
    if min(w0, h0, w1, h1) <= 0:
        raise ValueError(f"image sizes must be positive, got {from_size} -> {to_size}")
    out = K.astype(np.float32 if not np.issubdtype(K.dtype, np.floating) else K.dtype, copy=True)
    sx, sy = w1 / w0, h1 / h0
    out[0, 0] = K[0, 0] * sx
    out[1, 1] = K[1, 1] * sy
    out[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
    out[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
    return out


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """(4, 4) float64 ``camera_to_world`` of a camera at ``eye`` whose optical axis points at ``target``.

    The camera's x axis (right) is ``forward x up`` and its y axis (down) is ``forward x right``, so
    the image is upright with respect to ``up``. Raises ValueError when the view direction is zero
    or parallel to ``up``.
    """
    eye = np.asarray(eye, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - eye
    norm = np.linalg.norm(forward)
    if not np.isfinite(norm) or norm == 0.0:
        raise ValueError(f"look_at: eye {eye} and target {target} must differ and be finite")
    forward /= norm
    right = np.cross(forward, np.asarray(up, dtype=np.float64))
    rnorm = np.linalg.norm(right)
    if rnorm < 1e-9:
        raise ValueError(f"look_at: view direction {forward} is parallel to up {up}")
    right /= rnorm
    down = np.cross(forward, right)
    pose = np.eye(4)
    pose[:3, 0] = right
    pose[:3, 1] = down
    pose[:3, 2] = forward
    pose[:3, 3] = eye
    return pose


def pixel_rays(K: np.ndarray, width: int, height: int, camera_to_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World-space rays through the centre of every pixel, in row-major order (index ``v * width + u``).

    Returns ``origins`` (H*W, 3) float64 (the camera centre, repeated) and ``directions`` (H*W, 3)
    float64 scaled so that their camera-z component is 1: a point ``origin + t * direction`` has
    depth ``t`` metres, so a ray parameter is directly a depth-map value.
    """
    K = np.asarray(K, dtype=np.float64)
    pose = np.asarray(camera_to_world, dtype=np.float64)
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    cam_dirs = np.stack(
        [(u.ravel() - K[0, 2]) / K[0, 0], (v.ravel() - K[1, 2]) / K[1, 1], np.ones(width * height)], axis=1
    )
    directions = cam_dirs @ pose[:3, :3].T
    origins = np.broadcast_to(pose[:3, 3], directions.shape).copy()
    return origins, directions


def world_to_camera(camera_to_world: np.ndarray) -> np.ndarray:
    """(4, 4) float64 inverse of ``camera_to_world``.

    Raises ValueError for non-finite poses (ScanNet marks lost tracking with an all ``-inf``
    matrix, whose inverse would silently be NaN) and for singular matrices.
    """
    pose = np.asarray(camera_to_world, dtype=np.float64)
    if pose.shape != (4, 4):
        raise ValueError(f"camera_to_world must be 4x4, got shape {pose.shape}")
    if not np.all(np.isfinite(pose)):
        raise ValueError("camera_to_world is not finite (an invalid ScanNet pose, e.g. all -inf); drop this frame")
    try:
        return np.linalg.inv(pose)
    except np.linalg.LinAlgError as exc:
        raise ValueError(f"camera_to_world is singular: {pose.tolist()}") from exc


def view_matrix(K: np.ndarray, camera_to_world: np.ndarray) -> np.ndarray:
    """(3, 4) float64 perspective projection ``V = K[:3, :3] @ inv(camera_to_world)[:3, :]`` (paper eq. 3).

    ``V @ [x, y, z, 1]`` is ``depth * [u, v, 1]``.
    """
    K = np.asarray(K, dtype=np.float64)
    return K[:3, :3] @ world_to_camera(camera_to_world)[:3, :]


def project_points(
    xyz_world: np.ndarray, K: np.ndarray, camera_to_world: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Project world points (N, 3) metres into the image of a camera.

    Returns ``uv`` (N, 2) float32 pixel coordinates (column, row; pixel centres at integers) and
    ``depth`` (N,) float32 metres along the optical axis. Points with depth <= 0 (behind the
    camera) get ``uv = nan``; callers keep only ``depth > 0`` and in-image ``uv``.
    """
    xyz = np.asarray(xyz_world, dtype=np.float64).reshape(-1, 3)
    w2c = world_to_camera(camera_to_world)
    cam = xyz @ w2c[:3, :3].T + w2c[:3, 3]
    K = np.asarray(K, dtype=np.float64)
    depth = cam[:, 2]
    in_front = depth > 0
    safe_depth = np.where(in_front, depth, 1.0)
    u = np.where(in_front, K[0, 0] * cam[:, 0] / safe_depth + K[0, 2], np.nan)
    v = np.where(in_front, K[1, 1] * cam[:, 1] / safe_depth + K[1, 2], np.nan)
    return np.stack([u, v], axis=1).astype(np.float32), depth.astype(np.float32)
