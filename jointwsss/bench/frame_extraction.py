"""Sampled frame extraction from a realistic ``.sens`` against a reader that loads every frame.

The claim under test: extracting every ``skip``-th frame (colour resized to ``image_size``, depth
as stored) the way :func:`jointwsss.preprocess.frames.build_frames_store` does -- index the frame
headers, read and decode only the sampled payloads, JPEG decoded at reduced size -- is far faster
and far leaner than ScanNet's official reader strategy, which reads every frame's compressed
colour and depth bytes into memory and only then picks frames (the naive path here decodes the
picked frames at full size and area-resizes them).

The benchmark writes (or reuses) ``frame_extraction_<N>.sens`` in ``work_dir``: ``num_frames``
frames of 1296x968 JPEG colour (textured images of ~230 KB, a few distinct ones whose bytes are
repeated) and 640x480 zlib depth. Each path then runs in a fresh Python process, first with the
file evicted from the page cache (fsync + POSIX_FADV_DONTNEED; the residency before and after is
checked with mincore(2)), then with the file fully cached. Reported per run: wall seconds of the
work (and of the whole process), peak RSS (VmHWM) and the baseline after imports.

Usage: ``jointwsss bench preprocess``
"""

from __future__ import annotations

import ctypes
import json
import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np

from jointwsss.bench import child_command, run_measuring_child
from jointwsss.bench.sens_memory import bench_header, peak_rss_bytes
from jointwsss.io.sens import (
    COLOR_COMPRESSION,
    imu_trailer_size_bytes,
    DEPTH_COMPRESSION,
    FRAME_HEADER_BYTES,
    SensHeader,
    SensReader,
    SensWriter,
    decode_color,
    decode_depth,
    encode_color,
    encode_depth,
    header_size_bytes,
)
from jointwsss.preprocess.frames import color_decode_reduce, read_stored_color, sample_valid_frames

COLOR_SIZE = (1296, 968)  # ScanNet colour (width, height) in pixels
DEPTH_SIZE = (640, 480)  # ScanNet depth
DISTINCT_FRAMES = 8
# Quality 95 puts these textured frames at ~230 KB, inside the range of real ScanNet colour JPEGs.
JPEG_QUALITY = 95

# ------------------------------------------------------------------------------------ the test file


