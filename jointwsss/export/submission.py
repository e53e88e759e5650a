"""ScanNet 3D semantic-label benchmark submission files.

Format (what the official ``evaluate_semantic_label.py`` reads): one text file ``<scene>.txt`` per
scene, one line per mesh vertex of ``<scene>_vh_clean_2.ply`` in vertex order, each line the nyu40 id
of the predicted class as a decimal integer. Our class indices map to nyu40 ids with
``class_to_nyu40()``; "no prediction" (255) is written as 0 (nyu40 "unannotated"), which the
benchmark counts as a miss -- the same as ``evaluate_predictions`` does with 255, so a submission
scores exactly like the predictions it came from.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from jointwsss.classes import NUM_CLASSES, class_to_nyu40, nyu40_to_class_lut
from jointwsss.export.predictions import open_predictions
from jointwsss.io.atomic import atomic_path
from jointwsss.io.errors import DataFormatError
from jointwsss.io.zarr_store import open_store
from jointwsss.io.layout import store_path
from jointwsss.metrics import confusion_matrix, miou_report

MAX_NYU40_ID = 65535  # ids are uint16 in the label PLYs; anything larger cannot be a label


def write_submission(pred_h5: Path, out_dir: Path) -> list[Path]:
    """Write ``<out_dir>/<scene>.txt`` (one nyu40 id per vertex and line) for every scene of ``pred_h5``.

    pred_h5: predictions with ``<scene>/vertex_label`` (N,) uint8 class indices 0..19, 255 = none.
    Each file is written atomically. Returns the written paths in the h5's scene order.
    """
    lut = class_to_nyu40()
    written = []
    with open_predictions(pred_h5, "3d") as h5:
        for scene in h5:
            labels = h5[scene]["vertex_label"][...]
            nyu40 = lut[labels.astype(np.int64)]
            path = Path(out_dir) / f"{scene}.txt"
            with atomic_path(path) as tmp:
                tmp.write_text("".join(f"{v}\n" for v in nyu40.tolist()))
            written.append(path)
    return written


def read_submission(path: Path) -> np.ndarray:
    """(N,) int64 nyu40 ids of one submission file, line i = vertex i.

    Every line must be one non-negative decimal integer <= 65535 (surrounding blanks allowed); anything
    else is a DataFormatError naming the file and the 1-based line number. An empty file is N = 0.
    """
    try:
        text = Path(path).read_text()
    except FileNotFoundError as exc:
        raise DataFormatError(path, "submission file does not exist",
                              "run the submission export for this scene") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFormatError(path, f"cannot be read as text ({exc})") from exc
    lines = text.splitlines()
    ids = np.empty(len(lines), dtype=np.int64)
    for i, line in enumerate(lines):
        token = line.strip()
        if not token.isascii() or not token.isdigit():
            raise DataFormatError(path, f"line {i + 1} is {line!r}, expected one nyu40 id (a non-negative integer)")
        value = int(token)
        if value > MAX_NYU40_ID:
            raise DataFormatError(path, f"line {i + 1} holds {token}, larger than any nyu40 id ({MAX_NYU40_ID})")
        ids[i] = value
    return ids


def evaluate_submission(sub_dir: Path, cache_dir: Path, scenes: Iterable[str]) -> dict:
    """``miou_report`` of the submission files ``<sub_dir>/<scene>.txt`` against ``points/<scene>.zarr`` labels.

    nyu40 ids map to classes with ``nyu40_to_class_lut()``; ids that are not one of the 20 benchmark
    classes (0, 13, 40, ...) become "unknown" predictions, i.e. misses. A file whose line count differs
    from the scene's vertex count is a DataFormatError naming the file.
    """
    lut = nyu40_to_class_lut()
    conf = np.zeros((NUM_CLASSES, NUM_CLASSES + 1), np.int64)
    for scene in scenes:
        path = Path(sub_dir) / f"{scene}.txt"
        points_store = store_path(cache_dir, "points", scene)
        gt = open_store(points_store, "points")["label"][...]
        ids = read_submission(path)
        if len(ids) != len(gt):
            raise DataFormatError(path, f"has {len(ids)} lines but scene {scene} has {len(gt)} vertices "
                                        f"({os.fspath(points_store)})",
                                  "a submission needs exactly one line per vertex of <scene>_vh_clean_2.ply")
        conf += confusion_matrix(gt, lut[ids])
    return miou_report(conf)
