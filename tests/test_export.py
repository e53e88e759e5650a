"""Exports: submission files, coloured PLYs, overlay panels, training curves, palette legend."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from jointwsss.classes import IGNORE_INDEX, NUM_CLASSES, class_to_nyu40, palette
from jointwsss.evaluate import evaluate_predictions
from jointwsss.export import (
    evaluate_submission, heat_colors, overlay_panel, plot_training_curves, read_submission, write_cam_ply,
    write_overlays, write_palette_legend, write_prediction_ply, write_scene_plys, write_submission,
)
from jointwsss.export.figures import LEGEND_MARGIN_PX, LEGEND_ROW_PX, LEGEND_SWATCH_PX, read_metrics
from jointwsss.export.overlays import SEPARATOR_PX, spread_frames
from jointwsss.io.errors import DataFormatError
from jointwsss.io.ply import read_mesh_ply
from jointwsss.io.zarr_store import open_store


def _scenes(cache: Path) -> list[str]:
    return sorted(p.name[:-len(".zarr")] for p in (cache / "points").glob("*.zarr"))


def _write_predictions(cache: Path, path: Path, *, has_3d: bool = True, has_2d: bool = True) -> dict:
    """Ground truth with known corruptions as predictions: every 5th vertex/pixel shifted to the next
    class, every 11th set to 255 (none). Returns {scene: vertex_label} for the checks."""
    rng = np.random.default_rng(0)
    vertex_labels = {}
    with h5py.File(path, "w") as h5:
        h5.attrs.update({"experiment": "test", "split": "val", "mode": "inference", "has_3d": has_3d,
                         "has_2d": has_2d})
        for scene in _scenes(cache):
            g = h5.create_group(scene)
            if has_3d:
                gt = open_store(cache / "points" / f"{scene}.zarr", "points")["label"][...]
                pred = np.where(gt == IGNORE_INDEX, 0, gt).astype(np.uint8)
                pred[::5] = (pred[::5] + 1) % NUM_CLASSES
                pred[::11] = IGNORE_INDEX
                g.create_dataset("vertex_label", data=pred)
                g.create_dataset("vertex_score", data=rng.random((len(gt), NUM_CLASSES)).astype(np.float16))
                vertex_labels[scene] = pred
            if has_2d:
                frames = open_store(cache / "frames" / f"{scene}.zarr", "frames")
                gt = frames["label"][...]
                pred = np.where(gt == IGNORE_INDEX, 0, gt).astype(np.uint8)
                pred[:, ::5] = (pred[:, ::5] + 1) % NUM_CLASSES
                g.create_dataset("frame_label", data=pred)
                g.create_dataset("frame_id", data=frames["frame_id"][...])
    return vertex_labels


@pytest.fixture(scope="module")
def predictions(tiny_cache, tmp_path_factory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("pred") / "val.h5"
    return path, _write_predictions(tiny_cache, path)


# ------------------------------------------------------------------------------------------ submission


def test_submission_round_trip_equals_h5_evaluation(tiny_cache, predictions, tmp_path):
    pred_h5, labels = predictions
    paths = write_submission(pred_h5, tmp_path / "sub")
    assert [p.name for p in paths] == [f"{s}.txt" for s in _scenes(tiny_cache)]
    for path in paths:
        scene = path.stem
        expected = class_to_nyu40()[labels[scene]]
        assert (expected[::11] == 0).all()              # 255 -> nyu40 0
        assert path.read_text().splitlines()[:3] == [str(v) for v in expected[:3]]
        np.testing.assert_array_equal(read_submission(path), expected)
    report = evaluate_submission(tmp_path / "sub", tiny_cache, _scenes(tiny_cache))
    direct = evaluate_predictions(pred_h5, tiny_cache)["3d"]
    assert report == direct
    assert 0.3 < report["miou"] < 0.95                  # the corruptions cost something, not everything


def test_non_benchmark_nyu40_id_counts_as_miss(tiny_cache, predictions, tmp_path):
    pred_h5, labels = predictions
    write_submission(pred_h5, tmp_path)
    scene = _scenes(tiny_cache)[0]
    gt = open_store(tiny_cache / "points" / f"{scene}.zarr", "points")["label"][...]
    before = np.array(evaluate_submission(tmp_path, tiny_cache, [scene])["confusion"])
    # a vertex predicted correctly, changed to nyu40 13 (pillow: not a benchmark class)
    v = int(np.flatnonzero((labels[scene] == gt) & (gt != IGNORE_INDEX))[0])
    ids = read_submission(tmp_path / f"{scene}.txt")
    ids[v] = 13
    (tmp_path / f"{scene}.txt").write_text("".join(f"{i}\n" for i in ids))
    after = np.array(evaluate_submission(tmp_path, tiny_cache, [scene])["confusion"])
    expected = before.copy()
    expected[gt[v], gt[v]] -= 1
    expected[gt[v], NUM_CLASSES] += 1                   # the "unknown" column
    np.testing.assert_array_equal(after, expected)


def test_read_submission_names_file_and_line(tmp_path):
    path = tmp_path / "scene0000_00.txt"
    path.write_text("1\n 39 \n")
    np.testing.assert_array_equal(read_submission(path), [1, 39])
    bad_files = (("1\n2\nchair\n4\n", 3), ("1\n\n3\n", 2), ("5\n-1\n", 2), ("2.0\n", 1), ("1\n70000\n", 2),
                 ("1\n" + "9" * 30 + "\n", 2))
    for text, line in bad_files:
        path.write_text(text)
        with pytest.raises(DataFormatError, match=rf"scene0000_00\.txt: line {line} "):
            read_submission(path)
    with pytest.raises(DataFormatError, match="missing.txt: submission file does not exist"):
        read_submission(tmp_path / "missing.txt")


def test_evaluate_submission_vertex_count_mismatch(tiny_cache, predictions, tmp_path):
    write_submission(predictions[0], tmp_path)
    scene = _scenes(tiny_cache)[-1]
    path = tmp_path / f"{scene}.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DataFormatError, match=rf"{scene}\.txt: has {len(lines) - 1} lines but scene {scene} "
                                              rf"has {len(lines)} vertices"):
        evaluate_submission(tmp_path, tiny_cache, _scenes(tiny_cache))


def test_write_submission_needs_3d(tiny_cache, tmp_path):
    pred_h5 = tmp_path / "only2d.h5"
    _write_predictions(tiny_cache, pred_h5, has_3d=False)
    with pytest.raises(DataFormatError, match="only2d.h5: holds no 3D predictions"):
        write_submission(pred_h5, tmp_path / "sub")
    assert not (tmp_path / "sub").exists()


# ------------------------------------------------------------------------------------------ PLYs


def _raw_scene_dir(cache: Path, scene: str) -> Path:
    return cache.parent / "raw" / "scans" / scene


def test_prediction_ply_colours_and_faces(tiny_cache, predictions, tmp_path):
    pred_h5, labels = predictions
    scene = _scenes(tiny_cache)[0]
    source = read_mesh_ply(_raw_scene_dir(tiny_cache, scene) / f"{scene}_vh_clean_2.ply")
    write_prediction_ply(_raw_scene_dir(tiny_cache, scene), labels[scene], tmp_path / "pred.ply")
    out = read_mesh_ply(tmp_path / "pred.ply")
    np.testing.assert_array_equal(out.rgb, palette()[labels[scene]])
    assert (out.rgb[labels[scene] == IGNORE_INDEX] == 0).all()
    np.testing.assert_array_equal(out.faces, source.faces)
    np.testing.assert_array_equal(out.xyz, source.xyz)
    np.testing.assert_array_equal(out.alpha, source.alpha)


def test_cam_ply_heat_colours(tiny_cache, tmp_path):
    scene = _scenes(tiny_cache)[0]
    scene_dir = _raw_scene_dir(tiny_cache, scene)
    n = read_mesh_ply(scene_dir / f"{scene}_vh_clean_2.ply").num_vertices
    scores = np.linspace(0.0, 1.0, n).astype(np.float32)
    scores[:2] = [0.0, 1.0]
    write_cam_ply(scene_dir, scores, tmp_path / "cam.ply")
    out = read_mesh_ply(tmp_path / "cam.ply")
    # cv2's JET: 0 -> dark blue, 1 -> dark red (RGB)
    np.testing.assert_array_equal(out.rgb[:2], [[0, 0, 128], [128, 0, 0]])
    bgr = cv2.applyColorMap(np.rint(scores * 255).astype(np.uint8)[:, None], cv2.COLORMAP_JET)[:, 0]
    np.testing.assert_array_equal(out.rgb, bgr[:, ::-1])


def test_ply_vertex_count_mismatch_names_mesh(tiny_cache, tmp_path):
    scene = _scenes(tiny_cache)[0]
    with pytest.raises(DataFormatError, match=rf"{scene}_vh_clean_2\.ply: has \d+ vertices but 3 values"):
        write_prediction_ply(_raw_scene_dir(tiny_cache, scene), np.zeros(3, np.uint8), tmp_path / "x.ply")
    assert not (tmp_path / "x.ply").exists()


def test_write_scene_plys(tiny_cache, predictions, tmp_path):
    pred_h5, labels = predictions
    paths = write_scene_plys(pred_h5, tiny_cache.parent / "raw" / "scans", tmp_path, cam_class=2)
    scenes = _scenes(tiny_cache)
    assert [p.name for p in paths] == [n for s in scenes for n in (f"{s}_pred.ply", f"{s}_cam_cabinet.ply")]
    with h5py.File(pred_h5) as h5:
        score = h5[scenes[0]]["vertex_score"][:, 2].astype(np.float32)
    np.testing.assert_array_equal(read_mesh_ply(paths[0]).rgb, palette()[labels[scenes[0]]])
    np.testing.assert_array_equal(read_mesh_ply(paths[1]).rgb, heat_colors(score))


# ------------------------------------------------------------------------------------------ overlays


def test_overlay_panel_columns_by_hand():
    rng = np.random.default_rng(1)
    h, w = 6, 5
    color = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    gt = np.full((h, w), 3, np.uint8)
    gt[0, 0] = IGNORE_INDEX
    pred = np.full((h, w), 7, np.uint8)
    cam = np.full((h, w), 1.0, np.float32)
    panel = overlay_panel(color, gt, pred, cam)
    assert panel.shape == (h, 4 * w + 3 * SEPARATOR_PX, 3) and panel.dtype == np.uint8
    assert overlay_panel(color, gt, pred, None).shape == (h, 3 * w + 2 * SEPARATOR_PX, 3)
    np.testing.assert_array_equal(panel[:, :w], color)
    assert (panel[:, w:w + SEPARATOR_PX] == 255).all()
    gt_col, pred_col, cam_col = (w + SEPARATOR_PX) * 1, (w + SEPARATOR_PX) * 2, (w + SEPARATOR_PX) * 3
    r, c = 2, 3
    bed = np.array([255, 187, 120])                    # class 3 in the benchmark palette
    expected = (color[r, c].astype(int) + bed + 1) // 2
    np.testing.assert_array_equal(panel[r, gt_col + c], expected)
    np.testing.assert_array_equal(panel[0, gt_col], (color[0, 0].astype(int) + 1) // 2)     # 255: black
    np.testing.assert_array_equal(panel[r, pred_col + c], (color[r, c].astype(int) + [214, 39, 40] + 1) // 2)
    np.testing.assert_array_equal(panel[r, cam_col + c], (color[r, c].astype(int) + [128, 0, 0] + 1) // 2)


def test_spread_frames():
    np.testing.assert_array_equal(spread_frames(10, 2), [0, 9])
    np.testing.assert_array_equal(spread_frames(10, 3), [0, 4, 9])   # rint(4.5) = 4
    np.testing.assert_array_equal(spread_frames(1, 2), [0])
    assert spread_frames(0, 2).size == 0


def test_write_overlays_png_matches_panel(tiny_cache, predictions, tmp_path):
    pred_h5, _ = predictions
    calls = []

    def cam(scene, frame_id, color):
        calls.append((scene, frame_id))
        return np.linspace(0, 1, color.shape[0] * color.shape[1]).reshape(color.shape[:2])

    paths = write_overlays(pred_h5, tiny_cache, tmp_path, max_frames_per_scene=2, cam=cam)
    scenes = _scenes(tiny_cache)
    assert len(paths) == 2 * len(scenes) == len(calls)
    assert [p.name for p in paths] == [f"{s}_{f}.png" for s, f in calls]
    scene, frame_id = calls[1]
    frames = open_store(tiny_cache / "frames" / f"{scene}.zarr", "frames")
    f = int(np.flatnonzero(frames["frame_id"][...] == frame_id)[0])
    assert f == frames["frame_id"].shape[0] - 1            # last of the two spread frames
    with h5py.File(pred_h5) as h5:
        pred = h5[scene]["frame_label"][f]
    color = frames["color"][f]
    expected = overlay_panel(color, frames["label"][f], pred, cam(scene, frame_id, color))
    written = cv2.imread(str(paths[1]), cv2.IMREAD_COLOR)[:, :, ::-1]   # back to RGB
    np.testing.assert_array_equal(written, expected)
    h, w = color.shape[:2]
    assert written.shape == (h, 4 * w + 3 * SEPARATOR_PX, 3)


def test_write_overlays_without_cam_and_frame_id_check(tiny_cache, tmp_path):
    pred_h5 = tmp_path / "p.h5"
    _write_predictions(tiny_cache, pred_h5, has_3d=False)
    paths = write_overlays(pred_h5, tiny_cache, tmp_path / "png", max_frames_per_scene=1)
    assert len(paths) == len(_scenes(tiny_cache))
    image = cv2.imread(str(paths[0]))
    frames = open_store(tiny_cache / "frames" / f"{_scenes(tiny_cache)[0]}.zarr", "frames")
    h, w = frames["color"].shape[1:3]
    assert image.shape == (h, 3 * w + 2 * SEPARATOR_PX, 3)
    with h5py.File(pred_h5, "a") as h5:
        ids = h5[_scenes(tiny_cache)[0]]["frame_id"]
        ids[0] = ids[0] + 1
    with pytest.raises(DataFormatError, match="p.h5: scene .*: frame ids differ"):
        write_overlays(pred_h5, tiny_cache, tmp_path / "png2")


# ------------------------------------------------------------------------------------------ figures


def _write_metrics(path: Path, epochs: int) -> None:
    with open(path, "w") as f:
        for e in range(1, epochs + 1):
            f.write(json.dumps({"epoch": e, "loss": {"cls2d": 0.7 / e, "cls3d": 0.5 / e, "total": 1.2 / e},
                                "lr": {"image": 0.01, "point": 0.001}, "seconds": 1.0,
                                "samples_per_second": 4.0}) + "\n")


def test_training_curves_png(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    _write_metrics(metrics, 4)
    plot_training_curves(metrics, tmp_path / "curves.png")
    image = cv2.imread(str(tmp_path / "curves.png"))
    assert image.shape == (400, 1000, 3)
    assert (image < 250).any(axis=2).mean() > 0.01      # not blank: axes, text and lines drawn
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 20   # several line colours


def test_read_metrics_last_line_wins_and_errors(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    _write_metrics(metrics, 2)
    with open(metrics, "a") as f:
        f.write(json.dumps({"epoch": 2, "loss": {"total": 9.0}}) + "\n")
    records = read_metrics(metrics)
    assert [r["epoch"] for r in records] == [1, 2] and records[1]["loss"] == {"total": 9.0}
    with open(metrics, "a") as f:
        f.write('{"epoch": 3, "loss": {"tot')
    with pytest.raises(DataFormatError, match="metrics.jsonl: line 4 is not JSON"):
        plot_training_curves(metrics, tmp_path / "c.png")
    assert not (tmp_path / "c.png").exists()


def test_palette_legend(tmp_path):
    write_palette_legend(tmp_path / "legend.png")
    image = cv2.imread(str(tmp_path / "legend.png"))[:, :, ::-1]
    assert image.shape[0] == (NUM_CLASSES + 1) * LEGEND_ROW_PX
    x = LEGEND_MARGIN_PX + LEGEND_SWATCH_PX[0] // 2
    for row in range(NUM_CLASSES + 1):
        index = row if row < NUM_CLASSES else IGNORE_INDEX
        np.testing.assert_array_equal(image[row * LEGEND_ROW_PX + LEGEND_ROW_PX // 2, x], palette()[index])
    text = image[:, LEGEND_MARGIN_PX * 2 + LEGEND_SWATCH_PX[0]:]
    assert (text < 128).any()                           # the names are drawn
