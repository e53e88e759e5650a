"""scannet.transfer: sampled -- the .sens and label zip read with HTTP Range requests from a real server on 127.0.0.1."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from jointwsss.bench.range_server import RangeServer
from jointwsss.io import download as dl
from jointwsss.io.download import DownloadError, scene_file_url, scene_suffixes
from jointwsss.io.ranged import RangeFile
from jointwsss.io.sens import SensReader
from jointwsss.io.zarr_store import open_store
from jointwsss.preprocess.frames import build_frames_store, build_frames_store_sampled
from jointwsss.synth.scannet import SynthScanNetConfig, synthesize_scene

SCENE = "scene0000_00"  # a train scene: its .sens lives under v1/, the label zip under v2/
SKIP = 4
KW = dict(image_size=(48, 36), min_pixel_fraction=0.01)


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch):
    monkeypatch.setattr(dl, "RETRY_BACKOFF_S", 0.01)


@pytest.fixture(scope="module")
def local_scene(tmp_path_factory) -> Path:
    """A synthetic scene in the real file formats (40 frames, JPEG colour, zlib depth, label zip)."""
    cfg = SynthScanNetConfig(seed=3, num_train_scenes=1, num_val_scenes=1, frames_per_scene=40,
                             color_size=(96, 72), depth_size=(64, 48), invalid_pose_fraction=0.1)
    scene_dir = tmp_path_factory.mktemp("local") / "scans" / SCENE
    synthesize_scene(SCENE, scene_dir, cfg)
    return scene_dir


@pytest.fixture
def server_root(local_scene, tmp_path) -> Path:
    """The scene's files in the ScanNet server layout."""
    root = tmp_path / "server"
    for suffix in scene_suffixes(test=False):
        release = "v1" if suffix == ".sens" else "v2"
        dest = root / release / "scans" / SCENE / f"{SCENE}{suffix}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local_scene / f"{SCENE}{suffix}", dest)
    return root


def assert_same_store(a: Path, b: Path) -> None:
    ga, gb = open_store(a, "frames"), open_store(b, "frames")
    names = sorted(name for name, _ in ga.arrays())
    assert names == sorted(name for name, _ in gb.arrays())
    assert {"color", "depth", "label", "pose", "frame_id", "image_labels"} <= set(names)
    for name in names:
        np.testing.assert_array_equal(ga[name][...], gb[name][...], err_msg=name)
    attrs_a, attrs_b = dict(ga.attrs), dict(gb.attrs)
    for attrs in (attrs_a, attrs_b):
        attrs.pop("source_files")
    assert attrs_a == attrs_b


