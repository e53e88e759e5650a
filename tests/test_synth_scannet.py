"""The embedded synthetic ScanNet: layout, formats, determinism and 2D-3D consistency."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from jointwsss.classes import NYU40_IDS, nyu40_to_class_lut
from jointwsss.geometry.camera import project_points
from jointwsss.io.ply import read_label_ply, read_mesh_ply
from jointwsss.io.scannet_labels import LabelZip, raw_to_class_lut, raw_to_nyu40_lut, read_split, resource_path
from jointwsss.io.sens import SensReader
from jointwsss.synth import SynthScanNetConfig, scene_ids, synthesize_scannet, synthesize_scene
from jointwsss.geometry.camera import intrinsic_matrix, look_at
from jointwsss.synth.layout import MIN_OBJECT_CLASSES, SceneLayout, generate_layout, scene_rng
from jointwsss.synth.mesh import build_mesh
from jointwsss.synth.objects import SceneObject, box, cylinder, paint
from jointwsss.synth.raycast import NUM_ROOM_FACES, cast, points_inside
from jointwsss.synth.scannet import CAMERA_CLEARANCE_M, camera_rig
from jointwsss.synth.trajectory import CAMERA_HEIGHT_RANGE_M, camera_tour

TINY = SynthScanNetConfig(
    seed=0,
    num_train_scenes=1,
    num_val_scenes=0,
    num_test_scenes=1,
    frames_per_scene=10,
    color_size=(160, 120),
    depth_size=(80, 60),
    invalid_pose_fraction=0.05,
    mesh_vertex_spacing_m=0.05,
)
TRAIN_SCENE, TEST_SCENE = "scene0000_00", "scene0001_00"
META_KEYS = [
    "axisAlignment", "colorHeight", "colorToDepthExtrinsics", "colorWidth", "depthHeight", "depthWidth",
    "fx_color", "fx_depth", "fy_color", "fy_depth", "mx_color", "mx_depth", "my_color", "my_depth",
    "numColorFrames", "numDepthFrames", "numIMUmeasurements", "sceneType",
]


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth_scannet")
    summaries = synthesize_scannet(root, TINY)
    assert [s["scene_id"] for s in summaries] == [TRAIN_SCENE, TEST_SCENE]
    return root


def _scene_files(raw_dir: Path, scene: str) -> Path:
    return raw_dir / "scans" / scene


def _digests(root: Path) -> dict[str, str]:
    """sha256 of every file below ``root`` (zips included: their entries carry a fixed timestamp)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _meta(path: Path) -> dict[str, str]:
    pairs = [line.split(" = ", 1) for line in path.read_text().splitlines()]
    return {k: v for k, v in pairs}


# ----------------------------------------------------------------------------------- layout, meta


def test_official_layout_and_metadata(raw_dir):
    assert (raw_dir / "scannetv2-labels.combined.tsv").read_bytes() == resource_path(
        "scannetv2-labels.combined.tsv"
    ).read_bytes()
    assert read_split(raw_dir / "scannetv2_train.txt") == [TRAIN_SCENE]
    assert not (raw_dir / "scannetv2_val.txt").exists()  # empty splits get no list
    assert read_split(raw_dir / "scannetv2_test.txt") == [TEST_SCENE]
    assert sorted(p.name for p in _scene_files(raw_dir, TRAIN_SCENE).iterdir()) == sorted(
        [f"{TRAIN_SCENE}.sens", f"{TRAIN_SCENE}.txt", f"{TRAIN_SCENE}_vh_clean_2.ply",
         f"{TRAIN_SCENE}_vh_clean_2.labels.ply", f"{TRAIN_SCENE}_2d-label-filt.zip"]
    )
    # Test scans come without annotations, as in ScanNet.
    assert sorted(p.name for p in _scene_files(raw_dir, TEST_SCENE).iterdir()) == sorted(
        [f"{TEST_SCENE}.sens", f"{TEST_SCENE}.txt", f"{TEST_SCENE}_vh_clean_2.ply"]
    )
    # the default dataset (the schema's synth defaults): 48 train, then 12 val scenes
    assert scene_ids(SynthScanNetConfig()) == {
        "train": [f"scene{i:04d}_00" for i in range(48)],
        "val": [f"scene{i:04d}_00" for i in range(48, 60)],
        "test": [],
        "pretrain": [],
    }
    # image-pretraining scenes are numbered after every other split
    assert scene_ids(SynthScanNetConfig(num_test_scenes=2, num_pretrain_scenes=3))["pretrain"] == [
        "scene0062_00", "scene0063_00", "scene0064_00"]


