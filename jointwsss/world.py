"""World statistics: what a split's views and scenes offer the method, measured on the caches (`jointwsss info
<cache_dir> --world <split>`, rule `world_stats`).

The joint method rests on premises that ImageNet and ~20,000 real ScanNet views give the paper's image network:
views that show objects (not only wall and floor), objects seen whole, every class in enough views and scenes,
classes that do not always come together, and appearance that says something about class. This report measures
each on the preprocessed caches (``frames``, ``corr``, ``points`` stores and the split's index), so a dataset -- the
embedded synthetic world or real data -- can be checked before anything is trained:

- ``views``: kept views; the share with at least one object class in their image label (wall and floor are not
  objects); object classes per view; the wall + floor share of labelled pixels and every class's share;
- ``regions``: connected regions of one object class in a view, of at least ``labels.min_pixel_fraction`` of the
  image: the share touching the image border (an object cut by the frame);
- ``coverage``: the share of a class's labelled mesh vertices seen by at least one kept view (the points eq. 7 can
  teach), per class and over all classes and the object classes;
- ``classes``: per class the train views and scenes that hold it, and its most frequent companion in a view (the
  share of the class's views that also hold it);
- ``appearance``: a cheap probe of whether appearance carries class: 8 x 8 pixel patches inside one class's region,
  described by mean and standard deviation of R, G, B and the mean absolute horizontal and vertical gradient of
  their grey value (8 numbers in intensity units), classified by their 7 nearest neighbours among ``probe_from``'s
  patches; the recall per class on ``split``'s patches and its mean.

Fractions are in [0, 1]; class names are the 20 benchmark classes.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from jointwsss.classes import CLASS_INDEX, CLASS_NAMES, NUM_CLASSES
from jointwsss.data.dataset import scenes_from_index
from jointwsss.io.layout import index_path, store_path
from jointwsss.io.zarr_store import open_store

STRUCTURE = (CLASS_INDEX["wall"], CLASS_INDEX["floor"])
OBJECT_CLASSES = tuple(c for c in range(NUM_CLASSES) if c not in STRUCTURE)
PATCH_PX = 8
PATCHES_PER_CLASS = 300
NEIGHBOURS = 7


def world_statistics(cache_dir: Path, split: str, *, probe: tuple[str, str] = ("train", "val"),
                     min_pixel_fraction: float = 0.01, seed: int = 0) -> dict:
    """The report of the module docstring for ``split`` of the caches in ``cache_dir``. The appearance probe
    classifies the patches of the split ``probe[1]`` by those of ``probe[0]`` (train -> val: does appearance learnt
    on some scenes carry to others?)."""
    cache_dir = Path(cache_dir)
    rng = np.random.default_rng(seed)
    acc = _Accumulator(min_pixel_fraction)
    for scene in scenes_from_index(index_path(cache_dir, split)):
        acc.add_scene(cache_dir, scene)
    reference, queries = (split_patches(cache_dir, name, rng) for name in probe)
    report = {"split": split, "scenes": acc.scenes, **acc.report()}
    report["appearance"] = {"probe": f"{probe[0]} -> {probe[1]}", **appearance_probe(*reference, *queries, rng)}
    return report


def split_patches(cache_dir: Path, split: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(P, 8) patch descriptors and (P,) classes of a split's views (:func:`patch_descriptors`, a share per scene)."""
    parts = []
    for scene in scenes_from_index(index_path(cache_dir, split)):
        frames = open_store(store_path(cache_dir, "frames", scene), "frames")
        parts.append(patch_descriptors(frames["color"][...], frames["label"][...], rng,
                                       per_class=max(1, PATCHES_PER_CLASS // 8)))
    return _stack(parts)


class _Accumulator:
    """Running sums over the views and scenes of one split."""

    def __init__(self, min_pixel_fraction: float):
        self.min_fraction = min_pixel_fraction
        self.views = 0
        self.views_with_object = 0
        self.object_classes_per_view: list[int] = []
        self.pixels = np.zeros(NUM_CLASSES, np.int64)
        self.regions = 0
        self.regions_on_border = 0
        self.vertices = np.zeros(NUM_CLASSES, np.int64)
        self.seen_vertices = np.zeros(NUM_CLASSES, np.int64)
        self.class_views = np.zeros(NUM_CLASSES, np.int64)
        self.class_scenes = np.zeros(NUM_CLASSES, np.int64)
        self.together = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)  # views holding both classes
        self.scenes = 0

    def add_scene(self, cache_dir: Path, scene: str) -> None:
        self.scenes += 1
        frames = open_store(store_path(cache_dir, "frames", scene), "frames")
        image_labels = frames["image_labels"][...].astype(bool)
        self.views += len(image_labels)
        objects = image_labels[:, OBJECT_CLASSES]
        self.views_with_object += int(objects.any(axis=1).sum())
        self.object_classes_per_view += objects.sum(axis=1).tolist()
        self.class_views += image_labels.sum(axis=0)
        self.together += image_labels.T.astype(np.int64) @ image_labels.astype(np.int64)
        labels = frames["label"][...]
        self.pixels += np.bincount(labels[labels < NUM_CLASSES].ravel(), minlength=NUM_CLASSES)
        for view_labels in labels:
            self._add_regions(view_labels)
        points = open_store(store_path(cache_dir, "points", scene), "points")
        vertex_label = points["label"][...]
        self.class_scenes += np.asarray(points.attrs["scene_labels"], bool)
        corr = open_store(store_path(cache_dir, "corr", scene), "corr")
        seen = np.zeros(len(vertex_label), bool)
        seen[corr["point_idx"][...]] = True
        labelled = vertex_label < NUM_CLASSES
        self.vertices += np.bincount(vertex_label[labelled], minlength=NUM_CLASSES)
        self.seen_vertices += np.bincount(vertex_label[labelled & seen], minlength=NUM_CLASSES)

    def _add_regions(self, labels: np.ndarray) -> None:
        min_pixels = self.min_fraction * labels.size
        for c in OBJECT_CLASSES:
            mask = (labels == c).astype(np.uint8)
            if mask.sum() < min_pixels:
                continue
            count, components, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
            for k in range(1, count):
                if stats[k, cv2.CC_STAT_AREA] < min_pixels:
                    continue
                x, y, w, h = stats[k, :4]
                self.regions += 1
                self.regions_on_border += int(x == 0 or y == 0 or x + w == labels.shape[1] or y + h == labels.shape[0])

    def report(self) -> dict:
        labelled = max(int(self.pixels.sum()), 1)
        per_view = np.asarray(self.object_classes_per_view, np.float64)
        seen_share = {name: (float(self.seen_vertices[c] / self.vertices[c]) if self.vertices[c] else None)
                      for c, name in enumerate(CLASS_NAMES)}
        obj = list(OBJECT_CLASSES)
        classes = {}
        for c, name in enumerate(CLASS_NAMES):
            row = self.together[c].copy()
            row[c] = 0
            row[list(STRUCTURE)] = 0
            mate = int(row.argmax())
            classes[name] = {"views": int(self.class_views[c]), "scenes": int(self.class_scenes[c]),
                             "companion": CLASS_NAMES[mate] if row[mate] else None,
                             "companion_share": float(row[mate] / self.class_views[c]) if self.class_views[c] else None}
        return {
            "views": {"count": self.views,
                      "with_object_class": self.views_with_object / max(self.views, 1),
                      "object_classes_per_view": float(per_view.mean()) if per_view.size else 0.0,
                      "wall_floor_pixel_share": float(self.pixels[list(STRUCTURE)].sum() / labelled),
                      "pixel_share": {name: float(self.pixels[c] / labelled) for c, name in enumerate(CLASS_NAMES)}},
            "regions": {"count": self.regions, "touching_border": self.regions_on_border / max(self.regions, 1)},
            "coverage": {"all": float(self.seen_vertices.sum() / max(self.vertices.sum(), 1)),
                         "objects": float(self.seen_vertices[obj].sum() / max(self.vertices[obj].sum(), 1)),
                         "per_class": seen_share},
            "classes": classes,
        }


def patch_descriptors(colors: np.ndarray, labels: np.ndarray, rng: np.random.Generator, *,
                      per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``per_class`` random 8 x 8 patches per class lying wholly inside that class's pixels of the views
    ``colors`` (F, H, W, 3) uint8 / ``labels`` (F, H, W); returns their (P, 8) descriptors (mean and standard
    deviation of R, G, B in [0, 1], mean |d/dx| and |d/dy| of the grey value) and (P,) classes."""
    descriptors, classes = [], []
    kernel = np.ones((PATCH_PX, PATCH_PX), np.uint8)
    for c in range(NUM_CLASSES):
        candidates = []
        for f in range(len(labels)):
            inside = cv2.erode((labels[f] == c).astype(np.uint8), kernel, anchor=(0, 0), borderValue=0)
            ys, xs = np.nonzero(inside[: labels.shape[1] - PATCH_PX + 1, : labels.shape[2] - PATCH_PX + 1])
            if len(ys):
                candidates.append(np.stack([np.full(len(ys), f), ys, xs], axis=1))
        if not candidates:
            continue
        candidates = np.concatenate(candidates)
        pick = candidates[rng.choice(len(candidates), size=min(per_class, len(candidates)), replace=False)]
        for f, y, x in pick:
            patch = colors[f, y:y + PATCH_PX, x:x + PATCH_PX].astype(np.float64) / 255.0
            grey = patch.mean(axis=2)
            descriptors.append(np.concatenate([patch.reshape(-1, 3).mean(0), patch.reshape(-1, 3).std(0),
                                               [np.abs(np.diff(grey, axis=1)).mean(),
                                                np.abs(np.diff(grey, axis=0)).mean()]]))
            classes.append(c)
    return np.asarray(descriptors, np.float64).reshape(-1, 8), np.asarray(classes, np.int64)


def _stack(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    if not parts:
        return np.zeros((0, 8)), np.zeros(0, np.int64)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _balanced(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    keep = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        keep.append(rng.choice(idx, size=min(PATCHES_PER_CLASS, len(idx)), replace=False))
    keep = np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64)
    return x[keep], y[keep]


def appearance_probe(ref_x: np.ndarray, ref_y: np.ndarray, query_x: np.ndarray, query_y: np.ndarray,
                     rng: np.random.Generator) -> dict:
    """7-NN classification of ``query`` descriptors by ``ref`` ones (at most PATCHES_PER_CLASS a class each; Euclidean
    distance on the descriptors as they are): recall per class, its mean over the classes queried, the most
    frequent wrong answer per class."""
    ref_x, ref_y = _balanced(ref_x, ref_y, rng)
    query_x, query_y = _balanced(query_x, query_y, rng)
    if len(ref_y) < NEIGHBOURS or not len(query_y):
        return {"mean_recall": None, "per_class": {}, "patches": {"reference": int(len(ref_y)),
                                                                 "queries": int(len(query_y))}}
    # not standardised: every feature is an intensity in [0, 1] units, and scaling a nearly constant one (the
    # gradients of flat paint) up to unit variance would let its noise decide the neighbours
    a, b = ref_x, query_x
    predicted = np.empty(len(b), np.int64)
    for start in range(0, len(b), 1024):
        d = ((b[start:start + 1024, None, :] - a[None, :, :]) ** 2).sum(-1)
        nearest = np.argpartition(d, NEIGHBOURS - 1, axis=1)[:, :NEIGHBOURS]
        votes = ref_y[nearest]
        predicted[start:start + 1024] = [np.bincount(v, minlength=NUM_CLASSES).argmax() for v in votes]
    per_class = {}
    for c in np.unique(query_y):
        mine = predicted[query_y == c]
        wrong = mine[mine != c]
        per_class[CLASS_NAMES[c]] = {"recall": float((mine == c).mean()), "patches": int(len(mine)),
                                     "most_confused_with": CLASS_NAMES[int(np.bincount(wrong).argmax())]
                                     if len(wrong) else None}
    return {"mean_recall": float(np.mean([v["recall"] for v in per_class.values()])), "per_class": per_class,
            "patches": {"reference": int(len(ref_y)), "queries": int(len(query_y))}}


def format_world(stats: dict) -> str:
    """The report as aligned text lines: the headline numbers, then one line per class."""
    v, r, cov, app = stats["views"], stats["regions"], stats["coverage"], stats["appearance"]
    recall = "n/a" if app["mean_recall"] is None else f"{app['mean_recall']:.2f}"
    lines = [f"world {stats['split']}: {stats['scenes']} scenes, {v['count']} views",
             f"  views       {100 * v['with_object_class']:.1f} % show an object class; "
             f"{v['object_classes_per_view']:.2f} object classes per view; wall + floor "
             f"{100 * v['wall_floor_pixel_share']:.1f} % of labelled pixels",
             f"  regions     {r['count']} object regions, {100 * r['touching_border']:.1f} % touch the image border",
             f"  coverage    {100 * cov['all']:.1f} % of labelled vertices seen ({100 * cov['objects']:.1f} % of object "
             "vertices)",
             f"  appearance  7-NN on 8x8 patches ({app['probe']}): mean recall {recall}",
             f"  {'class':16s} {'pixels %':>8s} {'views':>6s} {'scenes':>6s} {'seen %':>7s} {'patch recall':>12s}  "
             "companion in a view"]
    for name in CLASS_NAMES:
        c = stats["classes"][name]
        seen = cov["per_class"][name]
        rec = app["per_class"].get(name, {}).get("recall")
        mate = f"{c['companion']} ({100 * c['companion_share']:.0f} %)" if c["companion"] else "-"
        lines.append(f"  {name:16s} {100 * v['pixel_share'][name]:8.2f} {c['views']:6d} {c['scenes']:6d} "
                     f"{'-' if seen is None else f'{100 * seen:.1f}':>7s} {'-' if rec is None else f'{rec:.2f}':>12s}  "
                     f"{mate}")
    return "\n".join(lines)


def write_world_statistics(stats: dict, out_json: Path, out_txt: Path | None = None) -> None:
    """The report as JSON (and as the text table), written atomically."""
    from jointwsss.io.atomic import atomic_path

    with atomic_path(out_json) as tmp:
        tmp.write_text(json.dumps(stats, indent=2) + "\n")
    if out_txt is not None:
        with atomic_path(out_txt) as tmp:
            tmp.write_text(format_world(stats) + "\n")
