"""Inference and evaluation of a trained experiment, in both domains, as the paper reports them.

- ``pseudo_label`` mode (the paper's *train* columns): the CAM is restricted to the known labels --
  a vertex may only take a class of its scene's label, a pixel only a class of its image's label.
- ``inference`` mode (the *val* columns): plain argmax over the 20 classes.

3D: every mesh vertex gets a prediction. The point network sees ``points.num`` points at a time, so
the vertices are randomly partitioned into chunks of that size (the last chunk topped up with random
vertices) and each chunk is classified on its own, centred like a training sample; with
``eval.passes_3d`` > 1 this is repeated with new partitions and the class scores (sigmoid of the CAM)
averaged. Every vertex is thus predicted directly -- no nearest-neighbour propagation is needed.

2D: every kept frame of ``frames/{scene}.zarr`` is classified at the stored image size; the stride-8
CAM is read bilinearly at every pixel of the label image (the stored label image), each map cell at the
centre of its receptive field as in training (``losses.sample_at_pixels``), before argmax.

Predictions go to ``predictions/<split>.h5``: one group per scene with ``vertex_label`` (N,) uint8,
``vertex_score`` (N, 20) float16, ``frame_label`` (F, H, W) uint8 and ``frame_id`` (F,) int32.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from jointwsss.classes import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES
from jointwsss.data.transforms import augment_points, normalize_image, point_features
from jointwsss.io.atomic import atomic_path
from jointwsss.io.errors import DataFormatError
from jointwsss.io.zarr_store import open_store
from jointwsss.io.layout import store_path
from jointwsss.losses import image_grid_uv, sample_at_pixels
from jointwsss.metrics import confusion_matrix, miou_report
from jointwsss.runs import load_networks, pick_device

log = logging.getLogger("jointwsss")

MODES = ("pseudo_label", "inference")


def restricted_argmax(scores: np.ndarray, allowed: np.ndarray | None, axis: int) -> np.ndarray:
    """argmax of class scores along ``axis``, only over ``allowed`` classes (20 bools) when given.

    Returns uint8 class indices; where no class is allowed the result is 255 (a miss wherever the
    ground truth has a class).
    """
    if allowed is None:
        return scores.argmax(axis=axis).astype(np.uint8)
    allowed = np.asarray(allowed, dtype=bool)
    if not allowed.any():
        shape = list(scores.shape)
        del shape[axis]
        return np.full(shape, IGNORE_INDEX, dtype=np.uint8)
    shape = [1] * scores.ndim
    shape[axis] = NUM_CLASSES
    masked = np.where(allowed.reshape(shape), scores, -np.inf)
    return masked.argmax(axis=axis).astype(np.uint8)


def add_rows(target: np.ndarray, rows: np.ndarray, values: np.ndarray) -> None:
    """``target[rows[i]] += values[i]`` for every i in order, a row listed twice added twice (as ``np.add.at``,
    whose per-element loop made it most of a diagnosis's time). target: (N, D) float64, values: (len(rows), D)."""
    torch.from_numpy(target).index_add_(0, torch.from_numpy(np.asarray(rows, np.int64)),
                                        torch.from_numpy(np.asarray(values, np.float64)))


@torch.no_grad()
def point_outputs(point_net, xyz: np.ndarray, rgb: np.ndarray, *, num_points: int, passes: int, batch: int,
                  rng: np.random.Generator, device: torch.device,
                  with_features: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Class scores (N, 20) float32 (sigmoid of the 3D CAM) of every vertex and, with ``with_features``,
    the per-point features ``Z^3d`` (N, D) float32, each averaged over the passes; see the module docstring."""
    n = len(xyz)
    total = np.zeros((n, NUM_CLASSES), dtype=np.float64)
    features = None
    seen = np.zeros(n, dtype=np.int64)
    for _ in range(passes):
        order = rng.permutation(n)
        chunks = [order[i:i + num_points] for i in range(0, n, num_points)]
        if len(chunks[-1]) < num_points:
            top_up = rng.choice(n, size=num_points - len(chunks[-1]), replace=n < num_points)
            chunks[-1] = np.concatenate([chunks[-1], top_up])
        for start in range(0, len(chunks), batch):
            group = chunks[start:start + batch]
            pts = [augment_points(xyz[c], None, rng) for c in group]
            xyz_t = torch.from_numpy(np.stack(pts)).to(device)
            feat_t = torch.from_numpy(np.stack([point_features(p, rgb[c]) for p, c in zip(pts, group)])).to(device)
            z, cam = point_net(xyz_t, feat_t)
            scores = torch.sigmoid(cam.float()).transpose(1, 2).cpu().numpy()   # (b, num_points, 20)
            if with_features and features is None:
                features = np.zeros((n, z.shape[1]), dtype=np.float64)
            z = z.float().transpose(1, 2).cpu().numpy() if with_features else [None] * len(group)
            for c, s, f in zip(group, scores, z):
                add_rows(total, c, s)
                seen += np.bincount(c, minlength=n)
                if f is not None:
                    add_rows(features, c, f)
    count = np.maximum(seen, 1)[:, None]
    return ((total / count).astype(np.float32),
            None if features is None else (features / count).astype(np.float32))


def predict_points(point_net, xyz: np.ndarray, rgb: np.ndarray, *, num_points: int, passes: int, batch: int,
                   rng: np.random.Generator, device: torch.device) -> np.ndarray:
    """(N, 20) float32 class scores (sigmoid of the 3D CAM) of every vertex; see the module docstring."""
    return point_outputs(point_net, xyz, rgb, num_points=num_points, passes=passes, batch=batch, rng=rng,
                         device=device)[0]


@torch.no_grad()
def predict_image(image_net, color: np.ndarray, out_size: tuple[int, int], device: torch.device) -> np.ndarray:
    """(20, H, W) float32 class scores of one image: sigmoid of the CAM read at every pixel of an image of
    ``out_size`` = (W, H) pixels covering the same frame, as training reads it at a point's pixel
    (``losses.sample_at_pixels``: bilinear, each map cell at the centre of its receptive field)."""
    x = torch.from_numpy(normalize_image(color)).unsqueeze(0).to(device)
    _, cam = image_net(x)
    out_w, out_h = out_size
    uv = image_grid_uv(tuple(x.shape[-2:]), (out_h, out_w), device)
    scores = sample_at_pixels(cam.float(), uv, image_net.output_stride)[0]   # (H * W, C)
    return torch.sigmoid(scores).T.reshape(-1, out_h, out_w).cpu().numpy()


def combine_allowed(known: np.ndarray | None, restrict_to: np.ndarray | None) -> np.ndarray | None:
    """The classes an argmax may pick: the known labels (pseudo_label mode) and/or ``restrict_to`` (20 bools)."""
    if known is None or restrict_to is None:
        return restrict_to if known is None else np.asarray(known, bool)
    return np.asarray(known, bool) & np.asarray(restrict_to, bool)


def infer_split(model_path: Path, cache_dir: Path, scenes: list[str], split: str, mode: str, out_path: Path, *,
                passes_3d: int = 1, batch_3d: int = 4, seed: int = 0, device: str = "auto",
                restrict_to: np.ndarray | None = None) -> dict:
    """Predict every vertex and every kept frame of ``scenes``; write ``out_path`` (HDF5) atomically.

    ``restrict_to``: optional (20,) bool; the argmax then runs only over these classes in either mode
    (cross-dataset evaluation on the classes two label sets share, e.g. S3DIS). A scene whose frames
    store is empty gets an empty ``frame_label``.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    dev = pick_device(device)
    settings, image_net, point_net = load_networks(model_path, dev)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    cache_dir = Path(cache_dir)
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs.update({"experiment": settings["experiment"], "split": split, "mode": mode,
                         "model": str(model_path), "has_3d": point_net is not None, "has_2d": image_net is not None,
                         "restricted_to": [] if restrict_to is None else
                         [name for name, keep in zip(CLASS_NAMES, restrict_to) if keep]})
        for scene in scenes:
            g = h5.create_group(scene)
            if point_net is not None:
                points = open_store(store_path(cache_dir, "points", scene), "points")
                scores = predict_points(point_net, points["xyz"][...], points["rgb"][...],
                                        num_points=settings["points"]["num"], passes=passes_3d, batch=batch_3d,
                                        rng=rng, device=dev)
                known = np.asarray(points.attrs["scene_labels"], bool) if mode == "pseudo_label" else None
                allowed = combine_allowed(known, restrict_to)
                g.create_dataset("vertex_label", data=restricted_argmax(scores, allowed, axis=1), compression="gzip")
                g.create_dataset("vertex_score", data=scores.astype(np.float16), compression="gzip")
            if image_net is not None:
                frames = open_store(store_path(cache_dir, "frames", scene), "frames")
                labels_shape = frames["label"].shape
                out = np.zeros(labels_shape, dtype=np.uint8)
                image_labels = frames["image_labels"][...]
                for f in range(labels_shape[0]):
                    s = predict_image(image_net, frames["color"][f], (labels_shape[2], labels_shape[1]), dev)
                    known = image_labels[f] if mode == "pseudo_label" else None
                    out[f] = restricted_argmax(s, combine_allowed(known, restrict_to), axis=0)
                g.create_dataset("frame_label", data=out, compression="gzip")
                g.create_dataset("frame_id", data=frames["frame_id"][...])
    seconds = time.perf_counter() - t0
    log.info("infer %s %s (%s): %d scenes, %.1f s -> %s", settings["experiment"], split, mode, len(scenes), seconds,
             out_path)
    return {"scenes": len(scenes), "seconds": round(seconds, 2)}


def evaluate_experiment(experiment: str, predictions: list[Path], cache_dir: Path, *, dataset: str = "scannet",
                        classes: list[str] | None = None) -> dict:
    """What ``eval/metrics.json`` holds: ``{"experiment", "dataset", "splits": {split: evaluate_predictions(...)}}``
    for the predictions of every split (named by the file stem), plus ``"classes"`` where only the named classes
    are evaluated (Table 4's shared classes)."""
    mask = None if classes is None else np.array([name in classes for name in CLASS_NAMES], dtype=bool)
    splits = {Path(path).stem: evaluate_predictions(path, cache_dir, classes=mask) for path in predictions}
    payload = {"experiment": experiment, "dataset": dataset, "splits": splits}
    if classes is not None:
        payload["classes"] = [name for name in CLASS_NAMES if name in classes]
    return payload


def summary_lines(metrics: dict) -> list[str]:
    """One log line per split and domain of a result of :func:`evaluate_experiment`."""
    return [f"{metrics['experiment']} {split} {domain} ({result['mode']}): mIoU {100 * result[domain]['miou']:.1f} % "
            f"over {result[domain]['classes_in_mean']} classes"
            for split, result in metrics["splits"].items() for domain in ("3d", "2d") if result[domain] is not None]


def confidence_cam(model_path: Path | None):
    """The overlays' and viewer's CAM column: ``cam(scene, frame_id, color) -> (H, W)`` the image network's max
    class score per pixel (eq. 6's W) at the colour image's size; None without a model or an image network."""
    if model_path is None:
        return None
    device = torch.device("cpu")
    _, image_net, _ = load_networks(model_path, device)
    if image_net is None:
        return None

    def cam(scene, frame_id, color):
        return predict_image(image_net, color, (color.shape[1], color.shape[0]), device).max(axis=0)
    return cam


def evaluate_predictions(pred_path: Path, cache_dir: Path, *, classes: np.ndarray | None = None) -> dict:
    """{"mode", "3d": M or None, "2d": M or None} for one split's predictions (M: metrics.miou_report).

    ``classes``: optional (20,) bool, the evaluated classes (e.g. those S3DIS shares with ScanNet).
    Ground truth outside them is ignored and a prediction outside them counts as a miss (the
    benchmark's rule for predictions outside the label set), so the other classes get no IoU and
    stay out of the mean.
    """
    cache_dir = Path(cache_dir)
    outside = None if classes is None else np.append(~np.asarray(classes, bool), True)   # index 20: 255 etc.

    def only_evaluated(labels: np.ndarray) -> np.ndarray:
        if outside is None:
            return labels
        return np.where(outside[np.minimum(labels, NUM_CLASSES)], IGNORE_INDEX, labels).astype(np.uint8)

    conf3d = np.zeros((NUM_CLASSES, NUM_CLASSES + 1), np.int64)
    conf2d = np.zeros_like(conf3d)
    try:
        h5 = h5py.File(pred_path, "r")
    except OSError as exc:
        raise DataFormatError(pred_path, f"cannot open predictions ({exc})", "run `jointwsss infer` first") from exc
    with h5:
        has3d, has2d = bool(h5.attrs["has_3d"]), bool(h5.attrs["has_2d"])
        for scene in h5:
            g = h5[scene]
            if has3d:
                gt = open_store(store_path(cache_dir, "points", scene), "points")["label"][...]
                conf3d += confusion_matrix(only_evaluated(gt), only_evaluated(g["vertex_label"][...]))
            if has2d:
                gt = open_store(store_path(cache_dir, "frames", scene), "frames")["label"][...]
                conf2d += confusion_matrix(only_evaluated(gt), only_evaluated(g["frame_label"][...]))
        mode = str(h5.attrs["mode"])
    return {"mode": mode, "3d": miou_report(conf3d) if has3d else None, "2d": miou_report(conf2d) if has2d else None}
