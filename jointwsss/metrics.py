"""mIoU exactly as the official ScanNet benchmark script computes it, for 3D vertices and 2D pixels.

Semantics (``BenchmarkScripts/3d_evaluation/evaluate_semantic_label.py``):

- one confusion matrix over everything evaluated (all scenes, all vertices / pixels);
- ground truth outside the 20 classes (class index 255 here) is ignored;
- a prediction outside the 20 classes goes to an extra "unknown" column: it is a false negative of
  the true class and a false positive of none;
- ``IoU_c = TP / (TP + FP + FN)``, FP counted only over elements whose ground truth is another of the 20;
- a class with ``TP + FP + FN = 0`` (absent from ground truth and prediction) has no IoU: it is
  ``None`` in the per-class table and left out of the mean (the official script prints no mean and
  crashes on such a class; we say how many classes the mean covers).
"""

from __future__ import annotations

import numpy as np

from jointwsss.classes import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES

UNKNOWN_COLUMN = NUM_CLASSES  # predictions outside 0..19


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """(20, 21) int64 counts (float64 sums of ``weights``): rows = ground-truth class, columns = predicted class or
    unknown (last).

    gt, pred: same-shape integer arrays of class indices (gt 255 = ignore; pred outside 0..19 = unknown).
    weights: optional same-shape weights, one per element; the matrix then holds their float64 sums.
    """
    gt = np.asarray(gt).ravel().astype(np.int64)
    pred = np.asarray(pred).ravel().astype(np.int64)
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth and prediction differ in size: {gt.size} vs {pred.size}")
    valid = (gt >= 0) & (gt < NUM_CLASSES)
    gt, pred = gt[valid], pred[valid]
    if weights is not None:
        weights = np.asarray(weights, np.float64).ravel()[valid]
    pred = np.where((pred >= 0) & (pred < NUM_CLASSES), pred, UNKNOWN_COLUMN)
    counts = np.bincount(gt * (NUM_CLASSES + 1) + pred, weights=weights, minlength=NUM_CLASSES * (NUM_CLASSES + 1))
    return counts.reshape(NUM_CLASSES, NUM_CLASSES + 1)


def class_iou(conf: np.ndarray) -> np.ndarray:
    """(20,) float64 IoU per class, NaN where TP + FP + FN = 0. ``conf`` holds counts, or weights (a confusion whose
    entries are summed weights, e.g. eq. 6's confidences)."""
    conf = np.asarray(conf, dtype=np.float64)
    tp = np.diag(conf[:, :NUM_CLASSES])
    fn = conf.sum(axis=1) - tp                       # includes predictions of unknown
    fp = conf[:, :NUM_CLASSES].sum(axis=0) - tp      # only rows of the 20 classes exist
    denom = tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, tp / np.where(denom > 0, denom, 1.0), np.nan)


def miou_report(conf: np.ndarray) -> dict:
    """{"miou", "per_class" {name: IoU or None}, "classes_in_mean", "confusion", "points_or_pixels"}.

    IoUs are fractions in [0, 1]; ``miou`` is the mean over classes with an IoU (None if there are none).
    """
    iou = class_iou(conf)
    present = ~np.isnan(iou)
    return {
        "miou": float(iou[present].mean()) if present.any() else None,
        "per_class": {name: (None if np.isnan(v) else float(v)) for name, v in zip(CLASS_NAMES, iou)},
        "classes_in_mean": int(present.sum()),
        "confusion": np.asarray(conf, dtype=np.int64).tolist(),
        "points_or_pixels": int(np.asarray(conf).sum()),
    }


__all__ = ["confusion_matrix", "class_iou", "miou_report", "UNKNOWN_COLUMN", "IGNORE_INDEX"]
