"""The synthetic S3DIS + 2D-3D-S area: layout on disk, read-back, label consistency, determinism."""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import cKDTree

from jointwsss.io.s3dis import S3DIS_CLASSES, list_rooms, read_points_txt, read_room
from jointwsss.io.stanford2d3ds import (
    camera_to_world,
    decode_semantic_png,
    frame_path,
    list_frames,
    read_depth_png,
    read_pose,
    read_semantic_index_png,
    read_semantic_labels,
    semantic_class_lut,
)
from jointwsss.synth.raycast import SurfaceKind, SurfaceSet, cast
from jointwsss.synth.s3dis import (
    CAMERA_HEIGHT_RANGE_M,
    LABELS_JSON,
    S3DIS_DIR,
    STANFORD2D3DS_DIR,
    UNLABELED_INDEX,
    SynthS3DISConfig,
    intrinsic_for_fov,
    room_offsets,
    sample_fov,
    sample_surface,
    synthesize_s3dis,
)
from jointwsss.synth.s3dis_layout import REQUIRED_CLASSES, generate_room, room_plan
from jointwsss.synth.texture import Material, MaterialKind

# Classes S3DIS shares with ScanNet-20 (bookcase = ScanNet's bookshelf).
SHARED = {"wall", "floor", "chair", "sofa", "table", "door", "window", "bookcase"}
TINY = SynthS3DISConfig(area=5, rooms=3, frames_per_room=3, image_size=64, points_per_m2=150.0, seed=3)
FRAME_NAME = re.compile(r"^camera_[0-9a-f]{32}_(?P<room>(office|conferenceRoom|hallway|lobby|storage|WC)_\d+)_frame_\d+$")


