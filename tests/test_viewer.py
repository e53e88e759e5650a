"""The interactive 3D scene viewer: its data against the palette and the predictions file, decimation, frustums,
and the page itself in headless Chromium (loads without errors, draws, recolours, shows a frame)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from browser import Browser, find_chromium
from jointwsss.classes import IGNORE_INDEX, NUM_CLASSES, palette
from jointwsss.export.images import heat_colors
from jointwsss.export.viewer import (
    ERROR_COLORS, ERROR_IGNORED, ERROR_RIGHT, ERROR_WRONG, decimate_mesh, error_codes, frustum_corners, unpack,
    write_viewers,
)
from jointwsss.io.errors import DataFormatError
from jointwsss.io.ply import read_mesh_ply
from jointwsss.io.zarr_store import open_store
from jointwsss.metrics import confusion_matrix, miou_report
from test_export import _scenes, _write_predictions


@pytest.fixture(scope="module")
def viewer(tiny_cache, tmp_path_factory) -> tuple[Path, Path, dict]:
    """(predictions h5, viewer folder, {scene: vertex_label}) for the hand-built predictions of the tiny cache,
    with a 2D CAM column that is a known ramp."""
    root = tmp_path_factory.mktemp("viewer")
    pred_h5 = root / "val.h5"
    labels = _write_predictions(tiny_cache, pred_h5)

    def cam(scene, frame_id, color):
        return np.linspace(0, 1, color.shape[0] * color.shape[1]).reshape(color.shape[:2])

    write_viewers(pred_h5, tiny_cache, tiny_cache.parent / "raw" / "scans", root / "viewer", cam=cam)
    return pred_h5, root / "viewer", labels


def read_payload(page: Path) -> dict:
    text = page.read_text(encoding="utf-8")
    match = re.search(r'<script id="scene-data" type="application/json">(.*?)</script>', text, re.S)
    return json.loads(match.group(1).replace("<\\/", "</"))


def test_payload_colours_match_palette_and_predictions(tiny_cache, viewer):
    pred_h5, out, labels = viewer
    scenes = _scenes(tiny_cache)
    assert sorted(p.name for p in out.glob("*.html")) == sorted([f"{s}.html" for s in scenes] + ["index.html"])
    scene = scenes[0]
    payload = read_payload(out / f"{scene}.html")
    mesh = read_mesh_ply(tiny_cache.parent / "raw" / "scans" / scene / f"{scene}_vh_clean_2.ply")
    n = mesh.num_vertices
    assert payload["num_vertices"] == payload["source_vertices"] == n        # small: not decimated
    gt = open_store(tiny_cache / "points" / f"{scene}.zarr", "points")["label"][...]
    np.testing.assert_array_equal(unpack(payload["gt"], np.uint8, (n,)), gt)
    np.testing.assert_array_equal(unpack(payload["pred"], np.uint8, (n,)), labels[scene])
    with h5py.File(pred_h5) as h5:
        score = h5[scene]["vertex_score"][...].astype(np.float32)
    levels = unpack(payload["score"], np.uint8, (n, NUM_CLASSES))
    np.testing.assert_array_equal(levels, np.rint(score * 255))
    # colour tables: the benchmark palette (+ black for 255) and heat_colors' JET levels
    table = np.array(payload["palette"], np.uint8)
    assert table.shape == (NUM_CLASSES + 1, 3)
    np.testing.assert_array_equal(table[:NUM_CLASSES], palette()[:NUM_CLASSES])
    np.testing.assert_array_equal(table[NUM_CLASSES], [0, 0, 0])
    assert table[3].tolist() == [255, 187, 120]                                # bed
    heat = np.array(payload["heat"], np.uint8)
    np.testing.assert_array_equal(heat[levels[:, 5]], heat_colors(score[:, 5]))
    assert heat[0].tolist() == [0, 0, 128] and heat[255].tolist() == [128, 0, 0]
    # geometry: quantised coordinates within half a step, faces unchanged
    q = unpack(payload["xyz"], np.uint16, (n, 3)).astype(np.float64)
    xyz = np.array(payload["origin_m"]) + q * np.array(payload["step_m"])
    assert np.abs(xyz - mesh.xyz).max() <= max(payload["step_m"]) / 2 + 1e-6
    np.testing.assert_array_equal(unpack(payload["faces"], np.uint32, (payload["num_faces"], 3)), mesh.faces)
    # the scene's IoU table is the benchmark mIoU of this scene alone
    expected = miou_report(confusion_matrix(gt, labels[scene]))
    assert payload["iou"]["3d"] == expected["per_class"] and payload["iou"]["3d_miou"] == expected["miou"]
    assert 0.3 < payload["iou"]["3d_miou"] < 0.95


def test_cameras_and_panels(tiny_cache, viewer):
    _, out, _ = viewer
    scene = _scenes(tiny_cache)[0]
    payload = read_payload(out / f"{scene}.html")
    frames = open_store(tiny_cache / "frames" / f"{scene}.zarr", "frames")
    ids = frames["frame_id"][...]
    assert [c["frame_id"] for c in payload["cameras"]] == ids.tolist()       # few frames: every one drawn
    pose = frames["pose"][1]
    np.testing.assert_allclose(payload["cameras"][1]["corners"][0], pose[:3, 3], atol=1e-4)
    uri = payload["cameras"][1]["panel"]
    assert uri.startswith("data:image/jpeg;base64,")
    import base64

    panel = cv2.imdecode(np.frombuffer(base64.b64decode(uri.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    h, w = frames["color"].shape[1:3]
    assert panel.shape[:2] == (h, 4 * w + 3 * 2)                              # image | gt | pred | CAM
    np.testing.assert_allclose(panel[:, :w, ::-1].astype(int), frames["color"][1].astype(int), atol=40)
    assert payload["cam_2d"] and payload["pred_2d"]


def test_index_lists_every_scene(tiny_cache, viewer):
    _, out, _ = viewer
    index = (out / "index.html").read_text()
    for scene in _scenes(tiny_cache):
        assert f'<a href="{scene}.html">{scene}</a>' in index


def test_error_codes_by_hand():
    gt = np.array([0, 1, 2, IGNORE_INDEX, 4, IGNORE_INDEX], np.uint8)
    pred = np.array([0, 2, IGNORE_INDEX, 3, 4, IGNORE_INDEX], np.uint8)
    np.testing.assert_array_equal(error_codes(gt, pred),
                                  [ERROR_RIGHT, ERROR_WRONG, ERROR_WRONG, ERROR_IGNORED, ERROR_RIGHT, ERROR_IGNORED])
    assert ERROR_COLORS[ERROR_RIGHT] != ERROR_COLORS[ERROR_WRONG]


def test_frustum_corners_by_hand():
    K = np.eye(4)
    K[0, 0] = K[1, 1] = 100.0
    K[0, 2], K[1, 2] = 49.5, 39.5
    pose = np.eye(4)
    pose[:3, 3] = [1.0, 2.0, 3.0]
    corners = frustum_corners(pose, K, (100, 80), depth_m=1.0)
    # pixel edges -0.5 and W - 0.5: (u - cx) / fx = -0.5 and +0.5; rows: -0.4 and +0.4
    np.testing.assert_allclose(corners, [[1, 2, 3], [0.5, 1.6, 4], [1.5, 1.6, 4], [1.5, 2.4, 4], [0.5, 2.4, 4]])
    turned = np.eye(4)
    turned[:3, :3] = [[0, 0, 1], [-1, 0, 0], [0, -1, 0]]    # camera z (forward) -> world x
    np.testing.assert_allclose(frustum_corners(turned, K, (100, 80), 2.0)[1], [2.0, 1.0, 0.8])


def test_decimate_mesh_keeps_real_vertices():
    # a 100 x 100 grid, 1 cm apart, two triangles per square
    u, v = np.meshgrid(np.arange(100), np.arange(100), indexing="ij")
    xyz = np.stack([u.ravel() * 0.01, v.ravel() * 0.01, np.zeros(10_000)], axis=1)
    idx = (u * 100 + v)[:-1, :-1].ravel()
    faces = np.concatenate([np.stack([idx, idx + 100, idx + 1], 1), np.stack([idx + 1, idx + 100, idx + 101], 1)])
    kept, same = decimate_mesh(xyz, faces, 10_000)
    np.testing.assert_array_equal(kept, np.arange(10_000))
    np.testing.assert_array_equal(same, faces)
    kept, new_faces = decimate_mesh(xyz, faces, 3_000)
    # 1 cm voxels hold one vertex each (10,000 > 3,000), 2 cm voxels two by two: 50 x 50 = 2,500
    assert len(kept) == 2_500
    assert (np.diff(kept) > 0).all() and kept[0] == 0 and 101 * 2 in kept.tolist()
    assert new_faces.min() >= 0 and new_faces.max() < len(kept)
    assert (new_faces[:, 0] != new_faces[:, 1]).all() and (new_faces[:, 1] != new_faces[:, 2]).all()
    assert len(new_faces) == 2 * 49 * 49                                       # the coarse grid's triangles


def test_vertex_count_mismatch_names_the_mesh(tiny_cache, tmp_path):
    pred_h5 = tmp_path / "val.h5"
    _write_predictions(tiny_cache, pred_h5)
    scene = _scenes(tiny_cache)[0]
    with h5py.File(pred_h5, "a") as h5:
        labels = h5[scene]["vertex_label"][:-1]
        del h5[scene]["vertex_label"]
        h5[scene]["vertex_label"] = labels
    with pytest.raises(DataFormatError, match=rf"{scene}_vh_clean_2\.ply: has \d+ vertices but \d+ vertex_label"):
        write_viewers(pred_h5, tiny_cache, tiny_cache.parent / "raw" / "scans", tmp_path / "out")
    assert not (tmp_path / "out" / f"{scene}.html").exists()


# ------------------------------------------------------------------------------------------ in a browser

def _plot_pixels(browser: Browser) -> np.ndarray:
    rect = browser.evaluate("(()=>{const r=document.getElementById('plot').getBoundingClientRect();"
                            "return {x:r.x,y:r.y,width:r.width,height:r.height};})()")
    png = browser.screenshot(clip=rect)
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]


@pytest.mark.skipif(find_chromium() is None,
                    reason="headless Chromium is not installed (Debian: apt-get install chromium; .ci/run installs it "
                           "when run as root)")
def test_viewer_in_headless_chromium(tiny_cache, viewer, tmp_path):
    _, out, labels = viewer
    scene = _scenes(tiny_cache)[0]
    with Browser(tmp_path / "profile") as browser:
        browser.navigate((out / f"{scene}.html").resolve().as_uri())
        browser.wait_for("window.viewerReady === true")
        assert browser.errors == []
        # the JS colouring is the palette applied to the prediction file
        colours = browser.evaluate("JSON.stringify(window.viewerColors('pred', 0))")
        rgb = np.array([list(map(int, c[4:-1].split(","))) for c in json.loads(colours)])
        np.testing.assert_array_equal(rgb, palette()[labels[scene]])
        gt = open_store(tiny_cache / "points" / f"{scene}.zarr", "points")["label"][...]
        colours = browser.evaluate("JSON.stringify(window.viewerColors('error', 0))")
        rgb = np.array([list(map(int, c[4:-1].split(","))) for c in json.loads(colours)])
        np.testing.assert_array_equal(rgb, np.array(ERROR_COLORS)[error_codes(gt, labels[scene])])
        assert (error_codes(gt, labels[scene]) == ERROR_WRONG).mean() > 0.1   # every 5th and 11th is corrupted

        gt_pixels = _plot_pixels(browser)
        (tmp_path / "viewer_gt.png").write_bytes(browser.screenshot())
        background = (gt_pixels == 255).all(axis=2)
        assert background.mean() < 0.97, "the 3D canvas is blank"
        # ground-truth colours are on screen: wall (174, 199, 232) lit and shaded stays bluish grey
        assert len(np.unique(gt_pixels.reshape(-1, 3), axis=0)) > 50

        assert browser.evaluate("window.setColoring('error')", await_promise=True) is True
        error_pixels = _plot_pixels(browser)
        changed = (np.abs(error_pixels.astype(int) - gt_pixels.astype(int)).sum(axis=2) > 30).mean()
        assert changed > 0.02, f"switching to the error colouring changed only {changed:.3%} of the pixels"
        # error mode: the right/wrong greens and reds dominate the drawn pixels
        drawn = error_pixels[~background]
        reddish = (drawn[:, 0] > drawn[:, 1] + 40).mean()
        greenish = (drawn[:, 1] > drawn[:, 0] + 40).mean()
        assert reddish > 0.01 and greenish > 0.05

        assert browser.evaluate("window.setColoring('cam', 3)", await_promise=True) is True
        assert (np.abs(_plot_pixels(browser).astype(int) - error_pixels.astype(int)).sum(axis=2) > 30).mean() > 0.02

        # clicking a camera shows its frame panel
        frame_id = int(open_store(tiny_cache / "frames" / f"{scene}.zarr", "frames")["frame_id"][1])
        browser.evaluate("document.getElementById('plot').emit('plotly_click',"
                         "{points:[{curveNumber:2, pointNumber:1}]})")
        browser.wait_for("document.getElementById('panel-img') && document.getElementById('panel-img').complete")
        assert browser.evaluate("window.viewerFrame") == frame_id
        assert browser.evaluate("document.getElementById('panel-img').naturalWidth") > 0
        shot = browser.screenshot()
        (tmp_path / "viewer_error.png").write_bytes(shot)
        assert browser.errors == []
    image = cv2.imread(str(tmp_path / "viewer_error.png"))
    assert image is not None and image.shape[0] > 300
