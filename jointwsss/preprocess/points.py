"""``points/{scene}.zarr``: the scene's mesh vertices with colours, 20-class labels and scene-level labels.

Inputs in ``<scene_dir>``: ``<scene>_vh_clean_2.ply`` (vertex positions and scan colours) and
``<scene>_vh_clean_2.labels.ply`` (the same vertices with nyu40 ids). Store contents:

- ``xyz`` (N, 3) float32 metres, world frame of the camera poses (unaligned, as in the mesh);
- ``rgb`` (N, 3) uint8 scan colours;
- ``label`` (N,) uint8 class index 0..19, 255 = ignore (nyu40 ids outside the 20 benchmark
  classes, including stray ids such as 149 in some real files, map to ignore);
- attrs ``scene_labels`` (20 bools: the class has at least ``min_points`` vertices) and
  ``class_point_counts`` (20 ints).

A scene without a labels PLY (ScanNet's test scenes) gets labels all 255, scene labels all False
and ``has_labels: false``. A mesh and labels PLY with different vertex counts raise the
DataFormatError of :func:`read_scene_ply_pair` (naming both files) and write nothing.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from jointwsss.classes import IGNORE_INDEX, NUM_CLASSES, nyu40_to_class_lut
from jointwsss.io.atomic import atomic_path
from jointwsss.io.errors import DataFormatError
from jointwsss.io.ply import read_mesh_ply, read_scene_ply_pair
from jointwsss.io.zarr_store import create_store, write_array

logger = logging.getLogger("jointwsss")


def class_point_counts(label: np.ndarray) -> np.ndarray:
    """(20,) int64 number of entries of ``label`` (class indices, 255 = ignore) per class."""
    return np.bincount(np.asarray(label, dtype=np.uint8).ravel(), minlength=256)[:NUM_CLASSES]


def build_points_store(scene_dir: Path, out_path: Path, *, min_points: int) -> dict:
    """Write ``points/{scene}.zarr`` at ``out_path`` from the raw scene folder ``scene_dir``; returns a summary.

    ``min_points`` (>= 1): vertices a class needs for the scene-level label. The summary holds the
    store's attrs plus ``path`` and ``seconds``.
    """
    start = time.perf_counter()
    scene_dir, out_path = Path(scene_dir), Path(out_path)
    if int(min_points) != min_points or min_points < 1:
        raise ValueError(f"labels.min_points must be an integer >= 1, got {min_points!r}")
    scene = scene_dir.name
    mesh_path = scene_dir / f"{scene}_vh_clean_2.ply"
    labels_path = scene_dir / f"{scene}_vh_clean_2.labels.ply"
    if not mesh_path.is_file():
        raise DataFormatError(mesh_path, "file does not exist", "download or synthesize the scene first")
    has_labels = labels_path.is_file()
    if has_labels:
        mesh, nyu40 = read_scene_ply_pair(mesh_path, labels_path)
        label = nyu40_to_class_lut()[nyu40]
    else:
        mesh = read_mesh_ply(mesh_path)
        label = np.full(mesh.num_vertices, IGNORE_INDEX, dtype=np.uint8)

    counts = class_point_counts(label)
    attrs = {
        "scene": scene,
        "num_points": mesh.num_vertices,
        "scene_labels": (counts >= min_points).tolist(),
        "class_point_counts": counts.tolist(),
        "ignored_points": int(mesh.num_vertices - counts.sum()),
        "min_points": int(min_points),
        "has_labels": has_labels,
        "source_files": [str(mesh_path)] + ([str(labels_path)] if has_labels else []),
    }
    with atomic_path(out_path) as tmp:
        group = create_store(tmp, "points", attrs)
        write_array(group, "xyz", mesh.xyz.astype(np.float32))
        write_array(group, "rgb", mesh.rgb.astype(np.uint8))
        write_array(group, "label", label)

    seconds = time.perf_counter() - start
    logger.info(
        "points %s: %d points, %d of %d classes present (>= %d points each), %.1f s",
        scene, mesh.num_vertices, int((counts >= min_points).sum()), NUM_CLASSES, min_points, seconds,
    )
    return {**attrs, "path": str(out_path), "seconds": seconds}
