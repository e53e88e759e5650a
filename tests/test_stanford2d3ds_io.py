import json

import cv2
import numpy as np
import pytest

from jointwsss.io.errors import DataFormatError
from jointwsss.io.stanford2d3ds import (
    camera_to_world, decode_semantic_png, encode_semantic_png, frame_path, list_frames, read_depth_png,
    read_pose, read_semantic_index_png, read_semantic_labels, semantic_class_lut, write_depth_png, write_pose,
    write_semantic_labels)

LABELS = ["<UNK>_0_<UNK>_0_0", "beam_10_hallway_6_1", "chair_1_office_2_1", "wall_3_office_2_1", "plant_1_office_2_1"]


def test_semantic_labels_and_lut(tmp_path):
    path = tmp_path / "semantic_labels.json"
    write_semantic_labels(path, LABELS)
    assert json.loads(path.read_text()) == LABELS
    assert read_semantic_labels(path) == LABELS
    np.testing.assert_array_equal(semantic_class_lut(LABELS), [255, 3, 8, 2, 255])


def test_semantic_png_round_trip_uses_all_three_channels(tmp_path):
    path = tmp_path / "camera_ab12_office_2_frame_0_domain_semantic.png"
    index = np.array([[0, 1, 258], [65535, 65536, 0x123456]], dtype=np.int64)
    encode_semantic_png(path, index)
    np.testing.assert_array_equal(read_semantic_index_png(path), index)
    # The file itself stores R as the high byte: 0x123456 -> (R, G, B) = (0x12, 0x34, 0x56).
    rgb = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)
    assert tuple(rgb[1, 2]) == (0x12, 0x34, 0x56)
    assert tuple(rgb[0, 2]) == (0, 1, 2)


def test_decode_hand_computed_colours(tmp_path):
    # Pixels written as raw RGB colours: (0,0,2) -> label 2 (chair), (0,1,2) -> 258 and
    # #0D0D0D -> 855309, both past the end of a 259-entry list -> unlabelled.
    rgb = np.array([[[0, 0, 2], [0, 1, 2], [13, 13, 13], [0, 0, 3]]], dtype=np.uint8)
    path = tmp_path / "sem.png"
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    np.testing.assert_array_equal(read_semantic_index_png(path), [[2, 258, 855309, 3]])
    lut = semantic_class_lut(LABELS + ["wall_9_office_9_1"] * 254)  # 259 labels: 258 is the last
    assert len(lut) == 259
    np.testing.assert_array_equal(decode_semantic_png(path, lut), [[8, 2, 255, 2]])
    short_lut = semantic_class_lut(LABELS)
    np.testing.assert_array_equal(decode_semantic_png(path, short_lut), [[8, 255, 255, 2]])


def test_pose_round_trip_and_projection(tmp_path):
    k = np.array([[1000.0, 0.0, 540.0], [0.0, 1000.0, 540.0], [0.0, 0.0, 1.0]])
    # Camera at world (1, 2, 3) looking along world +x: camera z = world x, camera x = world -y, camera y = world -z.
    rotation = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
    centre = np.array([1.0, 2.0, 3.0])
    rt = np.hstack([rotation, (-rotation @ centre)[:, None]])
    path = tmp_path / "pose" / "camera_ab12_office_2_frame_0_domain_pose.json"
    write_pose(path, k, rt)
    k2, rt2 = read_pose(path)
    np.testing.assert_array_equal(k2, k)
    np.testing.assert_array_equal(rt2, rt)
    np.testing.assert_allclose(json.loads(path.read_text())["camera_location"], centre)
    # World point 4 m ahead, 0.5 m to the left (+y) and 0.2 m up: camera (x, y, z) = (-0.5, -0.2, 4)
    # -> u = 540 + 1000 * -0.5 / 4 = 415, v = 540 + 1000 * -0.2 / 4 = 490.
    point = np.array([5.0, 2.5, 3.2, 1.0])
    cam = rt2 @ point
    np.testing.assert_allclose(cam, [-0.5, -0.2, 4.0], atol=1e-12)
    uvw = k2 @ cam
    np.testing.assert_allclose(uvw[:2] / uvw[2], [415.0, 490.0])
    c2w = camera_to_world(rt2)
    np.testing.assert_allclose(c2w[:3, 3], centre)
    np.testing.assert_allclose(c2w @ np.append(cam, 1.0), point, atol=1e-12)


def test_pose_errors_name_the_file(tmp_path):
    path = tmp_path / "bad_pose.json"
    path.write_text(json.dumps({"camera_k_matrix": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}))
    with pytest.raises(DataFormatError, match="bad_pose.json: pose JSON has no 'camera_rt_matrix'"):
        read_pose(path)
    path.write_text(json.dumps({"camera_k_matrix": [[1, 0], [0, 1]], "camera_rt_matrix": np.eye(3, 4).tolist()}))
    with pytest.raises(DataFormatError, match="camera_k_matrix must be a finite 3x3"):
        read_pose(path)


def test_depth_png(tmp_path):
    path = tmp_path / "d.png"
    cv2.imwrite(str(path), np.array([[65535, 1024], [512, 1]], dtype=np.uint16))
    depth = read_depth_png(path)
    assert depth.dtype == np.float32
    assert np.isnan(depth[0, 0])
    np.testing.assert_array_equal(depth[0, 1:], [2.0])
    np.testing.assert_array_equal(depth[1], [1.0, 1 / 512])
    out = tmp_path / "written.png"
    write_depth_png(out, np.array([[np.nan, 2.0], [1.0, 0.25]]))
    np.testing.assert_array_equal(cv2.imread(str(out), cv2.IMREAD_UNCHANGED), [[65535, 1024], [512, 128]])
    cv2.imwrite(str(tmp_path / "8-bit.png"), np.zeros((2, 2), dtype=np.uint8))
    with pytest.raises(DataFormatError, match="8-bit.png: depth PNG must be 16-bit"):
        read_depth_png(tmp_path / "8-bit.png")


def test_list_frames_requires_rgb_semantic_pose(tmp_path):
    data = tmp_path / "area_1" / "data"
    complete, no_pose = "camera_0a1b_office_1_frame_0", "camera_0a1b_office_1_frame_1"
    for frame in (complete, no_pose):
        rgb_path = frame_path(data, frame, "rgb")
        rgb_path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(rgb_path), np.zeros((2, 2, 3), np.uint8))
        encode_semantic_png(frame_path(data, frame, "semantic"), np.zeros((2, 2), int))
    write_pose(frame_path(data, complete, "pose"), np.eye(3), np.eye(3, 4))
    assert frame_path(data, complete, "rgb").name == "camera_0a1b_office_1_frame_0_domain_rgb.png"
    assert list_frames(data) == [complete]


def test_rgb_png_round_trip_keeps_channel_order_and_names_bad_files(tmp_path):
    from jointwsss.io.stanford2d3ds import read_rgb_png, write_rgb_png

    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 200          # pure red: a swapped channel order would read back as blue
    rgb[1, 2] = (1, 2, 3)
    write_rgb_png(tmp_path / "a.png", rgb)
    assert np.array_equal(read_rgb_png(tmp_path / "a.png"), rgb)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DataFormatError, match="bad.png: cannot decode rgb PNG"):
        read_rgb_png(tmp_path / "bad.png")
