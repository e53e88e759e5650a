"""A scene's mesh recoloured by the prediction: same vertices, faces and alpha, new vertex colours.

Both writers read ``<scene_dir>/<scene>_vh_clean_2.ply`` (the scene name is the folder's name) and
write a PLY of the same layout, so any mesh viewer that opens ScanNet meshes opens these.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jointwsss.classes import CLASS_NAMES, NUM_CLASSES, palette
from jointwsss.export.images import heat_colors
from jointwsss.export.predictions import open_predictions
from jointwsss.io.errors import DataFormatError
from jointwsss.io.ply import ScanNetMesh, read_mesh_ply, write_mesh_ply


def _scene_mesh(raw_scene_dir: Path) -> tuple[Path, ScanNetMesh]:
    raw_scene_dir = Path(raw_scene_dir)
    path = raw_scene_dir / f"{raw_scene_dir.name}_vh_clean_2.ply"
    return path, read_mesh_ply(path)


def _write_recoloured(raw_scene_dir: Path, per_vertex: np.ndarray, colors_of, out_path: Path) -> None:
    """Write the scene's mesh with colours ``colors_of(per_vertex)``; ``per_vertex`` must have one row per vertex."""
    mesh_path, mesh = _scene_mesh(raw_scene_dir)
    if per_vertex.shape[:1] != (mesh.num_vertices,):
        raise DataFormatError(mesh_path, f"has {mesh.num_vertices} vertices but {per_vertex.shape[0]} values "
                                         "were given to colour them", "predictions and mesh must be of one scene")
    write_mesh_ply(out_path, mesh.xyz, colors_of(per_vertex), mesh.faces, alpha=mesh.alpha)


def write_prediction_ply(raw_scene_dir: Path, labels: np.ndarray, out_path: Path) -> None:
    """Write the scene's mesh coloured by class: labels (N,) class indices 0..19, 255 (none) drawn black.

    N must equal the mesh's vertex count. Colours are ``palette()[labels]`` exactly (the ScanNet
    benchmark palette); xyz, faces and alpha are copied from the source mesh.
    """
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer) or (labels.size and (labels.min() < 0 or labels.max() > 255)):
        raise ValueError(f"labels must be integer class indices in 0..255, got dtype {labels.dtype}")
    _write_recoloured(raw_scene_dir, labels, lambda lab: palette()[lab.astype(np.int64)], out_path)


def write_cam_ply(raw_scene_dir: Path, scores: np.ndarray, out_path: Path) -> None:
    """Write the scene's mesh coloured by one class's score: scores (N,) in [0, 1] as a JET heat map.

    Colours are ``heat_colors(scores)`` (0 dark blue .. 1 dark red, cv2.COLORMAP_JET); N must equal
    the mesh's vertex count.
    """
    scores = np.asarray(scores, dtype=np.float32)
    if scores.ndim != 1:
        raise ValueError(f"scores must have shape (N,), got {scores.shape}")
    _write_recoloured(raw_scene_dir, scores, heat_colors, out_path)


def write_scene_plys(pred_h5: Path, scans_dir: Path, out_dir: Path, cam_class: int | None = None) -> list[Path]:
    """For every scene of ``pred_h5``: ``<out_dir>/<scene>_pred.ply`` and, if ``cam_class`` (0..19) is
    given, ``<out_dir>/<scene>_cam_<class name>.ply`` from ``vertex_score[:, cam_class]``.

    scans_dir: the folder holding the raw scene folders (``raw/scans``). Returns the written paths.
    """
    if cam_class is not None and not 0 <= cam_class < NUM_CLASSES:
        raise ValueError(f"cam_class must be a class index 0..{NUM_CLASSES - 1}, got {cam_class}")
    written = []
    with open_predictions(pred_h5, "3d") as h5:
        for scene in h5:
            group = h5[scene]
            scene_dir = Path(scans_dir) / scene
            path = Path(out_dir) / f"{scene}_pred.ply"
            write_prediction_ply(scene_dir, group["vertex_label"][...], path)
            written.append(path)
            if cam_class is not None:
                name = CLASS_NAMES[cam_class].replace(" ", "_")
                path = Path(out_dir) / f"{scene}_cam_{name}.ply"
                write_cam_ply(scene_dir, group["vertex_score"][:, cam_class].astype(np.float32), path)
                written.append(path)
    return written


__all__ = ["write_prediction_ply", "write_cam_ply", "write_scene_plys"]
