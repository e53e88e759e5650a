"""``frames/{scene}.zarr``: sampled RGB-D views of a scene with 2D labels and image-level labels.

From ``<scene_dir>/<scene>.sens`` every ``skip``-th frame is sampled (frame ids 0, skip, 2*skip, ...;
the paper keeps 1 %, i.e. skip 100). Only the sampled frames are ever read: :class:`SensReader`
indexes the stream by its 96-byte frame headers and reads payloads on demand, so a multi-GB scene
costs the time and memory of the frames kept, not of the file.

Per kept frame the store holds (layout: see the store contracts in the README):

- ``color`` (F, H, W, 3) uint8 RGB at ``image_size`` = (W, H) pixels. JPEG frames are decoded
  directly at 1/2, 1/4 or 1/8 size (libjpeg DCT scaling) when that is still at least ``image_size``
  and divides the stream size exactly, then area-resized to ``image_size``.
- ``depth`` (F, Hd, Wd) uint16 raw depth units (metres = value / ``depth_shift``) at the stream's
  own depth resolution, with its own intrinsic ``intrinsic_depth``.
- ``label`` (F, H, W) uint8 class index 0..19 (255 = ignore) from ``<scene>_2d-label-filt.zip``,
  raw ScanNet ids mapped through the label tsv, nearest-neighbour resized to ``image_size``.
- ``image_labels`` (F, 20) bool: the class covers at least ``min_pixel_fraction`` of the H*W pixels.
- ``pose`` (F, 4, 4) float32 camera_to_world, ``frame_id`` (F,) int32 index in the ``.sens`` stream,
  ``intrinsic_color`` (4, 4) float32 scaled to ``image_size``.

Skips and errors (nothing half-written is ever left at the output path):

- A sampled frame with a non-finite pose (ScanNet writes all ``-inf`` where tracking was lost) is
  dropped; attrs ``frames_dropped["invalid_pose"]`` counts them and ``dropped_frame_ids`` lists them.
- A scene whose every sampled pose is invalid is a *counted skip*, not an error: a valid store with
  F = 0 (empty arrays, ``frames_kept: 0``) is written and a warning logged; the index marks the
  scene unusable.
- A scene without a label zip (ScanNet's test scenes) gets labels all 255, image labels all False
  and ``has_labels: false``. A label zip that lacks the image of a kept frame is an error naming the
  zip and the frame.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
import zarr

from jointwsss.classes import IGNORE_INDEX, NUM_CLASSES
from jointwsss.geometry.camera import scale_intrinsic
from jointwsss.io.atomic import atomic_path
from jointwsss.io.errors import DataFormatError
from jointwsss.io.sens import SensHeader, SensReader
from jointwsss.io.scannet_labels import LABEL_FOLDER, LABEL_TSV_NAME, LabelZip, raw_to_class_lut, resource_path
from jointwsss.io.zarr_store import create_array, create_store, write_array

logger = logging.getLogger("jointwsss")

# Per-frame arrays are written in blocks of this many frames, and each block is one shard file.
# Zarr rewrites a whole shard (holding it in memory, two to three times) whenever part of it is
# written, so with one shard for all F frames, writing frame by frame costs O(F^2) I/O and memory
# that grows with F (measured: +400 MB for 200 frames of 320x240 colour + 640x480 depth). With
# shard = write block, every write is a complete shard: memory stays at one block (~15 MB for
# 320x240 colour, 640x480 depth and labels) and a real scene (~55 frames at skip 100) is still only
# a handful of files per array. Readers are unaffected: chunks are still one frame each.
WRITE_BLOCK_FRAMES = 16

# libjpeg can scale a JPEG by 1/2, 1/4 or 1/8 while decoding.
_JPEG_REDUCE_FACTORS = (8, 4, 2)


def sample_frame_ids(num_frames: int, skip: int) -> np.ndarray:
    """(K,) int64 frame ids 0, skip, 2*skip, ... below ``num_frames`` (K = ceil(num_frames / skip))."""
    if skip < 1:
        raise ValueError(f"frame skip must be >= 1, got {skip}")
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    return np.arange(0, num_frames, skip, dtype=np.int64)


def jpeg_reduce_factor(color_size: tuple[int, int], image_size: tuple[int, int]) -> int:
    """Largest libjpeg scale-down factor (1, 2, 4 or 8) for decoding ``color_size`` towards ``image_size``.

    Both sizes are (width, height) in pixels. The factor must leave the decoded image at least
    ``image_size`` in both dimensions (so the final resize only shrinks) and must divide both sides
    of ``color_size`` exactly: libjpeg rounds a partial last pixel up, which would shift the image
    geometry by up to a source pixel against the intrinsics scaled from the full size.
    """
    (width, height), (out_width, out_height) = color_size, image_size
    for factor in _JPEG_REDUCE_FACTORS:
        if width % factor or height % factor:
            continue
        if width // factor >= out_width and height // factor >= out_height:
            return factor
    return 1


def color_decode_reduce(header: SensHeader, image_size: tuple[int, int]) -> int:
    """The ``reduce`` factor for :meth:`SensReader.color` of a stream stored at ``image_size`` (W, H).

    Only JPEG decodes faster when reduced; other codecs are decoded fully and resized once.
    """
    if header.color_compression != "jpeg":
        return 1
    return jpeg_reduce_factor((header.color_width, header.color_height), image_size)


def sample_valid_frames(reader: SensReader, skip: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sampled frame ids (K,) int64, their poses (K, 4, 4) float32 and whether each pose is finite (K,) bool.

    Uses only the reader's frame index (no payload is read).
    """
    sampled_ids = sample_frame_ids(len(reader), skip)
    poses = np.zeros((len(sampled_ids), 4, 4), dtype=np.float32)
    for row, frame_id in enumerate(sampled_ids):
        poses[row] = reader.frames[frame_id].camera_to_world
    return sampled_ids, poses, np.isfinite(poses).all(axis=(1, 2))


