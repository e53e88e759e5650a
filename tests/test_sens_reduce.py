"""SensReader.color / decode_color with ``reduce``: decoded size, content, codecs and errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from jointwsss.io.errors import DataFormatError
from jointwsss.io.sens import SensHeader, SensReader, SensWriter, decode_color, encode_color, reduced_color_size


def make_header(width: int, height: int, color_compression: str = "jpeg") -> SensHeader:
    return SensHeader(
        sensor_name="StructureSensor",
        intrinsic_color=np.eye(4),
        extrinsic_color=np.eye(4),
        intrinsic_depth=np.eye(4),
        extrinsic_depth=np.eye(4),
        color_compression=color_compression,
        depth_compression="zlib_ushort",
        color_width=width,
        color_height=height,
        depth_width=8,
        depth_height=6,
        depth_shift=1000.0,
    )


def smooth_image(width: int, height: int) -> np.ndarray:
    rows = np.linspace(0, 1, height)[:, None]
    cols = np.linspace(0, 1, width)[None, :]
    channels = np.broadcast_arrays(30 + 180 * cols, 50 + 150 * rows, 128 + 90 * np.sin(4 * cols + 3 * rows))
    return np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("reduce", [1, 2, 4, 8])
def test_reader_jpeg_reduce_is_an_area_downsample(tmp_path, reduce):
    header = make_header(128, 96)
    rgb = smooth_image(128, 96)
    path = tmp_path / "scene.sens"
    with SensWriter(path, header) as writer:
        writer.add_frame(np.eye(4), rgb, np.zeros((6, 8), dtype=np.uint16))
    with SensReader(path) as reader:
        reduced = reader.color(0, reduce=reduce)
        full = reader.color(0)
    assert reduced.shape == (96 // reduce, 128 // reduce, 3) and reduced.dtype == np.uint8
    expected = cv2.resize(full, (128 // reduce, 96 // reduce), interpolation=cv2.INTER_AREA).astype(int)
    difference = np.abs(reduced.astype(int) - expected)
    # DCT scaling approximates box averaging of the decoded image up to JPEG rounding; RGB order must match
    # (a BGR result would differ by > 50 in the red and blue channels of this image).
    assert difference.mean() < 1.5 and difference.max() <= 8


def test_jpeg_reduce_rounds_partial_pixels_up():
    header = make_header(70, 50)
    data = encode_color(smooth_image(70, 50), "jpeg")
    assert reduced_color_size(header, 4) == (18, 13)
    assert decode_color(data, header, reduce=4).shape == (13, 18, 3)
    assert decode_color(data, header, reduce=8).shape == (7, 9, 3)


@pytest.mark.parametrize("compression", ["png", "raw"])
def test_lossless_codecs_reduce_by_area_resize(compression):
    header = make_header(40, 30, compression)
    rgb = np.random.default_rng(1).integers(0, 256, (30, 40, 3)).astype(np.uint8)
    data = encode_color(rgb, compression)
    np.testing.assert_array_equal(decode_color(data, header), rgb)
    np.testing.assert_array_equal(
        decode_color(data, header, reduce=2), cv2.resize(rgb, (20, 15), interpolation=cv2.INTER_AREA)
    )


def test_invalid_reduce_is_rejected():
    header = make_header(40, 30)
    data = encode_color(smooth_image(40, 30), "jpeg")
    with pytest.raises(ValueError, match=r"reduce must be one of \(1, 2, 4, 8\), got 3"):
        decode_color(data, header, reduce=3)


def test_reduced_jpeg_of_wrong_size_names_file_and_frame():
    header = make_header(64, 48)
    data = encode_color(smooth_image(64, 32), "jpeg")  # 32 rows, header says 48
    with pytest.raises(
        DataFormatError,
        match=r"cam\.sens: frame 5: colour image decodes to 32x16 pixels but the header says 64x48 "
        r"\(expected 32x24 at 1/2 size\)",
    ):
        decode_color(data, header, source="cam.sens", frame=5, reduce=2)
