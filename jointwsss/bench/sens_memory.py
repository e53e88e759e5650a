"""Peak memory of reading a few frames from a large ``.sens`` file with :class:`SensReader`.

The claim under test: reading k frames of a multi-GB scene costs memory for those frames only,
never for the file. The benchmark writes (or reuses) a >= 1 GB ``.sens`` made of realistic-size
frames, then, in a fresh Python process, records peak RSS after the imports (baseline), after
opening (header + frame index) and after reading and decoding ``num_reads`` frames spread over
the whole file. The increase is reported in bytes and in decoded frames.

Usage: ``jointwsss bench sens-memory``
"""

from __future__ import annotations

import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from jointwsss.bench import child_command, run_measuring_child
from jointwsss.io.sens import (
    FRAME_HEADER_BYTES,
    imu_trailer_size_bytes,
    SensHeader,
    SensReader,
    SensWriter,
    encode_color,
    encode_depth,
    header_size_bytes,
)


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far, in bytes (VmHWM; getrusage where /proc is missing)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # the value is in kB
    except OSError:
        pass
    # Linux reports ru_maxrss in kilobytes (macOS in bytes; this benchmark targets Linux).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def bench_header(color_size: tuple[int, int], depth_size: tuple[int, int]) -> SensHeader:
    """A ScanNet-like header; ``color_size`` and ``depth_size`` are (width, height) in pixels."""
    (color_width, color_height), (depth_width, depth_height) = color_size, depth_size

    def intrinsic(width: int, height: int, focal_per_width: float) -> np.ndarray:
        matrix = np.eye(4, dtype=np.float32)
        matrix[0, 0] = matrix[1, 1] = focal_per_width * width
        matrix[0, 2], matrix[1, 2] = (width - 1) / 2, (height - 1) / 2
        return matrix

    # ScanNet's focal lengths: about 1170 px at 1296 wide (colour), about 572 px at 640 wide (depth).
    return SensHeader(
        sensor_name="bench-StructureSensor",
        intrinsic_color=intrinsic(color_width, color_height, 0.903),
        extrinsic_color=np.eye(4),
        intrinsic_depth=intrinsic(depth_width, depth_height, 0.893),
        extrinsic_depth=np.eye(4),
        color_compression="jpeg",
        depth_compression="zlib_ushort",
        color_width=color_width,
        color_height=color_height,
        depth_width=depth_width,
        depth_height=depth_height,
        depth_shift=1000.0,
    )


def _realistic_frame(header: SensHeader) -> tuple[bytes, bytes]:
    """One encoded (JPEG colour, zlib depth) pair whose sizes resemble real ScanNet frames.

    A smooth gradient plus sensor-like noise: pure noise would make the JPEG far larger than real
    ones, a pure gradient far smaller. Depth is a tilted plane in millimetres with noise and holes.
    """
    rng = np.random.default_rng(0)
    rows = np.linspace(0.0, 1.0, header.color_height, dtype=np.float32)[:, None, None]
    cols = np.linspace(0.0, 1.0, header.color_width, dtype=np.float32)[None, :, None]
    channel_mix = np.array([0.9, 0.6, 0.3], dtype=np.float32)
    gradient = 40 + 170 * (0.5 * rows + 0.5 * cols * channel_mix)
    noise = rng.normal(0.0, 6.0, (header.color_height, header.color_width, 3)).astype(np.float32)
    rgb = np.clip(gradient + noise, 0, 255).astype(np.uint8)

    depth_rows = np.linspace(0.0, 1.0, header.depth_height)[:, None]
    depth_cols = np.linspace(0.0, 1.0, header.depth_width)[None, :]
    sensor_noise_mm = rng.normal(0.0, 4.0, (header.depth_height, header.depth_width))
    depth_mm = 1500 + 2000 * depth_rows + 500 * depth_cols + sensor_noise_mm
    depth = np.clip(depth_mm, 0, 65535).astype(np.uint16)
    depth[rng.random(depth.shape) < 0.05] = 0  # 0 = no measurement
    return encode_color(rgb, header.color_compression), encode_depth(depth, header.depth_compression)


def _frame_pose(index: int) -> np.ndarray:
    """A camera walking along x, 1 cm per frame; poses differ so frames are told apart."""
    pose = np.eye(4, dtype=np.float32)
    pose[0, 3] = 0.01 * index
    return pose


