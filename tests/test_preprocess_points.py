"""points/{scene}.zarr from hand-written PLYs: values, label mapping, scene labels, bad input."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from jointwsss.io.errors import DataFormatError
from jointwsss.io.ply import write_label_ply, write_mesh_ply
from jointwsss.io.zarr_store import open_store
from jointwsss.preprocess.points import build_points_store

SCENE = "scene0011_01"
# nyu40 ids per vertex: 1 wall x3, 5 chair x1, 39 otherfurniture x2, 0 unannotated, 40 otherprop, 149 stray id.
NYU40 = np.array([1, 5, 39, 1, 0, 40, 149, 39, 1], dtype=np.uint16)
EXPECTED_LABEL = np.array([0, 4, 19, 0, 255, 255, 255, 19, 0], dtype=np.uint8)
N = len(NYU40)
XYZ = (np.arange(N * 3, dtype=np.float32).reshape(N, 3) * 0.37 - 1.1).astype(np.float32)
RGB = (np.arange(N * 3).reshape(N, 3) * 29 % 256).astype(np.uint8)
FACES = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8]], dtype=np.int32)


def make_scene(raw_dir, *, labels=NYU40, with_labels=True):
    scene_dir = raw_dir / "scans" / SCENE
    scene_dir.mkdir(parents=True, exist_ok=True)
    write_mesh_ply(scene_dir / f"{SCENE}_vh_clean_2.ply", XYZ, RGB, FACES)
    if with_labels:
        n = len(labels)
        write_label_ply(scene_dir / f"{SCENE}_vh_clean_2.labels.ply", XYZ[:n], FACES[: n // 3], labels)
    return scene_dir


def test_points_store_values(tmp_path, caplog):
    scene_dir = make_scene(tmp_path / "raw")
    out = tmp_path / "cache" / "points" / f"{SCENE}.zarr"
    with caplog.at_level(logging.INFO, logger="jointwsss"):
        summary = build_points_store(scene_dir, out, min_points=2)
    store = open_store(out, "points")
    np.testing.assert_array_equal(store["xyz"][...], XYZ)
    np.testing.assert_array_equal(store["rgb"][...], RGB)
    np.testing.assert_array_equal(store["label"][...], EXPECTED_LABEL)
    assert store["xyz"].dtype == np.float32 and store["rgb"].dtype == np.uint8 and store["label"].dtype == np.uint8
    counts = [0] * 20
    counts[0], counts[4], counts[19] = 3, 1, 2
    assert store.attrs["class_point_counts"] == counts
    scene_labels = [False] * 20
    scene_labels[0] = scene_labels[19] = True  # chair has 1 point < min_points 2
    assert store.attrs["scene_labels"] == scene_labels
    assert store.attrs["num_points"] == N and store.attrs["ignored_points"] == 3
    assert store.attrs["min_points"] == 2 and store.attrs["has_labels"] is True and store.attrs["scene"] == SCENE
    assert len(store.attrs["source_files"]) == 2
    assert summary["num_points"] == N and summary["path"] == str(out)
    assert f"points {SCENE}: 9 points, 2 of 20 classes present" in caplog.text


def test_min_points_one_counts_every_present_class(tmp_path):
    scene_dir = make_scene(tmp_path / "raw")
    build_points_store(scene_dir, tmp_path / "points.zarr", min_points=1)
    labels = open_store(tmp_path / "points.zarr", "points").attrs["scene_labels"]
    assert [i for i, present in enumerate(labels) if present] == [0, 4, 19]


def test_scene_without_labels_ply(tmp_path):
    scene_dir = make_scene(tmp_path / "raw", with_labels=False)
    build_points_store(scene_dir, tmp_path / "points.zarr", min_points=1)
    store = open_store(tmp_path / "points.zarr", "points")
    assert (store["label"][...] == 255).all() and store["label"].shape == (N,)
    assert store.attrs["scene_labels"] == [False] * 20 and store.attrs["has_labels"] is False
    np.testing.assert_array_equal(store["xyz"][...], XYZ)


def test_vertex_count_mismatch_names_both_files_and_keeps_previous_store(tmp_path):
    scene_dir = make_scene(tmp_path / "raw")
    out = tmp_path / "cache" / "points" / f"{SCENE}.zarr"
    build_points_store(scene_dir, out, min_points=1)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))

    make_scene(tmp_path / "raw", labels=NYU40[:6])  # labels PLY now has 6 vertices, mesh 9
    with pytest.raises(DataFormatError, match=r"_vh_clean_2\.ply: has 9 vertices but .*_vh_clean_2\.labels\.ply has 6"):
        build_points_store(scene_dir, out, min_points=1)
    store = open_store(out, "points")
    np.testing.assert_array_equal(store["label"][...], EXPECTED_LABEL)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary left beside it

    fresh = tmp_path / "cache" / "points" / "fresh.zarr"
    with pytest.raises(DataFormatError):
        build_points_store(scene_dir, fresh, min_points=1)
    assert not fresh.exists()


def test_missing_mesh_names_the_file(tmp_path):
    scene_dir = tmp_path / "raw" / "scans" / SCENE
    scene_dir.mkdir(parents=True)
    with pytest.raises(DataFormatError, match=rf"{SCENE}_vh_clean_2\.ply: file does not exist"):
        build_points_store(scene_dir, tmp_path / "points.zarr", min_points=1)


def test_min_points_must_be_positive(tmp_path):
    scene_dir = make_scene(tmp_path / "raw")
    with pytest.raises(ValueError, match="min_points must be an integer >= 1"):
        build_points_store(scene_dir, tmp_path / "points.zarr", min_points=0)