def test_meta_file_keys_and_values_match_the_sens_header(raw_dir):
    scene_dir = _scene_files(raw_dir, TRAIN_SCENE)
    meta = _meta(scene_dir / f"{TRAIN_SCENE}.txt")
    assert list(meta) == META_KEYS
    with SensReader(scene_dir / f"{TRAIN_SCENE}.sens") as sens:
        h = sens.header
        assert (int(meta["colorWidth"]), int(meta["colorHeight"])) == (h.color_width, h.color_height) == TINY.color_size
        assert (int(meta["depthWidth"]), int(meta["depthHeight"])) == (h.depth_width, h.depth_height) == TINY.depth_size
        assert int(meta["numColorFrames"]) == int(meta["numDepthFrames"]) == len(sens) == TINY.frames_per_scene
        # the official writer's trailer: one IMU record per frame here, as many as the meta file says
        assert int(meta["numIMUmeasurements"]) == sens.num_imu_frames == TINY.frames_per_scene
        imu = sens.imu_frames()
        assert np.allclose(np.linalg.norm(imu["gravity"], axis=1), 1.0)     # unit gravity (g) in the device frame
        assert (np.diff(imu["timestamp"].astype(np.int64)) > 0).all()
        for key, (r, c) in {"fx": (0, 0), "fy": (1, 1), "mx": (0, 2), "my": (1, 2)}.items():
            assert float(meta[f"{key}_color"]) == pytest.approx(float(h.intrinsic_color[r, c]), abs=1e-4)
            assert float(meta[f"{key}_depth"]) == pytest.approx(float(h.intrinsic_depth[r, c]), abs=1e-4)
        # axisAlignment maps the (unaligned) world frame onto the axis-aligned room.
        align = np.array([float(v) for v in meta["axisAlignment"].split()]).reshape(4, 4)
        mesh = read_mesh_ply(scene_dir / f"{TRAIN_SCENE}_vh_clean_2.ply")
        aligned = mesh.xyz @ align[:3, :3].T + align[:3, 3]
        assert aligned.min(axis=0) == pytest.approx([0.0, 0.0, 0.0], abs=2e-3)
    assert meta["sceneType"] in {"Bedroom / Hotel", "Office", "Bathroom", "Kitchen", "Living room / Lounge", "Apartment"}


# ------------------------------------------------------------------------------------- formats


def test_sens_stream_reads_back(raw_dir):
    with SensReader(_scene_files(raw_dir, TRAIN_SCENE) / f"{TRAIN_SCENE}.sens") as sens:
        h = sens.header
        assert h.sensor_name == "StructureSensor"
        assert h.depth_shift == 1000.0
        assert (h.color_compression, h.depth_compression) == ("jpeg", "zlib_ushort")
        np.testing.assert_array_equal(h.extrinsic_color, np.eye(4))
        np.testing.assert_array_equal(h.extrinsic_depth, np.eye(4))
        # Real calibration scaled to 160x120 and 80x60, jittered by at most 1.5 %:
        # colour fx = 1170.19 * 160 / 1296 = 144.47, depth fx = 577.59 * 80 / 640 = 72.20,
        # colour cx = (647.75 + 0.5) * 160 / 1296 - 0.5 = 79.53 (+-0.5 jitter),
        # depth cy = (242.68 + 0.5) * 60 / 480 - 0.5 = 29.90.
        assert h.intrinsic_color[0, 0] == pytest.approx(144.47, rel=0.016)
        assert h.intrinsic_depth[0, 0] == pytest.approx(72.20, rel=0.011)
        assert h.intrinsic_color[0, 2] == pytest.approx(79.53, abs=0.5)
        assert h.intrinsic_depth[1, 2] == pytest.approx(29.90, abs=0.01)
        poses = np.stack([sens.camera_to_world(i) for i in range(len(sens))])
        invalid = ~np.isfinite(poses).all(axis=(1, 2))
        assert invalid.sum() >= 1
        assert np.all(np.isneginf(poses[invalid]))
        # Valid poses are rigid, and the camera walks 1.2-1.7 m above the floor (world z = room z).
        for pose in poses[~invalid]:
            np.testing.assert_allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-5)
            assert 1.2 - 1e-5 <= pose[2, 3] <= 1.7 + 1e-5
        for i in range(len(sens)):
            color, depth = sens.color(i), sens.depth(i)
            assert color.shape == (120, 160, 3) and depth.shape == (60, 80)
            assert (depth == 0).any(), "depth maps have holes"
            valid = depth[depth > 0]
            assert valid.min() > 300 and valid.max() <= 5000 + 100
            assert color.std() > 5