def realistic_color(seed: int, size: tuple[int, int] = COLOR_SIZE) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a room-like scene: shaded walls, flat-coloured boxes, multi-scale texture, noise."""
    width, height = size
    rng = np.random.default_rng(seed)
    rows = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    cols = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    base = 90 + 60 * rows + 30 * np.sin(2.5 * cols + seed)
    image = base[..., None] * np.array([1.0, 0.9, 0.75], dtype=np.float32)
    for _ in range(14):
        x0, y0 = int(rng.integers(0, width - 100)), int(rng.integers(0, height - 100))
        box = image[y0 : y0 + int(rng.integers(60, 400)), x0 : x0 + int(rng.integers(60, 500))]
        shading = 0.8 + 0.4 * rows[y0 : y0 + box.shape[0]]
        box[...] = rng.uniform(30, 220, 3).astype(np.float32) * shading[..., None]
    for cell, amplitude in ((64, 12.0), (16, 7.0), (4, 4.0)):
        coarse = rng.normal(0, 1, (height // cell, width // cell)).astype(np.float32)
        image += amplitude * cv2.resize(coarse, size, interpolation=cv2.INTER_CUBIC)[..., None]
    image += rng.normal(0, 2.5, image.shape).astype(np.float32)
    return np.clip(cv2.GaussianBlur(image, (0, 0), 0.7), 0, 255).astype(np.uint8)


def realistic_depth(seed: int, size: tuple[int, int] = DEPTH_SIZE) -> np.ndarray:
    """(Hd, Wd) uint16 millimetres: a tilted plane with 4 mm sensor noise and 5 % holes (0 = no measurement)."""
    width, height = size
    rng = np.random.default_rng(seed)
    rows = np.linspace(0, 1, height)[:, None]
    cols = np.linspace(0, 1, width)[None, :]
    depth = 1500 + 2000 * rows + 500 * cols + rng.normal(0, 4.0, (height, width))
    depth[rng.random(depth.shape) < 0.05] = 0
    return np.clip(depth, 0, 65535).astype(np.uint16)


def _frame_pose(index: int) -> np.ndarray:
    pose = np.eye(4, dtype=np.float32)
    pose[0, 3] = 0.01 * index
    return pose


def write_bench_sens(path: Path, num_frames: int) -> tuple[Path, bool]:
    """Write the benchmark ``.sens`` at ``path`` unless an identical one is there; returns (path, reused)."""
    header = bench_header(COLOR_SIZE, DEPTH_SIZE)
    payloads = [
        (encode_color(realistic_color(seed), "jpeg", JPEG_QUALITY), encode_depth(realistic_depth(seed)))
        for seed in range(DISTINCT_FRAMES)
    ]
    expected_bytes = header_size_bytes(header) + sum(
        FRAME_HEADER_BYTES + len(c) + len(d) for c, d in (payloads[i % DISTINCT_FRAMES] for i in range(num_frames))
    ) + imu_trailer_size_bytes()
    if path.exists() and path.stat().st_size == expected_bytes:
        return path, True
    with SensWriter(path, header) as writer:
        for index in range(num_frames):
            color_bytes, depth_bytes = payloads[index % DISTINCT_FRAMES]
            writer.add_frame(_frame_pose(index), color_bytes=color_bytes, depth_bytes=depth_bytes,
                             timestamp_color=index * 33_333, timestamp_depth=index * 33_333)
    return path, False


# ------------------------------------------------------------------------------------ page cache


def evict_from_page_cache(path: Path) -> None:
    """Drop ``path``'s pages from the page cache (dirty pages are written first, or they could not be dropped)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def resident_fraction(path: Path) -> float | None:
    """Fraction of ``path``'s pages in the page cache (mincore(2) on a mapping that is never touched); None off Linux."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
        libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    except (OSError, AttributeError):
        return None
    size = path.stat().st_size
    page = os.sysconf("SC_PAGE_SIZE")
    pages = (size + page - 1) // page
    fd = os.open(path, os.O_RDONLY)
    try:
        address = libc.mmap(None, size, 0x1, 0x1, fd, 0)  # PROT_READ, MAP_SHARED
        if address in (None, ctypes.c_void_p(-1).value):
            return None
        try:
            vector = (ctypes.c_ubyte * pages)()
            if libc.mincore(address, size, vector) != 0:
                return None
            return float((np.frombuffer(vector, dtype=np.uint8) & 1).sum()) / pages
        finally:
            libc.munmap(address, size)
    finally:
        os.close(fd)


def _read_seconds(path: Path, offset: int, nbytes: int) -> float:
    start = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        f.seek(offset)
        remaining = nbytes
        while remaining > 0:
            chunk = f.read(min(remaining, 1 << 22))
            if not chunk:
                break
            remaining -= len(chunk)
    return time.perf_counter() - start


def check_eviction(path: Path, probe_bytes: int = 64 << 20) -> dict:
    """Evict ``path``, then read a ``probe_bytes`` slice cold and again warm; evicts again at the end."""
    evict_from_page_cache(path)
    offset = path.stat().st_size // 2
    cold = _read_seconds(path, offset, probe_bytes)
    warm = _read_seconds(path, offset, probe_bytes)
    evict_from_page_cache(path)
    return {"probe_bytes": probe_bytes, "cold_read_seconds": cold, "warm_read_seconds": warm,
            "cold_over_warm": cold / warm if warm > 0 else None}


# ------------------------------------------------------------------------------------ the two paths


def sampled_extraction(path: Path, skip: int, image_size: tuple[int, int]) -> tuple[list[np.ndarray], list[int]]:
    """What build_frames_store does for colour + depth: (stored colour images, crc32 of each depth map)."""
    colors, depth_crcs = [], []
    with SensReader(path) as reader:
        sampled_ids, _, valid = sample_valid_frames(reader, skip)
        reduce = color_decode_reduce(reader.header, image_size)
        for frame_id in sampled_ids[valid].tolist():
            colors.append(read_stored_color(reader, frame_id, image_size, reduce))
            depth_crcs.append(zlib.crc32(reader.depth(frame_id)))
    return colors, depth_crcs


# The official reader's strategy, implemented independently of SensReader on purpose: parse the
# header, then read the file front to back, keeping every frame's payloads (layout: see sens.py).
_NAIVE_HEAD = struct.Struct("<IQ")  # version, sensor-name length
_NAIVE_CALIBRATION = struct.Struct("<64f2i4IfQ")  # 4 matrices, codecs, sizes, depth shift, frame count
_NAIVE_FRAME = struct.Struct("<16f4Q")  # pose, timestamps, colour + depth byte counts
assert _NAIVE_FRAME.size == FRAME_HEADER_BYTES


def _read_bytewise(f, n: int) -> bytes:
    """Read n bytes the way ScanNet's official SensorData.py does: one struct item per byte, then joined."""
    return b"".join(struct.unpack("c" * n, f.read(n)))


