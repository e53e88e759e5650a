"""index/{split}.json from two hand-made scenes' stores: entries, class counts and totals by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jointwsss.io.errors import DataFormatError
from jointwsss.io.zarr_store import create_store, write_array
from jointwsss.preprocess.index import build_index

A, B = "scene0001_00", "scene0002_00"


def write_points(cache, scene, class_counts: dict[int, int], min_points: int = 2):
    counts = [class_counts.get(c, 0) for c in range(20)]
    label = np.concatenate([np.full(n, c, dtype=np.uint8) for c, n in class_counts.items()] + [np.full(3, 255, np.uint8)])
    attrs = {
        "scene": scene, "num_points": len(label), "class_point_counts": counts,
        "scene_labels": [n >= min_points for n in counts], "min_points": min_points,
    }
    group = create_store(cache / "points" / f"{scene}.zarr", "points", attrs)
    write_array(group, "label", label)


def write_frames(cache, scene, image_labels: np.ndarray, sampled: int, dropped: int):
    attrs = {
        "scene": scene, "frames_kept": len(image_labels), "frames_sampled": sampled,
        "frames_dropped": {"invalid_pose": dropped},
    }
    group = create_store(cache / "frames" / f"{scene}.zarr", "frames", attrs)
    write_array(group, "image_labels", image_labels.reshape(-1, 20))


def make_cache(tmp_path):
    cache = tmp_path / "cache"
    # A: wall 10 points, chair 5, table 1 (< min_points 2): scene labels wall, chair.
    write_points(cache, A, {0: 10, 4: 5, 6: 1})
    # B: wall 4, bathtub 7: scene labels wall, bathtub.
    write_points(cache, B, {0: 4, 18: 7})
    frames_a = np.zeros((3, 20), dtype=bool)
    frames_a[:, 0] = True  # wall in all 3 views
    frames_a[1, 4] = True  # chair in one view
    write_frames(cache, A, frames_a, sampled=4, dropped=1)
    write_frames(cache, B, np.zeros((0, 20), dtype=bool), sampled=2, dropped=2)  # every pose invalid
    corr = create_store(cache / "corr" / f"{A}.zarr", "corr", {"scene": A, "num_pairs": 1234})
    write_array(corr, "offsets", np.array([0, 400, 800, 1234], dtype=np.int64))
    return cache


def test_index_two_scenes(tmp_path):
    cache = make_cache(tmp_path)
    out = tmp_path / "index" / "train.json"
    index = build_index("train", [A, B], cache, out)
    assert json.loads(out.read_text()) == index
    assert index["split"] == "train"
    assert index["scenes"] == [
        {"scene": A, "frames": 3, "points": 19, "pairs": 1234, "usable": True},
        {"scene": B, "frames": 0, "points": 14, "pairs": None, "usable": False},
    ]
    stats = index["class_stats"]
    assert set(stats["scene_label_counts"]) == set(stats["point_counts"]) and len(stats["point_counts"]) == 20
    assert {k: v for k, v in stats["scene_label_counts"].items() if v} == {"wall": 2, "chair": 1, "bathtub": 1}
    assert {k: v for k, v in stats["image_label_counts"].items() if v} == {"wall": 3, "chair": 1}
    assert {k: v for k, v in stats["point_counts"].items() if v} == {"wall": 14, "chair": 5, "table": 1, "bathtub": 7}
    assert index["totals"] == {
        "scenes": 2, "usable_scenes": 1, "frames": 3, "frames_sampled": 6, "frames_dropped": 3,
        "points": 33, "pairs": 1234,
    }


def test_index_without_corr_stores_has_null_pairs(tmp_path):
    cache = make_cache(tmp_path)
    index = build_index("val", [B], cache, tmp_path / "val.json")
    assert index["totals"]["pairs"] is None and index["scenes"][0]["pairs"] is None


def test_missing_store_names_it_and_writes_no_index(tmp_path):
    cache = make_cache(tmp_path)
    write_points(cache, "scene0003_00", {0: 5})  # points finished, frames not
    out = tmp_path / "index" / "train.json"
    with pytest.raises(DataFormatError, match=r"frames/scene0003_00\.zarr: is not a Zarr store"):
        build_index("train", [A, "scene0003_00"], cache, out)
    assert not out.exists()


def test_repeated_scene_is_rejected(tmp_path):
    with pytest.raises(ValueError, match=r"scenes listed more than once: \['scene0001_00'\]"):
        build_index("train", [A, B, A], make_cache(tmp_path), tmp_path / "train.json")
