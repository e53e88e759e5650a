"""frames/{scene}.zarr from a hand-built .sens + label zip: sampling, dropped poses, values, bad input."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from jointwsss.io.errors import DataFormatError
from jointwsss.io.scannet_labels import write_label_zip
from jointwsss.io.sens import SensHeader, SensReader, SensWriter
from jointwsss.io.zarr_store import open_store
from jointwsss.bench.frame_extraction import (
    evict_from_page_cache,
    load_all_frames,
    naive_extraction,
    official_extraction,
    resident_fraction,
    sampled_extraction,
)
from jointwsss.preprocess import frames as frames_module
from jointwsss.preprocess.frames import build_frames_store, jpeg_reduce_factor, sample_frame_ids

SCENE = "scene0007_00"
COLOR_W, COLOR_H = 96, 72
DEPTH_W, DEPTH_H = 20, 16
IMAGE_SIZE = (16, 12)  # stored (W, H): 1/6 of the colour stream
NUM_FRAMES = 11
SKIP = 2  # samples 0, 2, 4, 6, 8, 10
INVALID_POSE_FRAMES = (4, 5, 10)  # 4: all -inf (ScanNet's marker), 5: not sampled, 10: a single NaN
TABLE_FRAME = 8  # the one frame whose table area passes the image-label threshold

# Raw ScanNet category ids of a hand-written tsv. 257 would read as 1 (floor) if cast to 8 bits early.
RAW_WALL, RAW_FLOOR, RAW_CHAIR, RAW_TABLE, RAW_OTHERPROP = 44, 1, 300, 257, 556
TSV_ROWS = [(RAW_WALL, "wall", 1), (RAW_FLOOR, "floor", 2), (RAW_CHAIR, "chair", 5), (RAW_TABLE, "table", 7),
            (RAW_OTHERPROP, "box", 40)]
WALL, CHAIR, TABLE, IGNORE = 0, 4, 6, 255  # benchmark class indices of nyu40 1, 5, 7; 40 is not a benchmark class


def write_tsv(path: Path, rows) -> Path:
    lines = ["id\traw_category\tcategory\tcount\tnyu40id"]
    lines += [f"{raw}\t{name}\t{name}\t10\t{nyu40}" for raw, name, nyu40 in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def sens_header(color_size=(COLOR_W, COLOR_H), depth_size=(DEPTH_W, DEPTH_H)) -> SensHeader:
    return SensHeader(
        sensor_name="StructureSensor",
        intrinsic_color=[[90, 0, 47.5, 0], [0, 88, 35.5, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
        extrinsic_color=np.eye(4),
        intrinsic_depth=[[17.75, 0, 9.5, 0], [0, 17.5, 7.5, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
        extrinsic_depth=np.eye(4),
        color_compression="jpeg",
        depth_compression="zlib_ushort",
        color_width=color_size[0],
        color_height=color_size[1],
        depth_width=depth_size[0],
        depth_height=depth_size[1],
        depth_shift=1000.0,
    )


def frame_pose(index: int) -> np.ndarray:
    pose = np.eye(4, dtype=np.float32)
    pose[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
    pose[:3, 3] = [0.25 * index, -1.5, 1.125]
    if index == 4 or index == 5:
        pose[:] = -np.inf
    if index == 10:
        pose[1, 3] = np.nan
    return pose


def frame_color(index: int) -> np.ndarray:
    """Smooth (JPEG-friendly) RGB image that differs per frame."""
    rows = np.linspace(0, 1, COLOR_H)[:, None]
    cols = np.linspace(0, 1, COLOR_W)[None, :]
    r = 40 + 150 * cols + 5 * index
    g = 60 + 120 * rows
    b = 120 + 60 * np.sin(3 * cols + 2 * rows + index)
    return np.clip(np.stack(np.broadcast_arrays(r, g, b), axis=-1), 0, 255).astype(np.uint8)


def frame_depth(index: int) -> np.ndarray:
    return np.random.default_rng(index).integers(0, 8000, (DEPTH_H, DEPTH_W)).astype(np.uint16)


def block_classes(index: int) -> tuple[np.ndarray, np.ndarray]:
    """(12, 16) raw ids and the hand-expected class indices of the stored label image of a frame.

    Rows 0-5 wall (96 px), rows 6-9 chair (64 px), rows 10-11: table in columns 0-9 (20 px) and
    'box' (nyu40 40 -> ignore) in 10-15 (12 px); frame 8 has table in all 32 pixels of rows 10-11.
    """
    raw = np.full((12, 16), RAW_WALL, dtype=np.uint16)
    raw[6:10] = RAW_CHAIR
    raw[10:12, :10] = RAW_TABLE
    raw[10:12, 10:] = RAW_TABLE if index == TABLE_FRAME else RAW_OTHERPROP
    classes = np.full((12, 16), WALL, dtype=np.uint8)
    classes[6:10] = CHAIR
    classes[10:12, :10] = TABLE
    classes[10:12, 10:] = TABLE if index == TABLE_FRAME else IGNORE
    return raw, classes


def full_size_label(index: int) -> np.ndarray:
    """Full-resolution (72, 96) label image: each block pixel is a 6x6 square, so nearest resizing by 1/6 picks it."""
    raw, _ = block_classes(index)
    return np.kron(raw, np.ones((6, 6), dtype=np.uint16))


def make_scene(raw_dir: Path, scene: str = SCENE, *, poses=None, label_frames=None, with_labels=True) -> Path:
    """Write ``<raw_dir>/scans/<scene>/`` with a .sens, a label zip (frames ``label_frames``) and the raw-dir tsv."""
    scene_dir = raw_dir / "scans" / scene
    scene_dir.mkdir(parents=True, exist_ok=True)
    poses = [frame_pose(i) for i in range(NUM_FRAMES)] if poses is None else poses
    with SensWriter(scene_dir / f"{scene}.sens", sens_header()) as writer:
        for index, pose in enumerate(poses):
            writer.add_frame(pose, frame_color(index), frame_depth(index))
    if with_labels:
        label_frames = range(len(poses)) if label_frames is None else label_frames
        write_label_zip(scene_dir / f"{scene}_2d-label-filt.zip", [(i, full_size_label(i)) for i in label_frames])
        write_tsv(raw_dir / "scannetv2-labels.combined.tsv", TSV_ROWS)
    return scene_dir


def build(scene_dir: Path, out: Path, **overrides) -> dict:
    kwargs = dict(skip=SKIP, image_size=IMAGE_SIZE, min_pixel_fraction=0.15)
    kwargs.update(overrides)
    return build_frames_store(scene_dir, out, **kwargs)


def test_sample_frame_ids_hand_cases():
    np.testing.assert_array_equal(sample_frame_ids(10, 3), [0, 3, 6, 9])
    np.testing.assert_array_equal(sample_frame_ids(9, 3), [0, 3, 6])
    np.testing.assert_array_equal(sample_frame_ids(5, 100), [0])
    np.testing.assert_array_equal(sample_frame_ids(4, 1), [0, 1, 2, 3])
    assert sample_frame_ids(0, 100).shape == (0,)
    assert sample_frame_ids(10, 3).dtype == np.int64
    with pytest.raises(ValueError, match="skip must be >= 1"):
        sample_frame_ids(10, 0)


def test_jpeg_reduce_factor_keeps_size_and_exact_division():
    assert jpeg_reduce_factor((1296, 968), (320, 240)) == 4  # 324x242
    assert jpeg_reduce_factor((1296, 968), (640, 480)) == 2
    assert jpeg_reduce_factor((1296, 968), (162, 121)) == 8
    assert jpeg_reduce_factor((1296, 968), (163, 121)) == 4
    assert jpeg_reduce_factor((1296, 968), (1296, 968)) == 1
    # 970 is not divisible by 4 or 8: libjpeg would round the last row up, so only 2 is exact.
    assert jpeg_reduce_factor((1296, 970), (160, 120)) == 2
    assert jpeg_reduce_factor((COLOR_W, COLOR_H), IMAGE_SIZE) == 4


def test_frames_store_values(tmp_path, caplog, monkeypatch):
    scene_dir = make_scene(tmp_path / "raw")
    monkeypatch.setattr(frames_module, "WRITE_BLOCK_FRAMES", 3)  # 4 kept frames -> blocks of 3 and 1
    out = tmp_path / "cache" / "frames" / f"{SCENE}.zarr"
    with caplog.at_level(logging.INFO, logger="jointwsss"):
        summary = build(scene_dir, out)
    store = open_store(out, "frames")
    kept = [0, 2, 6, 8]
    np.testing.assert_array_equal(store["frame_id"][...], kept)
    assert store["frame_id"].dtype == np.int32
    attrs = store.attrs
    assert attrs["frames_in_stream"] == NUM_FRAMES
    assert attrs["frames_sampled"] == 6 and attrs["frames_kept"] == 4 and attrs["frame_skip"] == SKIP
    assert attrs["frames_dropped"] == {"invalid_pose": 2}
    assert attrs["dropped_frame_ids"] == {"invalid_pose": [4, 10]}
    assert attrs["image_size"] == [16, 12] and attrs["depth_size"] == [DEPTH_W, DEPTH_H]
    assert attrs["depth_shift"] == 1000.0 and attrs["has_labels"] is True and attrs["color_decode_reduce"] == 4
    assert attrs["source_files"][-1] == str(tmp_path / "raw" / "scannetv2-labels.combined.tsv")
    assert summary["frames_kept"] == 4 and summary["path"] == str(out)
    assert f"frames {SCENE}: 6 of 11 frames sampled, 4 kept, 2 dropped (invalid pose)" in caplog.text

    assert store["color"].shape == (4, 12, 16, 3) and store["color"].chunks == (1, 12, 16, 3)
    assert store["depth"].shape == (4, DEPTH_H, DEPTH_W) and store["depth"].dtype == np.uint16
    assert store["label"].shape == (4, 12, 16) and store["image_labels"].shape == (4, 20)
    for row, frame in enumerate(kept):
        np.testing.assert_array_equal(store["depth"][row], frame_depth(frame))
        np.testing.assert_array_equal(store["pose"][row], frame_pose(frame))
        expected_color = cv2.resize(frame_color(frame), IMAGE_SIZE, interpolation=cv2.INTER_AREA).astype(int)
        difference = np.abs(store["color"][row].astype(int) - expected_color)
        assert difference.mean() < 1.5 and difference.max() <= 6, (frame, difference.mean(), difference.max())
        np.testing.assert_array_equal(store["label"][row], block_classes(frame)[1])
        expected_labels = np.zeros(20, dtype=bool)
        expected_labels[[WALL, CHAIR]] = True  # 96/192 and 64/192 >= 0.15; table 20/192 = 0.10 is not
        if frame == TABLE_FRAME:
            expected_labels[TABLE] = True  # 32/192 = 0.17
        np.testing.assert_array_equal(store["image_labels"][row], expected_labels)
    # fx 90 -> 15, fy 88 -> 14.667, cx (47.5 + 0.5) / 6 - 0.5 = 7.5, cy (35.5 + 0.5) / 6 - 0.5 = 5.5
    expected_k = np.array([[15, 0, 7.5, 0], [0, 88 / 6, 5.5, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=np.float32)
    np.testing.assert_allclose(store["intrinsic_color"][...], expected_k, rtol=1e-6)
    np.testing.assert_array_equal(store["intrinsic_depth"][...], sens_header().intrinsic_depth)


def test_only_kept_frames_are_decoded(tmp_path, monkeypatch):
    scene_dir = make_scene(tmp_path / "raw")
    decoded: list[tuple[str, int, int]] = []
    real_color, real_depth = SensReader.color, SensReader.depth

    def counting_color(self, i, *, reduce=1):
        decoded.append(("color", i, reduce))
        return real_color(self, i, reduce=reduce)

    def counting_depth(self, i):
        decoded.append(("depth", i, 1))
        return real_depth(self, i)

    monkeypatch.setattr(SensReader, "color", counting_color)
    monkeypatch.setattr(SensReader, "depth", counting_depth)
    build(scene_dir, tmp_path / "frames.zarr")
    assert sorted(decoded) == sorted([("color", i, 4) for i in (0, 2, 6, 8)] + [("depth", i, 1) for i in (0, 2, 6, 8)])


def test_explicit_label_tsv_overrides_raw_dir_tsv(tmp_path):
    scene_dir = make_scene(tmp_path / "raw")
    sofa_tsv = write_tsv(tmp_path / "other.tsv", [(raw, n, 6 if raw == RAW_CHAIR else nyu) for raw, n, nyu in TSV_ROWS])
    build(scene_dir, tmp_path / "frames.zarr", label_tsv=sofa_tsv)
    label = open_store(tmp_path / "frames.zarr", "frames")["label"][0]
    assert (label[6:10] == 5).all()  # nyu40 6 = sofa = class 5 instead of chair


def test_scene_without_label_zip(tmp_path):
    scene_dir = make_scene(tmp_path / "raw", with_labels=False)
    build(scene_dir, tmp_path / "frames.zarr")
    store = open_store(tmp_path / "frames.zarr", "frames")
    assert store.attrs["has_labels"] is False and store.attrs["frames_kept"] == 4
    assert (store["label"][...] == 255).all() and store["label"].shape == (4, 12, 16)
    assert not store["image_labels"][...].any()


def test_every_pose_invalid_writes_empty_store(tmp_path, caplog):
    invalid = np.full((4, 4), -np.inf, dtype=np.float32)
    scene_dir = make_scene(tmp_path / "raw", poses=[invalid] * 5)
    with caplog.at_level(logging.WARNING, logger="jointwsss"):
        summary = build(scene_dir, tmp_path / "frames.zarr")
    store = open_store(tmp_path / "frames.zarr", "frames")
    assert summary["frames_kept"] == 0 and store.attrs["frames_kept"] == 0
    assert store.attrs["frames_sampled"] == 3
    assert store.attrs["frames_dropped"] == {"invalid_pose": 3}
    assert store.attrs["dropped_frame_ids"] == {"invalid_pose": [0, 2, 4]}
    assert store["color"].shape == (0, 12, 16, 3) and store["depth"].shape == (0, DEPTH_H, DEPTH_W)
    assert store["label"].shape == (0, 12, 16) and store["image_labels"].shape == (0, 20)
    assert store["pose"].shape == (0, 4, 4) and store["frame_id"].shape == (0,)
    assert "no sampled frame has a valid pose" in caplog.text


def test_frame_missing_from_label_zip_is_an_error_and_leaves_no_store(tmp_path):
    scene_dir = make_scene(tmp_path / "raw", label_frames=[0, 1, 2, 3, 8])  # kept frame 6 lacks its label image
    out = tmp_path / "cache" / "frames" / f"{SCENE}.zarr"
    zip_path = scene_dir / f"{SCENE}_2d-label-filt.zip"
    with pytest.raises(DataFormatError, match=r"has no label image for frame 6 .*label-filt/6\.png") as error:
        build(scene_dir, out)
    assert error.value.path == str(zip_path)
    assert not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []  # no temporary left behind either


def test_missing_sens_names_the_file(tmp_path):
    scene_dir = tmp_path / "raw" / "scans" / SCENE
    scene_dir.mkdir(parents=True)
    with pytest.raises(DataFormatError, match=rf"{SCENE}\.sens: file does not exist"):
        build(scene_dir, tmp_path / "frames.zarr")
    assert not (tmp_path / "frames.zarr").exists()


def test_synthetic_scene_points_frames_and_index_agree(tmp_path):
    if importlib.util.find_spec("jointwsss.synth.scannet") is None:
        pytest.skip("jointwsss.synth.scannet is not written yet")
    from jointwsss.preprocess.index import build_index
    from jointwsss.preprocess.points import build_points_store
    from jointwsss.synth.scannet import SynthScanNetConfig, synthesize_scene

    scene = "scene0000_00"
    cfg = SynthScanNetConfig(seed=3, frames_per_scene=12, color_size=(64, 48), depth_size=(32, 24))
    scene_dir = tmp_path / "raw" / "scans" / scene
    synthesize_scene(scene, scene_dir, cfg, with_labels=True)
    cache = tmp_path / "cache"
    points_summary = build_points_store(scene_dir, cache / "points" / f"{scene}.zarr", min_points=1)
    frames_summary = build(scene_dir, cache / "frames" / f"{scene}.zarr", skip=3, image_size=(32, 24),
                           min_pixel_fraction=0.01)
    points = open_store(cache / "points" / f"{scene}.zarr", "points")
    frames = open_store(cache / "frames" / f"{scene}.zarr", "frames")
    n, f = points_summary["num_points"], frames_summary["frames_kept"]
    assert n > 0 and f > 0
    assert frames_summary["frames_sampled"] == len(sample_frame_ids(12, 3))
    assert frames_summary["frames_kept"] + frames_summary["frames_dropped"]["invalid_pose"] == 4
    assert points["xyz"].shape == (n, 3) and points["rgb"].shape == (n, 3) and points["label"].shape == (n,)
    assert frames["color"].shape == (f, 24, 32, 3) and frames["label"].shape == (f, 24, 32)
    assert frames["depth"].shape == (f, 24, 32) and frames["pose"].shape == (f, 4, 4)
    assert frames["image_labels"].shape == (f, 20) and frames["frame_id"].shape == (f,)
    assert np.isfinite(frames["pose"][...]).all()
    scene_labels = np.asarray(points.attrs["scene_labels"])
    image_labels = frames["image_labels"][...]
    assert image_labels.any()
    assert not (image_labels & ~scene_labels).any(), "a frame shows a class the scene's points do not have"

    index = build_index("train", [scene], cache, cache / "index" / "train.json")
    assert index["scenes"] == [{"scene": scene, "frames": f, "points": n, "pairs": None, "usable": True}]
    assert sum(index["class_stats"]["image_label_counts"].values()) == int(image_labels.sum())


def test_benchmark_paths_agree_on_a_small_stream(tmp_path):
    """The benchmark's naive reader loads exactly the stored payloads and extracts the same frames."""
    sens_path = make_scene(tmp_path / "raw", with_labels=False) / f"{SCENE}.sens"
    header, frames = load_all_frames(sens_path)
    with SensReader(sens_path) as reader:
        assert header.color_width == COLOR_W and header.num_frames == NUM_FRAMES == len(frames)
        for index, (pose, color_bytes, depth_bytes) in enumerate(frames):
            assert color_bytes == reader.color_bytes(index) and depth_bytes == reader.depth_bytes(index)
            np.testing.assert_array_equal(pose, reader.camera_to_world(index))
    sampled_colors, sampled_depths = sampled_extraction(sens_path, SKIP, IMAGE_SIZE)
    naive_colors, naive_depths = naive_extraction(sens_path, SKIP, IMAGE_SIZE)
    assert len(sampled_colors) == len(naive_colors) == 4  # frames 0, 2, 6, 8
    assert sampled_depths == naive_depths
    official_colors, official_depths = official_extraction(sens_path, SKIP, IMAGE_SIZE)
    assert official_depths == naive_depths
    assert all(np.array_equal(a, b) for a, b in zip(official_colors, naive_colors))
    difference = np.abs(np.stack(sampled_colors).astype(int) - np.stack(naive_colors).astype(int))
    assert difference.mean() < 1.5