@pytest.fixture(scope="module")
def area(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth_s3dis")
    return root, synthesize_s3dis(root, TINY)


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _sorted_rows(xyz: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    rows = np.concatenate([xyz.astype(np.float64), rgb.astype(np.float64)], axis=1)
    return rows[np.lexsort(rows.T[::-1])]


def _without_timing(summary: dict) -> dict:
    rooms = [{k: v for k, v in room.items() if k != "seconds"} for room in summary["rooms"]]
    return {k: v for k, v in summary.items() if k != "seconds"} | {"rooms": rooms}


def _all_frames(root: Path) -> list[tuple[Path, str]]:
    out = []
    for part in ("area_5a", "area_5b"):
        data = root / STANFORD2D3DS_DIR / part / "data"
        out += [(data, f) for f in list_frames(data)]
    return out


def _room_of(frame: str) -> str:
    match = FRAME_NAME.match(frame)
    assert match, frame
    return match["room"]


def test_s3dis_rooms_read_back(area):
    root, summary = area
    rooms = list_rooms(root / S3DIS_DIR / "Area_5")
    assert [r.name for r in rooms] == ["conferenceRoom_1", "hallway_1", "office_1"]
    class_points = {c: 0 for c in S3DIS_CLASSES}
    for room_dir in rooms:
        room = read_room(room_dir)
        assert room["malformed"] == {}
        n = len(room["xyz"])
        assert n == summary["points_per_room"][room_dir.name]
        # <room>.txt holds exactly the union of the annotation files (read_room orders them by class)
        xyz_all, rgb_all, bad = read_points_txt(room_dir / f"{room_dir.name}.txt")
        assert bad == [] and np.array_equal(_sorted_rows(xyz_all, rgb_all), _sorted_rows(room["xyz"], room["rgb"]))
        labels = np.bincount(room["label"], minlength=len(S3DIS_CLASSES))
        assert len(labels) == len(S3DIS_CLASSES)  # no unknown (255) class names
        for c, name in enumerate(S3DIS_CLASSES):
            class_points[name] += int(labels[c])
        # every object class of the layout got points
        room_type, number = room_dir.name.rsplit("_", 1)
        layout = generate_room(TINY.seed, 5, room_type, int(number))
        assert {S3DIS_CLASSES[c] for c in np.unique(room["label"])} == set(layout.object_classes())
        # one annotation file per wall face, one floor, one ceiling
        names = sorted(p.stem for p in (room_dir / "Annotations").glob("*.txt"))
        assert [n for n in names if n.startswith(("wall_", "floor_", "ceiling_"))] == [
            "ceiling_1", "floor_1", "wall_1", "wall_2", "wall_3", "wall_4"]
    assert class_points == summary["class_points"]
    assert summary["total_points"] == sum(summary["points_per_room"].values())


def test_s3dis_points_lie_on_room_surfaces(area):
    root, _ = area
    layouts = [generate_room(TINY.seed, 5, t, n) for t, n in room_plan(TINY.rooms)]
    for layout, offset in zip(layouts, room_offsets(layouts)):
        room_dir = root / S3DIS_DIR / "Area_5" / layout.name
        floor, _, _ = read_points_txt(room_dir / "Annotations" / "floor_1.txt")
        ceiling, _, _ = read_points_txt(room_dir / "Annotations" / "ceiling_1.txt")
        # scanner noise 2 mm (6 sigma) plus the file's 1 mm rounding
        assert np.abs(floor[:, 2]).max() < 0.013
        assert np.abs(ceiling[:, 2] - layout.size[2]).max() < 0.013
        local = floor[:, :2] - offset[:2]
        assert local.min() > -0.013 and np.all(local.max(axis=0) < layout.size[:2] + 0.013)
        # density: the visible floor is most of the floor area
        expected = TINY.points_per_m2 * layout.size[0] * layout.size[1]
        assert 0.5 * expected < len(floor) < 1.1 * expected


def test_area5_is_split_into_5a_and_5b(area):
    root, summary = area
    assert not (root / STANFORD2D3DS_DIR / "area_5").exists()
    parts = {}
    for data, frame in _all_frames(root):
        parts.setdefault(data.parent.name, set()).add(_room_of(frame))
        for modality in ("rgb", "depth", "semantic", "pose"):
            assert frame_path(data, frame, modality).is_file()
    # the first half of the rooms (office_1, conferenceRoom_1) in 5a, the rest in 5b
    assert parts == {"area_5a": {"office_1", "conferenceRoom_1"}, "area_5b": {"hallway_1"}}
    assert summary["frames_per_part"] == {"area_5a": 2 * TINY.frames_per_room, "area_5b": TINY.frames_per_room}


def test_semantic_labels_json(area):
    root, summary = area
    labels = read_semantic_labels(root / STANFORD2D3DS_DIR / LABELS_JSON)
    assert labels[0] == "<UNK>_0_<UNK>_0_0"
    assert labels[1:] == sorted(labels[1:]) and len(set(labels)) == len(labels) == summary["num_labels"]
    for label in labels[1:]:
        cls, instance, room_type, room_num, area_num = label.split("_")
        assert cls in S3DIS_CLASSES and int(instance) >= 1 and area_num == "5"
        assert f"{room_type}_{room_num}" in summary["points_per_room"]
    lut = semantic_class_lut(labels)
    assert lut[0] == 255 and np.all(lut[1:] < len(S3DIS_CLASSES))
    # instances are numbered per class over the whole area: 3 rooms x 4 walls
    assert sorted(int(lbl.split("_")[1]) for lbl in labels if lbl.startswith("wall_")) == list(range(1, 13))


def test_frames_match_a_fresh_ray_cast(area):
    """Re-cast every frame from its stored pose and K: semantic class, depth and holes agree."""
    root, _ = area
    labels = read_semantic_labels(root / STANFORD2D3DS_DIR / LABELS_JSON)
    lut = semantic_class_lut(labels)
    layouts = {lay.name: lay for lay in (generate_room(TINY.seed, 5, t, n) for t, n in room_plan(TINY.rooms))}
    offsets = dict(zip(layouts, room_offsets(list(layouts.values()))))
    holes = agree = labelled = 0
    for data, frame in _all_frames(root):
        layout = layouts[_room_of(frame)]
        surfaces = layout.surfaces()
        K, rt = read_pose(frame_path(data, frame, "pose"))
        assert K[0, 0] == K[1, 1] and K[0, 2] == K[1, 2] == TINY.image_size / 2
        fov = 2 * math.atan(TINY.image_size / 2 / K[0, 0])
        assert math.radians(45) - 1e-9 <= fov <= math.radians(75) + 1e-9
        pose = camera_to_world(rt)
        pose[:3, 3] -= offsets[layout.name]  # building frame -> room frame
        assert CAMERA_HEIGHT_RANGE_M[0] <= pose[2, 3] <= CAMERA_HEIGHT_RANGE_M[1]
        depth_cast, surface, _ = cast(surfaces, K, pose, TINY.image_size, TINY.image_size)
        classes_cast = np.array([S3DIS_CLASSES.index(c) for c in layout.object_classes()])[surfaces.object_index[surface]]
        index = read_semantic_index_png(frame_path(data, frame, "semantic"))
        decoded = decode_semantic_png(frame_path(data, frame, "semantic"), lut)
        depth = read_depth_png(frame_path(data, frame, "depth"))
        hole = index == UNLABELED_INDEX
        assert np.array_equal(hole, np.isnan(depth)) and np.all(decoded[hole] == 255)
        holes += int(hole.sum())
        ok = ~hole
        labelled += int(ok.sum())
        agree += int((decoded[ok] == classes_cast[ok]).sum())
        same = ok & (decoded == classes_cast)
        # 16-bit depth at 1/512 m: rounding error at most half a unit
        assert np.abs(depth[same] - depth_cast[same]).max() <= 0.5 / 512 + 1e-6
    assert holes > 0
    assert agree == labelled


def test_depth_back_projects_onto_s3dis_points_of_the_same_class(area):
    root, _ = area
    labels = read_semantic_labels(root / STANFORD2D3DS_DIR / LABELS_JSON)
    lut = semantic_class_lut(labels)
    clouds = {}
    for room_dir in list_rooms(root / S3DIS_DIR / "Area_5"):
        room = read_room(room_dir)
        clouds[room_dir.name] = (cKDTree(room["xyz"]), room["label"])
    dists, same_class = [], []
    for data, frame in _all_frames(root):
        K, rt = read_pose(frame_path(data, frame, "pose"))
        depth = read_depth_png(frame_path(data, frame, "depth"))
        cls = decode_semantic_png(frame_path(data, frame, "semantic"), lut)
        v, u = np.nonzero(np.isfinite(depth))
        z = depth[v, u].astype(np.float64)
        cam = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], axis=1)
        pose = camera_to_world(rt)
        world = cam @ pose[:3, :3].T + pose[:3, 3]
        tree, point_label = clouds[_room_of(frame)]
        d, nearest = tree.query(world)
        dists.append(d)
        same_class.append(point_label[nearest] == cls[v, u])
    dists, same_class = np.concatenate(dists), np.concatenate(same_class)
    # Points uniform on surfaces at density lam (per m^2): the median distance from a surface spot to
    # the nearest point is sqrt(ln 2 / (pi lam)) = 0.0383 m at 150 points/m^2 (plus 2 mm noise).
    expected = math.sqrt(math.log(2.0) / (math.pi * TINY.points_per_m2))
    assert 0.9 * expected < np.median(dists) < 1.1 * expected
    assert same_class.mean() > 0.95


