"""Colour rules shared by every exported picture, and atomic PNG writing."""

from __future__ import annotations

import os

import cv2
import numpy as np

from jointwsss.io.atomic import atomic_path

# JET colour map as RGB, indexed by the score quantised to 0..255 (cv2 returns BGR, hence the flip).
_HEAT_RGB = np.ascontiguousarray(
    cv2.applyColorMap(np.arange(256, dtype=np.uint8)[None], cv2.COLORMAP_JET)[0, :, ::-1])


def heat_colors(scores: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 RGB JET colours of scores in [0, 1] (any shape ``...``): 0 dark blue, 1 dark red.

    Scores are clipped to [0, 1] and quantised to 256 levels (``round(score * 255)``), i.e. exactly
    ``cv2.applyColorMap(quantised, cv2.COLORMAP_JET)`` converted to RGB. Non-finite scores are an error.
    """
    scores = np.asarray(scores, dtype=np.float32)
    if not np.isfinite(scores).all():
        raise ValueError(f"scores hold {int((~np.isfinite(scores)).sum())} non-finite values")
    levels = np.rint(np.clip(scores, 0.0, 1.0) * 255).astype(np.uint8)
    return _HEAT_RGB[levels]


def blend_half(image: np.ndarray, overlay: np.ndarray) -> np.ndarray:
    """50 % blend of two same-shape uint8 images: ``(image + overlay + 1) // 2`` per channel (halves round up)."""
    image, overlay = np.asarray(image), np.asarray(overlay)
    if image.shape != overlay.shape:
        raise ValueError(f"cannot blend images of shapes {image.shape} and {overlay.shape}")
    return ((image.astype(np.uint16) + overlay.astype(np.uint16) + 1) // 2).astype(np.uint8)


def write_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 RGB image as PNG atomically (cv2 stores BGR, so channels are swapped)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {rgb.dtype} {rgb.shape}")
    # Encode in memory: cv2.imwrite picks the format from the file name, and the temporary name has no .png.
    ok, data = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
    if not ok:
        raise OSError(f"{os.fspath(path)}: cv2 could not encode a {rgb.shape} image as PNG")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.tobytes())
