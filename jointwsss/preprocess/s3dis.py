"""S3DIS rooms and Stanford 2D-3D-S frames of one area in the ScanNet cache contracts (paper Table 4).

The paper trains on ScanNet only and evaluates the same weights, without fine-tuning, on S3DIS
(3D: point clouds only) and on 2D-3D-S (2D: images only) of the same area, on the classes both
label sets share. This module turns one area of the raw releases into the stores the ScanNet
inference code already reads, so one code path predicts and scores both datasets:

- ``points/<room>.zarr`` (kind "points") per S3DIS room: ``xyz`` (N, 3) float32 metres (S3DIS
  "Aligned" frame), ``rgb`` (N, 3) uint8, ``label`` (N,) uint8 ScanNet class index or 255; attrs as
  for ScanNet plus ``s3dis_class_point_counts`` and ``malformed_lines`` (file -> skipped lines).
- ``frames/<room>.zarr`` (kind "frames") per room from the 2D-3D-S frames whose name carries the
  room (Area 5 is released as ``area_5a`` + ``area_5b``; both are read): ``color`` (F, H, W, 3)
  uint8 area-resized to ``image_size`` = (W, H); ``label`` (F, H, W) uint8 ScanNet class index,
  nearest-neighbour resized; ``depth`` (F, H, W) uint16 at the same size in 1/512 m
  (``depth_shift`` 512; the release's 65535 "no depth" becomes 0, ScanNet's "no depth");
  ``pose`` (F, 4, 4) float32 camera_to_world; ``intrinsic_color_per_frame`` (F, 4, 4) float32 (the
  release samples each perspective view with its own camera, so K differs between frames);
  ``intrinsic_color`` / ``intrinsic_depth`` (4, 4) = frame 0's (attrs ``intrinsics_differ`` says
  whether the others differ); ``frame_id`` (F,) int32 = position of the frame in the room's sorted
  frame list (attrs ``frame_names``); ``image_labels`` (F, 20) bool.
- no ``corr/`` stores: Table 4 runs each network on its own domain, so no 2D-3D correspondence is
  needed (S3DIS "Aligned" coordinates are also rotated against the 2D-3D-S world frame).

Class mapping S3DIS-13 -> ScanNet-20 (:data:`S3DIS_TO_SCANNET`), the 8 classes both sets share:

    wall -> wall, floor -> floor, chair -> chair, sofa -> sofa, table -> table, door -> door,
    window -> window, bookcase -> bookshelf;
    ceiling, beam, column, board, clutter -> 255 (ignored).

Why: ScanNet's benchmark has no ceiling (nyu40 ``ceiling`` is outside the 20 classes), and no beam
or column (ScanNet annotators label them as part of the wall or not at all). S3DIS ``board`` is
whiteboards / blackboards, which nyu40 labels ``whiteboard`` (id 30, outside the 20) -- ScanNet's
``picture`` is framed pictures, so mapping board to picture would score a different object.
``clutter`` is everything else (lamps, plants, monitors, cabinets, ...) and overlaps several
ScanNet classes at once, so it has no single counterpart. In the other direction cabinet, bed,
picture, counter, desk, curtain, refrigerator, shower curtain, toilet, sink, bathtub and
otherfurniture have no S3DIS class. S3DIS labels desks as ``table``; ScanNet splits table and desk,
but S3DIS ``table`` is mapped to ScanNet ``table`` only (not to desk as well): one ground-truth
class must map to one class index, and with the default ``restrict_to_shared`` the network's desk
score cannot win anyway, so an S3DIS desk is scored as table. S3DIS ``stairs`` annotation files
count as clutter (:data:`jointwsss.io.s3dis.CLASS_ALIASES`), hence ignored too.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path

import cv2
import numpy as np

from jointwsss.classes import CLASS_INDEX, CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES
from jointwsss.geometry.camera import scale_intrinsic
from jointwsss.io.atomic import atomic_path
from jointwsss.io.errors import DataFormatError
from jointwsss.io.s3dis import S3DIS_CLASSES, list_rooms, read_room
from jointwsss.io.stanford2d3ds import (
    DEPTH_MISSING, DEPTH_UNITS_PER_METRE, camera_to_world, decode_semantic_png, frame_path, read_pose,
    read_rgb_png, read_semantic_labels, semantic_class_lut,
)
from jointwsss.io.zarr_store import create_array, create_store, write_array
from jointwsss.preprocess.frames import image_labels_of
from jointwsss.preprocess.points import class_point_counts

logger = logging.getLogger("jointwsss")

S3DIS_RELEASE = "Stanford3dDataset_v1.2_Aligned_Version"
STANFORD2D3DS_RELEASE = "2D-3D-Semantics"
SEMANTIC_LABELS = Path(STANFORD2D3DS_RELEASE) / "assets" / "semantic_labels.json"

# S3DIS class name -> ScanNet benchmark class name; S3DIS classes not listed are ignored (255).
S3DIS_TO_SCANNET: dict[str, str] = {
    "wall": "wall", "floor": "floor", "chair": "chair", "sofa": "sofa", "table": "table",
    "door": "door", "window": "window", "bookcase": "bookshelf",
}
# The shared classes as ScanNet names, in ScanNet class order.
SHARED_CLASS_NAMES: tuple[str, ...] = tuple(n for n in CLASS_NAMES if n in S3DIS_TO_SCANNET.values())

# 2D-3D-S frame name: camera_<uuid>_<roomType>_<roomNum>_frame_<n> (room names may contain '_').
_FRAME_NAME = re.compile(r"^camera_[0-9a-fA-F]+_(?P<room>.+)_frame_(?P<number>\d+)$")
_RGB_SUFFIX = "_domain_rgb.png"
# Per-frame arrays are written in blocks of this many frames, one shard per block (see preprocess.frames).
_WRITE_BLOCK_FRAMES = 16


def s3dis_to_class_lut() -> np.ndarray:
    """(256,) uint8: S3DIS class id (index into S3DIS_CLASSES) -> ScanNet class index 0..19, else 255."""
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for s3dis_id, name in enumerate(S3DIS_CLASSES):
        if name in S3DIS_TO_SCANNET:
            lut[s3dis_id] = CLASS_INDEX[S3DIS_TO_SCANNET[name]]
    return lut


def shared_class_mask() -> np.ndarray:
    """(20,) bool: the ScanNet classes that have an S3DIS counterpart."""
    return np.array([name in SHARED_CLASS_NAMES for name in CLASS_NAMES], dtype=bool)


# --------------------------------------------------------------------------- layout
def s3dis_area_dir(raw_dir: str | os.PathLike, area: int) -> Path:
    """``<raw_dir>/Stanford3dDataset_v1.2_Aligned_Version/Area_<area>``."""
    return Path(raw_dir) / S3DIS_RELEASE / f"Area_{area}"


def frame_data_dirs(raw_dir: str | os.PathLike, area: int) -> list[Path]:
    """The 2D-3D-S ``area_<N>[a-z]/data`` folders of an area that exist (Area 5: area_5a, area_5b), sorted."""
    root = Path(raw_dir) / STANFORD2D3DS_RELEASE
    if not root.is_dir():
        return []
    pattern = re.compile(rf"^area_{int(area)}[a-z]?$")
    return sorted(p / "data" for p in root.iterdir() if pattern.match(p.name) and (p / "data").is_dir())


def frame_room(frame: str) -> str | None:
    """Room name (``office_19``) of a 2D-3D-S frame name, or None when the name does not follow the release."""
    match = _FRAME_NAME.match(frame)
    return match["room"] if match else None


def _frames_by_room(data_dirs: list[Path]) -> tuple[dict[str, list[tuple[Path, str]]], list[str]]:
    """({room: [(data_dir, frame), ...] sorted}, rgb file names that are not release frame names)."""
    by_room: dict[str, list[tuple[Path, str]]] = {}
    unparsed: list[str] = []
    for data_dir in data_dirs:
        rgb_dir = data_dir / "rgb"
        if not rgb_dir.is_dir():
            raise DataFormatError(rgb_dir, "2D-3D-S rgb folder not found",
                                  "each area_N/data of the 2D-3D-Semantics release has rgb/, depth/, semantic/, pose/")
        for name in os.listdir(rgb_dir):
            if not name.endswith(_RGB_SUFFIX):
                continue
            frame = name[: -len(_RGB_SUFFIX)]
            room = frame_room(frame)
            if room is None:
                unparsed.append(str(rgb_dir / name))
                continue
            by_room.setdefault(room, []).append((data_dir, frame))
    for frames in by_room.values():
        frames.sort(key=lambda item: (item[0].parent.name, item[1]))
    return by_room, sorted(unparsed)


def list_area(raw_dir: str | os.PathLike, area: int) -> dict:
    """The rooms of an area and their 2D-3D-S frame counts (JSON-able).

    ``{"area", "rooms": [S3DIS rooms, natural order], "frames_per_room": {room: n},
    "frame_dirs": [...], "rooms_without_frames": [...], "frame_rooms_without_points": {room: n},
    "unparsed_frame_files": [...]}``. Rooms are the S3DIS room folders: 3D and 2D results are
    reported per S3DIS room, and 2D-3D-S frames of a room S3DIS lacks are counted, not used.
    """
    rooms = [p.name for p in list_rooms(s3dis_area_dir(raw_dir, area))]
    if not rooms:
        raise DataFormatError(s3dis_area_dir(raw_dir, area), "no room folder with Annotations/ in this S3DIS area",
                              "point s3dis.raw_dir at the folder holding Stanford3dDataset_v1.2_Aligned_Version/")
    data_dirs = frame_data_dirs(raw_dir, area)
    by_room, unparsed = _frames_by_room(data_dirs)
    return {
        "area": int(area),
        "rooms": rooms,
        "frames_per_room": {room: len(by_room.get(room, [])) for room in rooms},
        "frame_dirs": [str(d) for d in data_dirs],
        "rooms_without_frames": [room for room in rooms if room not in by_room],
        "frame_rooms_without_points": {r: len(f) for r, f in sorted(by_room.items()) if r not in set(rooms)},
        "unparsed_frame_files": unparsed,
    }


def write_area_listing(raw_dir: str | os.PathLike, area: int, out_path: str | os.PathLike) -> dict:
    """Write :func:`list_area` as JSON at ``out_path`` atomically; returns it."""
    listing = list_area(raw_dir, area)
    if listing["rooms_without_frames"]:
        logger.warning("s3dis area %d: %d room(s) have no 2D-3D-S frame (2D evaluation skips them): %s",
                       area, len(listing["rooms_without_frames"]), listing["rooms_without_frames"][:10])
    if listing["frame_rooms_without_points"]:
        logger.warning("s3dis area %d: 2D-3D-S frames of rooms without an S3DIS folder are not used: %s",
                       area, listing["frame_rooms_without_points"])
    with atomic_path(out_path) as tmp:
        Path(tmp).write_text(json.dumps(listing, indent=2) + "\n", encoding="utf-8")
    return listing


def room_listing(path: str | os.PathLike) -> list[str]:
    """The rooms of a listing written by :func:`write_area_listing`."""
    path = Path(path)
    try:
        return list(json.loads(path.read_text(encoding="utf-8"))["rooms"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataFormatError(path, f"not a room listing ({exc})",
                              "delete it and rerun `snakemake eval_s3dis`") from exc


# --------------------------------------------------------------------------- points
def build_s3dis_points_store(raw_dir: str | os.PathLike, area: int, room: str, out_path: str | os.PathLike, *,
                             min_points: int) -> dict:
    """Write ``points/<room>.zarr`` from ``Area_<area>/<room>/Annotations/``; returns the attrs plus timing.

    Malformed lines of the release's text files are skipped by :func:`jointwsss.io.s3dis.read_room`
    (one warning per file) and counted in attrs ``malformed_lines`` ({file: count}).
    """
    start = time.perf_counter()
    if int(min_points) != min_points or min_points < 1:
        raise ValueError(f"labels.min_points must be an integer >= 1, got {min_points!r}")
    room_dir = s3dis_area_dir(raw_dir, area) / room
    data = read_room(room_dir)
    label = s3dis_to_class_lut()[data["label"]]
    counts = class_point_counts(label)
    s3dis_counts = np.bincount(data["label"], minlength=256)[: len(S3DIS_CLASSES)]
    malformed = {path: len(lines) for path, lines in data["malformed"].items()}
    attrs = {
        "scene": room,
        "dataset": "s3dis",
        "area": int(area),
        "num_points": int(len(label)),
        "scene_labels": (counts >= min_points).tolist(),
        "class_point_counts": counts.tolist(),
        "ignored_points": int(len(label) - counts.sum()),
        "s3dis_class_point_counts": {name: int(n) for name, n in zip(S3DIS_CLASSES, s3dis_counts)},
        "min_points": int(min_points),
        "has_labels": True,
        "malformed_lines": malformed,
        "malformed_lines_total": int(sum(malformed.values())),
        "source_files": sorted(str(p) for p in (room_dir / "Annotations").glob("*.txt")),
    }
    with atomic_path(out_path) as tmp:
        group = create_store(tmp, "points", attrs)
        write_array(group, "xyz", data["xyz"].astype(np.float32))
        write_array(group, "rgb", data["rgb"].astype(np.uint8))
        write_array(group, "label", label)
    seconds = time.perf_counter() - start
    logger.info("s3dis points %s: %d points, shared classes present %s, %d malformed line(s), %.1f s",
                room, len(label), [CLASS_NAMES[c] for c in np.flatnonzero(counts >= min_points)],
                attrs["malformed_lines_total"], seconds)
    return {**attrs, "path": str(out_path), "seconds": seconds}


# --------------------------------------------------------------------------- frames
def _read_depth_units(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) uint16 raw depth (1/512 m) with the release's 65535 (no depth) as 0, ScanNet's convention."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.dtype != np.uint16 or raw.ndim != 2:
        what = "cannot decode" if raw is None else f"dtype {raw.dtype} shape {raw.shape}"
        raise DataFormatError(path, f"depth PNG must be 16-bit single-channel ({what})")
    if raw.shape != shape:
        raise DataFormatError(path, f"depth is {raw.shape[1]}x{raw.shape[0]} but the rgb frame is "
                                    f"{shape[1]}x{shape[0]}")
    return np.where(raw == DEPTH_MISSING, 0, raw).astype(np.uint16)


def select_frames(num_frames: int, max_frames: int | None) -> np.ndarray:
    """(K,) int64 indices of ``max_frames`` frames spread evenly over ``num_frames`` (all when None or more)."""
    if max_frames is None or max_frames >= num_frames:
        return np.arange(num_frames, dtype=np.int64)
    if max_frames < 1:
        raise ValueError(f"s3dis.max_frames_per_room must be >= 1 or null, got {max_frames}")
    return np.arange(max_frames, dtype=np.int64) * num_frames // max_frames


def build_s3dis_frames_store(raw_dir: str | os.PathLike, area: int, room: str, out_path: str | os.PathLike, *,
                             image_size: tuple[int, int], min_pixel_fraction: float,
                             max_frames: int | None = None) -> dict:
    """Write ``frames/<room>.zarr`` from the room's 2D-3D-S frames (every ``area_<area>[a-z]/data``).

    ``image_size`` (W, H) pixels of the stored colour, label and depth images. A room without frames
    gets an empty store (F = 0), which the index marks unusable. Frames whose semantic or pose file
    is missing are dropped and counted (attrs ``frames_dropped``); unreadable files raise
    DataFormatError naming the file.
    """
    start = time.perf_counter()
    out_width, out_height = (int(s) for s in image_size)
    if min(out_width, out_height) < 1:
        raise ValueError(f"s3dis.image_size must be (width, height) in pixels, got {image_size!r}")
    if not 0.0 <= min_pixel_fraction <= 1.0:
        raise ValueError(f"labels.min_pixel_fraction must lie in [0, 1], got {min_pixel_fraction!r}")
    labels_path = Path(raw_dir) / SEMANTIC_LABELS
    by_room, _ = _frames_by_room(frame_data_dirs(raw_dir, area))
    candidates = by_room.get(room, [])
    complete = [(d, f) for d, f in candidates
                if frame_path(d, f, "semantic").is_file() and frame_path(d, f, "pose").is_file()]
    complete_set = set(complete)
    missing = [f"{d.parent.name}/{f}" for d, f in candidates if (d, f) not in complete_set]
    chosen = [complete[i] for i in select_frames(len(complete), max_frames)]
    lut = None
    if chosen:
        # S3DIS class of each semantic index, then ScanNet class: one lookup per pixel.
        lut = s3dis_to_class_lut()[semantic_class_lut(read_semantic_labels(labels_path))]
    num_kept = len(chosen)
    poses = np.zeros((num_kept, 4, 4), dtype=np.float32)
    intrinsics = np.tile(np.eye(4, dtype=np.float32), (num_kept, 1, 1))
    image_labels = np.zeros((num_kept, NUM_CLASSES), dtype=bool)
    frames_without_depth: list[str] = []
    source_sizes: set[tuple[int, int]] = set()
    sources = sorted({str(d) for d, _ in chosen}) + ([str(labels_path)] if chosen else [])
    attrs = {
        "scene": room,
        "dataset": "stanford2d3ds",
        "area": int(area),
        "frames_in_stream": len(candidates),
        "frame_skip": 1,
        "frames_sampled": len(complete),
        "frames_kept": num_kept,
        "frames_dropped": {"missing_semantic_or_pose": len(missing),
                           "over_max_frames_per_room": len(complete) - num_kept},
        "dropped_frame_ids": {"missing_semantic_or_pose": missing},
        "max_frames_per_room": max_frames,
        "frame_names": [f"{d.parent.name}/{f}" for d, f in chosen],
        "image_size": [out_width, out_height],
        "depth_size": [out_width, out_height],
        "depth_shift": DEPTH_UNITS_PER_METRE,
        "min_pixel_fraction": float(min_pixel_fraction),
        "has_labels": True,
        "source_files": sources,
    }
    with atomic_path(out_path) as tmp:
        group = create_store(tmp, "frames", attrs)
        arrays = {name: create_array(group, name, (num_kept, out_height, out_width, *extra), dtype, per_item=True,
                                     items_per_shard=_WRITE_BLOCK_FRAMES)
                  for name, extra, dtype in (("color", (3,), np.uint8), ("depth", (), np.uint16),
                                             ("label", (), np.uint8))}
        for block_start in range(0, num_kept, _WRITE_BLOCK_FRAMES):
            block = chosen[block_start: block_start + _WRITE_BLOCK_FRAMES]
            color = np.empty((len(block), out_height, out_width, 3), dtype=np.uint8)
            depth = np.zeros((len(block), out_height, out_width), dtype=np.uint16)
            label = np.empty((len(block), out_height, out_width), dtype=np.uint8)
            for row, (data_dir, frame) in enumerate(block):
                f = block_start + row
                rgb = read_rgb_png(frame_path(data_dir, frame, "rgb"))
                src_size = (rgb.shape[1], rgb.shape[0])
                source_sizes.add(src_size)
                color[row] = cv2.resize(rgb, (out_width, out_height), interpolation=cv2.INTER_AREA)
                semantic_path = frame_path(data_dir, frame, "semantic")
                classes = decode_semantic_png(semantic_path, lut)
                if classes.shape != rgb.shape[:2]:
                    raise DataFormatError(semantic_path, f"semantic image is {classes.shape[1]}x{classes.shape[0]} "
                                          f"but the rgb frame is {src_size[0]}x{src_size[1]}")
                label[row] = cv2.resize(classes, (out_width, out_height), interpolation=cv2.INTER_NEAREST_EXACT)
                image_labels[f] = image_labels_of(label[row], min_pixel_fraction)
                depth_path = frame_path(data_dir, frame, "depth")
                if depth_path.is_file():
                    depth[row] = cv2.resize(_read_depth_units(depth_path, rgb.shape[:2]), (out_width, out_height),
                                            interpolation=cv2.INTER_NEAREST_EXACT)
                else:
                    frames_without_depth.append(f"{data_dir.parent.name}/{frame}")
                k, world_to_camera = read_pose(frame_path(data_dir, frame, "pose"))
                k4 = np.eye(4)
                k4[:3, :3] = k
                intrinsics[f] = scale_intrinsic(k4, src_size, (out_width, out_height)).astype(np.float32)
                poses[f] = camera_to_world(world_to_camera).astype(np.float32)
            part = slice(block_start, block_start + len(block))
            arrays["color"][part] = color
            arrays["depth"][part] = depth
            arrays["label"][part] = label
        write_array(group, "pose", poses)
        write_array(group, "frame_id", np.arange(num_kept, dtype=np.int32))
        write_array(group, "intrinsic_color_per_frame", intrinsics)
        first = intrinsics[0] if num_kept else np.eye(4, dtype=np.float32)
        write_array(group, "intrinsic_color", first)
        write_array(group, "intrinsic_depth", first)
        write_array(group, "image_labels", image_labels)
        group.attrs.update({
            "frames_without_depth": frames_without_depth,
            "source_image_sizes": sorted(list(s) for s in source_sizes),
            "intrinsics_differ": bool(num_kept and not np.allclose(intrinsics, intrinsics[0])),
        })
    seconds = time.perf_counter() - start
    logger.info("s3dis frames %s: %d of %d frames kept (%d lack semantic/pose, %d over the cap), %.1f s",
                room, num_kept, len(candidates), len(missing), len(complete) - num_kept, seconds)
    if num_kept == 0:
        logger.warning("s3dis frames %s: no 2D-3D-S frame; wrote an empty store (the index marks the room "
                       "unusable, 2D evaluation skips it)", room)
    return {**attrs, "frames_without_depth": frames_without_depth, "path": str(out_path), "seconds": seconds}