def test_deterministic_bytes_and_workers(tmp_path):
    cfg = SynthS3DISConfig(area=5, rooms=2, frames_per_room=2, image_size=32, points_per_m2=20.0, seed=7)
    first = synthesize_s3dis(tmp_path / "a", cfg)
    second = synthesize_s3dis(tmp_path / "b", cfg, workers=2)
    digests = _digests(tmp_path / "a")
    assert digests == _digests(tmp_path / "b")
    # semantic_labels.json, 4 modalities per frame, the text files of every room
    text_files = sum(len(list((tmp_path / "a" / S3DIS_DIR / "Area_5" / r).rglob("*.txt"))) for r in first["points_per_room"])
    assert len(digests) == 1 + cfg.rooms * cfg.frames_per_room * 4 + text_files
    assert _without_timing(first) == _without_timing(second)
    other = synthesize_s3dis(tmp_path / "c", SynthS3DISConfig(area=5, rooms=2, frames_per_room=2, image_size=32,
                                                              points_per_m2=20.0, seed=8))
    assert other["points_per_room"] != first["points_per_room"]


def test_other_areas_use_one_folder(tmp_path):
    cfg = SynthS3DISConfig(area=2, rooms=1, frames_per_room=1, image_size=24, points_per_m2=5.0)
    summary = synthesize_s3dis(tmp_path, cfg)
    assert summary["frames_per_part"] == {"area_2": 1}
    assert [r.name for r in list_rooms(tmp_path / S3DIS_DIR / "Area_2")] == ["office_1"]
    assert all(lbl.endswith("_2") for lbl in read_semantic_labels(tmp_path / STANFORD2D3DS_DIR / LABELS_JSON)[1:])