def test_label_files_read_back(raw_dir):
    scene_dir = _scene_files(raw_dir, TRAIN_SCENE)
    mesh, labels = read_label_ply(scene_dir / f"{TRAIN_SCENE}_vh_clean_2.labels.ply")
    plain = read_mesh_ply(scene_dir / f"{TRAIN_SCENE}_vh_clean_2.ply")
    np.testing.assert_array_equal(mesh.xyz, plain.xyz)
    np.testing.assert_array_equal(mesh.faces, plain.faces)
    assert set(np.unique(labels).tolist()) <= set(NYU40_IDS) | {22}
    assert {1, 2, 22} <= set(np.unique(labels).tolist())
    with LabelZip(scene_dir / f"{TRAIN_SCENE}_2d-label-filt.zip") as zf:
        assert zf.frame_ids() == list(range(TINY.frames_per_scene))
        raw = zf.read_raw(0)
        assert raw.shape == (120, 160) and raw.dtype == np.uint16
        raw_all = np.concatenate([zf.read_raw(i).ravel() for i in zf.frame_ids()])
    # Every annotated pixel carries a raw id the real tsv knows; the same classes as the mesh.
    nyu = raw_to_nyu40_lut()[raw_all[raw_all != 0]]
    assert (nyu > 0).all()
    assert set(np.unique(nyu).tolist()) <= set(np.unique(labels).tolist())


# --------------------------------------------------------------------------------- consistency


def _frames(raw_dir: Path, scene: str):
    scene_dir = _scene_files(raw_dir, scene)
    mesh, vertex_nyu40 = read_label_ply(scene_dir / f"{scene}_vh_clean_2.labels.ply")
    colors = read_mesh_ply(scene_dir / f"{scene}_vh_clean_2.ply").rgb
    class_lut, raw_lut = nyu40_to_class_lut(), raw_to_class_lut()
    vertex_class = class_lut[vertex_nyu40]
    with SensReader(scene_dir / f"{scene}.sens") as sens, LabelZip(scene_dir / f"{scene}_2d-label-filt.zip") as zf:
        h = sens.header
        for i in range(len(sens)):
            pose = sens.camera_to_world(i)
            if not np.isfinite(pose).all():
                continue
            uv, z = project_points(mesh.xyz, h.intrinsic_color, pose)
            uvd, _ = project_points(mesh.xyz, h.intrinsic_depth, pose)
            with np.errstate(invalid="ignore"):
                u, v = np.round(uv[:, 0]), np.round(uv[:, 1])
                ud, vd = np.round(uvd[:, 0]), np.round(uvd[:, 1])
                inside = (z > 0) & (u >= 0) & (u < h.color_width) & (v >= 0) & (v < h.color_height)
                inside &= (ud >= 0) & (ud < h.depth_width) & (vd >= 0) & (vd < h.depth_height)
            idx = np.flatnonzero(inside)
            depth_m = sens.depth(i)[vd[idx].astype(int), ud[idx].astype(int)] / h.depth_shift
            raw = zf.read_raw(i)[v[idx].astype(int), u[idx].astype(int)]
            yield {
                "idx": idx,
                "z": z[idx],
                "depth_m": depth_m,
                "raw": raw,
                "pixel_class": raw_lut[raw],
                "vertex_class": vertex_class[idx],
                "pixel_rgb": sens.color(i)[v[idx].astype(int), u[idx].astype(int)].astype(int),
                "vertex_rgb": colors[idx].astype(int),
            }


