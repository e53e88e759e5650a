"""What the joint losses can transfer on a dataset, measured against ground truth (``jointwsss diagnose``).

The Table 2 numbers say *whether* a transfer helped; these measurements say *why*. All of them are
inference on one split with a trained run (no training), written to one JSON:

- ``coverage``: the share of each class's vertices that some kept view sees. Eq. 7 supervises only
  those; every other vertex is learnt by generalisation.
- ``teacher`` (runs with an image network): the eq. 5 pseudo-label and eq. 6 confidence of the run's
  image network at every visible point of every view, against the vertex's ground truth: per-class
  recall, precision and IoU, and the label the teacher gives each class most often. A point network
  trained by eq. 7 learns, region by region, the label its teacher gives there most often (the
  per-point optimum under BCE and cross-entropy alike), so a class whose points are more often given
  another label (``learnable_by_2d_to_3d`` false) cannot be learnt from 2D->3D, however long one trains.
  ``image_level_auc``: per class, how well the classifier's own output (eq. 1's GAP of its CAM) ranks
  the views whose image-level label has the class above those without it (0.5 = chance). A classifier
  that cannot tell *whether* a class is in a view cannot tell *where*.
- ``student`` (with the run's ``predictions/<split>.h5`` of a point network): 3D mIoU on the vertices some view sees vs
  those none sees -- fitting the teacher vs generalising from it.
- ``features`` (runs with both networks): eq. 8/9 cosine similarities of pairs of visible points of
  the same ground-truth class and of different classes, in 3D and in 2D, and the pair AUC (how well a
  correlation matrix separates classes, 0.5 = not at all): what eq. 11 hands from 3D to 2D.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from jointwsss.classes import CLASS_NAMES, NUM_CLASSES
from jointwsss.data.transforms import normalize_image
from jointwsss.evaluate import point_outputs
from jointwsss.io.errors import DataFormatError
from jointwsss.io.zarr_store import open_store
from jointwsss.io.layout import store_path
from jointwsss.losses import correlation, global_average_pool, sample_at_pixels, teacher_targets
from jointwsss.metrics import confusion_matrix, miou_report
from jointwsss.runs import load_networks, pick_device

log = logging.getLogger("jointwsss")


# ----------------------------------------------------------------------------- pure measurements
def class_counts(labels: np.ndarray) -> np.ndarray:
    """(20,) int64 number of elements of each class (labels outside 0..19 are not counted)."""
    labels = np.asarray(labels).ravel()
    return np.bincount(labels[labels < NUM_CLASSES].astype(np.int64), minlength=NUM_CLASSES)


def seen_vertices(num_vertices: int, point_idx: np.ndarray) -> np.ndarray:
    """(N,) bool: the vertices that appear in at least one view's correspondences."""
    seen = np.zeros(num_vertices, dtype=bool)
    seen[np.asarray(point_idx, dtype=np.int64)] = True
    return seen


def teacher_labels(cam2d_at_points: torch.Tensor, image_labels: torch.Tensor, confidence_over: str = "all",
                   confidence_score: str = "sigmoid") -> tuple[np.ndarray, np.ndarray]:
    """Eq. 5 pseudo-labels and eq. 6 confidences of one view's points, exactly as training computes them
    (``losses.teacher_targets``; ``confidence_over`` and ``confidence_score`` are the run's
    ``joint.confidence_2d_over`` and ``joint.confidence_score``).

    cam2d_at_points (P, C) logits of the image network at the points' pixels; image_labels (C,) in {0, 1}.
    Returns (P,) int64 labels and (P,) float32 confidences.
    """
    labels, confidence = teacher_targets(cam2d_at_points, image_labels.expand_as(cam2d_at_points),
                                         confidence_over=confidence_over, confidence_score=confidence_score)
    return labels.numpy(), confidence.numpy()