def read_stored_color(reader: SensReader, frame_id: int, image_size: tuple[int, int], reduce: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB of frame ``frame_id`` at ``image_size`` (W, H): reduced decode, then area resize."""
    rgb = reader.color(frame_id, reduce=reduce)
    if (rgb.shape[1], rgb.shape[0]) != tuple(image_size):
        rgb = cv2.resize(rgb, tuple(image_size), interpolation=cv2.INTER_AREA)
    return rgb


def resolve_label_tsv(scene_dir: Path, label_tsv: Path | None) -> Path:
    """The label tsv: ``label_tsv``, else ``<raw_dir>/scannetv2-labels.combined.tsv``, else the packaged one.

    ``scene_dir`` is ``<raw_dir>/scans/<scene>``.
    """
    if label_tsv is not None:
        return Path(label_tsv)
    raw_dir_tsv = Path(scene_dir).parent.parent / LABEL_TSV_NAME
    return raw_dir_tsv if raw_dir_tsv.is_file() else resource_path(LABEL_TSV_NAME)


def _create_frame_array(group: zarr.Group, name: str, shape: tuple[int, ...], dtype) -> zarr.Array:
    """Empty (F, ...) array, one chunk per frame, one shard per write block."""
    return create_array(group, name, shape, dtype, per_item=True, items_per_shard=WRITE_BLOCK_FRAMES)


def image_labels_of(label: np.ndarray, min_pixel_fraction: float) -> np.ndarray:
    """(20,) bool: classes covering at least ``min_pixel_fraction`` of all pixels of ``label`` (and at least one pixel)."""
    counts = np.bincount(label.ravel(), minlength=256)[:NUM_CLASSES]
    return (counts > 0) & (counts >= min_pixel_fraction * label.size)


def _check_arguments(skip: int, image_size, min_pixel_fraction: float) -> tuple[int, tuple[int, int]]:
    """(skip, (width, height)) as ints; ValueError naming the config key for anything out of range."""
    if int(skip) != skip or skip < 1:
        raise ValueError(f"frames.skip must be an integer >= 1, got {skip!r}")
    size = tuple(int(s) for s in image_size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"frames.image_size must be (width, height) in pixels, got {image_size!r}")
    if not 0.0 <= min_pixel_fraction <= 1.0:
        raise ValueError(f"labels.min_pixel_fraction must lie in [0, 1], got {min_pixel_fraction!r}")
    return int(skip), size


def build_frames_store(
    scene_dir: Path,
    out_path: Path,
    *,
    skip: int,
    image_size: tuple[int, int],
    min_pixel_fraction: float,
    label_tsv: Path | None = None,
    sens_file: BinaryIO | None = None,
    label_zip_file: BinaryIO | None = None,
) -> dict:
    """Write ``frames/{scene}.zarr`` at ``out_path`` from the raw scene folder ``scene_dir``; returns a summary.

    ``image_size`` is (width, height) in pixels of the stored colour and label images. ``sens_file``
    (with ``label_zip_file``, None for a scene without labels) replaces the scene folder's ``.sens`` and
    label zip by open seekable binary files, e.g. :class:`jointwsss.io.ranged.RangeFile` reading them
    from the ScanNet server (``scannet.transfer: sampled``); the caller closes them. The summary
    holds the store's attrs plus ``path`` and ``seconds``. Raises DataFormatError (naming the file
    and, where relevant, the frame) for bad input; see the module docstring for the counted skips.
    """
    start = time.perf_counter()
    scene_dir, out_path = Path(scene_dir), Path(out_path)
    scene = scene_dir.name
    skip, (out_width, out_height) = _check_arguments(skip, image_size, min_pixel_fraction)
    sens_path = scene_dir / f"{scene}.sens"
    zip_path = scene_dir / f"{scene}_2d-label-filt.zip"
    if sens_file is not None:
        sens_path, zip_path = sens_file, label_zip_file
        has_labels = label_zip_file is not None
    elif not sens_path.is_file():
        raise DataFormatError(sens_path, "file does not exist", "download or synthesize the scene first")
    else:
        has_labels = zip_path.is_file()
    # names for messages and attrs: the local path, or the URL of a remote file
    sens_name = str(getattr(sens_path, "name", "")) if sens_file is not None else sens_path.name
    zip_name = str(getattr(zip_path, "name", "")) if sens_file is not None else str(zip_path)
    sens_source = sens_name if sens_file is not None else str(sens_path)
    tsv_path = resolve_label_tsv(scene_dir, label_tsv) if has_labels else None
    raw_to_class = raw_to_class_lut(tsv_path) if has_labels else None

    with contextlib.ExitStack() as open_files:
        reader = open_files.enter_context(SensReader(sens_path))
        labels = open_files.enter_context(LabelZip(zip_path)) if has_labels else None
        header = reader.header
        frames_in_stream = len(reader)
        sampled_ids, sampled_poses, valid = sample_valid_frames(reader, skip)
        kept_ids, dropped_ids = sampled_ids[valid], sampled_ids[~valid]
        num_kept = len(kept_ids)

        if labels is not None:
            missing = sorted(set(kept_ids.tolist()) - set(labels.frame_ids()))
            if missing:
                raise DataFormatError(
                    zip_name,
                    f"has no label image for frame {missing[0]} of {sens_name} (entry "
                    f"{LABEL_FOLDER}/{missing[0]}.png; {len(missing)} of the {num_kept} kept frames lack one: "
                    f"{missing[:10]})",
                    "the label zip and the .sens must come from the same scene; re-download both",
                )

        color_size = (header.color_width, header.color_height)
        reduce = color_decode_reduce(header, (out_width, out_height))
        sources = [sens_source] + ([zip_name, str(tsv_path)] if has_labels else [])
        attrs = {
            "scene": scene,
            "frames_in_stream": frames_in_stream,
            "frame_skip": skip,
            "frames_sampled": len(sampled_ids),
            "frames_kept": num_kept,
            "frames_dropped": {"invalid_pose": len(dropped_ids)},
            "dropped_frame_ids": {"invalid_pose": dropped_ids.tolist()},
            "image_size": [out_width, out_height],
            "color_size_in_stream": list(color_size),
            "color_decode_reduce": reduce,
            "depth_size": [header.depth_width, header.depth_height],
            "depth_shift": header.depth_shift,
            "min_pixel_fraction": float(min_pixel_fraction),
            "has_labels": has_labels,
            "source_files": sources,
        }

        with atomic_path(out_path) as tmp:
            group = create_store(tmp, "frames", attrs)
            write_array(group, "pose", sampled_poses[valid])
            write_array(group, "frame_id", kept_ids.astype(np.int32))
            intrinsic_color = scale_intrinsic(header.intrinsic_color, color_size, (out_width, out_height))
            write_array(group, "intrinsic_color", intrinsic_color.astype(np.float32))
            write_array(group, "intrinsic_depth", np.asarray(header.intrinsic_depth, dtype=np.float32))
            color_out = _create_frame_array(group, "color", (num_kept, out_height, out_width, 3), np.uint8)
            depth_shape = (header.depth_height, header.depth_width)
            depth_out = _create_frame_array(group, "depth", (num_kept, *depth_shape), np.uint16)
            label_out = _create_frame_array(group, "label", (num_kept, out_height, out_width), np.uint8)
            image_labels = np.zeros((num_kept, NUM_CLASSES), dtype=bool)

            for block_start in range(0, num_kept, WRITE_BLOCK_FRAMES):
                block_ids = kept_ids[block_start : block_start + WRITE_BLOCK_FRAMES]
                n = len(block_ids)
                color_block = np.empty((n, out_height, out_width, 3), dtype=np.uint8)
                depth_block = np.empty((n, *depth_shape), dtype=np.uint16)
                label_block = np.full((n, out_height, out_width), IGNORE_INDEX, dtype=np.uint8)
                for row, frame_id in enumerate(block_ids.tolist()):
                    color_block[row] = read_stored_color(reader, frame_id, (out_width, out_height), reduce)
                    depth_block[row] = reader.depth(frame_id)
                    if labels is not None:
                        label_block[row] = labels.read_classes(frame_id, raw_to_class, size=(out_width, out_height))
                        image_labels[block_start + row] = image_labels_of(label_block[row], min_pixel_fraction)
                block = slice(block_start, block_start + n)
                color_out[block] = color_block
                depth_out[block] = depth_block
                label_out[block] = label_block
            write_array(group, "image_labels", image_labels)

    seconds = time.perf_counter() - start
    logger.info(
        "frames %s: %d of %d frames sampled, %d kept, %d dropped (invalid pose), %.1f s",
        scene, len(sampled_ids), frames_in_stream, num_kept, len(dropped_ids), seconds,
    )
    if num_kept == 0:
        logger.warning(
            "frames %s: no sampled frame has a valid pose (%d sampled, all dropped); wrote an empty store, "
            "the index marks the scene unusable for training", scene, len(sampled_ids),
        )
    return {**attrs, "path": str(out_path), "seconds": seconds}


def build_frames_store_sampled(scene_dir: Path, out_path: Path, *, base_url: str, with_labels: bool, **kw) -> dict:
    """:func:`build_frames_store` reading the scene's ``.sens`` and label zip from the ScanNet server.

    ``scannet.transfer: sampled``: both files are read through HTTP Range requests
    (:class:`jointwsss.io.ranged.RangeFile`), so only the header, the frame headers, the sampled
    payloads and the sampled label PNGs travel; what was fetched stays in ``<scene_dir>/<file>.ranges/``
    so a rerun (another ``skip``) fetches only payloads not seen before. ``with_labels``: False for a
    hidden-test scene (no label zip on the server). ``kw`` goes to :func:`build_frames_store`. One
    summary line per file (requests, bytes fetched vs file size, seconds) is logged; the returned
    summary carries them under ``transfer``.
    """
    from jointwsss.io.download import scene_file_url
    from jointwsss.io.ranged import RangeFile, range_cache_dir

    scene_dir = Path(scene_dir)
    scene = scene_dir.name
    suffixes = [".sens"] + (["_2d-label-filt.zip"] if with_labels else [])
    with contextlib.ExitStack() as stack:
        remote = [stack.enter_context(RangeFile(scene_file_url(base_url, scene, suffix),
                                                cache_dir=range_cache_dir(scene_dir, f"{scene}{suffix}")))
                  for suffix in suffixes]
        try:
            summary = build_frames_store(scene_dir, out_path, sens_file=remote[0],
                                         label_zip_file=remote[1] if with_labels else None, **kw)
        finally:
            for file in remote:
                logger.info("transfer %s", file.summary())
        summary["transfer"] = [{"url": f.name, "requests": f.requests, "bytes_fetched": f.bytes_fetched,
                                "file_bytes": f.size, "seconds": round(f.seconds, 3)} for f in remote]
    return summary
