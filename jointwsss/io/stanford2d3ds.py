"""Stanford 2D-3D-Semantics perspective frames: ``area_N/data/`` (Area 5 comes as area_5a and area_5b).

One frame is named ``camera_<uuid>_<roomType>_<roomNum>_frame_<n>`` and has one file per modality,
``<modality>/<frame>_domain_<modality>.<ext>``:

    rgb/<frame>_domain_rgb.png            1080x1080 8-bit colour
    depth/<frame>_domain_depth.png        16-bit, depth in 1/512 m; 65535 = no depth
    semantic/<frame>_domain_semantic.png  8-bit RGB; R*65536 + G*256 + B indexes assets/semantic_labels.json;
                                          indices past the end of that list (e.g. #0D0D0D) are unlabelled
    pose/<frame>_domain_pose.json         "camera_k_matrix" (3x3, pixels) and "camera_rt_matrix"
                                          (3x4 [R|t], world -> camera, metres)

``semantic_labels.json`` is a JSON list of ``<class>_<instance>_<roomType>_<roomNum>_<areaNum>``
strings, starting with ``<UNK>_0_<UNK>_0_0``; the class is the part before the first '_' and uses the
S3DIS class names.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from jointwsss.classes import IGNORE_INDEX
from jointwsss.io.atomic import atomic_path
from jointwsss.io.errors import DataFormatError
from jointwsss.io.s3dis import class_id_for_name

DEPTH_UNITS_PER_METRE = 512.0
DEPTH_MISSING = 65535
_MAX_SEMANTIC_INDEX = 1 << 24

# modality folder -> file suffix after the frame name
_SUFFIX = {
    "rgb": "_domain_rgb.png",
    "depth": "_domain_depth.png",
    "semantic": "_domain_semantic.png",
    "pose": "_domain_pose.json",
}


def frame_path(area_data_dir: str | os.PathLike, frame: str, modality: str) -> Path:
    """Path of one modality (rgb, depth, semantic, pose) of a frame under ``area_N/data``."""
    if modality not in _SUFFIX:
        raise ValueError(f"unknown 2D-3D-S modality {modality!r}; expected one of {sorted(_SUFFIX)}")
    return Path(area_data_dir) / modality / f"{frame}{_SUFFIX[modality]}"


def list_frames(area_data_dir: str | os.PathLike) -> list[str]:
    """Frame names (sorted) under ``area_N/data`` that have rgb, semantic and pose files."""
    area_data_dir = Path(area_data_dir)
    rgb_dir = area_data_dir / "rgb"
    if not rgb_dir.is_dir():
        raise DataFormatError(rgb_dir, "2D-3D-S rgb folder not found",
                              "point the config at area_N/data of the 2D-3D-Semantics release")
    frames = []
    suffix = _SUFFIX["rgb"]
    for path in rgb_dir.iterdir():
        if not path.name.endswith(suffix):
            continue
        frame = path.name[: -len(suffix)]
        if all(frame_path(area_data_dir, frame, m).is_file() for m in ("semantic", "pose")):
            frames.append(frame)
    return sorted(frames)


# --- semantic labels ---------------------------------------------------------------------------

def read_semantic_labels(path: str | os.PathLike) -> list[str]:
    """Read ``semantic_labels.json``: a list of ``class_instance_roomType_roomNum_areaNum`` strings."""
    path = Path(path)
    try:
        labels = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataFormatError(path, f"cannot read semantic labels ({exc.strerror or exc})",
                              "it is assets/semantic_labels.json of the 2D-3D-Semantics release") from exc
    except json.JSONDecodeError as exc:
        raise DataFormatError(path, f"not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(labels, list) or not labels or not all(isinstance(s, str) for s in labels):
        raise DataFormatError(path, "expected a non-empty JSON list of strings 'class_instance_room_num_area'")
    return labels


def semantic_class_lut(labels: Sequence[str]) -> np.ndarray:
    """(L,) uint8 S3DIS class id for each label index; ``<UNK>`` and unknown classes -> 255."""
    return np.array([class_id_for_name(label.split("_", 1)[0]) for label in labels], dtype=np.uint8)


def _read_png(path: Path, what: str) -> np.ndarray:
    if not path.is_file():
        raise DataFormatError(path, f"{what} PNG not found")
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DataFormatError(path, f"cannot decode {what} PNG", "the file may be truncated; re-extract it")
    return image


def read_semantic_index_png(path: str | os.PathLike) -> np.ndarray:
    """(H, W) int64 label index R*65536 + G*256 + B of a semantic PNG."""
    path = Path(path)
    bgr = _read_png(path, "semantic")
    if bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != 3:
        raise DataFormatError(path, f"semantic PNG must be 8-bit RGB, got dtype {bgr.dtype} shape {bgr.shape}")
    c = bgr.astype(np.int64)
    # cv2 returns channels as B, G, R.
    return (c[..., 2] << 16) | (c[..., 1] << 8) | c[..., 0]


def decode_semantic_png(path: str | os.PathLike, lut: np.ndarray) -> np.ndarray:
    """(H, W) uint8 S3DIS class ids of a semantic PNG; indices outside ``lut`` (unlabelled) -> 255."""
    index = read_semantic_index_png(path)
    lut = np.asarray(lut, dtype=np.uint8)
    out = np.full(index.shape, IGNORE_INDEX, dtype=np.uint8)
    inside = index < len(lut)
    out[inside] = lut[index[inside]]
    return out


def _write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    # cv2.imwrite picks the format from the extension, which the temporary name lacks: encode first.
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"{path}: PNG encoding failed for dtype {image.dtype} shape {image.shape}")
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(buf.tobytes())


def read_rgb_png(path: str | os.PathLike) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an ``rgb/`` frame."""
    path = Path(path)
    image = _read_png(path, "rgb")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
        raise DataFormatError(path, f"rgb PNG must be 8-bit colour, got dtype {image.dtype} shape {image.shape}")
    return np.ascontiguousarray(image[..., 2::-1])  # cv2's B, G, R(, A) -> R, G, B