def file_system_type(path: Path) -> str:
    """Type of the file system holding ``path`` (longest matching mount point in /proc/self/mounts)."""
    best, fs_type = "", "unknown"
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, mount_point, kind = line.split()[:3]
        if str(path).startswith(mount_point) and len(mount_point) > len(best):
            best, fs_type = mount_point, kind
    return fs_type


def test_page_cache_eviction_is_visible_to_mincore(tmp_path):
    if not Path("/proc/self/mounts").exists() or file_system_type(tmp_path) not in ("ext4", "xfs", "btrfs"):
        pytest.skip("page-cache eviction is only meaningful on a disk-backed file system")
    path = tmp_path / "blob.bin"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 1 << 20, dtype=np.uint8).tobytes())
    path.read_bytes()
    warm = resident_fraction(path)
    if warm is None:
        pytest.skip("mincore(2) is not available here")
    assert warm == 1.0
    evict_from_page_cache(path)
    assert resident_fraction(path) < 0.5


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"skip": 0}, r"frames\.skip must be an integer >= 1"),
        ({"image_size": (16, 0)}, r"frames\.image_size must be \(width, height\)"),
        ({"min_pixel_fraction": 1.5}, r"labels\.min_pixel_fraction must lie in \[0, 1\]"),
    ],
)
def test_bad_settings_name_the_config_key(tmp_path, overrides, message):
    scene_dir = make_scene(tmp_path / "raw")
    with pytest.raises(ValueError, match=message):
        build(scene_dir, tmp_path / "frames.zarr", **overrides)
    assert not (tmp_path / "frames.zarr").exists()