def test_default_area_rooms_hold_the_shared_classes():
    cfg = SynthS3DISConfig()
    plan = room_plan(cfg.rooms)
    assert [t for t, _ in plan] == ["office", "conferenceRoom", "hallway", "office", "lobby", "storage"]
    for seed in range(4):
        union = set()
        for room_type, number in plan:
            classes = set(generate_room(seed, cfg.area, room_type, number).object_classes())
            assert set(REQUIRED_CLASSES[room_type]) <= classes, (seed, room_type)
            assert {"ceiling", "floor", "wall"} <= classes
            assert len(classes & SHARED) >= 4, (seed, room_type, classes)
            union |= classes
        assert SHARED <= union
        assert union == set(S3DIS_CLASSES)


def test_rooms_are_larger_and_taller_than_the_scannet_homes():
    layouts = [generate_room(0, 5, t, n) for t, n in room_plan(12)]
    assert min(lay.size[2] for lay in layouts) >= 2.7
    hallway = next(lay for lay in layouts if lay.room_type == "hallway")
    assert hallway.size[0] >= 10.0 and hallway.size[1] <= 2.5


def test_sample_surface_box_and_cylinder():
    mat = Material(MaterialKind.PAINT, np.full(3, 0.5))
    surfaces = SurfaceSet(
        room_size=np.array([4.0, 4.0, 3.0]),
        kind=np.array([SurfaceKind.ROOM_FACE] * 6 + [SurfaceKind.BOX, SurfaceKind.CYLINDER], dtype=np.int8),
        center=np.array([[2.0, 2.0, 1.5]] * 6 + [[1.0, 1.0, 0.5], [3.0, 3.0, 1.0]]),
        half=np.array([[2.0, 2.0, 1.5]] * 6 + [[0.5, 0.25, 0.5], [0.2, 0.2, 1.0]]),
        yaw=np.array([0.0] * 6 + [0.3, 0.0]),
        nyu40=np.zeros(8, dtype=np.uint16), raw_id=np.zeros(8, dtype=np.uint16),
        object_index=np.arange(8, dtype=np.int32), materials=[mat] * 8)
    rng = np.random.default_rng(0)
    density = 2000.0
    # the floor: only its inside face, z = 0, normal up; area 16 m^2
    xyz, normals = sample_surface(surfaces, 0, density, rng)
    assert np.all(xyz[:, 2] == 0.0) and np.all(normals == [0.0, 0.0, 1.0])
    assert abs(len(xyz) - 16 * density) < 5 * math.sqrt(16 * density)
    # the yawed box: every point on its boundary; area 2 (1 x 0.5 + 1 x 1 + 0.5 x 1) = 4 m^2
    xyz, normals = sample_surface(surfaces, 6, density, rng)
    local = np.abs(surfaces.to_local(6, xyz))
    assert np.allclose(np.max(local / surfaces.half[6], axis=1), 1.0)
    assert np.allclose(np.linalg.norm(normals, axis=1), 1.0)
    assert abs(len(xyz) - 4.0 * density) < 5 * math.sqrt(4.0 * density)
    # the cylinder: side points at radius 0.2, cap points at z = 0 or 2
    xyz, normals = sample_surface(surfaces, 7, density, rng)
    rho = np.hypot(xyz[:, 0] - 3.0, xyz[:, 1] - 3.0)
    side = normals[:, 2] == 0.0
    assert np.allclose(rho[side], 0.2) and np.all(rho[~side] <= 0.2 + 1e-12)
    assert np.all(np.isin(xyz[~side, 2], [0.0, 2.0]))
    area = 2 * math.pi * 0.2 * 2.0 + 2 * math.pi * 0.04
    assert abs(len(xyz) - area * density) < 5 * math.sqrt(area * density)


def test_intrinsics_and_field_of_view():
    K = intrinsic_for_fov(math.radians(90.0), 270)
    assert np.allclose(K, [[135.0, 0.0, 135.0], [0.0, 135.0, 135.0], [0.0, 0.0, 1.0]])
    rng = np.random.default_rng(1)
    fovs = np.degrees([sample_fov(rng) for _ in range(4000)])
    assert fovs.min() >= 45.0 and fovs.max() <= 75.0
    # 75 - 30 E[|z| : |z| <= 1] with (phi(0) - phi(1)) / (Phi(1) - 1/2) = 0.4597: mean 61.21 deg
    assert abs(fovs.mean() - 61.21) < 0.8


@pytest.mark.parametrize("kwargs", [dict(area=5, rooms=1), dict(area=7), dict(image_size=8),
                                    dict(frames_per_room=0), dict(points_per_m2=0.0)])
def test_config_validation(kwargs):
    with pytest.raises(ValueError):
        SynthS3DISConfig(**kwargs)
