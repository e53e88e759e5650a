"""Render one RGB-D frame and its label image from the scene's surfaces (room frame).

- colour: ray cast at colour resolution, every hit shaded with the same function as the mesh
  vertices, then a per-frame exposure and mild sensor noise;
- depth: a separate ray cast with the depth camera's intrinsics (same pose: the streams are
  registered, extrinsics identity), noise growing with depth, and holes (0 = invalid) beyond the
  sensor's range, at grazing angles and in random blobs;
- labels: raw ScanNet category ids of the hit surfaces at colour resolution, with a fraction of
  the pixels on object boundaries left unannotated (0), as in ScanNet's filtered labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from jointwsss.synth.raycast import SurfaceSet, cast, group_indices, surface_colors, surface_normals

MAX_DEPTH_M = 5.0
DEPTH_EDGE_RELATIVE = 0.04
# Fraction of label-boundary pixels left unannotated.
BOUNDARY_UNLABELED_FRACTION = 0.3


@dataclass(frozen=True)
class CameraRig:
    """Intrinsics (4, 4) in pixels of the colour and depth streams, sizes as (width, height)."""

    intrinsic_color: np.ndarray
    intrinsic_depth: np.ndarray
    color_size: tuple[int, int]
    depth_size: tuple[int, int]


def depth_noise_sigma_m(depth_m: np.ndarray) -> np.ndarray:
    """Axial noise std (metres) of a structured-light sensor, growing quadratically with depth."""
    return 0.0012 + 0.0019 * np.square(np.maximum(depth_m - 0.4, 0.0))


def _hit_points_and_normals(surfaces: SurfaceSet, pose: np.ndarray, depth: np.ndarray, surface: np.ndarray,
                            dirs: np.ndarray):
    points = pose[:3, 3] + depth.reshape(-1, 1) * dirs.reshape(-1, 3)
    ids = surface.ravel()
    normals = np.empty_like(points)
    for i, idx in group_indices(ids):
        normals[idx] = surface_normals(surfaces, i, points[idx])
    return points, ids, normals


def render_color_and_labels(surfaces: SurfaceSet, rig: CameraRig, pose: np.ndarray, rng: np.random.Generator):
    """(H, W, 3) uint8 RGB and (H, W) uint16 raw-id label image for a room-frame pose."""
    width, height = rig.color_size
    depth, surface, dirs = cast(surfaces, rig.intrinsic_color, pose, width, height)
    points, ids, normals = _hit_points_and_normals(surfaces, pose, depth, surface, dirs)
    color = surface_colors(surfaces, ids, points, normals).reshape(height, width, 3)
    exposure = rng.uniform(0.95, 1.05)
    color = color * exposure * 255.0 + rng.normal(0.0, 1.5, size=color.shape)
    color = np.clip(np.round(color), 0, 255).astype(np.uint8)

    labels = surfaces.raw_id[surface]
    obj = surfaces.object_index[surface]
    boundary = np.zeros_like(obj, dtype=bool)
    boundary[:, 1:] |= obj[:, 1:] != obj[:, :-1]
    boundary[:, :-1] |= obj[:, 1:] != obj[:, :-1]
    boundary[1:, :] |= obj[1:, :] != obj[:-1, :]
    boundary[:-1, :] |= obj[1:, :] != obj[:-1, :]
    labels = np.where(boundary & (rng.random(boundary.shape) < BOUNDARY_UNLABELED_FRACTION), 0, labels)
    return color, labels.astype(np.uint16)


def render_depth(surfaces: SurfaceSet, rig: CameraRig, pose: np.ndarray, rng: np.random.Generator,
                 depth_shift: float = 1000.0) -> np.ndarray:
    """(Hd, Wd) uint16 depth in 1/depth_shift metres (millimetres), 0 where the sensor has no reading."""
    width, height = rig.depth_size
    depth, surface, dirs = cast(surfaces, rig.intrinsic_depth, pose, width, height)
    _, _, normals = _hit_points_and_normals(surfaces, pose, depth, surface, dirs)
    unit_dirs = dirs.reshape(-1, 3) / np.linalg.norm(dirs.reshape(-1, 3), axis=1, keepdims=True)
    cos_incidence = np.abs(np.sum(unit_dirs * normals, axis=1)).reshape(height, width)
    noisy = depth + rng.normal(0.0, 1.0, size=depth.shape) * depth_noise_sigma_m(depth)
    invalid = depth > MAX_DEPTH_M
    invalid |= (cos_incidence < 0.12) & (rng.random(depth.shape) < 0.6)
    # Structured-light sensors lose depth at occlusion edges (projector shadows, mixed pixels):
    # drop most pixels next to a depth jump of more than DEPTH_EDGE_RELATIVE of the depth.
    jump = np.zeros_like(depth, dtype=bool)
    step_x = np.abs(np.diff(depth, axis=1)) > DEPTH_EDGE_RELATIVE * np.minimum(depth[:, 1:], depth[:, :-1])
    step_y = np.abs(np.diff(depth, axis=0)) > DEPTH_EDGE_RELATIVE * np.minimum(depth[1:, :], depth[:-1, :])
    jump[:, 1:] |= step_x
    jump[:, :-1] |= step_x
    jump[1:, :] |= step_y
    jump[:-1, :] |= step_y
    invalid |= jump & (rng.random(depth.shape) < 0.85)
    # Blobs: a coarse random field, smoothly upsampled, its lowest few percent dropped.
    coarse = rng.random((max(3, height // 10), max(3, width // 10))).astype(np.float32)
    field = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    invalid |= field < np.quantile(field, rng.uniform(0.01, 0.04))
    out = np.where(invalid, 0.0, np.round(noisy * depth_shift))
    return np.clip(out, 0, 65535).astype(np.uint16)
