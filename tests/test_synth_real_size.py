"""The ScanNet-sized stand-in (synth.real_size, synth.rendered_frame_step): ScanNet's sizes, and streams whose
unrendered frames repeat a rendered one byte for byte in a .sens the reader takes like any other."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from jointwsss.config import ConfigError, check_config, load_yaml
from jointwsss.io.scannet_labels import LabelZip
from jointwsss.io.sens import (
    FRAME_HEADER_BYTES,
    SensReader,
    header_size_bytes,
    imu_trailer_size_bytes,
)
from jointwsss.synth.scannet import (
    SynthScanNetConfig,
    rendered_frame,
    scene_file_names,
    scene_settings,
    synthesize_scene,
)


def test_real_size_gives_scannets_sizes_whatever_the_other_keys_say():
    cfg = SynthScanNetConfig.from_settings({"real_size": True, "color_size": [96, 72], "frames_per_scene": 12})
    assert cfg.color_size == (1296, 968) and cfg.depth_size == (640, 480)
    assert cfg.frames_per_scene == 1500 and cfg.mesh_vertex_spacing_m == 0.03
    assert SynthScanNetConfig().color_size == (324, 242)      # the default stays CPU-sized


def test_rendered_frame_is_the_last_multiple_of_the_step():
    assert [rendered_frame(k, 100) for k in (0, 1, 99, 100, 250, 1499)] == [0, 0, 0, 100, 200, 1400]
    assert [rendered_frame(k, 1) for k in (0, 5)] == [0, 5]


def test_the_later_scene_keys_reach_a_scene_job_only_when_set():
    synth = {"seed": 0, "frames_per_scene": 40, "real_size": False, "rendered_frame_step": 2}   # their defaults
    assert scene_settings(synth, tuple(synth)) == {"seed": 0, "frames_per_scene": 40}
    synth.update(real_size=True, rendered_frame_step=100)
    assert scene_settings(synth, tuple(synth)) == synth
    synth.update(real_size=False, rendered_frame_step=1)
    assert scene_settings(synth, tuple(synth)) == {"seed": 0, "frames_per_scene": 40, "rendered_frame_step": 1}


def test_frames_skip_must_read_rendered_frames(repo):
    config = load_yaml(repo / "config.yaml")
    config.update(synth={"rendered_frame_step": 3}, frames={"skip": 5})
    with pytest.raises(ConfigError, match="frames.skip 5 is not a multiple of synth.rendered_frame_step 3"):
        check_config(config)
    config.update(synth={"rendered_frame_step": 5}, frames={"skip": 10})
    check_config(config)


def test_a_held_frame_stream_at_scannets_image_sizes(tmp_path):
    """5 frames at the real colour and depth sizes, every 3rd rendered: frames 1-2 repeat frame 0, frame 4 frame 3."""
    cfg = SynthScanNetConfig(frames_per_scene=5, color_size=(1296, 968), depth_size=(640, 480), rendered_frame_step=3,
                             invalid_pose_fraction=0.0)
    summary = synthesize_scene("scene0000_00", tmp_path, cfg)
    assert summary["num_frames"] == 5 and summary["num_rendered_frames"] == 2
    names = scene_file_names("scene0000_00")
    path = tmp_path / names["sens"]
    with SensReader(path) as sens:
        assert len(sens) == 5 and sens.num_imu_frames == 5
        assert (sens.header.color_width, sens.header.color_height) == (1296, 968)
        assert (sens.header.depth_width, sens.header.depth_height) == (640, 480)
        colors = [sens.color_bytes(k) for k in range(5)]
        depths = [sens.depth_bytes(k) for k in range(5)]
        poses = sens.camera_to_world_all()
        for k in range(5):
            source = 3 * (k // 3)
            assert colors[k] == colors[source] and depths[k] == depths[source], k
            np.testing.assert_array_equal(poses[k], poses[source])
        assert colors[0] != colors[3] and depths[0] != depths[3]      # two renders, two images
        assert not np.array_equal(poses[0], poses[3])
        assert Image.open(io.BytesIO(colors[3])).size == (1296, 968)     # JPEG at ScanNet's colour size
        assert Image.open(io.BytesIO(colors[3])).format == "JPEG"
        assert sens.color(4).shape == (968, 1296, 3)
        depth = sens.depth(4)
        assert depth.shape == (480, 640) and depth.dtype == np.uint16 and depth.max() > 500   # millimetres
        payload = sum(len(c) + len(d) for c, d in zip(colors, depths))
        expected = header_size_bytes(sens.header) + 5 * FRAME_HEADER_BYTES + payload + imu_trailer_size_bytes(5)
    assert path.stat().st_size == expected
    with LabelZip(tmp_path / names["label_zip"]) as labels:
        assert labels.frame_ids() == list(range(5))
        first, held = labels.read_raw(3), labels.read_raw(4)
        assert first.shape == (968, 1296)
        np.testing.assert_array_equal(first, held)


def test_a_rendered_frame_has_the_same_bytes_whatever_the_step(tmp_path):
    """Frames 0 and 2 of a stream rendered every frame and of one rendered every 2nd: the same colour, depth and
    label bytes, so the frames a frames.skip of 2 reads do not depend on synth.rendered_frame_step."""
    streams = {}
    for step in (1, 2):
        cfg = SynthScanNetConfig(frames_per_scene=4, rendered_frame_step=step, invalid_pose_fraction=0.0)
        synthesize_scene("scene0001_00", tmp_path / str(step), cfg)
        names = scene_file_names("scene0001_00")
        with SensReader(tmp_path / str(step) / names["sens"]) as sens, \
                LabelZip(tmp_path / str(step) / names["label_zip"]) as labels:
            streams[step] = [(sens.color_bytes(k), sens.depth_bytes(k), labels.read_raw(k).tobytes()) for k in range(4)]
    assert streams[1][0] == streams[2][0] and streams[1][2] == streams[2][2]
    assert streams[1][1] != streams[2][1] and streams[2][1] == streams[2][0]    # step 2 holds frame 0 at frame 1
