"""PNG panels of cached frames: image | ground truth | prediction [| CAM], side by side.

The predictions HDF5 holds 2D *labels* only (no per-pixel scores), so the CAM column needs a
callable that computes one class's score map for a frame (e.g. from a trained image network);
without one the panel has three columns.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from jointwsss.classes import palette
from jointwsss.export.images import blend_half, heat_colors, write_png
from jointwsss.export.predictions import open_predictions
from jointwsss.io.errors import DataFormatError
from jointwsss.io.zarr_store import open_store
from jointwsss.io.layout import store_path

SEPARATOR_PX = 2            # width in pixels of the white strip between columns
SEPARATOR_RGB = (255, 255, 255)

# cam(scene, frame_id, color (H, W, 3) uint8 RGB) -> (H, W) float scores in [0, 1] of the class to show.
CamFunction = Callable[[str, int, np.ndarray], np.ndarray]


def overlay_panel(color: np.ndarray, gt: np.ndarray, pred: np.ndarray, cam: np.ndarray | None) -> np.ndarray:
    """(H, k*W + (k-1)*SEPARATOR_PX, 3) uint8 RGB panel, k = 4 with ``cam`` and 3 without.

    color (H, W, 3) uint8 RGB; gt, pred (H, W) class indices (255 = none, drawn black, so it shows
    as darkened image); cam (H, W) float scores in [0, 1] or None. Columns, left to right: the image;
    ``blend_half(image, palette[gt])``; ``blend_half(image, palette[pred])``; ``blend_half(image,
    heat_colors(cam))``. Columns are separated by white strips of SEPARATOR_PX pixels.
    """
    color = np.asarray(color)
    if color.ndim != 3 or color.shape[2] != 3 or color.dtype != np.uint8:
        raise ValueError(f"color must be an (H, W, 3) uint8 RGB image, got {color.dtype} {color.shape}")
    size = color.shape[:2]
    pal = palette()
    columns = [color]
    for name, labels in (("gt", gt), ("pred", pred)):
        labels = np.asarray(labels)
        if labels.shape != size:
            raise ValueError(f"{name} must have the image's shape {size}, got {labels.shape}")
        columns.append(blend_half(color, pal[labels.astype(np.int64)]))
    if cam is not None:
        cam = np.asarray(cam)
        if cam.shape != size:
            raise ValueError(f"cam must have the image's shape {size}, got {cam.shape}")
        columns.append(blend_half(color, heat_colors(cam)))
    separator = np.empty((size[0], SEPARATOR_PX, 3), np.uint8)
    separator[:] = SEPARATOR_RGB
    pieces = [columns[0]]
    for column in columns[1:]:
        pieces += [separator, column]
    return np.concatenate(pieces, axis=1)


def spread_frames(num_frames: int, count: int) -> np.ndarray:
    """Indices of ``min(count, num_frames)`` frames spread evenly over 0..num_frames-1 (first and last included)."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if num_frames == 0:
        return np.zeros(0, np.int64)
    return np.unique(np.rint(np.linspace(0, num_frames - 1, min(count, num_frames))).astype(np.int64))


def write_overlays(pred_h5: Path, cache_dir: Path, out_dir: Path, max_frames_per_scene: int = 2,
                   cam: CamFunction | None = None) -> list[Path]:
    """Write ``<out_dir>/<scene>_<frame_id>.png`` overlay panels for up to ``max_frames_per_scene``
    evenly spread frames of every scene of ``pred_h5``.

    Images and ground truth come from ``frames/<scene>.zarr`` (``color``, ``label``), predictions from
    ``<scene>/frame_label``; the h5's ``frame_id`` must equal the store's (else the predictions are of
    another cache: DataFormatError). ``cam``, if given, supplies the CAM column (see CamFunction).
    Returns the written paths.
    """
    written = []
    with open_predictions(pred_h5, "2d") as h5:
        for scene in h5:
            group = h5[scene]
            frames_store = store_path(cache_dir, "frames", scene)
            frames = open_store(frames_store, "frames")
            frame_ids = frames["frame_id"][...]
            if not np.array_equal(group["frame_id"][...], frame_ids):
                raise DataFormatError(pred_h5, f"scene {scene}: frame ids differ from those of {frames_store}",
                                      "re-run inference on this cache")
            for f in spread_frames(len(frame_ids), max_frames_per_scene):
                color = frames["color"][f]
                frame_id = int(frame_ids[f])
                heat = None if cam is None else cam(scene, frame_id, color)
                panel = overlay_panel(color, frames["label"][f], group["frame_label"][f], heat)
                path = Path(out_dir) / f"{scene}_{frame_id}.png"
                write_png(path, panel)
                written.append(path)
    return written