def test_measuring_child_process_reports_the_extraction(tmp_path, capsys):
    """The benchmark's child process (``child_command`` -> the module's ``run_measuring_child``) extracts the same
    frames as the in-process path and reports them as one JSON line; run by hand, the module names its command."""
    import json
    import subprocess

    from jointwsss.bench import child_command, run_measuring_child

    sens_path = make_scene(tmp_path / "raw", with_labels=False) / f"{SCENE}.sens"
    colors_out = tmp_path / "colors.npy"
    command = child_command("jointwsss.bench.frame_extraction", "naive", sens_path, SKIP, *IMAGE_SIZE, colors_out)
    child = subprocess.run(command, check=True, capture_output=True, text=True)
    result = json.loads(child.stdout.strip().splitlines()[-1])
    naive_colors, naive_depths = naive_extraction(sens_path, SKIP, IMAGE_SIZE)
    assert result["frames_extracted"] == len(naive_colors) == 4
    assert result["depth_crc32"] == naive_depths
    np.testing.assert_array_equal(np.load(colors_out), np.stack(naive_colors))

    assert run_measuring_child(["--measure", "7"], lambda n: {"twice": 2 * int(n)}, "x") == 0
    assert json.loads(capsys.readouterr().out) == {"twice": 14}
    assert run_measuring_child([], lambda: {}, "preprocess") == 2
    assert "`jointwsss bench preprocess`" in capsys.readouterr().err
