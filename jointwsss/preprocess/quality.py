"""Quality checks of the caches that work on real data too.

The **label agreement rate** of a scene's correspondences is the share of stored point-pixel pairs
whose 3D ground-truth label (the mesh vertex's class) equals the 2D ground-truth label at the pixel,
over the pairs where both labels are one of the 20 classes. Wrong intrinsics, poses from another
frame, a wrong frame-id mapping or a broken visibility test all drive it down sharply; on real
ScanNet it is bounded by annotation noise at object borders.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jointwsss.classes import IGNORE_INDEX
from jointwsss.io.zarr_store import open_store
from jointwsss.io.layout import store_path


def labels_at_pixels(label_image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """(M,) labels of a (H, W) label image at pixel coordinates uv (M, 2) (nearest pixel, clipped)."""
    h, w = label_image.shape
    col = np.clip(np.floor(uv[:, 0] + 0.5).astype(np.intp), 0, w - 1)
    row = np.clip(np.floor(uv[:, 1] + 0.5).astype(np.intp), 0, h - 1)
    return label_image[row, col]


def agreement_counts(label_3d: np.ndarray, label_2d: np.ndarray) -> dict:
    """{"pairs", "labelled_pairs", "agreeing_pairs", "agreement"} of paired 3D / 2D labels (255 = ignore)."""
    both = (label_3d != IGNORE_INDEX) & (label_2d != IGNORE_INDEX)
    agree = int((label_3d[both] == label_2d[both]).sum())
    n = int(both.sum())
    return {"pairs": int(len(label_3d)), "labelled_pairs": n, "agreeing_pairs": agree,
            "agreement": agree / n if n else None}


def pair_labels(points, frames, corr) -> tuple[np.ndarray, np.ndarray]:
    """(label_3d (M,), label_2d (M,)) uint8 of every stored pair of a scene (open store groups)."""
    offsets = corr["offsets"][...]
    point_idx = corr["point_idx"][...]
    uv = corr["uv"][...]
    label_3d = points["label"][...][point_idx]
    label_2d = np.full(len(point_idx), IGNORE_INDEX, dtype=np.uint8)
    for f in range(len(offsets) - 1):
        a, b = int(offsets[f]), int(offsets[f + 1])
        if a < b:
            label_2d[a:b] = labels_at_pixels(frames["label"][f], uv[a:b])
    return label_3d, label_2d


def label_agreement(points, frames, corr) -> dict:
    """Label agreement of one scene's stored pairs (open store groups); see :func:`agreement_counts`."""
    return agreement_counts(*pair_labels(points, frames, corr))


def scene_label_agreement(cache_dir: Path, scene: str) -> dict:
    cache_dir = Path(cache_dir)
    return label_agreement(open_store(store_path(cache_dir, "points", scene), "points"),
                           open_store(store_path(cache_dir, "frames", scene), "frames"),
                           open_store(store_path(cache_dir, "corr", scene), "corr"))
