"""Table 4 pipeline: class mapping, S3DIS / 2D-3D-S preprocessing into the ScanNet stores, shared-class
inference and metrics, the Table 4 writer, and the `eval_s3dis` rules (on hand-written raw areas)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import yaml

from jointwsss.ablation import TABLE2, TABLE4_ROWS, build_table, render_markdown, table4_spec, write_table
from jointwsss.classes import CLASS_INDEX, CLASS_NAMES, IGNORE_INDEX
from jointwsss.config import resolve_config
from jointwsss.evaluate import evaluate_predictions, infer_split
from jointwsss.io.errors import DataFormatError
from jointwsss.io.s3dis import S3DIS_CLASSES, write_room
from jointwsss.io.stanford2d3ds import (
    camera_to_world, encode_semantic_png, frame_path, write_depth_png, write_pose, write_semantic_labels,
)
from jointwsss.io.zarr_store import open_store
from jointwsss.metrics import confusion_matrix, miou_report
from jointwsss.preprocess.index import build_index
from jointwsss.preprocess.s3dis import (
    S3DIS_RELEASE, SEMANTIC_LABELS, SHARED_CLASS_NAMES, STANFORD2D3DS_RELEASE, build_s3dis_frames_store,
    build_s3dis_points_store, list_area, s3dis_to_class_lut, select_frames, shared_class_mask,
)
from jointwsss.synth.s3dis import WORLD_VERSION as S3DIS_WORLD_VERSION

from conftest import REPO, hand_built_model, snakemake

EXPERIMENTS = resolve_config(REPO / "config.yaml")["experiments"]
LABELS = ["<UNK>_0_<UNK>_0_0", "wall_1_office_1_5", "chair_1_office_1_5", "ceiling_1_office_1_5",
          "bookcase_1_office_1_5", "board_1_office_1_5", "floor_1_hallway_2_5"]
# Label index per 2x2 block of a 16x16 semantic image (8x8 blocks); 7 is past the list -> unlabelled.
K = np.array([[20.0, 0.0, 15.5], [0.0, 20.0, 15.5], [0.0, 0.0, 1.0]])      # for 32x32 frames


def test_mapping_table():
    lut = s3dis_to_class_lut()
    mapped = {S3DIS_CLASSES[i]: (CLASS_NAMES[lut[i]] if lut[i] != IGNORE_INDEX else None)
              for i in range(len(S3DIS_CLASSES))}
    assert mapped == {"ceiling": None, "floor": "floor", "wall": "wall", "beam": None, "column": None,
                      "window": "window", "door": "door", "table": "table", "chair": "chair", "sofa": "sofa",
                      "bookcase": "bookshelf", "board": None, "clutter": None}
    assert (lut[len(S3DIS_CLASSES):] == IGNORE_INDEX).all() and lut.shape == (256,)
    assert SHARED_CLASS_NAMES == ("wall", "floor", "chair", "sofa", "table", "door", "window", "bookshelf")
    np.testing.assert_array_equal(np.flatnonzero(shared_class_mask()), [0, 1, 4, 5, 6, 7, 8, 9])


def test_select_frames_spreads_evenly():
    np.testing.assert_array_equal(select_frames(10, 3), [0, 3, 6])
    np.testing.assert_array_equal(select_frames(4, None), [0, 1, 2, 3])
    np.testing.assert_array_equal(select_frames(4, 9), [0, 1, 2, 3])


# --------------------------------------------------------------------------- a hand-written raw area
def _blocks(small: np.ndarray, factor: int = 2) -> np.ndarray:
    """Upsample an (h, w[, c]) array by repeating each entry in a factor x factor block."""
    return np.repeat(np.repeat(small, factor, axis=0), factor, axis=1)


def _pose(centre) -> np.ndarray:
    rotation = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])   # looking along world +x
    centre = np.asarray(centre, dtype=np.float64)
    return np.hstack([rotation, (-rotation @ centre)[:, None]])


def write_frame(data_dir: Path, frame: str, index16: np.ndarray, color16: np.ndarray, depth16: np.ndarray,
                centre) -> None:
    """One 32x32 2D-3D-S frame whose images are 2x2-block upsampled from the 16x16 inputs."""
    encode_semantic_png(frame_path(data_dir, frame, "semantic"), _blocks(index16))
    path = frame_path(data_dir, frame, "rgb")
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(_blocks(color16), cv2.COLOR_RGB2BGR))
    write_depth_png(frame_path(data_dir, frame, "depth"), _blocks(depth16))
    write_pose(frame_path(data_dir, frame, "pose"), K, _pose(centre))


def write_tiny_area(raw: Path, rng: np.random.Generator) -> dict:
    """Area 5 with rooms office_1 and hallway_2; office_1 frames in area_5a (2) and area_5b (1), hallway_2 one
    frame, plus a frame of WC_9 (no S3DIS room). Returns what was written, for the expected values."""
    area = raw / S3DIS_RELEASE / "Area_5"

    def obj(name, n, offset):
        return name, rng.uniform(0, 1, (n, 3)).round(3) + offset, rng.integers(0, 256, (n, 3))

    office = [obj("wall", 5, 0), obj("chair", 3, 1), obj("ceiling", 2, 2), obj("bookcase", 4, 3),
              obj("board", 1, 4), obj("floor", 6, 5)]
    hallway = [obj("floor", 4, 0), obj("door", 2, 1), obj("clutter", 3, 2)]
    write_room(area / "office_1", office)
    write_room(area / "hallway_2", hallway)
    write_room(area / "storage_3", [obj("sofa", 3, 0), obj("column", 2, 1)])     # no 2D-3D-S frame
    write_semantic_labels(raw / SEMANTIC_LABELS, LABELS)
    frames = {}
    uuid = "0123456789abcdef0123456789abcdef"
    specs = [("area_5a", f"camera_{uuid}_office_1_frame_0", [0.0, 0.0, 1.0]),
             ("area_5a", f"camera_{uuid}_office_1_frame_1", [1.0, 0.0, 1.5]),
             ("area_5b", f"camera_{'f' * 32}_office_1_frame_0", [2.0, 1.0, 1.2]),
             ("area_5b", f"camera_{uuid}_hallway_2_frame_0", [0.5, 0.5, 1.0]),
             ("area_5b", f"camera_{uuid}_WC_9_frame_0", [0.0, 0.0, 1.0])]
    for sub, frame, centre in specs:
        index16 = rng.integers(0, 8, (16, 16))
        color16 = rng.integers(0, 256, (16, 16, 3)).astype(np.uint8)
        depth16 = rng.integers(100, 3000, (16, 16)) / 512.0
        depth16[0, 0] = np.nan
        write_frame(raw / STANFORD2D3DS_RELEASE / sub / "data", frame, index16, color16, depth16, centre)
        frames[frame] = {"sub": sub, "index16": index16, "color16": color16, "depth16": depth16, "centre": centre}
    return {"office": office, "hallway": hallway, "frames": frames}


@pytest.fixture(scope="module")
def tiny_area(tmp_path_factory):
    raw = tmp_path_factory.mktemp("s3dis") / "raw"
    return raw, write_tiny_area(raw, np.random.default_rng(0))


def test_list_area_groups_frames_by_room(tiny_area):
    raw, _ = tiny_area
    listing = list_area(raw, 5)
    assert listing["rooms"] == ["hallway_2", "office_1", "storage_3"]
    assert listing["frames_per_room"] == {"hallway_2": 1, "office_1": 3, "storage_3": 0}
    assert [Path(d).parent.name for d in listing["frame_dirs"]] == ["area_5a", "area_5b"]
    assert listing["frame_rooms_without_points"] == {"WC_9": 1}
    assert listing["rooms_without_frames"] == ["storage_3"]


def test_points_store_has_scannet_labels(tiny_area, tmp_path):
    raw, written = tiny_area
    summary = build_s3dis_points_store(raw, 5, "office_1", tmp_path / "points" / "office_1.zarr", min_points=3)
    store = open_store(tmp_path / "points" / "office_1.zarr", "points")
    # read order: board_1, bookcase_1, ceiling_1, chair_1, floor_1, wall_1
    order = {name: i for i, (name, _, _) in enumerate(written["office"])}
    names = ["board", "bookcase", "ceiling", "chair", "floor", "wall"]
    expected_xyz = np.concatenate([written["office"][order[n]][1] for n in names])
    np.testing.assert_allclose(store["xyz"][...], expected_xyz, atol=1e-6)
    np.testing.assert_array_equal(store["rgb"][...], np.concatenate([written["office"][order[n]][2] for n in names]))
    c = CLASS_INDEX
    np.testing.assert_array_equal(store["label"][...], [255] + [c["bookshelf"]] * 4 + [255] * 2 + [c["chair"]] * 3
                                  + [c["floor"]] * 6 + [c["wall"]] * 5)
    counts = store.attrs["class_point_counts"]
    assert counts[c["wall"]] == 5 and counts[c["bookshelf"]] == 4 and sum(counts) == 18
    assert [CLASS_NAMES[i] for i, on in enumerate(store.attrs["scene_labels"]) if on] == [
        "wall", "floor", "chair", "bookshelf"]
    assert store.attrs["ignored_points"] == 3 and store.attrs["num_points"] == 21
    assert store.attrs["s3dis_class_point_counts"]["ceiling"] == 2
    assert store.attrs["malformed_lines"] == {} and summary["malformed_lines_total"] == 0
    assert len(store.attrs["source_files"]) == 6


def test_malformed_lines_are_counted(tmp_path):
    raw = tmp_path / "raw"
    rng = np.random.default_rng(1)
    room = raw / S3DIS_RELEASE / "Area_5" / "hallway_6"
    write_room(room, [("ceiling", rng.uniform(0, 1, (4, 3)).round(3), rng.integers(0, 256, (4, 3))),
                      ("wall", rng.uniform(0, 1, (3, 3)).round(3), rng.integers(0, 256, (3, 3)))])
    bad = room / "Annotations" / "ceiling_1.txt"
    lines = bad.read_text().splitlines()
    lines[1] = lines[1].replace(" ", "\x10", 1)            # the release's control character in place of a space
    bad.write_text("\n".join(lines) + "\n")
    summary = build_s3dis_points_store(raw, 5, "hallway_6", tmp_path / "p.zarr", min_points=1)
    assert summary["malformed_lines"] == {str(bad): 1} and summary["malformed_lines_total"] == 1
    store = open_store(tmp_path / "p.zarr", "points")
    assert store.attrs["num_points"] == 6
    np.testing.assert_array_equal(store["label"][...], [255] * 3 + [CLASS_INDEX["wall"]] * 3)


def test_missing_room_names_the_folder(tmp_path):
    (tmp_path / S3DIS_RELEASE / "Area_5").mkdir(parents=True)
    with pytest.raises(DataFormatError, match="office_7.*Annotations"):
        build_s3dis_points_store(tmp_path, 5, "office_7", tmp_path / "p.zarr", min_points=1)
    assert not (tmp_path / "p.zarr").exists()


def test_frames_store_exact_labels_poses_and_depth(tiny_area, tmp_path):
    raw, written = tiny_area
    out = tmp_path / "frames" / "office_1.zarr"
    build_s3dis_frames_store(raw, 5, "office_1", out, image_size=(16, 16), min_pixel_fraction=0.1)
    store = open_store(out, "frames")
    names = store.attrs["frame_names"]
    # sorted by (area_5a | area_5b, frame name)
    assert names == [f"area_5a/camera_{'0123456789abcdef' * 2}_office_1_frame_0",
                     f"area_5a/camera_{'0123456789abcdef' * 2}_office_1_frame_1",
                     f"area_5b/camera_{'f' * 32}_office_1_frame_0"]
    assert store["color"].shape == (3, 16, 16, 3) and store["label"].shape == (3, 16, 16)
    np.testing.assert_array_equal(store["frame_id"][...], [0, 1, 2])
    # semantic index -> S3DIS class -> ScanNet class: <UNK>, wall, chair, ceiling, bookcase, board, floor, past end
    index_to_class = np.array([255, CLASS_INDEX["wall"], CLASS_INDEX["chair"], 255, CLASS_INDEX["bookshelf"], 255,
                               CLASS_INDEX["floor"], 255], dtype=np.uint8)
    scale = np.eye(4, dtype=np.float32)
    scale[0, 0] = scale[1, 1] = 10.0             # fx 20 at 32 px -> 10 at 16 px
    scale[0, 2] = scale[1, 2] = 7.5              # (15.5 + 0.5) / 2 - 0.5
    for f, name in enumerate(names):
        w = written["frames"][name.split("/")[1]]
        expected_label = index_to_class[w["index16"]]
        np.testing.assert_array_equal(store["label"][f], expected_label)
        np.testing.assert_array_equal(store["color"][f], w["color16"])
        units = np.rint(np.nan_to_num(w["depth16"], nan=0.0) * 512).astype(np.uint16)
        np.testing.assert_array_equal(store["depth"][f], units)          # NaN (65535 in the PNG) -> 0
        assert store["depth"][f][0, 0] == 0
        np.testing.assert_allclose(store["pose"][f], camera_to_world(_pose(w["centre"])), atol=1e-6)
        np.testing.assert_allclose(store["pose"][f][:3, 3], w["centre"], atol=1e-6)
        np.testing.assert_allclose(store["intrinsic_color_per_frame"][f], scale)
        counts = np.bincount(expected_label.ravel(), minlength=256)[:20]
        np.testing.assert_array_equal(store["image_labels"][f], counts >= 0.1 * 256)
    np.testing.assert_allclose(store["intrinsic_color"][...], scale)
    a = store.attrs
    assert a["frames_kept"] == 3 and a["image_size"] == [16, 16] and a["depth_shift"] == 512.0
    assert a["intrinsics_differ"] is False and a["source_image_sizes"] == [[32, 32]]
    assert a["frames_dropped"] == {"missing_semantic_or_pose": 0, "over_max_frames_per_room": 0}


def test_frames_cap_missing_pose_and_empty_room(tiny_area, tmp_path):
    raw, _ = tiny_area
    build_s3dis_frames_store(raw, 5, "office_1", tmp_path / "cap.zarr", image_size=(16, 16),
                             min_pixel_fraction=0.1, max_frames=2)
    capped = open_store(tmp_path / "cap.zarr", "frames")
    assert capped.attrs["frames_kept"] == 2 and capped.attrs["frames_dropped"]["over_max_frames_per_room"] == 1
    assert [n.split("_frame_")[0][-8:] for n in capped.attrs["frame_names"]] == ["office_1", "office_1"]
    assert capped.attrs["frame_names"][1].startswith("area_5a/") and "frame_1" in capped.attrs["frame_names"][1]
    # a room without any frame: an empty store, not an error
    build_s3dis_frames_store(raw, 5, "storage_3", tmp_path / "empty.zarr", image_size=(16, 16), min_pixel_fraction=0.1)
    empty = open_store(tmp_path / "empty.zarr", "frames")
    assert empty["color"].shape == (0, 16, 16, 3) and empty.attrs["frames_kept"] == 0


def test_bad_pose_names_the_file(tmp_path):
    raw = tmp_path / "raw"
    write_semantic_labels(raw / SEMANTIC_LABELS, LABELS)
    data = raw / STANFORD2D3DS_RELEASE / "area_5" / "data"
    frame = f"camera_{'a' * 32}_office_3_frame_2"
    write_frame(data, frame, np.ones((16, 16), int), np.zeros((16, 16, 3), np.uint8), np.ones((16, 16)), [0, 0, 1])
    frame_path(data, frame, "pose").write_text(json.dumps({"camera_k_matrix": K.tolist()}))
    with pytest.raises(DataFormatError, match=f"{frame}_domain_pose.json: pose JSON has no 'camera_rt_matrix'"):
        build_s3dis_frames_store(raw, 5, "office_3", tmp_path / "f.zarr", image_size=(16, 16), min_pixel_fraction=0.1)
    assert not (tmp_path / "f.zarr").exists()


# --------------------------------------------------------------------------- evaluation on shared classes
def _tiny_cache(raw: Path, cache: Path) -> list[str]:
    rooms = list_area(raw, 5)["rooms"]
    for room in rooms:
        build_s3dis_points_store(raw, 5, room, cache / "points" / f"{room}.zarr", min_points=1)
        build_s3dis_frames_store(raw, 5, room, cache / "frames" / f"{room}.zarr", image_size=(16, 16),
                                 min_pixel_fraction=0.1)
    build_index("area_5", rooms, cache, cache / "index" / "area_5.json")
    return rooms


def write_predictions(path: Path, per_room: dict, *, has_3d=True, has_2d=True) -> None:
    with h5py.File(path, "w") as h5:
        h5.attrs.update({"mode": "inference", "has_3d": has_3d, "has_2d": has_2d})
        for room, (vertex, frame) in per_room.items():
            g = h5.create_group(room)
            if has_3d:
                g.create_dataset("vertex_label", data=np.asarray(vertex, np.uint8))
            if has_2d:
                g.create_dataset("frame_label", data=np.asarray(frame, np.uint8))


def test_shared_class_miou_hand_computed(tiny_area, tmp_path):
    raw, _ = tiny_area
    cache = tmp_path / "cache"
    _tiny_cache(raw, cache)
    c = CLASS_INDEX
    # hallway_2 labels (read order clutter_1, door_1, floor_1): 255 x3, door x2, floor x4
    hall_vertex = [c["door"]] * 3 + [c["door"], c["cabinet"]] + [c["floor"]] * 3 + [c["door"]]
    # office_1: bookshelf x4 | 255 x2 | chair x3 | floor x6 | wall x5 (board first: 255)
    office_vertex = ([0] + [c["bookshelf"]] * 4 + [0, 0] + [c["chair"]] * 3 + [c["floor"]] * 6 + [c["wall"]] * 5)
    hall_f = open_store(cache / "frames" / "hallway_2.zarr", "frames")["label"][...]
    office_f = open_store(cache / "frames" / "office_1.zarr", "frames")["label"][...]
    empty = np.zeros((0, 16, 16), np.uint8)
    write_predictions(tmp_path / "area_5.h5", {"hallway_2": (hall_vertex, hall_f),
                                               "office_1": (office_vertex, office_f),
                                               "storage_3": ([c["sofa"]] * 3 + [c["sofa"]] * 2, empty)})
    result = evaluate_predictions(tmp_path / "area_5.h5", cache, classes=shared_class_mask())
    m3 = result["3d"]
    # door: TP 1, FN 1 (cabinet: a non-shared prediction is a miss), FP 1 (a floor point) -> 1/3
    # floor: TP 9 (3 + 6), FN 1 (predicted door) -> 0.9; wall, chair, bookshelf: 1.0
    assert m3["per_class"]["door"] == pytest.approx(1 / 3)
    assert m3["per_class"]["floor"] == pytest.approx(0.9)
    # storage_3: sofa x3 right; its 2 column points (ignored) predicted sofa do not count
    assert m3["per_class"]["wall"] == m3["per_class"]["chair"] == m3["per_class"]["bookshelf"] == 1.0
    assert m3["per_class"]["sofa"] == 1.0
    assert m3["per_class"]["cabinet"] is None and m3["per_class"]["table"] is None
    assert m3["classes_in_mean"] == 6 and m3["miou"] == pytest.approx((1 / 3 + 0.9 + 4) / 6)
    assert m3["points_or_pixels"] == 6 + 18 + 3          # labelled points of the three rooms
    m2 = result["2d"]
    assert m2["miou"] == 1.0 and all(v in (None, 1.0) for v in m2["per_class"].values())
    # without the class restriction a cabinet prediction would create a cabinet IoU of 0 in the mean
    plain = evaluate_predictions(tmp_path / "area_5.h5", cache)["3d"]
    assert plain["per_class"]["cabinet"] == 0.0 and plain["classes_in_mean"] == 7


def test_inference_restricted_to_shared_classes_and_metrics(tiny_area, tmp_path):
    raw, _ = tiny_area
    cache = tmp_path / "cache"
    rooms = _tiny_cache(raw, cache)
    model = hand_built_model(tmp_path, cache, "joint")
    shared = shared_class_mask()
    out = tmp_path / "area_5.h5"
    infer_split(model, cache, rooms, "area_5", "inference", out, passes_3d=1, batch_3d=2, device="cpu",
                restrict_to=shared)
    conf3d, conf2d = np.zeros((20, 21), np.int64), np.zeros((20, 21), np.int64)
    with h5py.File(out, "r") as h5:
        assert list(h5.attrs["restricted_to"]) == list(SHARED_CLASS_NAMES)
        for room in rooms:
            vertex, frame = h5[room]["vertex_label"][...], h5[room]["frame_label"][...]
            assert shared[vertex].all() and shared[frame].all()          # only shared classes are predicted
            scores = h5[room]["vertex_score"][...].astype(np.float32)
            np.testing.assert_array_equal(vertex, np.where(shared, scores, -np.inf).argmax(axis=1))
            conf3d += confusion_matrix(open_store(cache / "points" / f"{room}.zarr", "points")["label"][...], vertex)
            conf2d += confusion_matrix(open_store(cache / "frames" / f"{room}.zarr", "frames")["label"][...], frame)
    result = evaluate_predictions(out, cache, classes=shared)
    assert result["mode"] == "inference"
    assert result["3d"] == miou_report(conf3d) and result["2d"] == miou_report(conf2d)
    assert all(result["3d"]["per_class"][n] is None for n in CLASS_NAMES if n not in SHARED_CLASS_NAMES)


# --------------------------------------------------------------------------- Table 4
def _write_s3dis_metrics(runs: Path, name: str, val2d, val3d, area=5):
    path = runs / name / "eval" / "s3dis_metrics.json"
    path.parent.mkdir(parents=True)
    m = (lambda v: None if v is None else {"miou": v})
    path.write_text(json.dumps({"experiment": name, "dataset": "s3dis", "splits": {
        f"area_{area}": {"mode": "inference", "2d": m(val2d), "3d": m(val3d)}}}))


def test_table4_from_hand_made_metrics(tmp_path):
    values = {"cls2d": (0.21, None), "to2d": (0.30, 0.25), "joint": (0.40, 0.45), "cls3d": (None, 0.12),
              "to3d": (0.28, 0.33)}
    for name, (two, three) in values.items():
        _write_s3dis_metrics(tmp_path, name, two, three)
    spec = table4_spec(5, SHARED_CLASS_NAMES)
    table = write_table(tmp_path, EXPERIMENTS, tmp_path / "s3dis_table.md", tmp_path / "s3dis_table.json", spec)
    assert json.loads((tmp_path / "s3dis_table.json").read_text()) == table
    assert table["dataset"] == "s3dis" and table["area"] == 5 and table["classes"] == list(SHARED_CLASS_NAMES)
    assert [(r["domain"], r["experiment"], r["val_miou"], r["paper_val"]) for r in table["rows"]] == [
        ("2d", "cls2d", 0.21, 0.369), ("2d", "to2d", 0.30, 0.433), ("2d", "joint", 0.40, 0.495),
        ("3d", "cls3d", 0.12, 0.175), ("3d", "to3d", 0.33, 0.480), ("3d", "joint", 0.45, 0.544)]
    assert all(set(r) == {"experiment", "domain", "losses", "confidence", "val_miou", "paper_val"}
               for r in table["rows"])
    md = (tmp_path / "s3dis_table.md").read_text()
    assert md == render_markdown(table, spec)
    assert ("| Domain | L_cls^2d | L_cls^3d | L_2d→3d | L_3d→2d | Confidence | Val (ours) | Val (paper) "
            "| experiment |") in md
    assert "| 2D | ✓ |  |  |  |  | 21.0 | 36.9 | `cls2d` |" in md
    assert "|  | ✓ | ✓ |  | ✓ | ✓ | 30.0 | 43.3 | `to2d` |" in md
    assert "| 3D |  | ✓ |  |  |  | 12.0 | 17.5 | `cls3d` |" in md
    assert "|  | ✓ | ✓ | ✓ | ✓ | ✓ | 45.0 | 54.4 | `joint` |" in md
    assert "wall, floor, chair, sofa, table, door, window, bookshelf" in md
    assert [r[1] for r in TABLE4_ROWS] == ["cls2d", "to2d", "joint", "cls3d", "to3d", "joint"]


def test_table4_missing_metrics_says_how_to_make_them(tmp_path):
    with pytest.raises(DataFormatError, match="cls2d.*snakemake eval_s3dis"):
        build_table(tmp_path, EXPERIMENTS, table4_spec(5))
    # Table 2 keeps its own hint
    with pytest.raises(DataFormatError, match="snakemake eval --config experiment=cls2d"):
        build_table(tmp_path, EXPERIMENTS, TABLE2)


# --------------------------------------------------------------------------- workflow
def _config(tmp_path: Path, **s3dis) -> Path:
    cfg = yaml.safe_load((REPO / "workflow" / "configs" / "tiny.yaml").read_text())
    cfg["dataset"]["raw_dir"] = str(tmp_path / "raw_scannet")
    cfg["cache_dir"] = str(tmp_path / "cache")
    cfg["runs_dir"] = str(tmp_path / "runs")
    cfg["logs_dir"] = str(tmp_path / "logs")
    cfg["s3dis"] = {"cache_dir": str(tmp_path / "cache_s3dis"), "raw_dir": str(tmp_path / "raw_s3dis"),
                    "image_size": [16, 16], **s3dis}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _job_counts(out: str) -> dict[str, int]:
    from test_workflow import job_counts

    return job_counts(out)


def test_dry_run_plans_eval_s3dis(tmp_path):
    proc = snakemake(["-n", "eval_s3dis", "--configfile", str(_config(tmp_path))], tmp_path)
    counts = _job_counts(proc.stdout)
    # rooms are known only after the checkpoint: per-room jobs appear once it has run
    s3dis_jobs = {rule: n for rule, n in counts.items() if "s3dis" in rule}
    assert s3dis_jobs == {"s3dis_synth": 1, "s3dis_rooms": 1, "s3dis_index": 1, "s3dis_infer": 5,
                          "s3dis_evaluate": 5, "s3dis_table": 1, "eval_s3dis": 1}, proc.stdout
    # the five Table 4 experiments are trained on ScanNet through the existing rules
    assert counts["train_experiment"] >= 5 and counts["index"] >= 1, proc.stdout
    for name in ("cls2d", "to2d", "joint", "cls3d", "to3d"):
        assert f"runs/{name}/model.pt" in proc.stdout


def test_local_source_preprocesses_per_room_through_snakemake(tmp_path):
    raw = tmp_path / "raw_s3dis"
    write_tiny_area(raw, np.random.default_rng(3))
    cfg = _config(tmp_path, source="local", max_frames_per_room=2)
    proc = snakemake(["-n", "eval_s3dis", "--configfile", str(cfg)], tmp_path)
    assert "s3dis_synth" not in _job_counts(proc.stdout)
    target = tmp_path / "cache_s3dis" / "index" / "area_5.json"
    snakemake(["--cores", "2", str(target), "--configfile", str(cfg)], tmp_path)
    index = json.loads(target.read_text())
    assert [(s["scene"], s["frames"], s["pairs"], s["usable"]) for s in index["scenes"]] == [
        ("hallway_2", 1, None, True), ("office_1", 2, None, True), ("storage_3", 0, None, False)]
    assert index["totals"]["points"] == 9 + 21 + 5
    for room in ("hallway_2", "office_1", "storage_3"):
        assert (tmp_path / "logs" / "s3dis" / "points" / f"{room}.log").exists()
    again = snakemake(["-n", str(target), "--configfile", str(cfg)], tmp_path)
    assert "Nothing to be done" in again.stdout + again.stderr


def test_local_source_without_the_area_names_the_folder(tmp_path):
    proc = snakemake(["-n", "eval_s3dis", "--configfile", str(_config(tmp_path, source="local"))], tmp_path,
                     check=False)
    assert proc.returncode != 0
    assert "s3dis.source is 'local' but" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_eval_s3dis_end_to_end_on_a_tiny_synthetic_area(tmp_path):
    """Tiny ScanNet training of the five Table 4 experiments, a synthetic area, inference, metrics, table (~45 s)."""
    cfg = _config(tmp_path, synth={"rooms": 2, "frames_per_room": 3, "image_size": 64, "points_per_m2": 20.0},
                  image_size=[48, 48])
    snakemake(["--cores", "2", "eval_s3dis", "--configfile", str(cfg)], tmp_path)
    runs = tmp_path / "runs"
    table = json.loads((runs / "s3dis_table.json").read_text())
    assert [(r["domain"], r["experiment"]) for r in table["rows"]] == [(d, n) for d, n, _ in TABLE4_ROWS]
    assert all(0.0 <= r["val_miou"] <= 1.0 for r in table["rows"])
    listing = json.loads((tmp_path / "cache_s3dis" / "rooms_area_5.json").read_text())
    assert len(listing["rooms"]) == 2 and all(n == 3 for n in listing["frames_per_room"].values())
    shared = shared_class_mask()
    for room in listing["rooms"]:
        label = open_store(tmp_path / "cache_s3dis" / "points" / f"{room}.zarr", "points")["label"][...]
        assert set(np.unique(label)) <= set(np.flatnonzero(shared)) | {IGNORE_INDEX}
    for name in ("cls2d", "cls3d", "joint"):
        metrics = json.loads((runs / name / "eval" / "s3dis_metrics.json").read_text())
        assert metrics["dataset"] == "s3dis" and metrics["classes"] == list(SHARED_CLASS_NAMES)
        split = metrics["splits"]["area_5"]
        assert split["mode"] == "inference"
        assert (split["3d"] is None) == (name == "cls2d") and (split["2d"] is None) == (name == "cls3d")
        for m in (split["3d"], split["2d"]):
            if m is None:
                continue
            assert len(m["confusion"]) == 20 and len(m["confusion"][0]) == 21
            assert 1 <= m["classes_in_mean"] <= 8
            assert all(m["per_class"][n] is None for n in CLASS_NAMES if n not in SHARED_CLASS_NAMES)
    md = (runs / "s3dis_table.md").read_text()
    joint3d = next(r for r in table["rows"] if r["domain"] == "3d" and r["experiment"] == "joint")
    assert f"| {100 * joint3d['val_miou']:.1f} | 54.4 | `joint` |" in md
    # a changed evaluation setting reruns inference and metrics, not training or preprocessing
    text = yaml.safe_load(cfg.read_text())
    text["s3dis"]["restrict_to_shared"] = False
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(text))
    proc = snakemake(["-n", "eval_s3dis", "--configfile", str(changed)], tmp_path)
    assert _job_counts(proc.stdout) == {"s3dis_infer": 5, "s3dis_evaluate": 5, "s3dis_table": 1, "eval_s3dis": 1}


@pytest.mark.slow
def test_synthetic_area_of_an_earlier_generator_is_remade(tmp_path):
    """Rule s3dis_synth records the generator's version in its params: an area whose recorded version differs is
    written again (and the summary names the version that wrote it); an unchanged one is kept."""
    cfg = _config(tmp_path)
    ready = tmp_path / "raw_s3dis" / "synth_s3dis_area_5.json"
    snakemake(["--cores", "2", str(ready), "--configfile", str(cfg)], tmp_path)
    assert json.loads(ready.read_text())["world_version"] == S3DIS_WORLD_VERSION
    again = snakemake(["-n", str(ready), "--configfile", str(cfg)], tmp_path)
    assert "Nothing to be done" in again.stdout + again.stderr
    (record_path,) = [path for path in (tmp_path / ".snakemake" / "metadata").iterdir()
                      if json.loads(path.read_text())["rule"] == "s3dis_synth"]
    record = json.loads(record_path.read_text())
    assert f"'{S3DIS_WORLD_VERSION}'" in record["params"]             # Snakemake records each param quoted
    record["params"] = ["'0.9'" if p == f"'{S3DIS_WORLD_VERSION}'" else p for p in record["params"]]
    record_path.write_text(json.dumps(record))
    proc = snakemake(["-n", str(ready), "--configfile", str(cfg)], tmp_path)
    assert _job_counts(proc.stdout) == {"s3dis_synth": 1}, proc.stdout
