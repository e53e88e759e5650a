"""ScanNet .sens reader/writer: round trips, an independent byte-layout check, and bad input."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from jointwsss.bench.sens_memory import bench_sens_memory
from jointwsss.io import sens as sens_module
from jointwsss.io.errors import DataFormatError
from jointwsss.io.sens import (
    IMU_DTYPE,
    SensHeader,
    SensReader,
    SensWriter,
    decode_depth,
    encode_color,
    encode_depth,
)

COLOR_W, COLOR_H = 40, 30
DEPTH_W, DEPTH_H = 20, 16


def make_header(color_compression: str = "jpeg", depth_compression: str = "zlib_ushort", **overrides) -> SensHeader:
    # Asymmetric matrices with distinct entries, so a transposed read cannot pass.
    fields = dict(
        sensor_name="StructureSensor",
        intrinsic_color=[[36.5, 0, 19.5, 0], [0, 36.25, 14.5, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
        extrinsic_color=np.arange(16, dtype=np.float32).reshape(4, 4) / 8,
        intrinsic_depth=[[17.75, 0, 9.5, 0], [0, 17.5, 7.5, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
        extrinsic_depth=np.arange(16, 32, dtype=np.float32).reshape(4, 4) / 4,
        color_compression=color_compression,
        depth_compression=depth_compression,
        color_width=COLOR_W,
        color_height=COLOR_H,
        depth_width=DEPTH_W,
        depth_height=DEPTH_H,
        depth_shift=1000.0,
    )
    fields.update(overrides)
    return SensHeader(**fields)


def make_frames(num_frames: int, seed: int = 0):
    """Poses (frame 3 invalid: all -inf), smooth noisy RGB images and uint16 depth in millimetres."""
    rng = np.random.default_rng(seed)
    poses, colors, depths = [], [], []
    for index in range(num_frames):
        pose = np.eye(4, dtype=np.float32)
        pose[:3, :3] = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=np.float32)
        pose[:3, 3] = [0.25 * index, -1.5, 1.125]
        if index == 3:
            pose[:] = -np.inf
        poses.append(pose)
        base = np.linspace(20, 220, COLOR_W, dtype=np.float32)[None, :, None] + 10 * index
        color = np.clip(base + rng.normal(0, 3, (COLOR_H, COLOR_W, 3)), 0, 255).astype(np.uint8)
        colors.append(color)
        depth = rng.integers(400, 9000, (DEPTH_H, DEPTH_W), dtype=np.uint16)
        depth[0, :3] = 0  # no measurement
        depths.append(depth)
    return poses, colors, depths


def write_sens(path: Path, header: SensHeader, num_frames: int = 10, seed: int = 0):
    poses, colors, depths = make_frames(num_frames, seed)
    with SensWriter(path, header) as writer:
        for index in range(num_frames):
            writer.add_frame(
                poses[index],
                colors[index],
                depths[index],
                timestamp_color=1_000_000 + 33_333 * index,
                timestamp_depth=2_000_000 + 33_334 * index,
            )
    return poses, colors, depths


# -- round trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize("color_compression", ["jpeg", "png", "raw"])
def test_round_trip(tmp_path, color_compression):
    header = make_header(color_compression)
    path = tmp_path / "scene.sens"
    poses, colors, depths = write_sens(path, header, num_frames=5)

    with SensReader(path) as reader:
        read = reader.header
        assert read.sensor_name == "StructureSensor"
        for name in ("intrinsic_color", "extrinsic_color", "intrinsic_depth", "extrinsic_depth"):
            assert getattr(read, name).dtype == np.float32
            np.testing.assert_array_equal(getattr(read, name), getattr(header, name))
        assert read.intrinsic_color[0, 2] == np.float32(19.5)  # cx in row 0, column 2
        assert (read.color_width, read.color_height, read.depth_width, read.depth_height) == (40, 30, 20, 16)
        assert (read.color_compression, read.depth_compression) == (color_compression, "zlib_ushort")
        assert read.depth_shift == 1000.0
        assert read.num_frames == 5 and len(reader) == 5 and read.version == 4

        np.testing.assert_array_equal(reader.camera_to_world_all(), np.stack(poses))
        assert np.all(reader.camera_to_world(3) == -np.inf)
        for index in range(5):
            np.testing.assert_array_equal(reader.camera_to_world(index), poses[index])
            assert reader.color_bytes(index) == encode_color(colors[index], color_compression)
            assert reader.frames[index].timestamp_color == 1_000_000 + 33_333 * index
            assert reader.frames[index].timestamp_depth == 2_000_000 + 33_334 * index
            color = reader.color(index)
            assert color.shape == (COLOR_H, COLOR_W, 3) and color.dtype == np.uint8
            if color_compression == "jpeg":
                assert np.abs(color.astype(int) - colors[index]).mean() < 4
            else:
                np.testing.assert_array_equal(color, colors[index])
            depth = reader.depth(index)
            assert depth.dtype == np.uint16
            np.testing.assert_array_equal(depth, depths[index])
            assert reader.depth_bytes(index) == zlib.compress(depths[index].astype("<u2").tobytes())


def test_jpeg_colour_comes_back_rgb_not_bgr(tmp_path):
    path = tmp_path / "red.sens"
    red = np.zeros((COLOR_H, COLOR_W, 3), dtype=np.uint8)
    red[..., 0] = 255
    with SensWriter(path, make_header()) as writer:
        writer.add_frame(np.eye(4), red, np.zeros((DEPTH_H, DEPTH_W), np.uint16))
    with SensReader(path) as reader:
        pixel = reader.color(0)[15, 20]
    assert pixel[0] > 240 and pixel[1] < 15 and pixel[2] < 15


def test_raw_ushort_depth_round_trip(tmp_path):
    path = tmp_path / "raw_depth.sens"
    _, _, depths = write_sens(path, make_header("png", "raw_ushort"), num_frames=2)
    with SensReader(path) as reader:
        assert reader.depth_bytes(1) == depths[1].astype("<u2").tobytes()
        np.testing.assert_array_equal(reader.depth(1), depths[1])


# -- independent byte layout ---------------------------------------------------------------------


def pack_header(
    *,
    version=4,
    name=b"hand",
    matrices=None,
    color_code=2,
    depth_code=1,
    sizes=(COLOR_W, COLOR_H, DEPTH_W, DEPTH_H),
    depth_shift=1000.0,
    num_frames=0,
) -> bytes:
    if matrices is None:
        matrices = [np.arange(16) + 100 * k for k in range(4)]
    out = struct.pack("<I", version) + struct.pack("<Q", len(name)) + name
    for matrix in matrices:
        out += struct.pack("<16f", *np.asarray(matrix, dtype=np.float32).ravel())
    out += struct.pack("<ii", color_code, depth_code) + struct.pack("<4I", *sizes)
    return out + struct.pack("<f", depth_shift) + struct.pack("<Q", num_frames)


def pack_frame(pose_values, ts_color, ts_depth, color: bytes, depth: bytes) -> bytes:
    return struct.pack("<16f4Q", *pose_values, ts_color, ts_depth, len(color), len(depth)) + color + depth


def test_reads_hand_packed_file(tmp_path):
    # Colour 4x3 raw RGB and depth 2x2 raw uint16, built with struct only.
    fx, fy, cx, cy = 1170.25, 1169.5, 647.75, 483.75
    intrinsic = [fx, 0, cx, 0, 0, fy, cy, 0, 0, 0, 1, 0, 0, 0, 0, 1]  # row-major
    matrices = [intrinsic, list(range(16)), [2.0 * v for v in range(16)], [-1.0 * v for v in range(16)]]
    head = pack_header(name=b"hand-made", matrices=matrices, color_code=0, depth_code=0, sizes=(4, 3, 2, 2),
                       depth_shift=1000.0, num_frames=2)
    color0 = bytes([255, 0, 0] * 12)  # all red, R first
    color1 = bytes(range(36))
    depth0 = struct.pack("<4H", 0, 1000, 2500, 65535)
    depth1 = struct.pack("<4H", 1, 2, 3, 4)
    pose0 = [1, 0, 0, 1.5, 0, 1, 0, -2.0, 0, 0, 1, 0.75, 0, 0, 0, 1]  # translation in column 3
    pose1 = [-np.inf] * 16
    path = tmp_path / "hand.sens"
    path.write_bytes(head + pack_frame(pose0, 11, 12, color0, depth0) + pack_frame(pose1, 21, 22, color1, depth1))

    with SensReader(path) as reader:
        h = reader.header
        assert h.sensor_name == "hand-made" and h.num_frames == 2
        assert (h.intrinsic_color[0, 0], h.intrinsic_color[1, 1]) == (np.float32(fx), np.float32(fy))
        assert (h.intrinsic_color[0, 2], h.intrinsic_color[1, 2]) == (np.float32(cx), np.float32(cy))
        assert h.extrinsic_color[1, 0] == 4.0 and h.intrinsic_depth[0, 3] == 6.0 and h.extrinsic_depth[3, 2] == -14.0
        assert (h.color_compression, h.depth_compression) == ("raw", "raw_ushort")
        assert (h.color_width, h.color_height, h.depth_width, h.depth_height) == (4, 3, 2, 2)
        np.testing.assert_array_equal(reader.camera_to_world(0)[:3, 3], [1.5, -2.0, 0.75])
        assert np.all(np.isneginf(reader.camera_to_world(1)))
        assert (reader.frames[1].timestamp_color, reader.frames[1].timestamp_depth) == (21, 22)
        np.testing.assert_array_equal(reader.color(0)[2, 3], [255, 0, 0])
        np.testing.assert_array_equal(reader.color(1)[1, 2], [18, 19, 20])  # pixel (row 1, col 2) = bytes 18..20
        np.testing.assert_array_equal(reader.depth(0), [[0, 1000], [2500, 65535]])
        np.testing.assert_array_equal(reader.depth(1), [[1, 2], [3, 4]])
        assert reader.frames[0].color_offset == len(head) + 96
        assert reader.frames[1].depth_offset == len(head) + 2 * 96 + 36 + 8 + 36
        assert reader.num_imu_frames is None  # the file ends right after its last frame: no IMU trailer
        assert reader.imu_frames().shape == (0,) and reader.imu_frames().dtype == IMU_DTYPE


def test_reads_hand_packed_jpeg_zlib(tmp_path):
    # The codecs of real files, encoded in the test with cv2/zlib directly (BGR in, as cv2 wants).
    bgr_red = np.zeros((COLOR_H, COLOR_W, 3), np.uint8)
    bgr_red[..., 2] = 255
    jpeg = cv2.imencode(".jpg", bgr_red)[1].tobytes()
    depth = np.arange(DEPTH_H * DEPTH_W, dtype="<u2").reshape(DEPTH_H, DEPTH_W) * 7
    path = tmp_path / "hand_jpeg.sens"
    frame = pack_frame(np.eye(4).ravel(), 0, 0, jpeg, zlib.compress(depth.tobytes()))
    path.write_bytes(pack_header(num_frames=1) + frame)
    with SensReader(path) as reader:
        assert reader.color(0)[0, 0, 0] > 240 and reader.color(0)[0, 0, 2] < 15
        np.testing.assert_array_equal(reader.depth(0), depth)


def test_writer_output_parsed_with_struct(tmp_path):
    header = make_header("png")
    path = tmp_path / "w.sens"
    poses, colors, depths = write_sens(path, header, num_frames=3)
    data = path.read_bytes()

    assert struct.unpack_from("<I", data, 0) == (4,)
    (name_length,) = struct.unpack_from("<Q", data, 4)
    assert data[12 : 12 + name_length] == b"StructureSensor"
    pos = 12 + name_length
    matrices = np.array(struct.unpack_from("<64f", data, pos), dtype=np.float32).reshape(4, 4, 4)
    np.testing.assert_array_equal(matrices[0], header.intrinsic_color)
    np.testing.assert_array_equal(matrices[1], header.extrinsic_color)
    np.testing.assert_array_equal(matrices[2], header.intrinsic_depth)
    np.testing.assert_array_equal(matrices[3], header.extrinsic_depth)
    pos += 256
    assert struct.unpack_from("<ii4IfQ", data, pos) == (1, 1, 40, 30, 20, 16, 1000.0, 3)
    pos += 4 + 4 + 16 + 4 + 8
    for index in range(3):
        values = struct.unpack_from("<16f4Q", data, pos)
        np.testing.assert_array_equal(np.array(values[:16], np.float32).reshape(4, 4), poses[index])
        assert values[16:18] == (1_000_000 + 33_333 * index, 2_000_000 + 33_334 * index)
        color_size, depth_size = values[18:]
        pos += 96
        png = np.frombuffer(data[pos : pos + color_size], np.uint8)
        np.testing.assert_array_equal(cv2.imdecode(png, cv2.IMREAD_COLOR)[..., ::-1], colors[index])
        pos += color_size
        raw = zlib.decompress(data[pos : pos + depth_size])
        np.testing.assert_array_equal(np.frombuffer(raw, "<u2").reshape(DEPTH_H, DEPTH_W), depths[index])
        pos += depth_size
    # No IMU records were added: the file ends with the IMU count 0, as ScanNet's writer writes it.
    assert data[pos:] == struct.pack("<Q", 0) == bytes(8)


# -- IMU trailer ---------------------------------------------------------------------------------


def frames_end(data: bytes) -> int:
    """Byte offset just after the last frame, found by walking the layout with struct only."""
    (name_length,) = struct.unpack_from("<Q", data, 4)
    pos = 12 + name_length + 256 + 4 + 4 + 16 + 4
    (num_frames,) = struct.unpack_from("<Q", data, pos)
    pos += 8
    for _ in range(num_frames):
        color_size, depth_size = struct.unpack_from("<2Q", data, pos + 64 + 16)
        pos += 96 + color_size + depth_size
    return pos


# Distinct values per field and record (exactly representable, so == holds), and a timestamp
# beyond 2**63 to catch a signed or 32-bit timestamp.
IMU_RECORDS = [
    {
        "rotation_rate": (0.125 + k, -0.25 - k, 0.5),
        "acceleration": (1.0 + k, -9.8125, 2.0**-20),
        "magnetic_field": (-40.5, 12.25 + k, 3e5),
        "attitude": (0.0625, -1.5, 3.0 - k),
        "gravity": (-0.001953125, 0.75, -0.9921875 + k),
        "timestamp": timestamp,
    }
    for k, timestamp in enumerate([1_000_000, 1_010_000, 2**63 + 12345])
]


def pack_imu_record(record) -> bytes:
    """One 128-byte IMUFrame, field by field: five little-endian float64[3], then a uint64 timestamp."""
    out = b""
    for field in ("rotation_rate", "acceleration", "magnetic_field", "attitude", "gravity"):
        out += struct.pack("<ddd", *record[field])
    out += struct.pack("<Q", record["timestamp"])
    assert len(out) == 128
    return out


def write_sens_with_imu(path: Path, num_frames: int = 3, records=IMU_RECORDS):
    """A writer file whose IMU records are added before, between and after the frames."""
    poses, colors, depths = make_frames(num_frames)
    with SensWriter(path, make_header()) as writer:
        for index in range(max(num_frames, len(records))):
            if index < len(records):
                writer.add_imu(**records[index])
            if index < num_frames:
                writer.add_frame(poses[index], colors[index], depths[index], timestamp_color=index)
        assert writer.num_imu_frames == len(records)
    return depths


def test_writer_ends_with_the_imu_trailer(tmp_path):
    path = tmp_path / "imu.sens"
    write_sens_with_imu(path)
    data = path.read_bytes()
    expected = struct.pack("<Q", 3) + b"".join(pack_imu_record(record) for record in IMU_RECORDS)
    assert len(expected) == 8 + 3 * 128
    assert data[frames_end(data) :] == expected


def test_reader_reports_and_reads_the_written_imu_records(tmp_path):
    path = tmp_path / "imu.sens"
    depths = write_sens_with_imu(path)
    with SensReader(path) as reader:
        assert reader.num_imu_frames == 3 and len(reader) == 3
        np.testing.assert_array_equal(reader.depth(2), depths[2])
        imu = reader.imu_frames()
    assert imu.dtype == IMU_DTYPE and imu.shape == (3,)
    for index, record in enumerate(IMU_RECORDS):
        for field in ("rotation_rate", "acceleration", "magnetic_field", "attitude", "gravity"):
            assert imu[field][index].tolist() == list(record[field])
        assert int(imu["timestamp"][index]) == record["timestamp"]


def test_no_imu_records_means_count_zero(tmp_path):
    path = tmp_path / "none.sens"
    write_sens(path, make_header(), num_frames=2)
    data = path.read_bytes()
    assert frames_end(data) == len(data) - 8 and data[-8:] == bytes(8)
    with SensReader(path) as reader:
        assert reader.num_imu_frames == 0
        assert reader.imu_frames().shape == (0,)


def test_imu_records_without_frames(tmp_path):
    path = tmp_path / "only_imu.sens"
    with SensWriter(path, make_header()) as writer:
        writer.add_imu(**IMU_RECORDS[1])
    data = path.read_bytes()
    assert data[frames_end(data) :] == struct.pack("<Q", 1) + pack_imu_record(IMU_RECORDS[1])
    with SensReader(path) as reader:
        assert len(reader) == 0 and reader.num_imu_frames == 1
        assert int(reader.imu_frames()["timestamp"][0]) == 1_010_000


def test_reads_hand_packed_imu_trailer_and_ignores_bytes_after_it(tmp_path):
    frame = pack_frame(np.eye(4).ravel(), 5, 6, bytes(COLOR_W * COLOR_H * 3), bytes(DEPTH_W * DEPTH_H * 2))
    trailer = struct.pack("<Q", 2) + pack_imu_record(IMU_RECORDS[2]) + pack_imu_record(IMU_RECORDS[0])
    path = tmp_path / "hand_imu.sens"
    path.write_bytes(pack_header(color_code=0, depth_code=0, num_frames=1) + frame + trailer + b"extra bytes")
    with SensReader(path) as reader:
        assert reader.num_imu_frames == 2
        imu = reader.imu_frames()
        assert imu["timestamp"].tolist() == [2**63 + 12345, 1_000_000]
        assert imu["gravity"][0].tolist() == [-0.001953125, 0.75, -0.9921875 + 2]
        assert imu["magnetic_field"][1].tolist() == [-40.5, 12.25, 3e5]
        np.testing.assert_array_equal(reader.depth(0), np.zeros((DEPTH_H, DEPTH_W), np.uint16))


def test_file_without_imu_trailer_still_reads(tmp_path):
    path = tmp_path / "imu.sens"
    depths = write_sens_with_imu(path)
    data = path.read_bytes()
    cut = tmp_path / "no_trailer.sens"
    cut.write_bytes(data[: frames_end(data)])  # an older file, or a download that lost exactly the trailer
    with SensReader(cut) as reader:
        assert reader.num_imu_frames is None and len(reader) == 3
        np.testing.assert_array_equal(reader.depth(2), depths[2])
        assert reader.imu_frames().shape == (0,)


@pytest.mark.parametrize(
    ("count", "records_kept", "pattern"),
    [
        (5, 0, r"says 5 records \(5 x 128 = 640 bytes\), but only 0 bytes follow it"),
        (3, 2.5, r"says 3 records \(3 x 128 = 384 bytes\), but only 320 bytes follow it \(room for 2 records"),
        (2**63, 3, r"says 9223372036854775808 records .* but only 384 bytes follow it \(room for 3 records"),
    ],
    ids=["count_without_records", "last_record_cut", "absurd_count"],
)
def test_imu_count_larger_than_the_rest_of_the_file(tmp_path, count, records_kept, pattern):
    path = tmp_path / "imu.sens"
    write_sens_with_imu(path)
    data = path.read_bytes()
    end = frames_end(data)
    bad = tmp_path / "bad_imu.sens"
    bad.write_bytes(data[:end] + struct.pack("<Q", count) + data[end + 8 : end + 8 + int(records_kept * 128)])
    with pytest.raises(DataFormatError, match=pattern) as info:
        SensReader(bad)
    message = str(info.value)
    assert message.startswith(f"{bad}: truncated or corrupt IMU trailer: the IMU record count at byte {end} ")
    assert message.endswith("download the file again")


def test_add_imu_checks_its_arguments(tmp_path):
    good = IMU_RECORDS[0]
    with SensWriter(tmp_path / "x.sens", make_header()) as writer:
        with pytest.raises(ValueError, match=r"gravity must be 3 numbers, got shape \(4,\)"):
            writer.add_imu(**{**good, "gravity": (0, 0, 1, 0)})
        with pytest.raises(TypeError, match=r"timestamp must be an integer, got 1.5"):
            writer.add_imu(**{**good, "timestamp": 1.5})
        with pytest.raises(ValueError, match=r"timestamp must be in 0..2\*\*64-1, got -1"):
            writer.add_imu(**{**good, "timestamp": -1})
        with pytest.raises(TypeError):
            writer.add_imu(*good.values())  # keyword-only: five look-alike vectors are too easy to swap
        assert writer.num_imu_frames == 0
    with pytest.raises(ValueError, match="SensWriter is closed"):
        writer.add_imu(**good)
    with SensReader(tmp_path / "x.sens") as reader:
        assert reader.num_imu_frames == 0


# -- streaming -----------------------------------------------------------------------------------


class CountingFile:
    """Wraps a binary file and counts the bytes read through it."""

    def __init__(self, raw):
        self._raw = raw
        self.bytes_read = 0

    def read(self, n=-1):
        data = self._raw.read(n)
        self.bytes_read += len(data)
        return data

    def __getattr__(self, name):
        return getattr(self._raw, name)


def test_random_access_reads_only_requested_payloads(tmp_path, monkeypatch):
    path = tmp_path / "stream.sens"
    poses, colors, depths = write_sens(path, make_header("png"), num_frames=10)
    opened = []

    def counting_open(*args, **kwargs):
        opened.append(CountingFile(open(*args, **kwargs)))
        return opened[-1]

    monkeypatch.setattr(sens_module, "open", counting_open, raising=False)
    with SensReader(path) as reader:
        (counter,) = opened
        head_size = reader.frames[0].color_offset - 96
        # the index reads frame headers only, and the 8-byte IMU count after the last frame
        assert counter.bytes_read == head_size + 10 * 96 + 8
        np.testing.assert_array_equal(reader.color(7), colors[7])
        np.testing.assert_array_equal(reader.depth(7), depths[7])
        np.testing.assert_array_equal(reader.color(2), colors[2])
        np.testing.assert_array_equal(reader.depth(2), depths[2])
        np.testing.assert_array_equal(reader.camera_to_world(7), poses[7])
        payloads = sum(reader.frames[i].color_size + reader.frames[i].depth_size for i in (7, 2))
    assert counter.bytes_read == head_size + 10 * 96 + 8 + payloads
    assert counter.bytes_read < path.stat().st_size / 3


# -- bad input -----------------------------------------------------------------------------------


@pytest.fixture
def good_file(tmp_path):
    path = tmp_path / "good.sens"
    write_sens(path, make_header(), num_frames=4)
    return path


@pytest.mark.parametrize(
    "where", ["version", "name", "calibration", "frame_count", "frame_header", "payload", "last_frame_byte",
              "imu_count"]
)
def test_truncated_file(tmp_path, good_file, where):
    data = good_file.read_bytes()
    with SensReader(good_file) as reader:
        frame2 = reader.frames[2]
        frame3 = reader.frames[3]
    frames_end = frame3.depth_offset + frame3.depth_size
    assert frames_end == len(data) - 8  # the IMU count (0) follows the last frame
    name_end = 12 + len("StructureSensor")
    cut = {
        "version": 2,
        "name": 16,
        "calibration": name_end + 100,
        "frame_count": name_end + 290,
        "frame_header": frame2.color_offset - 50,
        "payload": frame2.color_offset + frame2.color_size // 2,
        "last_frame_byte": frames_end - 1,
        "imu_count": len(data) - 3,
    }[where]
    path = tmp_path / "cut.sens"
    path.write_bytes(data[:cut])
    with pytest.raises(DataFormatError) as info:
        SensReader(path)
    message = str(info.value)
    assert str(path) in message and "truncated" in message and "download the file again" in message
    if where in ("frame_header", "payload"):
        assert "frame 2 " in message
        assert f"{frame2.color_size} colour" in message or "96-byte frame header" in message
    if where == "last_frame_byte":
        assert "frame 3 " in message
    if where == "imu_count":
        assert f"8-byte IMU record count after the last frame (at byte {frames_end}) is cut off" in message
        assert "only 5 bytes are present" in message


def test_wrong_version(tmp_path):
    path = tmp_path / "v3.sens"
    path.write_bytes(pack_header(version=3))
    with pytest.raises(DataFormatError, match=r"v3\.sens: unsupported \.sens version 3"):
        SensReader(path)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"color_code": 7}, r"'color_compression'\) = 7 \(unknown value\)"),
        ({"color_code": -1}, r"'color_compression'\) = -1 \('unknown'"),
        ({"depth_code": 2}, r"'depth_compression'\) = 2 \('occi_ushort'"),
        ({"sizes": (0, COLOR_H, DEPTH_W, DEPTH_H)}, r"corrupt header: color_width = 0"),
        ({"sizes": (COLOR_W, COLOR_H, DEPTH_W, 0)}, r"corrupt header: depth_height = 0"),
    ],
)
def test_bad_header_fields(tmp_path, kwargs, pattern):
    path = tmp_path / "bad.sens"
    path.write_bytes(pack_header(**kwargs))
    with pytest.raises(DataFormatError, match=pattern) as info:
        SensReader(path)
    assert str(path) in str(info.value)


def test_absurd_name_length(tmp_path):
    path = tmp_path / "name.sens"
    path.write_bytes(struct.pack("<IQ", 4, 1 << 40) + b"x" * 400)
    with pytest.raises(DataFormatError, match=r"corrupt header: sensor-name length 1099511627776"):
        SensReader(path)


def test_corrupt_jpeg_in_one_frame(tmp_path):
    header = make_header()
    poses, colors, depths = make_frames(3)
    path = tmp_path / "corrupt.sens"
    with SensWriter(path, header) as writer:
        for index in range(3):
            garbage = b"\x00not a jpeg" * 40
            color_bytes = garbage if index == 1 else encode_color(colors[index])
            writer.add_frame(poses[index], color_bytes=color_bytes, depth=depths[index])
    with SensReader(path) as reader:
        assert reader.color(0).shape == (COLOR_H, COLOR_W, 3)
        assert reader.color(2).shape == (COLOR_H, COLOR_W, 3)
        np.testing.assert_array_equal(reader.depth(1), depths[1])
        expected = r"corrupt\.sens: frame 1: colour payload \(440 bytes\) is not a decodable jpeg"
        with pytest.raises(DataFormatError, match=expected):
            reader.color(1)


def test_colour_of_wrong_size(tmp_path):
    path = tmp_path / "size.sens"
    with SensWriter(path, make_header()) as writer:
        small = np.full((COLOR_H // 2, COLOR_W, 3), 128, np.uint8)
        writer.add_frame(np.eye(4), color_bytes=encode_color(small), depth=np.zeros((DEPTH_H, DEPTH_W), np.uint16))
    with SensReader(path) as reader, pytest.raises(
        DataFormatError, match=r"size\.sens: frame 0: colour image decodes to 40x15 pixels but the header says 40x30"
    ):
        reader.color(0)


@pytest.mark.parametrize(
    ("depth_bytes", "pattern"),
    [
        (zlib.compress(b"\x01\x00" * (DEPTH_W * DEPTH_H - 1)), r"holds 638 bytes of uint16 depth, expected 640"),
        (zlib.compress(b"\x01\x00" * (DEPTH_W * DEPTH_H + 5)), r"decompresses to more than 640 bytes"),
        (zlib.compress(b"\x01\x00" * (DEPTH_W * DEPTH_H))[:-6], r"is a cut-off zlib stream"),
        (b"definitely not zlib", r"is not valid zlib data"),
    ],
    ids=["too_small", "too_large", "cut_off_stream", "not_zlib"],
)
def test_depth_payload_of_wrong_size(tmp_path, depth_bytes, pattern):
    path = tmp_path / "depth.sens"
    good_depth = np.full((DEPTH_H, DEPTH_W), 1234, np.uint16)
    color = np.zeros((COLOR_H, COLOR_W, 3), np.uint8)
    with SensWriter(path, make_header()) as writer:
        writer.add_frame(np.eye(4), color, good_depth)
        writer.add_frame(np.eye(4), color, depth_bytes=depth_bytes)
    with SensReader(path) as reader:
        np.testing.assert_array_equal(reader.depth(0), good_depth)
        with pytest.raises(DataFormatError, match=r"depth\.sens: frame 1: depth payload " + pattern):
            reader.depth(1)
        with pytest.raises(DataFormatError, match=r"depth\.sens: frame 1: "):
            reader.depth(-1)  # negative indices name the real frame


def test_decode_depth_without_file_names_a_placeholder_source():
    with pytest.raises(DataFormatError, match=r"^<\.sens depth payload>: depth payload holds 2 bytes"):
        decode_depth(b"\x00\x00", make_header("jpeg", "raw_ushort"))


# -- writer --------------------------------------------------------------------------------------


def test_writer_exception_leaves_nothing(tmp_path):
    path = tmp_path / "scene.sens"
    poses, colors, depths = make_frames(2)
    with pytest.raises(RuntimeError, match="boom"):
        with SensWriter(path, make_header()) as writer:
            writer.add_frame(poses[0], colors[0], depths[0])
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_writer_exception_keeps_existing_file(tmp_path):
    path = tmp_path / "scene.sens"
    write_sens(path, make_header(), num_frames=2)
    before = path.read_bytes()
    poses, colors, depths = make_frames(2)
    with pytest.raises(ValueError, match=r"color must have shape \(30, 40, 3\)"):
        with SensWriter(path, make_header()) as writer:
            writer.add_frame(poses[0], colors[0], depths[0])
            writer.add_frame(poses[1], colors[1][:10], depths[1])  # wrong size: raises inside the block
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.sens"]


def test_writer_file_appears_only_on_close(tmp_path):
    path = tmp_path / "scene.sens"
    poses, colors, depths = make_frames(1)
    writer = SensWriter(path, make_header())
    writer.add_frame(poses[0], colors[0], depths[0])
    assert not path.exists()
    assert writer.close() == path
    with SensReader(path) as reader:
        assert len(reader) == 1


def test_writer_wants_exactly_one_colour_source(tmp_path):
    poses, colors, depths = make_frames(1)
    with pytest.raises(ValueError, match="exactly one of color and color_bytes"):
        with SensWriter(tmp_path / "x.sens", make_header()) as writer:
            writer.add_frame(poses[0], colors[0], depths[0], color_bytes=b"\xff\xd8")
    assert not (tmp_path / "x.sens").exists()


def test_encode_depth_is_zlib_of_little_endian_buffer():
    depth = np.array([[1, 256], [65535, 0]], dtype=np.uint16)
    assert zlib.decompress(encode_depth(depth)) == bytes([1, 0, 0, 1, 255, 255, 0, 0])


# -- benchmark -----------------------------------------------------------------------------------


def test_bench_sens_memory_small(tmp_path):
    sizes = dict(target_bytes=3_000_000, num_reads=4, color_size=(320, 240), depth_size=(160, 120))
    result = bench_sens_memory(tmp_path, **sizes)
    assert result["file_bytes"] >= 3_000_000 == result["target_bytes"]
    assert result["file_bytes"] == os.path.getsize(result["file"])
    assert result["decoded_frame_bytes"] == 320 * 240 * 3 + 160 * 120 * 2
    frames = result["num_frames_in_file"]
    assert result["frames_read"] == [0, round((frames - 1) / 3), round(2 * (frames - 1) / 3), frames - 1]
    assert result["encoded_bytes_read"] == pytest.approx(4 * result["encoded_frame_bytes_mean"])
    assert result["peak_rss_bytes_baseline"] > 0
    assert result["peak_rss_bytes_after"] >= result["peak_rss_bytes_after_open"] >= result["peak_rss_bytes_baseline"]
    assert result["rss_increase_bytes"] == result["peak_rss_bytes_after"] - result["peak_rss_bytes_baseline"]
    increase_in_frames = result["rss_increase_bytes"] / result["decoded_frame_bytes"]
    assert result["rss_increase_in_frames"] == pytest.approx(increase_in_frames)
    assert result["file_reused"] is False
    again = bench_sens_memory(tmp_path, **sizes)
    assert again["file_reused"] is True and again["file_bytes"] == result["file_bytes"]