def test_sampled_store_equals_the_store_of_the_whole_local_file(local_scene, server_root, tmp_path):
    reference = tmp_path / "ref.zarr"
    build_frames_store(local_scene, reference, skip=SKIP, **KW)
    raw_scene = tmp_path / "raw" / "scans" / SCENE
    with RangeServer(server_root) as server:
        summary = build_frames_store_sampled(raw_scene, tmp_path / "sampled.zarr", base_url=server.base_url,
                                             with_labels=True, skip=SKIP, **KW)
        first_gets = server.gets
        sens_size = (local_scene / f"{SCENE}.sens").stat().st_size
        with SensReader(local_scene / f"{SCENE}.sens") as reader:
            sampled = range(0, len(reader), SKIP)
            payload = sum(reader.frames[i].color_size + reader.frames[i].depth_size for i in sampled)
        sens_transfer = summary["transfer"][0]
        assert sens_transfer["file_bytes"] == sens_size
        # the frame headers (<= 1 KiB request each) and the sampled payloads, not the file
        assert payload <= sens_transfer["bytes_fetched"] <= payload + 1024 * (len(reader) + 2)
        assert sens_transfer["bytes_fetched"] < 0.5 * sens_size
        assert_same_store(reference, tmp_path / "sampled.zarr")
        assert not (raw_scene / f"{SCENE}.sens").exists()

        # Rerun with another skip: frame headers and the payloads already fetched come from the byte cache.
        summary2 = build_frames_store_sampled(raw_scene, tmp_path / "sampled2.zarr", base_url=server.base_url,
                                              with_labels=True, skip=SKIP // 2, **KW)
        new_frames = len(range(0, len(reader), SKIP // 2)) - len(sampled)
        sens2 = summary2["transfer"][0]
        assert 0 < sens2["requests"] <= 2 * new_frames
        with SensReader(local_scene / f"{SCENE}.sens") as reader:
            new_payload = sum(reader.frames[i].color_size + reader.frames[i].depth_size
                              for i in range(SKIP // 2, len(reader), SKIP))
        # only (part of) the new frames' payloads: the first run's 1 KiB header requests already hold their starts
        assert 0 < sens2["bytes_fetched"] <= new_payload
        assert server.gets > first_gets
    reference2 = tmp_path / "ref2.zarr"
    build_frames_store(local_scene, reference2, skip=SKIP // 2, **KW)
    assert_same_store(reference2, tmp_path / "sampled2.zarr")


def test_range_file_reads_exact_bytes_and_retries_cut_and_503(local_scene, server_root, tmp_path):
    data = (local_scene / f"{SCENE}.sens").read_bytes()
    with RangeServer(server_root) as server:
        server.error_gets = {2}
        server.cut_gets = {3}
        url = scene_file_url(server.base_url, SCENE, ".sens")
        with RangeFile(url, cache_dir=tmp_path / "cache") as f:
            f.seek(5000)
            assert f.read(20_000) == data[5000:25_000]      # GET 1 learnt the size; GET 2: 503, GET 3: cut, GET 4: ok
            f.seek(-100, 2)
            assert f.read(1000) == data[-100:]
        assert server.gets == 5
        assert server.ranges[3] == server.ranges[2] == server.ranges[1]  # the same range asked again
        # a fresh reader on the same cache needs no request for those bytes
        with RangeFile(url, cache_dir=tmp_path / "cache") as f:
            f.seek(6000)
            assert f.read(10_000) == data[6000:16_000]
        assert server.gets == 5


def test_cut_connections_exhaust_retries_with_a_clear_error(server_root, tmp_path):
    with RangeServer(server_root) as server:
        url = scene_file_url(server.base_url, SCENE, ".sens")
        f = RangeFile(url, max_retries=2)
        server.cut_gets = {2, 3, 4}
        with pytest.raises(DownloadError, match=r"failed after 3 attempt.*connection dropped after 24999 of 49999 bytes") as err:
            f.read(50_000)
        assert url in str(err.value)
        f.close()


def test_server_without_range_support_names_the_fix(server_root, tmp_path):
    with RangeServer(server_root, ignore_range=True) as server:
        with pytest.raises(DownloadError, match=r"ignored the HTTP Range request.*scannet\.transfer: whole") as err:
            build_frames_store_sampled(tmp_path / "raw" / "scans" / SCENE, tmp_path / "out.zarr",
                                       base_url=server.base_url, with_labels=True, skip=SKIP, **KW)
        assert scene_file_url(server.base_url, SCENE, ".sens") in str(err.value)
        assert server.gets == 1  # no retry, and the whole body was never read
    assert not (tmp_path / "out.zarr").exists()


def test_sampled_transfer_downloads_only_the_small_files():
    assert scene_suffixes(test=False, transfer="sampled") == (".txt", "_vh_clean_2.ply", "_vh_clean_2.labels.ply")
    assert scene_suffixes(test=True, transfer="sampled") == (".txt", "_vh_clean_2.ply")
    assert scene_suffixes(test=False, transfer="whole") == dl.SCENE_SUFFIXES
    with pytest.raises(ValueError, match="scannet.transfer"):
        scene_suffixes(test=False, transfer="partial")
