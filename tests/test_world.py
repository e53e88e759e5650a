"""World statistics (jointwsss.world) on hand-built caches whose every number is worked out by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jointwsss.classes import CLASS_INDEX, NUM_CLASSES
from jointwsss.io.layout import index_path, store_path
from jointwsss.io.zarr_store import create_store, write_array
from jointwsss.world import appearance_probe, format_world, patch_descriptors, world_statistics

from conftest import run_cmd

WALL, FLOOR, CHAIR, TABLE, BED = (CLASS_INDEX[n] for n in ("wall", "floor", "chair", "table", "bed"))
H, W = 20, 40


def _image_labels(labels: np.ndarray) -> np.ndarray:
    counts = np.stack([np.bincount(v[v < NUM_CLASSES].ravel(), minlength=NUM_CLASSES) for v in labels])
    return counts >= 0.01 * H * W


def _write_scene(cache, scene, labels, colors, vertex_label, seen, scene_labels):
    with_frames = create_store(store_path(cache, "frames", scene), "frames", {"scene": scene})
    write_array(with_frames, "label", labels)
    write_array(with_frames, "color", colors)
    write_array(with_frames, "image_labels", _image_labels(labels))
    points = create_store(store_path(cache, "points", scene), "points", {"scene_labels": scene_labels})
    write_array(points, "label", vertex_label)
    corr = create_store(store_path(cache, "corr", scene), "corr", {})
    write_array(corr, "point_idx", np.asarray(seen, np.int32))


@pytest.fixture
def cache(tmp_path):
    """Scene a (train): view 0 = wall over floor with a chair block cut by the left border; view 1 = floor only.
    Scene b (train): one view of wall with a table block inside the frame and a bed strip on the right border.
    Scene c (val): colours alone tell its classes."""
    rng = np.random.default_rng(0)
    a = np.full((2, H, W), FLOOR, np.uint8)
    a[0, :10] = WALL
    a[0, 5:15, 0:8] = CHAIR                      # 80 px, touches the left border
    a[1, 0, 0] = 255                             # an ignored pixel
    b = np.full((1, H, W), WALL, np.uint8)
    b[0, 5:15, 10:20] = TABLE                    # 100 px, inside
    b[0, :, 36:] = BED                           # 80 px on the right border
    colour_of = {WALL: (200, 200, 200), FLOOR: (120, 80, 40), CHAIR: (200, 30, 30), TABLE: (30, 200, 30),
                 BED: (30, 30, 200)}

    def paint(labels):
        out = np.zeros(labels.shape + (3,), np.uint8)
        for c, rgb in colour_of.items():
            out[labels == c] = rgb
        return np.clip(out.astype(int) + rng.integers(-3, 4, out.shape), 0, 255).astype(np.uint8)

    # vertices a: 10 wall (4 seen), 10 floor (10 seen), 5 chair (1 seen); b: 10 wall (0 seen), 4 table (4 seen),
    # 6 bed (3 seen), 2 ignored (both seen)
    va = np.array([WALL] * 10 + [FLOOR] * 10 + [CHAIR] * 5, np.uint8)
    vb = np.array([WALL] * 10 + [TABLE] * 4 + [BED] * 6 + [255] * 2, np.uint8)
    scene_labels = lambda cs: [c in cs for c in range(NUM_CLASSES)]  # noqa: E731
    _write_scene(tmp_path, "scene0000_00", a, paint(a), va, [0, 1, 2, 3, *range(10, 20), 20, 10],
                 scene_labels({WALL, FLOOR, CHAIR}))
    _write_scene(tmp_path, "scene0001_00", b, paint(b), vb, [10, 11, 12, 13, 14, 15, 16, 20, 21],
                 scene_labels({WALL, TABLE, BED}))
    c = b.copy()
    _write_scene(tmp_path, "scene0002_00", c, paint(c), vb, [10], scene_labels({WALL, TABLE, BED}))
    for split, scenes in (("train", ["scene0000_00", "scene0001_00"]), ("val", ["scene0002_00"])):
        index_path(tmp_path, split).parent.mkdir(parents=True, exist_ok=True)
        index_path(tmp_path, split).write_text(json.dumps({"scenes": [{"scene": s, "usable": True} for s in scenes]}))
    return tmp_path


def test_world_statistics_by_hand(cache):
    stats = world_statistics(cache, "train")
    v = stats["views"]
    assert stats["scenes"] == 2 and v["count"] == 3
    # views with an object: a/0 (chair), b/0 (table, bed) -- not a/1 (floor only)
    assert v["with_object_class"] == pytest.approx(2 / 3)
    assert v["object_classes_per_view"] == pytest.approx((1 + 0 + 2) / 3)
    # labelled pixels: 3 * 800 - 1 ignored; wall: a/0 400 - chair rows 0..9 (5 rows x 8) = 360, b/0 800 - 100 - 80 = 620
    labelled = 3 * 800 - 1
    assert v["pixel_share"]["wall"] == pytest.approx((360 + 620) / labelled)
    floor = (400 - 40) + 799
    assert v["wall_floor_pixel_share"] == pytest.approx((360 + 620 + floor) / labelled)
    assert v["pixel_share"]["chair"] == pytest.approx(80 / labelled)
    # regions: chair (left border), table (inside), bed (right border)
    assert stats["regions"] == {"count": 3, "touching_border": pytest.approx(2 / 3)}
    cov = stats["coverage"]
    assert cov["per_class"]["wall"] == pytest.approx(4 / 20) and cov["per_class"]["chair"] == pytest.approx(1 / 5)
    assert cov["per_class"]["bed"] == pytest.approx(3 / 6) and cov["per_class"]["sofa"] is None
    assert cov["all"] == pytest.approx((4 + 10 + 1 + 0 + 4 + 3) / 45)       # ignored vertices do not count
    assert cov["objects"] == pytest.approx((1 + 4 + 3) / 15)
    classes = stats["classes"]
    assert classes["table"] == {"views": 1, "scenes": 1, "companion": "bed", "companion_share": 1.0}
    assert classes["floor"]["views"] == 2 and classes["floor"]["companion"] == "chair"
    assert classes["floor"]["companion_share"] == pytest.approx(0.5)
    # appearance: colours alone name every class, so train patches classify val patches perfectly
    app = stats["appearance"]
    assert app["probe"] == "train -> val" and app["mean_recall"] == 1.0
    assert set(app["per_class"]) == {"wall", "table"}          # the 4-pixel bed strip holds no 8 x 8 patch
    text = format_world(stats)
    assert "66.7 % show an object class; 1.00 object classes per view" in text


def test_patches_lie_inside_one_class_and_describe_it():
    labels = np.zeros((1, 16, 16), np.uint8)
    labels[0, :, 8:] = CHAIR
    colors = np.zeros((1, 16, 16, 3), np.uint8)
    colors[0, :, 8:] = (255, 0, 0)
    colors[0, :, :8, 1] = np.arange(8, dtype=np.uint8)[None, :] * 10     # a green ramp: 10/255 a pixel along x
    x, y = patch_descriptors(colors, labels, np.random.default_rng(0), per_class=50)
    chair, wall = x[y == CHAIR], x[y == 0]
    assert len(chair) == 9 and len(wall) == 9              # the 8x8 windows wholly inside each 8-wide class
    np.testing.assert_allclose(chair[0], [1, 0, 0, 0, 0, 0, 0, 0], atol=1e-12)
    assert wall[:, 7] == pytest.approx(0.0) and wall[:, 6] == pytest.approx(10 / 255 / 3)


def test_probe_recalls_count_the_majority_of_seven():
    rng = np.random.default_rng(0)
    ref_x = np.r_[np.zeros((10, 8)), np.ones((10, 8))]
    ref_y = np.r_[np.zeros(10, int), np.ones(10, int)]
    query_x = np.r_[np.zeros((4, 8)), np.ones((2, 8)), np.zeros((2, 8))]
    query_y = np.r_[np.zeros(4, int), np.ones(4, int)]
    out = appearance_probe(ref_x, ref_y, query_x, query_y, rng)
    assert out["per_class"]["wall"]["recall"] == 1.0 and out["per_class"]["floor"]["recall"] == 0.5
    assert out["per_class"]["floor"]["most_confused_with"] == "wall" and out["mean_recall"] == 0.75


def test_info_world_command_writes_json_and_table(cache, tmp_path):
    out = tmp_path / "world" / "train.json"
    proc = run_cmd(["jointwsss", "info", str(cache), "--world", "train", "--out", str(out)])
    assert "2 scenes, 3 views" in proc.stdout
    assert json.loads(out.read_text())["views"]["count"] == 3
    assert out.with_suffix(".txt").read_text().startswith("world train: 2 scenes, 3 views")