def write_rgb_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Write (H, W, 3) uint8 RGB as an ``rgb/`` frame PNG, atomically."""
    _write_png(path, np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8)[..., ::-1]))


def encode_semantic_png(path: str | os.PathLike, index: np.ndarray) -> None:
    """Write (H, W) integer label indices (0 .. 2**24-1) as an RGB semantic PNG (R is the high byte)."""
    index = np.asarray(index)
    if index.ndim != 2 or index.size == 0:
        raise ValueError(f"{path}: semantic index must be a non-empty (H, W) array, got shape {index.shape}")
    if index.min() < 0 or index.max() >= _MAX_SEMANTIC_INDEX:
        raise ValueError(f"{path}: semantic indices must lie in 0..{_MAX_SEMANTIC_INDEX - 1}")
    index = index.astype(np.int64)
    bgr = np.stack([index & 0xFF, (index >> 8) & 0xFF, (index >> 16) & 0xFF], axis=-1).astype(np.uint8)
    _write_png(path, bgr)


def write_semantic_labels(path: str | os.PathLike, labels: Sequence[str]) -> None:
    """Write ``semantic_labels.json`` (a JSON list of strings)."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(list(labels)), encoding="utf-8")


# --- pose --------------------------------------------------------------------------------------

def read_pose(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a pose JSON: ``(K (3, 3) float64 pixels, world_to_camera (3, 4) float64 [R|t] metres)``."""
    path = Path(path)
    try:
        pose = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataFormatError(path, f"cannot read pose JSON ({exc.strerror or exc})") from exc
    except json.JSONDecodeError as exc:
        raise DataFormatError(path, f"not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(pose, dict):
        raise DataFormatError(path, "pose JSON must be an object with camera_k_matrix and camera_rt_matrix")
    mats = {}
    for key, shape in (("camera_k_matrix", (3, 3)), ("camera_rt_matrix", (3, 4))):
        if key not in pose:
            raise DataFormatError(path, f"pose JSON has no {key!r}")
        try:
            m = np.asarray(pose[key], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise DataFormatError(path, f"{key} is not a numeric matrix") from exc
        if key == "camera_rt_matrix" and m.shape == (4, 4) and np.allclose(m[3], [0, 0, 0, 1]):
            m = m[:3]
        if m.shape != shape or not np.isfinite(m).all():
            raise DataFormatError(path, f"{key} must be a finite {shape[0]}x{shape[1]} matrix, got shape {m.shape}")
        mats[key] = m
    return mats["camera_k_matrix"], mats["camera_rt_matrix"]


def camera_to_world(world_to_camera: np.ndarray) -> np.ndarray:
    """(4, 4) float64 camera->world transform, the inverse of a (3, 4) world->camera [R|t]."""
    rt = np.asarray(world_to_camera, dtype=np.float64)
    rotation, translation = rt[:3, :3], rt[:3, 3]
    out = np.eye(4)
    out[:3, :3] = rotation.T
    out[:3, 3] = -rotation.T @ translation
    return out


def write_pose(path: str | os.PathLike, k: np.ndarray, world_to_camera: np.ndarray) -> None:
    """Write a pose JSON with camera_k_matrix, camera_rt_matrix and camera_location (metres, world)."""
    k = np.asarray(k, dtype=np.float64)
    rt = np.asarray(world_to_camera, dtype=np.float64)
    if k.shape != (3, 3) or rt.shape != (3, 4):
        raise ValueError(f"{path}: K must be 3x3 and RT 3x4, got {k.shape} and {rt.shape}")
    pose = {
        "camera_k_matrix": k.tolist(),
        "camera_rt_matrix": rt.tolist(),
        "camera_location": camera_to_world(rt)[:3, 3].tolist(),
    }
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(pose, indent=2), encoding="utf-8")


# --- depth -------------------------------------------------------------------------------------

def read_depth_png(path: str | os.PathLike) -> np.ndarray:
    """(H, W) float32 depth in metres (PNG value / 512); NaN where the PNG holds 65535 (no depth)."""
    path = Path(path)
    raw = _read_png(path, "depth")
    if raw.dtype != np.uint16 or raw.ndim != 2:
        raise DataFormatError(path, f"depth PNG must be 16-bit single-channel, got dtype {raw.dtype} shape {raw.shape}")
    depth = raw.astype(np.float32) / np.float32(DEPTH_UNITS_PER_METRE)
    depth[raw == DEPTH_MISSING] = np.nan
    return depth


def write_depth_png(path: str | os.PathLike, depth_m: np.ndarray) -> None:
    """Write (H, W) depth in metres as a 16-bit PNG at 1/512 m; NaN -> 65535 (no depth)."""
    depth_m = np.asarray(depth_m, dtype=np.float64)
    if depth_m.ndim != 2:
        raise ValueError(f"{path}: depth must be (H, W), got shape {depth_m.shape}")
    missing = ~np.isfinite(depth_m)
    units = np.rint(np.where(missing, 0.0, depth_m) * DEPTH_UNITS_PER_METRE)
    if units.min() < 0 or units.max() >= DEPTH_MISSING:
        raise ValueError(f"{path}: depth must lie in 0..{(DEPTH_MISSING - 1) / DEPTH_UNITS_PER_METRE:.3f} m")
    raw = units.astype(np.uint16)
    raw[missing] = DEPTH_MISSING
    _write_png(path, raw)