def teacher_report(conf: np.ndarray, weighted_conf: np.ndarray) -> dict:
    """Per-class recall / precision / IoU of pseudo-labels from their (20, 21) confusion with ground truth.

    ``most_given``: the label the teacher gives a class's points most often; ``learnable_by_2d_to_3d``:
    that label is the class itself (a student fitting the teacher predicts the class there).
    ``weighted_conf``: the same confusion with each point counted with its eq. 6 confidence, which is how eq. 7
    weighs the labels: ``confidence_weighted_miou`` above ``miou`` says the confidence favours right labels, below it
    that it favours some classes' labels over others'; per class, the mean confidence of its points labelled right
    and labelled wrong.
    """
    conf = np.asarray(conf, dtype=np.int64)
    tp = np.diag(conf[:, :NUM_CLASSES]).astype(np.float64)
    gt_total, pred_total = conf.sum(axis=1), conf[:, :NUM_CLASSES].sum(axis=0)
    report = miou_report(conf)
    weighted = np.asarray(weighted_conf, dtype=np.float64)
    weighted_tp = np.diag(weighted[:, :NUM_CLASSES])
    per_class = {}
    for c, name in enumerate(CLASS_NAMES):
        if gt_total[c] == 0:
            continue
        most = int(conf[c, :NUM_CLASSES].argmax())
        per_class[name] = {
            "points": int(gt_total[c]),
            "recall": float(tp[c] / gt_total[c]),
            "precision": float(tp[c] / pred_total[c]) if pred_total[c] else None,
            "iou": report["per_class"][name],
            "most_given": CLASS_NAMES[most],
            "learnable_by_2d_to_3d": most == c,
            "confidence_right": float(weighted_tp[c] / tp[c]) if tp[c] else None,
            "confidence_wrong": (float((weighted[c].sum() - weighted_tp[c]) / (gt_total[c] - tp[c]))
                                 if gt_total[c] > tp[c] else None),
        }
    return {
        "miou": report["miou"],
        "confidence_weighted_miou": miou_report(weighted)["miou"],
        "accuracy": float(tp.sum() / max(conf.sum(), 1)),
        "confidence_weighted_accuracy": float(weighted_tp.sum() / max(weighted.sum(), 1e-12)),
        "label_share": {name: float(pred_total[c] / max(pred_total.sum(), 1)) for c, name in enumerate(CLASS_NAMES)},
        "truth_share": {name: float(gt_total[c] / max(gt_total.sum(), 1)) for c, name in enumerate(CLASS_NAMES)},
        "per_class": per_class,
        "learnable_classes": [n for n, v in per_class.items() if v["learnable_by_2d_to_3d"]],
        "confusion": conf.tolist(),
    }


def pair_auc(positive: np.ndarray, negative: np.ndarray) -> float | None:
    """P(a random positive > a random negative) + 0.5 P(tie) (Mann-Whitney); None if a side is empty."""
    positive, negative = np.asarray(positive, np.float64).ravel(), np.sort(np.asarray(negative, np.float64).ravel())
    if positive.size == 0 or negative.size == 0:
        return None
    below = np.searchsorted(negative, positive, side="left")
    at_most = np.searchsorted(negative, positive, side="right")
    return float((below + 0.5 * (at_most - below)).sum() / (positive.size * negative.size))


