"""Augmentations that keep every point-pixel pair consistent.

Points are augmented in place (subsample, flips, rotation about the vertical axis): correspondences
are stored by point index, so the loader only has to re-index the surviving points. Images are
augmented by an affine map (random resize, crop, horizontal flip) that is applied to the pixel
coordinates ``uv`` of the correspondences too; colour jitter changes values, not geometry. A resize below
the crop size pads instead of cropping (with the ImageNet mean colour, 0 after normalisation; labels with
255), as PSA's random resize-and-crop does, so a scale range at or below 1 keeps every correspondence.

Pixel convention everywhere: pixel centres at integer coordinates (u = column, v = row), so resizing
by ``s`` maps ``u -> (u + 0.5) * s - 0.5`` (as cv2.resize does) and a horizontal flip of a W-pixel
image maps ``u -> W - 1 - u``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@dataclass(frozen=True)
class PointAugment:
    flip: bool = True              # random mirror of x and of y
    rotate: bool = True            # random rotation about z, uniform in [0, 2 pi)
    scale_range: tuple[float, float] = (1.0, 1.0)


@dataclass(frozen=True)
class ImageAugment:
    scale_range: tuple[float, float] = (0.9, 1.1)   # random resize factor, before the crop
    crop_size: tuple[int, int] | None = None        # (W, H) crop; None = the stored size
    hflip: bool = True
    color_jitter: float = 0.3                       # brightness / contrast / saturation strength (0 = off)


def subsample_points(num_available: int, num: int, rng: np.random.Generator) -> np.ndarray:
    """(num,) int64 indices of the kept points; without replacement when possible, else all + random repeats."""
    if num_available >= num:
        return np.sort(rng.choice(num_available, size=num, replace=False))
    extra = rng.choice(num_available, size=num - num_available, replace=True)
    return np.concatenate([np.arange(num_available), extra])


def augment_points(xyz: np.ndarray, aug: PointAugment | None, rng: np.random.Generator) -> np.ndarray:
    """Centre (x, y) on the cloud's mean, put the floor at z = 0, then flip / rotate / scale. (N, 3) float32."""
    out = xyz.astype(np.float32, copy=True)
    out[:, :2] -= out[:, :2].mean(axis=0)
    out[:, 2] -= out[:, 2].min() if len(out) else 0.0
    if aug is None:
        return out
    if aug.flip:
        if rng.random() < 0.5:
            out[:, 0] = -out[:, 0]
        if rng.random() < 0.5:
            out[:, 1] = -out[:, 1]
    if aug.rotate:
        a = rng.uniform(0, 2 * np.pi)
        c, s = np.cos(a), np.sin(a)
        out[:, :2] = out[:, :2] @ np.array([[c, s], [-s, c]], dtype=np.float32)
    lo, hi = aug.scale_range
    if hi > lo or lo != 1.0:
        out *= np.float32(rng.uniform(lo, hi))
    return out


def point_features(xyz_aug: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """(4, N) float32 input features: colour in [-1, 1] and height above the floor in metres (as WyPR)."""
    colour = rgb.astype(np.float32) / 127.5 - 1.0
    return np.concatenate([colour, xyz_aug[:, 2:3]], axis=1).T.copy()


def augment_image(
    image: np.ndarray, uv: np.ndarray, aug: ImageAugment | None, rng: np.random.Generator,
    label: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Random resize + crop + horizontal flip + colour jitter of one view, moving ``uv`` with the image.

    image (H, W, 3) uint8 RGB; uv (M, 2) float32 pixel coordinates; label (H, W) uint8 or None.
    Returns (image (Hc, Wc, 3) uint8, uv (M', 2), keep (M,) bool of the pairs still inside the crop,
    label or None). Where the resized image is smaller than the crop it is placed at a random offset on a
    canvas of the ImageNet mean colour (labels: 255). Without ``aug`` everything is returned unchanged.
    """
    h, w = image.shape[:2]
    if aug is None:
        return image, uv, np.ones(len(uv), dtype=bool), label
    s = rng.uniform(*aug.scale_range)
    cw, ch = aug.crop_size or (w, h)
    nw, nh = max(1, int(round(w * s))), max(1, int(round(h * s)))
    sx, sy = nw / w, nh / h
    image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    if label is not None:
        label = cv2.resize(label, (nw, nh), interpolation=cv2.INTER_NEAREST_EXACT)
    # crop offset in the resized image; negative where the image is smaller than the crop (padding)
    x0 = int(rng.integers(min(0, nw - cw), max(0, nw - cw) + 1))
    y0 = int(rng.integers(min(0, nh - ch), max(0, nh - ch) + 1))
    image = _crop_or_pad(image, x0, y0, cw, ch, fill=np.round(IMAGENET_MEAN * 255).astype(np.uint8))
    if label is not None:
        label = _crop_or_pad(label, x0, y0, cw, ch, fill=np.uint8(255))
    u = (uv[:, 0] + 0.5) * sx - 0.5 - x0
    v = (uv[:, 1] + 0.5) * sy - 0.5 - y0
    if aug.hflip and rng.random() < 0.5:
        image = image[:, ::-1]
        if label is not None:
            label = label[:, ::-1]
        u = cw - 1 - u
    keep = (u >= -0.5) & (u < cw - 0.5) & (v >= -0.5) & (v < ch - 0.5)
    if aug.color_jitter > 0:
        image = jitter_colour(image, aug.color_jitter, rng)
    return (np.ascontiguousarray(image), np.stack([u[keep], v[keep]], axis=1).astype(np.float32), keep,
            None if label is None else np.ascontiguousarray(label))


def _crop_or_pad(array: np.ndarray, x0: int, y0: int, width: int, height: int, fill) -> np.ndarray:
    """The ``width x height`` window of ``array`` (H, W[, 3]) at offset (x0, y0); outside the array: ``fill``."""
    if x0 >= 0 and y0 >= 0 and x0 + width <= array.shape[1] and y0 + height <= array.shape[0]:
        return array[y0:y0 + height, x0:x0 + width]
    out = np.empty((height, width) + array.shape[2:], dtype=array.dtype)
    out[...] = fill
    sx0, sy0 = max(0, x0), max(0, y0)
    sx1, sy1 = min(array.shape[1], x0 + width), min(array.shape[0], y0 + height)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = array[sy0:sy1, sx0:sx1]
    return out


def jitter_colour(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Random brightness, contrast and saturation, each by a factor in [1 - strength, 1 + strength]."""
    img = image.astype(np.float32)
    b, c, s = rng.uniform(1 - strength, 1 + strength, size=3)
    img *= b
    mean = img.mean()
    img = (img - mean) * c + mean
    grey = img.mean(axis=2, keepdims=True)
    img = (img - grey) * s + grey
    return np.clip(img, 0, 255).astype(np.uint8)


def normalize_image(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32 normalised with the ImageNet mean and std."""
    img = image.astype(np.float32) / 255.0
    return ((img - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1).copy()