def load_all_frames(path: Path, *, bytewise: bool = False) -> tuple[SensHeader, list[tuple[np.ndarray, bytes, bytes]]]:
    """Every frame's (pose, colour bytes, depth bytes) in memory, like ScanNet's SensorData.load.

    ``bytewise`` reads payloads exactly as the official reader does (``struct.unpack('c' * n)``);
    otherwise with plain ``read()`` -- a generous, much faster version of the same strategy.
    """
    read = (lambda f, n: _read_bytewise(f, n)) if bytewise else (lambda f, n: f.read(n))
    with open(path, "rb") as f:
        _, name_length = _NAIVE_HEAD.unpack(f.read(_NAIVE_HEAD.size))
        name = f.read(name_length).decode()
        values = _NAIVE_CALIBRATION.unpack(f.read(_NAIVE_CALIBRATION.size))
        matrices = np.array(values[:64], dtype=np.float32).reshape(4, 4, 4)
        color_code, depth_code, color_w, color_h, depth_w, depth_h, depth_shift, num_frames = values[64:]
        header = SensHeader(
            sensor_name=name, intrinsic_color=matrices[0], extrinsic_color=matrices[1],
            intrinsic_depth=matrices[2], extrinsic_depth=matrices[3],
            color_compression=COLOR_COMPRESSION[color_code], depth_compression=DEPTH_COMPRESSION[depth_code],
            color_width=color_w, color_height=color_h, depth_width=depth_w, depth_height=depth_h,
            depth_shift=depth_shift, num_frames=num_frames,
        )
        frames = []
        for _ in range(num_frames):
            values = _NAIVE_FRAME.unpack(f.read(_NAIVE_FRAME.size))
            pose = np.array(values[:16], dtype=np.float32).reshape(4, 4)
            color_size, depth_size = values[18], values[19]
            frames.append((pose, read(f, color_size), read(f, depth_size)))
    return header, frames


def naive_extraction(path: Path, skip: int, image_size: tuple[int, int], *, bytewise: bool = False
                     ) -> tuple[list[np.ndarray], list[int]]:
    """Load every frame, then decode the sampled frames with valid poses at full size and area-resize the colour."""
    header, frames = load_all_frames(path, bytewise=bytewise)
    colors, depth_crcs = [], []
    for frame_id in range(0, len(frames), skip):
        pose, color_bytes, depth_bytes = frames[frame_id]
        if not np.isfinite(pose).all():
            continue
        rgb = decode_color(color_bytes, header)
        colors.append(cv2.resize(rgb, tuple(image_size), interpolation=cv2.INTER_AREA))
        depth_crcs.append(zlib.crc32(decode_depth(depth_bytes, header)))
    return colors, depth_crcs


def official_extraction(path: Path, skip: int, image_size: tuple[int, int]) -> tuple[list[np.ndarray], list[int]]:
    """The naive strategy with the official reader's byte-wise payload reads."""
    return naive_extraction(path, skip, image_size, bytewise=True)


_PATHS = {"sampled": sampled_extraction, "naive": naive_extraction, "official": official_extraction}


def measure(method: str, path: Path, skip: int, image_size: tuple[int, int], colors_out: Path) -> dict:
    """Run one path in this process; time and peak RSS. The colour images go to ``colors_out`` (.npy) for comparison."""
    baseline = peak_rss_bytes()
    start = time.perf_counter()
    colors, depth_crcs = _PATHS[method](path, skip, image_size)
    seconds = time.perf_counter() - start
    peak = peak_rss_bytes()
    np.save(colors_out, np.stack(colors) if colors else np.zeros((0, image_size[1], image_size[0], 3), np.uint8))
    return {"seconds": seconds, "peak_rss_bytes": peak, "baseline_rss_bytes": baseline,
            "rss_increase_bytes": peak - baseline, "frames_extracted": len(colors), "depth_crc32": depth_crcs}


