"""``index/{split}.json``: the scenes of a split, their cache sizes and class statistics.

Read from the finished stores under ``cache_dir`` (``points/``, ``frames/`` and, when present,
``corr/``). Layout::

    {"split": "train",
     "scenes": [{"scene": "scene0000_00", "frames": 29, "points": 81369, "pairs": 120034 | null,
                 "usable": true}, ...],
     "class_stats": {"scene_label_counts": {class name: scenes with the scene-level label},
                     "image_label_counts": {class name: kept frames with the image-level label},
                     "point_counts": {class name: labelled points}},
     "totals": {"scenes", "usable_scenes", "frames", "frames_sampled", "frames_dropped", "points", "pairs"}}

``frames`` counts kept frames; ``pairs`` is the correspondence count of ``corr/{scene}.zarr`` or
null when that store does not exist (yet). A scene is ``usable`` for training when it has at least
one kept frame and one point; a scene whose every sampled pose was invalid has an empty frames
store and is listed with ``usable: false``. ``totals["pairs"]`` sums the scenes that have a corr
store (null when none has).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from jointwsss.classes import CLASS_NAMES, NUM_CLASSES
from jointwsss.io.atomic import atomic_path
from jointwsss.io.zarr_store import open_store
from jointwsss.io.layout import store_path


def _scene_entry(scene: str, cache_dir: Path) -> tuple[dict, dict]:
    """(index entry, per-scene statistics) of one scene's finished stores."""
    points = open_store(store_path(cache_dir, "points", scene), "points")
    frames = open_store(store_path(cache_dir, "frames", scene), "frames")
    corr_path = store_path(cache_dir, "corr", scene)
    pairs = int(open_store(corr_path, "corr").attrs["num_pairs"]) if corr_path.exists() else None
    num_frames = int(frames.attrs["frames_kept"])
    num_points = int(points.attrs["num_points"])
    image_labels = np.asarray(frames["image_labels"][...], dtype=bool).reshape(-1, NUM_CLASSES)
    entry = {
        "scene": scene,
        "frames": num_frames,
        "points": num_points,
        "pairs": pairs,
        "usable": num_frames > 0 and num_points > 0,
    }
    stats = {
        "scene_labels": np.asarray(points.attrs["scene_labels"], dtype=bool),
        "image_label_counts": image_labels.sum(axis=0),
        "point_counts": np.asarray(points.attrs["class_point_counts"], dtype=np.int64),
        "frames_sampled": int(frames.attrs["frames_sampled"]),
        "frames_dropped": sum(int(n) for n in frames.attrs["frames_dropped"].values()),
    }
    return entry, stats


def _by_class(values: np.ndarray) -> dict[str, int]:
    return {name: int(value) for name, value in zip(CLASS_NAMES, values)}


def build_index(split: str, scenes: list[str], cache_dir: Path, out_path: Path) -> dict:
    """Write ``index/{split}.json`` for ``scenes`` (in the given order) at ``out_path`` atomically; returns it.

    A missing or unfinished store raises the DataFormatError of :func:`open_store` naming it.
    """
    if len(set(scenes)) != len(scenes):
        repeated = sorted({s for s in scenes if scenes.count(s) > 1})
        raise ValueError(f"split {split!r}: scenes listed more than once: {repeated}")
    cache_dir = Path(cache_dir)
    entries = []
    scene_label_counts = np.zeros(NUM_CLASSES, dtype=np.int64)
    image_label_counts = np.zeros(NUM_CLASSES, dtype=np.int64)
    point_counts = np.zeros(NUM_CLASSES, dtype=np.int64)
    frames_sampled = frames_dropped = 0
    for scene in scenes:
        entry, stats = _scene_entry(scene, cache_dir)
        entries.append(entry)
        scene_label_counts += stats["scene_labels"]
        image_label_counts += stats["image_label_counts"]
        point_counts += stats["point_counts"]
        frames_sampled += stats["frames_sampled"]
        frames_dropped += stats["frames_dropped"]
    known_pairs = [e["pairs"] for e in entries if e["pairs"] is not None]
    index = {
        "split": split,
        "scenes": entries,
        "class_stats": {
            "scene_label_counts": _by_class(scene_label_counts),
            "image_label_counts": _by_class(image_label_counts),
            "point_counts": _by_class(point_counts),
        },
        "totals": {
            "scenes": len(entries),
            "usable_scenes": sum(e["usable"] for e in entries),
            "frames": sum(e["frames"] for e in entries),
            "frames_sampled": frames_sampled,
            "frames_dropped": frames_dropped,
            "points": sum(e["points"] for e in entries),
            "pairs": sum(known_pairs) if known_pairs else None,
        },
    }
    with atomic_path(out_path) as tmp:
        tmp.write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return index
