"""Benchmark: point-view projections per second of the correspondence stage, visibility test included.

A ScanNet-sized scene is made up on the fly: ``num_points`` points on the walls, floor and a few boxes of
a 6 x 5 x 3 m room, and ``num_views`` cameras inside it whose 640 x 480 depth maps are z-buffered from the
points themselves (so the visibility test sees real occlusions and holes). The timed loop is exactly
:func:`jointwsss.preprocess.correspondences.view_correspondences` over all views, on one thread.
"""

from __future__ import annotations

import os
import time

import numpy as np

from jointwsss.geometry.camera import intrinsic_matrix, look_at, project_points
from jointwsss.preprocess.correspondences import VisibilityParams, view_correspondences


def _room_points(num_points: int, rng: np.random.Generator) -> np.ndarray:
    """(N, 3) float32 points on the surfaces of a 6 x 5 x 3 m room with three boxes."""
    n_box = num_points // 4
    n_room = num_points - n_box
    # room surfaces: pick a face (floor, ceiling, 4 walls) weighted by area, then a point on it
    size = np.array([6.0, 5.0, 3.0])
    face = rng.integers(0, 6, n_room)
    p = rng.random((n_room, 3)) * size
    axis = face // 2
    p[np.arange(n_room), axis] = np.where(face % 2 == 0, 0.0, size[axis])
    # boxes: points on the top and sides of 1 m cubes standing on the floor
    centres = np.array([[1.5, 1.5], [4.0, 3.0], [2.5, 4.0]])
    b = rng.integers(0, 3, n_box)
    q = rng.random((n_box, 3)) - 0.5
    side = rng.integers(0, 3, n_box)
    q[np.arange(n_box), side] = np.sign(q[np.arange(n_box), side]) * 0.5
    box = np.column_stack([centres[b, 0] + q[:, 0], centres[b, 1] + q[:, 1], 0.5 + q[:, 2]])
    return np.concatenate([p, box]).astype(np.float32)


def _zbuffer(xyz: np.ndarray, K: np.ndarray, pose: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) uint16 depth in millimetres: the nearest point per pixel, 0 where no point lands."""
    w, h = size
    uv, z = project_points(xyz, K, pose)
    ok = (z > 0) & np.isfinite(uv).all(axis=1)
    col = np.floor(uv[ok, 0] + 0.5).astype(np.int64)
    row = np.floor(uv[ok, 1] + 0.5).astype(np.int64)
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    flat = row[inside] * w + col[inside]
    depth = np.full(w * h, np.inf, dtype=np.float32)
    np.minimum.at(depth, flat, z[ok][inside])
    depth[~np.isfinite(depth)] = 0
    return np.round(depth * 1000).astype(np.uint16).reshape(h, w)


def bench_correspondences(num_points: int = 150_000, num_views: int = 20, repeats: int = 3, seed: int = 0) -> dict:
    """Measure projections per second (points x views / s) of the correspondence computation."""
    rng = np.random.default_rng(seed)
    xyz = _room_points(num_points, rng)
    # ScanNet intrinsics: colour 1296x968 stored at 320x240, depth 640x480
    K_color = intrinsic_matrix(1170.0 / 4.05, 1170.0 / 4.033, 647.75 / 4.05, 483.75 / 4.033)
    K_depth = intrinsic_matrix(577.6, 577.6, 319.5, 239.5)
    views = []
    for i in range(num_views):
        angle = 2 * np.pi * i / num_views
        eye = np.array([3.0 + 1.5 * np.cos(angle), 2.5 + 1.2 * np.sin(angle), 1.5])
        target = np.array([3.0 - 2.0 * np.cos(angle + 0.6), 2.5 - 2.0 * np.sin(angle + 0.6), 0.8])
        pose = look_at(eye, target)
        views.append((pose, _zbuffer(xyz, K_depth, pose, (640, 480))))
    params = VisibilityParams(0.05, "relative")
    best = np.inf
    pairs = 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        pairs = 0
        for pose, depth in views:
            idx, _, _ = view_correspondences(xyz, pose, K_color, (320, 240), depth, K_depth, 1000.0, params)
            pairs += len(idx)
        best = min(best, time.perf_counter() - t0)
    projections = num_points * num_views
    return {
        "num_points": num_points,
        "num_views": num_views,
        "projections": projections,
        "visible_pairs": pairs,
        "seconds_best_of_repeats": round(best, 4),
        "projections_per_second": round(projections / best),
        "seconds_per_view_per_100k_points": round(best / num_views * 100_000 / num_points, 5),
        "threads": os.environ.get("OMP_NUM_THREADS", "unset"),
        "target_projections_per_second": 20_000_000,
    }