def _run_child(method: str, path: Path, skip: int, image_size: tuple[int, int], colors_out: Path) -> dict:
    command = child_command("jointwsss.bench.frame_extraction", method, path, skip, image_size[0], image_size[1],
                            colors_out)
    start = time.perf_counter()
    child = subprocess.run(command, check=True, capture_output=True, text=True)
    result = json.loads(child.stdout.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - start
    return result


def _compare(sampled: dict, naive: dict) -> dict:
    return {
        "speedup": naive["seconds"] / sampled["seconds"],
        "speedup_whole_process": naive["process_seconds"] / sampled["process_seconds"],
        "peak_rss_ratio": naive["peak_rss_bytes"] / sampled["peak_rss_bytes"],
        "rss_increase_ratio": naive["rss_increase_bytes"] / max(sampled["rss_increase_bytes"], 1),
    }


def bench_frame_extraction(work_dir: Path, *, num_frames: int = 2000, skip: int = 100,
                           image_size=(320, 240)) -> dict:
    """Write or reuse the benchmark ``.sens`` in ``work_dir``; time both paths cold and warm, each in a fresh process.

    ``image_size`` is the stored colour (width, height) in pixels. Returns a JSON-serialisable dict;
    bytes in bytes, times in seconds.
    """
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    image_size = (int(image_size[0]), int(image_size[1]))
    path = work_dir / f"frame_extraction_{num_frames}.sens"
    write_start = time.perf_counter()
    path, reused = write_bench_sens(path, num_frames)
    write_seconds = time.perf_counter() - write_start

    eviction = check_eviction(path)
    runs: dict[str, dict] = {"cold": {}, "warm": {}}
    outputs: dict[str, Path] = {}
    for cache in ("cold", "warm"):
        # the official reader's byte-wise loading takes ~1 min per 2000 frames: run it cold only
        for method in ("sampled", "naive", "official") if cache == "cold" else ("sampled", "naive"):
            if cache == "cold":
                evict_from_page_cache(path)
                before = resident_fraction(path)
            else:
                _read_seconds(path, 0, path.stat().st_size)  # make sure every page is cached
                before = resident_fraction(path)
            outputs[method] = work_dir / f"colors_{method}.npy"
            runs[cache][method] = _run_child(method, path, skip, image_size, outputs[method])
            runs[cache][method]["resident_fraction_before"] = before
        runs[cache]["comparison"] = _compare(runs[cache]["sampled"], runs[cache]["naive"])
        if "official" in runs[cache]:
            runs[cache]["comparison_official"] = _compare(runs[cache]["sampled"], runs[cache]["official"])

    sampled_colors, naive_colors = np.load(outputs["sampled"]), np.load(outputs["naive"])
    color_difference = np.abs(sampled_colors.astype(np.int16) - naive_colors.astype(np.int16))
    with SensReader(path) as reader:
        color_bytes = [f.color_size for f in reader.frames[:DISTINCT_FRAMES]]
        depth_bytes = [f.depth_size for f in reader.frames[:DISTINCT_FRAMES]]
        reduce = color_decode_reduce(reader.header, image_size)
    return {
        "file": str(path),
        "file_bytes": path.stat().st_size,
        "file_reused": reused,
        "write_seconds": write_seconds,
        "num_frames": num_frames,
        "skip": skip,
        "frames_extracted": runs["cold"]["sampled"]["frames_extracted"],
        "color_size_pixels": list(COLOR_SIZE),
        "depth_size_pixels": list(DEPTH_SIZE),
        "image_size_pixels": list(image_size),
        "jpeg_reduce": reduce,
        "color_jpeg_bytes_mean": float(np.mean(color_bytes)),
        "depth_zlib_bytes_mean": float(np.mean(depth_bytes)),
        "eviction_check": eviction,
        "cold": runs["cold"],
        "warm": runs["warm"],
        "same_depth": runs["cold"]["sampled"]["depth_crc32"] == runs["cold"]["naive"]["depth_crc32"],
        "color_abs_difference_mean": float(color_difference.mean()) if color_difference.size else 0.0,
        "color_abs_difference_max": int(color_difference.max()) if color_difference.size else 0,
    }


def _measure_child(method: str, path: str, skip: str, width: str, height: str, colors_out: str) -> dict:
    """``measure`` from the child's command-line strings."""
    return measure(method, Path(path), int(skip), (int(width), int(height)), Path(colors_out))


if __name__ == "__main__":
    sys.exit(run_measuring_child(sys.argv[1:], _measure_child, "preprocess"))