def write_bench_file(
    path: Path, target_bytes: int, color_size: tuple[int, int], depth_size: tuple[int, int]
) -> tuple[Path, bool]:
    """Write a ``.sens`` of at least ``target_bytes`` at ``path`` unless an equal one is there.

    Returns ``(path, reused)``. One realistic frame is encoded once and its bytes repeated, so
    writing a gigabyte is bounded by the disk, not by JPEG encoding.
    """
    header = bench_header(color_size, depth_size)
    color_bytes, depth_bytes = _realistic_frame(header)
    header_bytes = header_size_bytes(header)
    frame_bytes = FRAME_HEADER_BYTES + len(color_bytes) + len(depth_bytes)
    num_frames = max(1, math.ceil((target_bytes - header_bytes) / frame_bytes))
    expected_file_bytes = header_bytes + num_frames * frame_bytes + imu_trailer_size_bytes()

    if path.exists() and path.stat().st_size == expected_file_bytes:
        with SensReader(path) as existing:
            if len(existing) == num_frames and existing.frames[0].color_size == len(color_bytes):
                return path, True

    with SensWriter(path, header) as writer:
        for index in range(num_frames):
            writer.add_frame(
                _frame_pose(index),
                color_bytes=color_bytes,
                depth_bytes=depth_bytes,
                timestamp_color=index * 33_333,  # microseconds at 30 Hz
                timestamp_depth=index * 33_333,
            )
    return path, False


def measure_reads(path: Path, num_reads: int) -> dict:
    """Open ``path`` and read + decode ``num_reads`` frames spread evenly; peak RSS at each stage.

    Meant to run in a fresh process (see :func:`bench_sens_memory`) so the baseline holds the
    imports and nothing else.
    """
    baseline = peak_rss_bytes()
    start = time.perf_counter()
    with SensReader(path) as reader:
        index_seconds = time.perf_counter() - start
        after_open = peak_rss_bytes()
        frame_indices = sorted({int(i) for i in np.linspace(0, len(reader) - 1, num_reads).round()})
        read_start = time.perf_counter()
        encoded_bytes_read = 0
        for index in frame_indices:
            color = reader.color(index)
            depth = reader.depth(index)
            expected_pose = _frame_pose(index)
            if color.shape != (reader.header.color_height, reader.header.color_width, 3) or not np.array_equal(
                reader.camera_to_world(index), expected_pose
            ):
                raise RuntimeError(f"{path}: frame {index} read back wrong")
            encoded_bytes_read += reader.frames[index].color_size + reader.frames[index].depth_size
            del color, depth
        read_seconds = time.perf_counter() - read_start
        header = reader.header
        num_frames = len(reader)
        mean_encoded_frame_bytes = sum(f.color_size + f.depth_size for f in reader.frames) / max(num_frames, 1)
    after = peak_rss_bytes()
    decoded_frame_bytes = header.decoded_color_bytes + header.decoded_depth_bytes
    return {
        "num_frames_in_file": num_frames,
        "frames_read": frame_indices,
        "encoded_bytes_read": encoded_bytes_read,
        "encoded_frame_bytes_mean": mean_encoded_frame_bytes,
        "decoded_frame_bytes": decoded_frame_bytes,
        "peak_rss_bytes_baseline": baseline,
        "peak_rss_bytes_after_open": after_open,
        "peak_rss_bytes_after": after,
        "rss_increase_bytes": after - baseline,
        "rss_increase_open_bytes": after_open - baseline,
        "rss_increase_in_frames": (after - baseline) / decoded_frame_bytes,
        "index_seconds": index_seconds,
        "read_seconds": read_seconds,
        "seconds": index_seconds + read_seconds,
    }


def bench_sens_memory(
    work_dir: Path,
    target_bytes: int = 1_100_000_000,
    num_reads: int = 10,
    color_size: tuple[int, int] = (1296, 968),
    depth_size: tuple[int, int] = (640, 480),
) -> dict:
    """Write or reuse a ``target_bytes`` ``.sens`` in ``work_dir``; measure reading it in a fresh process.

    ``color_size`` / ``depth_size`` are (width, height) in pixels. Returns a JSON-serialisable dict;
    byte counts are in bytes, times in seconds.
    """
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    (color_width, color_height), (depth_width, depth_height) = color_size, depth_size
    path = work_dir / f"sens_memory_c{color_width}x{color_height}_d{depth_width}x{depth_height}.sens"
    write_start = time.perf_counter()
    path, reused = write_bench_file(path, target_bytes, color_size, depth_size)
    write_seconds = time.perf_counter() - write_start

    child = subprocess.run(
        child_command("jointwsss.bench.sens_memory", path, num_reads),
        check=True,
        capture_output=True,
        text=True,
    )
    measured = json.loads(child.stdout.strip().splitlines()[-1])
    return {
        "file": str(path),
        "file_bytes": path.stat().st_size,
        "target_bytes": target_bytes,
        "file_reused": reused,
        "write_seconds": write_seconds,
        "num_reads": num_reads,
        "color_size_pixels": list(color_size),
        "depth_size_pixels": list(depth_size),
        **measured,
    }


if __name__ == "__main__":
    sys.exit(run_measuring_child(sys.argv[1:], lambda path, num_reads: measure_reads(Path(path), int(num_reads)),
                                 "sens-memory"))


def summary_lines(result: dict) -> list[str]:
    """The log lines of a result of :func:`bench_sens_memory`."""
    return [json.dumps(result)]