def test_mesh_vertices_agree_with_the_pixels_that_see_them(raw_dir):
    same_class, colour_diff, unannotated, total = 0, [], 0, 0
    for f in _frames(raw_dir, TRAIN_SCENE):
        visible = (f["depth_m"] > 0) & (np.abs(f["depth_m"] - f["z"]) < 0.02)
        annotated = visible & (f["raw"] != 0)
        total += annotated.sum()
        unannotated += (visible & (f["raw"] == 0)).sum()
        same_class += (f["pixel_class"][annotated] == f["vertex_class"][annotated]).sum()
        colour_diff.append(np.abs(f["pixel_rgb"][visible] - f["vertex_rgb"][visible]).ravel())
    assert total > 2000
    assert same_class / total >= 0.97
    # Unannotated boundary pixels exist but are rare.
    assert 0 < unannotated / (total + unannotated) < 0.1
    assert np.median(np.concatenate(colour_diff)) < 25


def test_occlusion_exists(raw_dir):
    hidden = 0
    for f in _frames(raw_dir, TRAIN_SCENE):
        hidden += ((f["depth_m"] > 0) & (f["z"] > f["depth_m"] + 0.3)).sum()
    assert hidden > 100


# -------------------------------------------------------------------------------- scene content


def test_default_dataset_covers_every_class_with_presence_decoupled():
    """Every class in several train scenes, none in nearly all (wall and floor aside), and no pair of object classes
    always together: scene labels could not tell such classes apart."""
    from jointwsss.synth.layout import MIN_OBJECT_CLASSES, THEME_PRESENCE

    cfg = SynthScanNetConfig()
    scenes = scene_ids(cfg)["train"]
    present = []
    for scene in scenes:
        layout = generate_layout(cfg.seed, scene)
        classes = layout.object_classes()
        assert {1, 2} <= classes
        assert MIN_OBJECT_CLASSES - 1 <= len(classes - {1, 2}) <= len(THEME_PRESENCE[layout.theme])
        present.append(classes - {1, 2})
    counts = {c: sum(c in p for p in present) for c in NYU40_IDS if c not in (1, 2)}
    assert min(counts.values()) >= 3 and max(counts.values()) <= 0.8 * len(scenes), counts
    for a in counts:
        for b in counts:
            if a != b:
                together = sum(a in p and b in p for p in present)
                assert together < counts[a], (a, b)


