import logging

import numpy as np
import pytest

from jointwsss.io.errors import DataFormatError
from jointwsss.io.s3dis import S3DIS_CLASSES, list_rooms, read_points_txt, read_room, write_room


def _objects(rng):
    # Written out of class order on purpose: read_room numbers instances by (class, file number).
    spec = [("wall", 4), ("chair", 3), ("chair", 2), ("floor", 5)]
    return [(name, rng.uniform(-5, 5, (n, 3)).round(3), rng.integers(0, 256, (n, 3))) for name, n in spec]


def test_room_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    objects = _objects(rng)
    room = tmp_path / "Area_1" / "office_1"
    write_room(room, objects)
    assert sorted(p.name for p in (room / "Annotations").iterdir()) == [
        "chair_1.txt", "chair_2.txt", "floor_1.txt", "wall_1.txt"]
    first_line = (room / "Annotations" / "wall_1.txt").read_text().splitlines()[0].split()
    assert len(first_line) == 6 and len(first_line[0].split(".")[1]) == 3 and first_line[3].isdigit()

    out = read_room(room)
    # Expected read order: chair_1, chair_2, floor_1, wall_1.
    order = [1, 2, 3, 0]
    xyz = np.concatenate([objects[i][1] for i in order])
    rgb = np.concatenate([objects[i][2] for i in order])
    np.testing.assert_allclose(out["xyz"], xyz, atol=1e-3)
    np.testing.assert_array_equal(out["rgb"], rgb.astype(np.uint8))
    assert out["xyz"].dtype == np.float32 and out["rgb"].dtype == np.uint8
    chair, floor, wall = (S3DIS_CLASSES.index(c) for c in ("chair", "floor", "wall"))
    assert (chair, floor, wall) == (8, 1, 2)
    np.testing.assert_array_equal(out["label"], [chair] * 5 + [floor] * 5 + [wall] * 4)
    np.testing.assert_array_equal(out["instance"], [0] * 3 + [1] * 2 + [2] * 5 + [3] * 4)
    assert out["label"].dtype == np.uint8 and out["instance"].dtype == np.int32
    assert out["malformed"] == {}

    # <room>.txt holds every point, in write order.
    room_xyz, room_rgb, bad = read_points_txt(room / "office_1.txt")
    np.testing.assert_allclose(room_xyz, np.concatenate([o[1] for o in objects]), atol=1e-3)
    assert bad == [] and len(room_rgb) == 14
    assert list_rooms(tmp_path / "Area_1") == [room]


def test_malformed_lines_skipped_with_one_warning(tmp_path, caplog):
    path = tmp_path / "ceiling_1.txt"
    path.write_text("0.100 0.200 0.300 1 2 3\n"
                    "1.0 2.0 3.O 10 20 30\n"       # letter O instead of zero
                    "4.000 5.000 6.000 40 50\n"    # 5 fields
                    "\n"                           # empty line
                    "103.0\x100000 1.0 2.0 3 4 5\n"  # control byte, as in Area_5/office_19
                    "7.000 8.000 9.000 70 80 90\n")
    with caplog.at_level(logging.WARNING, logger="jointwsss.io.s3dis"):
        xyz, rgb, bad = read_points_txt(path)
    assert bad == [2, 3, 4, 5]
    np.testing.assert_allclose(xyz, [[0.1, 0.2, 0.3], [7, 8, 9]], atol=1e-6)
    np.testing.assert_array_equal(rgb, [[1, 2, 3], [70, 80, 90]])
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert str(path) in message and "4 malformed" in message and "2, 3, 4, 5" in message


def test_three_malformed_lines_in_a_room(tmp_path, caplog):
    room = tmp_path / "hallway_6"
    write_room(room, [("ceiling", np.array([[0.0, 0.0, 3.0], [1.0, 0.0, 3.0]]), np.array([[9, 9, 9], [8, 8, 8]]))])
    ann = room / "Annotations" / "ceiling_1.txt"
    ann.write_text(ann.read_text() + "1.0 2.0 3.O 10 20 30\n1 2 3 4 5\n\n")
    with caplog.at_level(logging.WARNING, logger="jointwsss.io.s3dis"):
        out = read_room(room)
    assert out["malformed"] == {str(ann): [3, 4, 5]}
    assert len(out["xyz"]) == 2
    assert len(caplog.records) == 1 and str(ann) in caplog.records[0].getMessage()


def test_unknown_class_is_ignored_and_stairs_is_clutter(tmp_path, caplog):
    room = tmp_path / "office_2"
    one = (np.zeros((1, 3)), np.zeros((1, 3), dtype=int))
    write_room(room, [("plant", *one), ("stairs", *one), ("door", *one)])
    with caplog.at_level(logging.WARNING, logger="jointwsss.io.s3dis"):
        out = read_room(room)
    # order: door_1, plant_1, stairs_1
    np.testing.assert_array_equal(out["label"], [6, 255, 12])
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "1 annotation file(s) with unknown class names {'plant': 1}" in message and "stairs" in message


def test_bad_inputs_name_the_file(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(DataFormatError, match="empty.txt: empty"):
        read_points_txt(empty)
    with pytest.raises(DataFormatError, match="missing.txt"):
        read_points_txt(tmp_path / "missing.txt")
    (tmp_path / "bare_room").mkdir()
    with pytest.raises(DataFormatError, match="bare_room/Annotations: S3DIS room has no Annotations folder"):
        read_room(tmp_path / "bare_room")
    (tmp_path / "bare_room" / "Annotations").mkdir()
    with pytest.raises(DataFormatError, match="no Annotations/<class>_<i>.txt"):
        read_room(tmp_path / "bare_room")
