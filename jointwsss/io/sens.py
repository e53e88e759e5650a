"""ScanNet ``.sens`` RGB-D streams (version 4): a streaming reader and an atomic writer.

Byte layout, little-endian (the layout of ScanNet's own SensReader)::

    uint32   version (4)
    uint64   sensor-name length N, then N bytes of name
    4 x float32[16]  colour intrinsic, colour extrinsic, depth intrinsic, depth extrinsic
                     (each a 4x4 matrix stored row-major, i.e. numpy ``.tobytes()`` of a C-order array)
    int32    colour compression (COLOR_COMPRESSION)
    int32    depth compression (DEPTH_COMPRESSION)
    uint32   colour width, colour height, depth width, depth height (pixels)
    float32  depth shift (raw depth units per metre; 1000 for ScanNet, i.e. millimetres)
    uint64   frame count F
    F x frame:
        float32[16] camera_to_world (row-major; all -inf for a frame the tracker lost)
        uint64 colour timestamp, uint64 depth timestamp
        uint64 colour byte count C, uint64 depth byte count D
        C colour bytes, D depth bytes
    uint64   IMU record count M (the trailer; ScanNet's own writer always writes it, 0 if none)
    M x IMU record, 128 bytes each (IMU_DTYPE):
        float64[3] rotation rate, acceleration, magnetic field, attitude, gravity
        uint64 timestamp

The IMU trailer follows ScanNet's ``IMUFrame``: rotation rate, acceleration and magnetic field are
the device's raw readings, attitude its (roll, pitch, yaw) estimate and gravity its gravity-direction
estimate. ScanNet's code states no units for them; they are stored as the capture device reports
them. The record timestamp uses the frames' clock and unit (ScanNet: "typically microseconds").
:class:`SensWriter` always writes the trailer; :class:`SensReader` accepts files without one
(see :attr:`SensReader.num_imu_frames`) and ignores any bytes after the last IMU record, as
ScanNet's reader does.

Real ScanNet files hold 1296x968 JPEG colour and 640x480 depth compressed with zlib (the raw
little-endian uint16 buffer), depth shift 1000; a depth of 0 means "no measurement".

A scene's file is hundreds of MB to several GB, so :class:`SensReader` never holds more than the
frame it was asked for: opening indexes the frames by reading only the 96-byte frame headers and
seeking over the payloads, and each payload is read on demand with seek + read.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np

from jointwsss.io.atomic import atomic_path
from jointwsss.io.errors import DataFormatError

COLOR_COMPRESSION: dict[int, str] = {-1: "unknown", 0: "raw", 1: "png", 2: "jpeg"}
DEPTH_COMPRESSION: dict[int, str] = {-1: "unknown", 0: "raw_ushort", 1: "zlib_ushort", 2: "occi_ushort"}

# Codecs this module can decode and encode; "unknown" and "occi_ushort" exist in the format but
# have no decoder here (ScanNet never uses them).
SUPPORTED_COLOR_COMPRESSION = ("raw", "png", "jpeg")
SUPPORTED_DEPTH_COMPRESSION = ("raw_ushort", "zlib_ushort")

SENS_VERSION = 4

_VERSION = struct.Struct("<I")
_NAME_LENGTH = struct.Struct("<Q")
# four 4x4 matrices, two compression codes, four sizes, depth shift, frame count
_HEADER_AFTER_NAME = struct.Struct("<64f2i4If")
_FRAME_COUNT = struct.Struct("<Q")
# camera_to_world, colour + depth timestamps, colour + depth byte counts
_FRAME_HEADER = struct.Struct("<16f4Q")
FRAME_HEADER_BYTES = _FRAME_HEADER.size  # bytes before each frame's payloads (96)
_IMU_COUNT = struct.Struct("<Q")
IMU_COUNT_BYTES = _IMU_COUNT.size  # the IMU record count after the last frame (8)
# rotation rate, acceleration, magnetic field, attitude, gravity (3 float64 each), timestamp
_IMU_RECORD = struct.Struct("<15dQ")
IMU_RECORD_BYTES = _IMU_RECORD.size  # one IMU record (128)
#: One IMU record as a numpy structured dtype; :meth:`SensReader.imu_frames` returns an array of it.
IMU_DTYPE = np.dtype(
    [
        ("rotation_rate", "<f8", (3,)),
        ("acceleration", "<f8", (3,)),
        ("magnetic_field", "<f8", (3,)),
        ("attitude", "<f8", (3,)),
        ("gravity", "<f8", (3,)),
        ("timestamp", "<u8"),
    ]
)
assert IMU_DTYPE.itemsize == IMU_RECORD_BYTES

# A sensor name is a short ASCII string ("StructureSensor"); a length beyond this means the
# header is garbage, and reading it would allocate whatever the garbage says.
_MAX_NAME_BYTES = 1 << 20
# Largest plausible image side in pixels; beyond it the header is garbage.
_MAX_IMAGE_SIDE = 1 << 15

_REDOWNLOAD = "the download was probably cut off; download the file again"


def _matrix4x4(value, name: str) -> np.ndarray:
    """``value`` as a read-only (4, 4) float32 array; ValueError if it has another shape."""
    matrix = np.array(value, dtype=np.float32)
    if matrix.shape != (4, 4):
        raise ValueError(f"{name} must be a 4x4 matrix, got shape {matrix.shape}")
    matrix.setflags(write=False)
    return matrix


# eq=False: the fields hold numpy arrays, whose == is elementwise, so a generated __eq__ would
# raise "truth value of an array is ambiguous" instead of comparing.
@dataclass(frozen=True, eq=False)
class SensHeader:
    """Stream-wide metadata of a ``.sens`` file.

    Matrices are (4, 4) float32, read-only; intrinsics are in pixels of their stream.
    ``depth_shift`` converts raw depth to metres: metres = raw / depth_shift (1000 -> millimetres).
    ``num_frames`` is filled by the reader and ignored by the writer (which counts frames itself).
    """

    sensor_name: str
    intrinsic_color: np.ndarray
    extrinsic_color: np.ndarray
    intrinsic_depth: np.ndarray
    extrinsic_depth: np.ndarray
    color_compression: str
    depth_compression: str
    color_width: int
    color_height: int
    depth_width: int
    depth_height: int
    depth_shift: float
    num_frames: int = 0
    version: int = SENS_VERSION

    def __post_init__(self) -> None:
        for name in ("intrinsic_color", "extrinsic_color", "intrinsic_depth", "extrinsic_depth"):
            object.__setattr__(self, name, _matrix4x4(getattr(self, name), name))
        if self.color_compression not in SUPPORTED_COLOR_COMPRESSION:
            raise ValueError(
                f"color_compression {self.color_compression!r} is not one of {SUPPORTED_COLOR_COMPRESSION}"
            )
        if self.depth_compression not in SUPPORTED_DEPTH_COMPRESSION:
            raise ValueError(
                f"depth_compression {self.depth_compression!r} is not one of {SUPPORTED_DEPTH_COMPRESSION}"
            )
        for name in ("color_width", "color_height", "depth_width", "depth_height"):
            side = int(getattr(self, name))
            if not 0 < side <= _MAX_IMAGE_SIDE:
                raise ValueError(f"{name} must be in 1..{_MAX_IMAGE_SIDE} pixels, got {side}")
            object.__setattr__(self, name, side)
        depth_shift = float(self.depth_shift)
        if not (np.isfinite(depth_shift) and depth_shift > 0):
            raise ValueError(f"depth_shift must be a positive finite number, got {depth_shift}")
        object.__setattr__(self, "depth_shift", depth_shift)

    @property
    def decoded_color_bytes(self) -> int:
        """Bytes of one decoded colour frame, (H, W, 3) uint8."""
        return self.color_width * self.color_height * 3

    @property
    def decoded_depth_bytes(self) -> int:
        """Bytes of one decoded depth frame, (Hd, Wd) uint16."""
        return self.depth_width * self.depth_height * 2


@dataclass(frozen=True, eq=False)
class SensFrameInfo:
    """Where one frame's payloads lie in the file, plus its pose and timestamps.

    ``camera_to_world``: (4, 4) float32, read-only; all -inf for an invalid pose.
    Offsets and sizes are in bytes from the start of the file.
    """

    camera_to_world: np.ndarray
    timestamp_color: int
    timestamp_depth: int
    color_offset: int
    color_size: int
    depth_offset: int
    depth_size: int


def _frame_label(frame: int | None) -> str:
    return "" if frame is None else f"frame {frame}: "


# JPEG decode flags per ``reduce`` factor: libjpeg scales the DCT while decoding, so a 1/n-size
# image costs a fraction of a full decode (and no resize afterwards).
_REDUCED_JPEG_FLAGS = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


def reduced_color_size(header: SensHeader, reduce: int) -> tuple[int, int]:
    """(width, height) in pixels of a colour frame decoded with ``reduce`` (libjpeg's rule: ceil(side / reduce))."""
    if reduce not in _REDUCED_JPEG_FLAGS:
        raise ValueError(f"reduce must be one of {tuple(_REDUCED_JPEG_FLAGS)}, got {reduce!r}")
    return -(-header.color_width // reduce), -(-header.color_height // reduce)


def decode_color(
    data: bytes,
    header: SensHeader,
    *,
    source: str | os.PathLike = "<.sens colour payload>",
    frame: int | None = None,
    reduce: int = 1,
) -> np.ndarray:
    """Decode one colour payload to (H, W, 3) uint8 RGB (not BGR), checked against the header size.

    ``reduce`` (1, 2, 4 or 8) returns the image at 1/reduce size, ``reduced_color_size(header,
    reduce)``. JPEG payloads are decoded directly at that size (libjpeg DCT scaling, much faster
    than a full decode); raw and PNG payloads are decoded fully and area-averaged down.
    ``source`` and ``frame`` only label the DataFormatError raised for a payload that does not
    decode or decodes to another size.
    """
    reduced_width, reduced_height = reduced_color_size(header, reduce)
    where = _frame_label(frame)
    if header.color_compression == "raw":
        if len(data) != header.decoded_color_bytes:
            raise DataFormatError(
                source,
                f"{where}raw colour payload has {len(data)} bytes, expected "
                f"{header.decoded_color_bytes} (= {header.color_width} x {header.color_height} x 3)",
            )
        rgb = np.frombuffer(data, dtype=np.uint8).reshape(header.color_height, header.color_width, 3)
        if reduce == 1:
            return rgb.copy()
        return cv2.resize(rgb, (reduced_width, reduced_height), interpolation=cv2.INTER_AREA)
    encoded = np.frombuffer(data, dtype=np.uint8)
    jpeg = header.color_compression == "jpeg"
    flags = _REDUCED_JPEG_FLAGS[reduce] if jpeg else cv2.IMREAD_COLOR
    bgr = cv2.imdecode(encoded, flags) if encoded.size else None
    if bgr is None:
        raise DataFormatError(
            source,
            f"{where}colour payload ({len(data)} bytes) is not a decodable {header.color_compression} image",
            "the file is corrupt; download it again",
        )
    decoded_shape = (reduced_height, reduced_width, 3) if jpeg else (header.color_height, header.color_width, 3)
    if bgr.shape != decoded_shape:
        scaled = f" (expected {reduced_width}x{reduced_height} at 1/{reduce} size)" if jpeg and reduce > 1 else ""
        raise DataFormatError(
            source,
            f"{where}colour image decodes to {bgr.shape[1]}x{bgr.shape[0]} pixels but the header says "
            f"{header.color_width}x{header.color_height}{scaled}",
        )
    if not jpeg and reduce > 1:
        bgr = cv2.resize(bgr, (reduced_width, reduced_height), interpolation=cv2.INTER_AREA)
    # OpenCV decodes to BGR; everything downstream expects RGB.
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def decode_depth(
    data: bytes,
    header: SensHeader,
    *,
    source: str | os.PathLike = "<.sens depth payload>",
    frame: int | None = None,
) -> np.ndarray:
    """Decode one depth payload to (Hd, Wd) uint16 in raw units (metres = raw / header.depth_shift).

    ``source`` and ``frame`` only label the DataFormatError raised for a payload of the wrong size.
    """
    expected_bytes = header.decoded_depth_bytes
    where = _frame_label(frame)
    if header.depth_compression == "zlib_ushort":
        decompressor = zlib.decompressobj()
        try:
            # Cap the output one byte past the expected size, so a corrupt payload cannot make us
            # allocate more than a frame and an oversized one is still detected.
            raw = decompressor.decompress(data, expected_bytes + 1)
        except zlib.error as exc:
            raise DataFormatError(
                source, f"{where}depth payload is not valid zlib data ({exc})", "the file is corrupt; download it again"
            ) from exc
        if len(raw) > expected_bytes:
            raise DataFormatError(
                source,
                f"{where}depth payload decompresses to more than {expected_bytes} bytes "
                f"(= {header.depth_width} x {header.depth_height} x 2)",
            )
        if not decompressor.eof:
            raise DataFormatError(
                source,
                f"{where}depth payload is a cut-off zlib stream ({len(raw)} of {expected_bytes} bytes decoded)",
                "the file is corrupt; download it again",
            )
    else:  # raw_ushort
        raw = data
    if len(raw) != expected_bytes:
        raise DataFormatError(
            source,
            f"{where}depth payload holds {len(raw)} bytes of uint16 depth, expected {expected_bytes} "
            f"(= {header.depth_width} x {header.depth_height} x 2)",
        )
    # "<u2": the file is little-endian whatever the machine; astype gives a writable native copy.
    return np.frombuffer(raw, dtype="<u2").reshape(header.depth_height, header.depth_width).astype(np.uint16)


def encode_color(rgb: np.ndarray, compression: str = "jpeg", jpeg_quality: int = 90) -> bytes:
    """Encode a (H, W, 3) uint8 RGB image as a ``.sens`` colour payload ("jpeg", "png" or "raw")."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"colour must be (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
    if compression == "raw":
        return np.ascontiguousarray(rgb).tobytes()
    bgr = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    if compression == "jpeg":
        ok, buffer = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    elif compression == "png":
        ok, buffer = cv2.imencode(".png", bgr)
    else:
        raise ValueError(f"colour compression {compression!r} is not one of {SUPPORTED_COLOR_COMPRESSION}")
    if not ok:
        raise ValueError(f"OpenCV failed to encode a {rgb.shape} image as {compression}")
    return buffer.tobytes()


def encode_depth(depth: np.ndarray, compression: str = "zlib_ushort") -> bytes:
    """Encode (Hd, Wd) uint16 raw depth as a ``.sens`` depth payload ("zlib_ushort" or "raw_ushort")."""
    depth = np.asarray(depth)
    if depth.dtype != np.uint16 or depth.ndim != 2:
        raise ValueError(f"depth must be (Hd, Wd) uint16, got {depth.shape} {depth.dtype}")
    raw = np.ascontiguousarray(depth, dtype="<u2").tobytes()
    if compression == "zlib_ushort":
        return zlib.compress(raw)
    if compression == "raw_ushort":
        return raw
    raise ValueError(f"depth compression {compression!r} is not one of {SUPPORTED_DEPTH_COMPRESSION}")


def imu_trailer_size_bytes(num_imu_frames: int = 0) -> int:
    """Bytes :class:`SensWriter` writes after the last frame: the IMU count plus ``num_imu_frames`` records."""
    return IMU_COUNT_BYTES + num_imu_frames * IMU_RECORD_BYTES


def _read_exact(f: BinaryIO, n: int) -> bytes:
    """Read up to ``n`` bytes, looping over short reads; fewer only at end of file."""
    chunks = []
    remaining = n
    while remaining > 0:
        chunk = f.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class SensReader:
    """Streaming reader of a ``.sens`` file; use as a context manager.

    Opening parses and validates the header and indexes every frame (pose, timestamps, payload
    offsets) by reading only the frame headers; payloads are read on demand, one frame at a time.
    Every bad-input problem raises :class:`DataFormatError` naming the file (and the frame).

    Opening also reads the 8-byte IMU count after the last frame and checks that its records fit
    in the file; the records themselves are read only by :meth:`imu_frames`.
    ``num_imu_frames`` is that count, or None for a file that ends right after its last frame
    (no trailer at all, as older synthetic files and some cut-off downloads do); such a file reads
    as before. A trailer that is present but cut short (a partial count, or a count whose records
    do not fit in the rest of the file) is a DataFormatError. Bytes after the last record are ignored.
    """

    def __init__(self, path: str | os.PathLike | BinaryIO):
        if hasattr(path, "read"):
            # An open seekable binary file (e.g. jointwsss.io.ranged.RangeFile over HTTP); the caller closes it.
            self.path = getattr(path, "name", "<stream>")
            self._file, self._owns_file = path, False
        else:
            self.path = Path(path)
            # Unbuffered: every read is exactly what we ask for, never a read-ahead into payloads.
            self._file, self._owns_file = open(self.path, "rb", buffering=0), True
        try:
            self._file_bytes = self._file.seek(0, os.SEEK_END)
            self._file.seek(0)
            self.header = self._read_header()
            self.frames: list[SensFrameInfo] = self._index_frames()
            self.num_imu_frames: int | None = self._read_imu_count()
        except BaseException:
            self.close()
            raise

    # -- parsing ---------------------------------------------------------------------------
    def _read_header_field(self, layout: struct.Struct, what: str) -> tuple:
        offset = self._file.tell()
        data = _read_exact(self._file, layout.size)
        if len(data) < layout.size:
            raise DataFormatError(
                self.path,
                f"truncated: the header ends inside {what} (needs {layout.size} bytes at offset {offset}, "
                f"only {len(data)} present; file is {self._file_bytes} bytes)",
                _REDOWNLOAD,
            )
        return layout.unpack(data)

    def _codec(self, field: str, code: int, names: dict[int, str], supported: tuple[str, ...]) -> str:
        """Name of a compression code from the header; DataFormatError naming the field if we cannot decode it."""
        name = names.get(code)
        if name not in supported:
            known = "unknown value" if name is None else f"'{name}', which cannot be decoded"
            label = "colour" if field.startswith("color") else "depth"
            raise DataFormatError(
                self.path, f"unsupported {label} compression (field '{field}') = {code} ({known}); supported: {supported}"
            )
        return name

    def _read_header(self) -> SensHeader:
        (version,) = self._read_header_field(_VERSION, "the version number")
        if version != SENS_VERSION:
            raise DataFormatError(
                self.path,
                f"unsupported .sens version {version} (field 'version'; only version {SENS_VERSION} is supported)",
            )
        (name_length,) = self._read_header_field(_NAME_LENGTH, "the sensor-name length")
        if name_length > _MAX_NAME_BYTES:
            raise DataFormatError(
                self.path,
                f"corrupt header: sensor-name length {name_length} bytes is absurd (limit {_MAX_NAME_BYTES})",
            )
        name_bytes = _read_exact(self._file, name_length)
        if len(name_bytes) < name_length:
            raise DataFormatError(
                self.path,
                f"truncated: the header ends inside the sensor name ({name_length} bytes expected, "
                f"{len(name_bytes)} present)",
                _REDOWNLOAD,
            )
        try:
            sensor_name = name_bytes.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataFormatError(self.path, f"corrupt header: sensor name is not text ({exc})") from exc
        values = self._read_header_field(_HEADER_AFTER_NAME, "the calibration / image-size block")
        matrices = np.array(values[:64], dtype=np.float32).reshape(4, 4, 4)
        color_code, depth_code, color_width, color_height, depth_width, depth_height, depth_shift = values[64:]
        color_compression = self._codec("color_compression", color_code, COLOR_COMPRESSION, SUPPORTED_COLOR_COMPRESSION)
        depth_compression = self._codec("depth_compression", depth_code, DEPTH_COMPRESSION, SUPPORTED_DEPTH_COMPRESSION)
        sizes = {
            "color_width": color_width,
            "color_height": color_height,
            "depth_width": depth_width,
            "depth_height": depth_height,
        }
        for field, side in sizes.items():
            if not 0 < side <= _MAX_IMAGE_SIDE:
                raise DataFormatError(
                    self.path, f"corrupt header: {field} = {side} pixels (expected 1..{_MAX_IMAGE_SIDE})"
                )
        if not (np.isfinite(depth_shift) and depth_shift > 0):
            raise DataFormatError(
                self.path, f"corrupt header: depth_shift = {depth_shift} (expected a positive number, e.g. 1000)"
            )
        (num_frames,) = self._read_header_field(_FRAME_COUNT, "the frame count")
        return SensHeader(
            sensor_name=sensor_name,
            intrinsic_color=matrices[0],
            extrinsic_color=matrices[1],
            intrinsic_depth=matrices[2],
            extrinsic_depth=matrices[3],
            color_compression=color_compression,
            depth_compression=depth_compression,
            depth_shift=depth_shift,
            num_frames=num_frames,
            version=version,
            **sizes,
        )

    def _index_frames(self) -> list[SensFrameInfo]:
        frames = []
        offset = self._file.tell()
        for index in range(self.header.num_frames):
            remaining = self._file_bytes - offset
            if remaining < _FRAME_HEADER.size:
                raise DataFormatError(
                    self.path,
                    f"truncated: frame {index} of {self.header.num_frames} starts at byte {offset} and needs a "
                    f"{_FRAME_HEADER.size}-byte frame header, but only {max(remaining, 0)} bytes are present "
                    f"(file is {self._file_bytes} bytes)",
                    _REDOWNLOAD,
                )
            self._file.seek(offset)
            values = _FRAME_HEADER.unpack(_read_exact(self._file, _FRAME_HEADER.size))
            timestamp_color, timestamp_depth, color_size, depth_size = values[16:]
            color_offset = offset + _FRAME_HEADER.size
            depth_offset = color_offset + color_size
            frame_end = depth_offset + depth_size
            if frame_end > self._file_bytes:
                raise DataFormatError(
                    self.path,
                    f"truncated: frame {index} of {self.header.num_frames} needs {color_size} colour + "
                    f"{depth_size} depth bytes from byte {color_offset}, but only "
                    f"{self._file_bytes - color_offset} bytes are present (file is {self._file_bytes} bytes)",
                    _REDOWNLOAD,
                )
            pose = np.array(values[:16], dtype=np.float32).reshape(4, 4)
            pose.setflags(write=False)
            frames.append(
                SensFrameInfo(
                    camera_to_world=pose,
                    timestamp_color=timestamp_color,
                    timestamp_depth=timestamp_depth,
                    color_offset=color_offset,
                    color_size=color_size,
                    depth_offset=depth_offset,
                    depth_size=depth_size,
                )
            )
            offset = frame_end
        self._frames_end = offset
        return frames

    def _read_imu_count(self) -> int | None:
        """The IMU record count after the last frame (None if the file ends there); checks the records fit."""
        offset = self._frames_end
        remaining = self._file_bytes - offset
        if remaining == 0:
            self._imu_offset = offset
            return None
        if remaining < IMU_COUNT_BYTES:
            raise DataFormatError(
                self.path,
                f"truncated: the {IMU_COUNT_BYTES}-byte IMU record count after the last frame (at byte {offset}) "
                f"is cut off, only {remaining} bytes are present (file is {self._file_bytes} bytes)",
                _REDOWNLOAD,
            )
        self._file.seek(offset)
        (count,) = _IMU_COUNT.unpack(_read_exact(self._file, IMU_COUNT_BYTES))
        self._imu_offset = offset + IMU_COUNT_BYTES
        available = remaining - IMU_COUNT_BYTES
        if count * IMU_RECORD_BYTES > available:
            raise DataFormatError(
                self.path,
                f"truncated or corrupt IMU trailer: the IMU record count at byte {offset} says {count} records "
                f"({count} x {IMU_RECORD_BYTES} = {count * IMU_RECORD_BYTES} bytes), but only {available} bytes "
                f"follow it (room for {available // IMU_RECORD_BYTES} records; file is {self._file_bytes} bytes)",
                _REDOWNLOAD,
            )
        return count

    # -- access ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.frames)

    def camera_to_world(self, i: int) -> np.ndarray:
        """(4, 4) float32 camera-to-world pose of frame ``i`` (a writable copy; all -inf if invalid)."""
        return self.frames[i].camera_to_world.copy()

    def camera_to_world_all(self) -> np.ndarray:
        """(F, 4, 4) float32 camera-to-world poses of all frames."""
        if not self.frames:
            return np.zeros((0, 4, 4), dtype=np.float32)
        return np.stack([frame.camera_to_world for frame in self.frames])

    def _read_payload(self, offset: int, size: int, index: int, what: str) -> bytes:
        self._file.seek(offset)
        data = _read_exact(self._file, size)
        if len(data) < size:
            # The index checked the file size at open; only a file shrinking under us gets here.
            raise DataFormatError(
                self.path,
                f"truncated: frame {index} {what} payload needs {size} bytes at byte {offset}, only {len(data)} read",
                _REDOWNLOAD,
            )
        return data

    def color_bytes(self, i: int) -> bytes:
        """The encoded colour payload of frame ``i``, exactly as stored."""
        frame = self.frames[i]
        return self._read_payload(frame.color_offset, frame.color_size, self._index(i), "colour")

    def depth_bytes(self, i: int) -> bytes:
        """The encoded depth payload of frame ``i``, exactly as stored."""
        frame = self.frames[i]
        return self._read_payload(frame.depth_offset, frame.depth_size, self._index(i), "depth")

    def color(self, i: int, *, reduce: int = 1) -> np.ndarray:
        """Frame ``i`` colour as (H, W, 3) uint8 RGB; at 1/``reduce`` size for reduce 2, 4 or 8 (see :func:`decode_color`)."""
        return decode_color(self.color_bytes(i), self.header, source=self.path, frame=self._index(i), reduce=reduce)

    def depth(self, i: int) -> np.ndarray:
        """Frame ``i`` depth as (Hd, Wd) uint16 raw units (divide by ``header.depth_shift`` for metres)."""
        return decode_depth(self.depth_bytes(i), self.header, source=self.path, frame=self._index(i))

    def _index(self, i: int) -> int:
        """Non-negative frame index for messages (``i`` may be negative, like a list index)."""
        return range(len(self.frames))[i]

    def imu_frames(self) -> np.ndarray:
        """All IMU records as a (M,) array of :data:`IMU_DTYPE` (writable; empty if ``num_imu_frames`` is 0 or None).

        Fields: ``rotation_rate``, ``acceleration``, ``magnetic_field``, ``attitude``, ``gravity``
        ((M, 3) float64 each, as the device reported them) and ``timestamp`` ((M,) uint64, the frames' clock).
        """
        count = self.num_imu_frames or 0
        size = count * IMU_RECORD_BYTES
        self._file.seek(self._imu_offset)
        data = _read_exact(self._file, size)
        if len(data) < size:
            # Open checked the file size; only a file shrinking under us gets here.
            raise DataFormatError(
                self.path,
                f"truncated: {count} IMU records need {size} bytes at byte {self._imu_offset}, only {len(data)} read",
                _REDOWNLOAD,
            )
        return np.frombuffer(data, dtype=IMU_DTYPE).copy()

    def close(self) -> None:
        if self._owns_file:
            self._file.close()

    def __enter__(self) -> SensReader:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()


def _header_bytes(header: SensHeader, num_frames: int) -> bytes:
    """Serialise ``header`` with ``num_frames`` as the frame count (the count is the last 8 bytes)."""
    name = header.sensor_name.encode("utf-8")
    color_code = {v: k for k, v in COLOR_COMPRESSION.items()}[header.color_compression]
    depth_code = {v: k for k, v in DEPTH_COMPRESSION.items()}[header.depth_compression]
    matrices = np.stack(
        [header.intrinsic_color, header.extrinsic_color, header.intrinsic_depth, header.extrinsic_depth]
    )
    return b"".join(
        [
            _VERSION.pack(SENS_VERSION),
            _NAME_LENGTH.pack(len(name)),
            name,
            _HEADER_AFTER_NAME.pack(
                *matrices.ravel().tolist(),
                color_code,
                depth_code,
                header.color_width,
                header.color_height,
                header.depth_width,
                header.depth_height,
                header.depth_shift,
            ),
            _FRAME_COUNT.pack(num_frames),
        ]
    )


def header_size_bytes(header: SensHeader) -> int:
    """Bytes the file header of ``header`` takes on disk (before the first frame)."""
    return len(_header_bytes(header, 0))


class SensWriter:
    """Write a ``.sens`` file frame by frame; use as a context manager.

    The file is written to a temporary sibling and appears at ``path`` only after :meth:`close`
    (or a clean exit from the ``with`` block). On an exception inside the block the temporary is
    removed and whatever was at ``path`` before is untouched.

    :meth:`close` ends the file with the IMU trailer ScanNet's own writer writes: the count of the
    records given to :meth:`add_imu` (0 if none) and the records, in the order they were added.
    The records are held in memory until then (128 bytes each).
    """

    def __init__(self, path: str | os.PathLike, header: SensHeader):
        if header.version != SENS_VERSION:
            raise ValueError(f"SensWriter writes version {SENS_VERSION} only, header says {header.version}")
        self.path = Path(path)
        self.header = header
        self.num_frames = 0
        self.num_imu_frames = 0
        self._imu_records: list[bytes] = []
        self._atomic = atomic_path(self.path)
        self._tmp_path = self._atomic.__enter__()
        self._closed = False
        try:
            self._file = open(self._tmp_path, "wb")
            head = _header_bytes(header, 0)
            self._file.write(head)
        except BaseException as exc:
            self._abort(exc)
            raise
        # The frame count is the header's last field; close() patches it in place.
        self._frame_count_offset = len(head) - _FRAME_COUNT.size

    def add_frame(
        self,
        camera_to_world,
        color: np.ndarray | None = None,
        depth: np.ndarray | None = None,
        *,
        color_bytes: bytes | None = None,
        depth_bytes: bytes | None = None,
        timestamp_color: int = 0,
        timestamp_depth: int = 0,
    ) -> None:
        """Append one frame.

        ``camera_to_world``: (4, 4) pose (all -inf for an invalid one). Colour is either ``color``,
        (H, W, 3) uint8 RGB of the header's size, encoded per the header, or pre-encoded
        ``color_bytes`` (exactly one of the two); depth likewise, (Hd, Wd) uint16 or ``depth_bytes``.
        """
        if self._closed:
            raise ValueError(f"{self.path}: SensWriter is closed")
        pose = _matrix4x4(camera_to_world, "camera_to_world")
        header = self.header
        if (color is None) == (color_bytes is None):
            raise ValueError("give exactly one of color and color_bytes")
        if (depth is None) == (depth_bytes is None):
            raise ValueError("give exactly one of depth and depth_bytes")
        if color is not None:
            expected = (header.color_height, header.color_width, 3)
            if np.shape(color) != expected:
                raise ValueError(f"color must have shape {expected} (header size), got {np.shape(color)}")
            color_bytes = encode_color(color, header.color_compression)
        if depth is not None:
            expected = (header.depth_height, header.depth_width)
            if np.shape(depth) != expected:
                raise ValueError(f"depth must have shape {expected} (header size), got {np.shape(depth)}")
            depth_bytes = encode_depth(depth, header.depth_compression)
        self._file.write(
            _FRAME_HEADER.pack(
                *pose.ravel().tolist(), int(timestamp_color), int(timestamp_depth), len(color_bytes), len(depth_bytes)
            )
        )
        self._file.write(color_bytes)
        self._file.write(depth_bytes)
        self.num_frames += 1

    def add_imu(
        self,
        *,
        rotation_rate,
        acceleration,
        magnetic_field,
        attitude,
        gravity,
        timestamp: int,
    ) -> None:
        """Add one IMU record, written after the frames on :meth:`close` (may be called before, between or after frames).

        Each vector is 3 numbers, stored as float64 exactly as given, in the units the capture device
        reports (ScanNet's format states none): ``rotation_rate`` the gyroscope's angular velocity,
        ``acceleration`` the accelerometer reading, ``magnetic_field`` the magnetometer reading,
        ``attitude`` the (roll, pitch, yaw) estimate, ``gravity`` the gravity-direction estimate.
        ``timestamp``: uint64 on the frames' clock and in their unit (ScanNet: microseconds).
        """
        if self._closed:
            raise ValueError(f"{self.path}: SensWriter is closed")
        values = []
        for name, vector in (
            ("rotation_rate", rotation_rate),
            ("acceleration", acceleration),
            ("magnetic_field", magnetic_field),
            ("attitude", attitude),
            ("gravity", gravity),
        ):
            array = np.asarray(vector, dtype=np.float64)
            if array.shape != (3,):
                raise ValueError(f"{name} must be 3 numbers, got shape {array.shape}")
            values.extend(array.tolist())
        if isinstance(timestamp, (bool, np.bool_)) or not isinstance(timestamp, (int, np.integer)):
            raise TypeError(f"timestamp must be an integer, got {timestamp!r}")
        if not 0 <= int(timestamp) < 1 << 64:
            raise ValueError(f"timestamp must be in 0..2**64-1, got {timestamp}")
        self._imu_records.append(_IMU_RECORD.pack(*values, int(timestamp)))
        self.num_imu_frames += 1

    def close(self) -> Path:
        """Write the IMU trailer, patch the frame count into the header and move the file into place; returns ``path``."""
        if self._closed:
            return self.path
        try:
            self._file.seek(0, os.SEEK_END)
            self._file.write(_IMU_COUNT.pack(len(self._imu_records)))
            self._file.write(b"".join(self._imu_records))
            self._imu_records = []
            self._file.seek(self._frame_count_offset)
            self._file.write(_FRAME_COUNT.pack(self.num_frames))
            self._file.close()
        except BaseException as exc:
            self._abort(exc)
            raise
        self._closed = True
        self._atomic.__exit__(None, None, None)
        return self.path

    def _abort(self, exc: BaseException) -> None:
        """Drop the temporary file (atomic_path removes it when handed the exception)."""
        self._closed = True
        file = getattr(self, "_file", None)
        if file is not None:
            file.close()
        self._atomic.__exit__(type(exc), exc, exc.__traceback__)

    def __enter__(self) -> SensWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None:
            self.close()
        elif not self._closed:
            self._abort(exc)
        return False