def pair_similarities(features: torch.Tensor, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 8/9 cosine similarities of all pairs a < b of points with a ground-truth class, split into
    (same-class pairs, different-class pairs). features (P, D), labels (P,)."""
    labels = np.asarray(labels)
    keep = labels < NUM_CLASSES
    s = correlation(features[torch.from_numpy(keep)][None])[0].numpy()
    lab = labels[keep]
    upper = np.triu(np.ones_like(s, dtype=bool), k=1)
    same = (lab[:, None] == lab[None, :]) & upper
    return s[same], s[upper & ~same]


def image_level_auc(scores: np.ndarray, labels: np.ndarray) -> dict[str, float | None]:
    """Per class, the AUC of ``scores`` (I, C) (eq. 1's y^2d, logits) against image-level ``labels`` (I, C) in {0, 1}:
    P(a view with the class scores above one without it), ties half; None for a class on all views or none."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels).astype(bool)
    return {name: pair_auc(scores[labels[:, c], c], scores[~labels[:, c], c]) for c, name in enumerate(CLASS_NAMES)}


class _PairStats:
    """Running sums of same / different-class similarities and per-view AUCs of one domain."""

    def __init__(self):
        self.sums = np.zeros(2)
        self.counts = np.zeros(2, dtype=np.int64)
        self.aucs: list[float] = []

    def add(self, same: np.ndarray, different: np.ndarray) -> None:
        self.sums += [same.sum(), different.sum()]
        self.counts += [same.size, different.size]
        auc = pair_auc(same, different)
        if auc is not None:
            self.aucs.append(auc)

    def report(self) -> dict:
        mean = self.sums / np.maximum(self.counts, 1)
        return {"same_class_cosine": float(mean[0]), "different_class_cosine": float(mean[1]),
                "pair_auc": float(np.mean(self.aucs)) if self.aucs else None, "views": len(self.aucs),
                "pairs": {"same_class": int(self.counts[0]), "different_class": int(self.counts[1])}}


# ----------------------------------------------------------------------------- one split
def _vertex_predictions(predictions: Path | None):
    """The run's ``predictions/<split>.h5`` open for reading; None without one or for an image-only run (its
    file holds no vertex predictions to split into seen and unseen)."""
    h5 = h5py.File(predictions, "r") if predictions is not None else None
    if h5 is not None and not h5.attrs.get("has_3d", True):
        h5.close()
        h5 = None
    return h5


def _scene_vertex_labels(h5, predictions: Path, scene: str) -> np.ndarray:
    """(N,) predicted label of every vertex of ``scene`` from the open predictions file ``h5`` (read from
    ``predictions``); DataFormatError naming the file if it has no entry for the scene."""
    if scene not in h5:
        raise DataFormatError(predictions, f"no predictions for scene {scene}",
                              "run `snakemake eval` for this run and split first")
    return h5[scene]["vertex_label"][...]


class _SplitDiagnosis:
    """The measurements of one split, summed scene by scene and view by view, and their report.

    ``image_net`` / ``point_net``: the run's networks (None where the run has none); ``rng`` draws the 3D
    passes' point samples and each view's feature points, in scene and view order.
    """

    def __init__(self, settings: dict, image_net, point_net, *, rng: np.random.Generator, device: torch.device,
                 passes_3d: int, feature_points_per_view: int):
        self.settings, self.image_net, self.point_net = settings, image_net, point_net
        self.rng, self.device = rng, device
        self.passes_3d, self.feature_points_per_view = passes_3d, feature_points_per_view
        self.confidence_over = settings["joint"].get("confidence_2d_over", "all")  # eq. 6 as this run trained
        self.confidence_score = settings["joint"].get("confidence_score", "sigmoid")  # runs made before the key
        self.vertex_counts, self.seen_counts, self.pair_counts = (np.zeros(NUM_CLASSES, np.int64) for _ in range(3))
        self.teacher_conf = np.zeros((NUM_CLASSES, NUM_CLASSES + 1), np.int64)
        self.teacher_weighted = np.zeros((NUM_CLASSES, NUM_CLASSES + 1), np.float64)
        self.student_conf = {"seen": self.teacher_conf.copy(), "unseen": self.teacher_conf.copy()}
        self.pairs = {"3d": _PairStats(), "2d": _PairStats()}
        self.view_scores, self.view_labels = [], []  # eq. 1's y^2d and the image-level labels of every view with pairs
        self.views = 0

    def add_coverage(self, gt: np.ndarray, seen: np.ndarray, point_idx: np.ndarray) -> None:
        """Count a scene's vertices per class: all, those some view sees, and its correspondences (pairs)."""
        self.vertex_counts += class_counts(gt)
        self.seen_counts += class_counts(gt[seen])
        self.pair_counts += class_counts(gt[point_idx])

    def add_student(self, gt: np.ndarray, seen: np.ndarray, predicted: np.ndarray) -> None:
        """Add a scene's predicted vertex labels to the seen and the unseen confusion with ground truth."""
        self.student_conf["seen"] += confusion_matrix(gt[seen], predicted[seen])
        self.student_conf["unseen"] += confusion_matrix(gt[~seen], predicted[~seen])

    def add_views(self, points, frames, gt: np.ndarray, offsets: np.ndarray, point_idx: np.ndarray,
                  uv: np.ndarray) -> None:
        """Count a scene's views with correspondences and, with an image network, measure each of them (with
        the point network's features of every vertex if the run has both networks)."""
        feat3d = None
        if self.point_net is not None and self.image_net is not None:
            _, feat3d = point_outputs(self.point_net, points["xyz"][...], points["rgb"][...],
                                      num_points=self.settings["points"]["num"], passes=self.passes_3d, batch=4,
                                      rng=self.rng, device=self.device, with_features=True)
        color = frames["color"][...]
        image_labels = torch.from_numpy(frames["image_labels"][...].astype(np.float32))
        for f in range(len(offsets) - 1):
            a, b = int(offsets[f]), int(offsets[f + 1])
            if a == b:
                continue
            self.views += 1
            if self.image_net is not None:
                self._add_view(color[f], image_labels[f], gt, point_idx, uv, a, b, feat3d)

    def _add_view(self, image: np.ndarray, image_labels: torch.Tensor, gt: np.ndarray, point_idx: np.ndarray,
                  uv: np.ndarray, a: int, b: int, feat3d: np.ndarray | None) -> None:
        """One view (its correspondences: ``point_idx[a:b]`` at pixels ``uv[a:b]``): the image network's eq. 1
        scores, its eq. 5/6 teacher at the points, and (with ``feat3d``, (N, D)) 2D and 3D feature pairs."""
        dev, stride = self.device, self.image_net.output_stride
        idx = point_idx[a:b].astype(np.int64)
        view_uv = torch.from_numpy(uv[a:b].astype(np.float32))[None].to(dev)
        with torch.no_grad():
            feat2d, cam2d = self.image_net(torch.from_numpy(normalize_image(image))[None].to(dev))
            cam_at = sample_at_pixels(cam2d.float(), view_uv, stride)[0].cpu()
        self.view_scores.append(global_average_pool(cam2d.float())[0].cpu().numpy())
        self.view_labels.append(image_labels.numpy())
        if image_labels.any():
            label, confidence = teacher_labels(cam_at, image_labels, self.confidence_over, self.confidence_score)
            self.teacher_conf += confusion_matrix(gt[idx], label)
            self.teacher_weighted += confusion_matrix(gt[idx], label, weights=confidence)
        if feat3d is not None:
            pick = np.sort(self.rng.choice(b - a, size=min(b - a, self.feature_points_per_view), replace=False))
            with torch.no_grad():
                f2 = sample_at_pixels(feat2d.float(), view_uv[:, pick], stride)[0].cpu()
            self.pairs["2d"].add(*pair_similarities(f2, gt[idx[pick]]))
            self.pairs["3d"].add(*pair_similarities(torch.from_numpy(feat3d[idx[pick]]), gt[idx[pick]]))

    def _coverage_section(self) -> dict:
        """Per class, the share of the vertices, the seen fraction and the share of the correspondences."""
        total_vertices = max(int(self.vertex_counts.sum()), 1)
        return {
            "seen_fraction": float(self.seen_counts.sum() / total_vertices),
            "per_class": {
                name: {"vertex_share": float(self.vertex_counts[c] / total_vertices),
                       "seen_fraction": float(self.seen_counts[c] / self.vertex_counts[c]) if self.vertex_counts[c]
                       else None,
                       "pair_share": float(self.pair_counts[c] / max(self.pair_counts.sum(), 1))}
                for c, name in enumerate(CLASS_NAMES)},
        }

    def _teacher_section(self) -> dict:
        """:func:`teacher_report` of the teacher's confusions, with the views' image-level AUCs."""
        report = teacher_report(self.teacher_conf, self.teacher_weighted)
        if self.view_scores:
            auc = image_level_auc(np.stack(self.view_scores), np.stack(self.view_labels))
            report["image_level_auc"] = auc
            measured = [v for v in auc.values() if v is not None]
            report["mean_image_level_auc"] = float(np.mean(measured)) if measured else None
        return report

    def _student_section(self) -> dict:
        """mIoU, accuracy and per-class IoU of the predicted vertex labels, on seen and on unseen vertices."""
        report = {}
        for part, conf in self.student_conf.items():
            rep = miou_report(conf)
            accuracy = float(np.trace(conf[:, :NUM_CLASSES]) / max(conf.sum(), 1))
            report[part] = {"miou": rep["miou"], "accuracy": accuracy, "vertices": rep["points_or_pixels"],
                            "per_class": rep["per_class"]}
        return report

    def report(self, *, with_student: bool) -> dict:
        """The ``coverage``, ``teacher`` (with an image network), ``student`` (``with_student``) and ``features``
        (with both networks) sections of the diagnosis."""
        result = {"coverage": self._coverage_section()}
        if self.image_net is not None:
            result["teacher"] = self._teacher_section()
        if with_student:
            result["student"] = self._student_section()
        if self.image_net is not None and self.point_net is not None:
            result["features"] = {domain: stats.report() for domain, stats in self.pairs.items()}
        return result


def diagnose_split(model_path: Path, cache_dir: Path, scenes: list[str], split: str, *,
                   predictions: Path | None = None, feature_points_per_view: int = 256, passes_3d: int = 1,
                   seed: int = 0, device: str = "cpu") -> dict:
    """The measurements of the module docstring over ``scenes`` (their caches under ``cache_dir``)."""
    dev = pick_device(device)
    settings, image_net, point_net = load_networks(model_path, dev)
    cache_dir = Path(cache_dir)
    diagnosis = _SplitDiagnosis(settings, image_net, point_net, rng=np.random.default_rng(seed), device=dev,
                                passes_3d=passes_3d, feature_points_per_view=feature_points_per_view)
    h5 = _vertex_predictions(predictions)
    t0 = time.perf_counter()
    try:
        for scene in scenes:
            points = open_store(store_path(cache_dir, "points", scene), "points")
            frames = open_store(store_path(cache_dir, "frames", scene), "frames")
            corr = open_store(store_path(cache_dir, "corr", scene), "corr")
            gt = points["label"][...]
            offsets, point_idx, uv = corr["offsets"][...], corr["point_idx"][...], corr["uv"][...]
            seen = seen_vertices(len(gt), point_idx)
            diagnosis.add_coverage(gt, seen, point_idx)
            if h5 is not None:
                diagnosis.add_student(gt, seen, _scene_vertex_labels(h5, predictions, scene))
            if len(offsets) != 1:  # one offset more than the scene has views
                diagnosis.add_views(points, frames, gt, offsets, point_idx, uv)
    finally:
        if h5 is not None:
            h5.close()
    return {"experiment": settings["experiment"], "split": split, "model": str(model_path), "scenes": len(scenes),
            "views": diagnosis.views, "seconds": round(time.perf_counter() - t0, 1),
            **diagnosis.report(with_student=h5 is not None)}


def summary_lines(result: dict) -> list[str]:
    """Human-readable one-liners of a diagnosis (the CLI logs them)."""
    pct = lambda v: "n/a" if v is None else f"{100 * v:.1f}"  # noqa: E731
    lines = [f"diagnose {result['experiment']} {result['split']}: {result['scenes']} scenes, {result['views']} views; "
             f"views see {pct(result['coverage']['seen_fraction'])} % of the labelled vertices"]
    if "teacher" in result:
        t = result["teacher"]
        lines.append(f"  teacher (eq. 5 at visible points): mIoU {pct(t['miou'])} % (weighted by eq. 6's confidence "
                     f"{pct(t.get('confidence_weighted_miou'))} %), accuracy {pct(t['accuracy'])} %; "
                     f"most-given label right for {len(t['learnable_classes'])}/{len(t['per_class'])} classes: "
                     f"{', '.join(t['learnable_classes'])}")
        if t.get("mean_image_level_auc") is not None:
            lines.append(f"  image-level classification (GAP of the CAM against the views' labels): mean AUC "
                         f"{t['mean_image_level_auc']:.3f} over the classes some view has and some lacks")
    if "student" in result:
        s = result["student"]
        lines.append(f"  3D predictions: mIoU {pct(s['seen']['miou'])} % on seen vertices, "
                     f"{pct(s['unseen']['miou'])} % on unseen")
    if "features" in result:
        for domain, f in result["features"].items():
            lines.append(f"  {domain} features: cosine same-class {f['same_class_cosine']:.3f}, "
                         f"different-class {f['different_class_cosine']:.3f}, pair AUC "
                         f"{'n/a' if f['pair_auc'] is None else format(f['pair_auc'], '.3f')}")
    return lines


__all__ = ["class_counts", "seen_vertices", "teacher_labels", "teacher_report", "pair_auc", "image_level_auc",
           "pair_similarities", "diagnose_split", "summary_lines"]