def test_cameras_stay_clear_of_objects_and_face_them_from_afar():
    cfg = SynthScanNetConfig()
    for scene in scene_ids(cfg)["train"][:6]:
        layout = generate_layout(cfg.seed, scene)
        surfaces = layout.surfaces()
        rig = camera_rig(cfg, scene_rng(cfg.seed, scene, "rig"))
        poses = camera_tour(layout, surfaces, rig.intrinsic_color, rig.color_size, 34, scene_rng(cfg.seed, scene, "x"))
        eyes = poses[:, :3, 3]
        assert ((eyes[:, 2] >= CAMERA_HEIGHT_RANGE_M[0]) & (eyes[:, 2] <= CAMERA_HEIGHT_RANGE_M[1])).all()
        # the aimed views (every second frame) see what they face from 1 m or more: median distance to the first hit
        centre_depth = [cast(surfaces, rig.intrinsic_color, pose, *rig.color_size)[0][rig.color_size[1] // 2,
                                                                                        rig.color_size[0] // 2]
                        for pose in poses[::2]]
        assert np.median(centre_depth) > 1.2
        for j in range(NUM_ROOM_FACES, len(surfaces)):
            assert not points_inside(surfaces, j, eyes, tol=-CAMERA_CLEARANCE_M).any()


def test_a_frame_sees_far_fewer_classes_than_its_scene(raw_dir):
    _, vertex_nyu40 = read_label_ply(_scene_files(raw_dir, TRAIN_SCENE) / f"{TRAIN_SCENE}_vh_clean_2.labels.ply")
    scene_classes = set(nyu40_to_class_lut()[vertex_nyu40].tolist()) - {255}
    per_frame = []
    with LabelZip(_scene_files(raw_dir, TRAIN_SCENE) / f"{TRAIN_SCENE}_2d-label-filt.zip") as zf:
        for i in zf.frame_ids():
            per_frame.append(len(set(zf.read_classes(i, raw_to_class_lut()).ravel().tolist()) - {255}))
    # wall, floor and at least MIN_OBJECT_CLASSES object classes in the room; a frame sees a few of them
    assert len(scene_classes) >= 2 + MIN_OBJECT_CLASSES
    assert np.median(per_frame) <= len(scene_classes) / 2


def test_raw_label_ids_exercise_the_16_bit_mapping(raw_dir):
    # Across a few scenes' layouts, several raw ids per class are used, including ids above 255.
    raw_ids = {}
    for scene in scene_ids(SynthScanNetConfig())["train"][:6]:
        surfaces = generate_layout(0, scene).surfaces()
        for nyu, raw in zip(surfaces.nyu40.tolist(), surfaces.raw_id.tolist()):
            raw_ids.setdefault(nyu, set()).add(raw)
    lut = raw_to_nyu40_lut()
    for nyu, ids in raw_ids.items():
        assert all(lut[r] == nyu for r in ids)
    assert max(max(ids) for ids in raw_ids.values()) > 255
    assert sum(len(ids) > 1 for ids in raw_ids.values()) >= 5
    # And the ids above 255 reach the label images unharmed.
    with LabelZip(_scene_files(raw_dir, TRAIN_SCENE) / f"{TRAIN_SCENE}_2d-label-filt.zip") as zf:
        stored = set(np.unique(np.stack([zf.read_raw(i) for i in zf.frame_ids()])).tolist())
    expected = set(generate_layout(0, TRAIN_SCENE).surfaces().raw_id.tolist()) | {0}
    assert stored <= expected
    assert any(r > 255 for r in stored)


# --------------------------------------------------------------------------------- determinism


def test_same_seed_same_bytes_other_seed_other_bytes(raw_dir, tmp_path):
    again = tmp_path / "again"
    synthesize_scannet(again, TINY)
    assert _digests(again) == _digests(raw_dir)
    other = tmp_path / "other"
    cfg = SynthScanNetConfig(**{**TINY.__dict__, "seed": 1})
    synthesize_scene(TRAIN_SCENE, other, cfg)
    ours, theirs = _digests(_scene_files(raw_dir, TRAIN_SCENE)), _digests(other)
    assert set(ours) == set(theirs)
    assert all(ours[k] != theirs[k] for k in ours)


def test_camera_rig_scales_real_calibration():
    rig = camera_rig(SynthScanNetConfig(), scene_rng(0, TRAIN_SCENE, "rig"))
    # 1170.19 * 324 / 1296 = 292.55 and 577.59 * 160 / 640 = 144.40, within the per-scene jitter.
    assert rig.intrinsic_color[0, 0] == pytest.approx(292.55, rel=0.016)
    assert rig.intrinsic_depth[0, 0] == pytest.approx(144.40, rel=0.011)
    # Slightly different aspect ratios, as in ScanNet.
    assert rig.color_size[0] / rig.color_size[1] == pytest.approx(1.339, abs=1e-3)
    assert rig.depth_size[0] / rig.depth_size[1] == pytest.approx(1.333, abs=1e-3)


# ------------------------------------------------------------------------------ ray casting, mesh


def _toy_surfaces():
    """A 4 x 3 x 2.5 m room holding a yawed box and a yawed, off-centre cylinder."""
    rng = np.random.default_rng(0)
    mat = paint(rng)
    crate = box((2.5, 1.0, 0.4), (0.8, 0.5, 0.8), mat, yaw=0.6)
    drum = cylinder(1.2, 1.8, 0.0, 0.9, 0.3, mat)
    drum.yaw = 1.1
    layout = SceneLayout("scene0000_00", "office", np.array([4.0, 3.0, 2.5]), [mat] * 6, [3, 41, 1, 1, 1, 1],
                         [SceneObject("crate", 3, [crate], raw_id=7), SceneObject("drum", 39, [drum], raw_id=56)])
    return layout.surfaces()


def test_ray_cast_hits_lie_on_the_primitives():
    surfaces = _toy_surfaces()
    K = intrinsic_matrix(60.0, 60.0, 39.5, 29.5)
    pose = look_at((0.3, 0.2, 1.5), (2.0, 1.5, 0.4))
    depth, surface, dirs = cast(surfaces, K, pose, 80, 60)
    points = pose[:3, 3] + depth[..., None] * dirs
    crate, drum = NUM_ROOM_FACES, NUM_ROOM_FACES + 1
    assert (surface == crate).sum() > 50 and (surface == drum).sum() > 50
    p = surfaces.to_local(crate, points[surface == crate])
    np.testing.assert_allclose(np.max(np.abs(p) / surfaces.half[crate], axis=1), 1.0, atol=1e-9)
    p = surfaces.to_local(drum, points[surface == drum])
    on_side = np.abs(np.hypot(p[:, 0], p[:, 1]) - 0.3) < 1e-9
    on_cap = np.abs(np.abs(p[:, 2]) - surfaces.half[drum, 2]) < 1e-9
    assert (on_side | on_cap).all()
    # Room hits lie on the room's boundary.
    room = points[surface < NUM_ROOM_FACES]
    dist = np.minimum(np.abs(room), np.abs(room - surfaces.room_size)).min(axis=1)
    np.testing.assert_allclose(dist, 0.0, atol=1e-9)


def test_mesh_drops_vertices_nobody_can_see():
    surfaces = _toy_surfaces()
    mesh = build_mesh(surfaces, 0.1)
    assert mesh.faces.max() < len(mesh.xyz) and mesh.faces.dtype == np.int32
    # Nothing below the floor (embedded cylinder bottom) and no floor vertex under the objects.
    assert mesh.xyz[:, 2].min() >= -2e-4
    for j in (NUM_ROOM_FACES, NUM_ROOM_FACES + 1):
        assert not points_inside(surfaces, j, mesh.xyz[mesh.surface != j]).any()
        assert (mesh.surface == j).sum() > 20
    # Triangles are wound so that their normal agrees with the vertex normals.
    a, b, c = (mesh.xyz[mesh.faces[:, k]] for k in range(3))
    tri_normal = np.cross(b - a, c - a)
    assert (np.sum(tri_normal * mesh.normals[mesh.faces[:, 0]], axis=1) > 0).mean() > 0.99


def test_quilts_alternate_their_two_colours_square_by_square_and_pictures_are_busy():
    from jointwsss.synth.texture import FacePoints, Material, MaterialKind, material_color

    # six points on a horizontal face, two per 0.2 m square along s; t = 0.05 stays in the first row of squares
    s = np.array([0.05, 0.15, 0.25, 0.35, 0.45, 0.55])
    fp = FacePoints(p=np.stack([s, np.zeros(6), np.zeros(6)], 1), s=s, t=np.full(6, 0.05), border=np.full(6, 1.0),
                    axis=np.full(6, 2), half_t=np.full(6, 1.0))
    red, blue = np.array([0.8, 0.1, 0.1]), np.array([0.1, 0.1, 0.8])
    colour = material_color(fp, Material(MaterialKind.QUILT, red, blue, np.array([0.2, 0, 0, 0]), seed=1))
    hue = colour[:, 0] > colour[:, 2]  # red-ish or blue-ish, whatever the fibre noise
    assert hue.tolist() == [True, True, False, False, True, True]
    assert np.all(colour <= 1.1 * np.maximum(red, blue)) and np.all(colour >= 0.9 * np.minimum(red, blue) - 1e-9)
    # a picture's art varies within 10 cm (brush-scale detail), unlike a flat paint of the same colour
    xs = np.linspace(0.0, 0.1, 11)
    fp = FacePoints(p=np.stack([xs, np.zeros(11), np.full(11, 1.5)], 1), s=xs, t=np.zeros(11),
                    border=np.full(11, 1.0), axis=np.full(11, 1), half_t=np.full(11, 0.5))
    grey = np.full(3, 0.5)
    art = material_color(fp, Material(MaterialKind.PICTURE, grey, grey, np.array([0.02, 0, 0, 0]), seed=3))
    paint = material_color(fp, Material(MaterialKind.PAINT, grey, seed=3))
    assert art.std(axis=0).mean() > 0.1 > 0.01 > paint.std(axis=0).mean()  # broad colour fields alone: 0.05
