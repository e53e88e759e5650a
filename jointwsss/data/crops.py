"""The image network's pretraining data (our ImageNet stand-in): labelled frames or object-centric crops of them.

The paper starts the image classifier from ImageNet weights: a network that already recognises objects and whose
features at a pixel already tell what is there (its CAMs localise from the first step). Without ImageNet, we
build the nearest thing from synthetic scenes that no experiment trains or evaluates on (the ``pretrain``
scenes); their labels play the role of ImageNet's labels, and the experiments themselves only ever see image-
and scene-level labels. Two tasks (``pretrain.task``):

- ``frames`` (:class:`LabelledFrameDataset`, the default): every kept frame with its label image, for per-pixel
  classification (``losses.pixel_classification_loss``). Measured on the embedded world, this is what gives the
  stand-in ImageNet's dense features (docs/world.md, "A stand-in with dense features").
- ``crops`` (:class:`ObjectCropDataset`): every connected region of a class in a frame's label image becomes one
  square crop around that region (with some context), labelled with that class, for single-label classification
  (softmax cross-entropy, as ImageNet training does).

A frame item is ``{"images": (3, H, W) float32 normalised, "label": (H, W) long, 255 unlabelled}``; a crop item
``{"images": (3, S, S) float32 normalised, "class_index": long}``; the default torch collation stacks them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from jointwsss.classes import IGNORE_INDEX, NUM_CLASSES
from jointwsss.data.transforms import jitter_colour, normalize_image
from jointwsss.io.layout import store_path
from jointwsss.io.zarr_store import open_store


@dataclass(frozen=True)
class ObjectRegion:
    """One connected region of one class in one frame; box in pixels of the stored frame."""

    scene: str
    frame: int
    class_index: int
    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class CropConfig:
    cache_dir: Path
    scenes: tuple[str, ...]
    crop_size: int = 64                              # S: crops are resized to S x S pixels
    min_area_fraction: float = 0.005                 # a region must cover this share of the frame's pixels
    context_range: tuple[float, float] = (1.1, 1.5)  # crop side = longest box side x uniform(range)
    augment: bool = True                             # random context, horizontal flip, colour jitter
    color_jitter: float = 0.3
    seed: int = 0


def object_regions(label: np.ndarray, classes: np.ndarray, min_area: int) -> list[tuple[int, int, int, int, int]]:
    """Connected regions (8-connectivity) of each class in ``classes`` with at least ``min_area`` pixels.

    label (H, W) uint8 class indices (255 = ignore); classes: class indices to look for.
    Returns ``(class_index, x, y, width, height)`` per region, in class then component order.
    """
    regions = []
    for c in classes:
        mask = (label == c).astype(np.uint8)
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        for k in range(1, count):
            x, y, w, h, area = (int(v) for v in stats[k])
            if area >= min_area:
                regions.append((int(c), x, y, w, h))
    return regions


def square_crop(image: np.ndarray, x: int, y: int, width: int, height: int, context: float, size: int) -> np.ndarray:
    """The square of side ``context * max(width, height)`` (at least 2 px) centred on the box, resized to
    ``size`` x ``size``. Parts outside the image repeat its edge pixels. image (H, W, 3) uint8 -> (S, S, 3)."""
    side = max(2, int(round(context * max(width, height))))
    x0 = int(round(x + width / 2 - side / 2))
    y0 = int(round(y + height / 2 - side / 2))
    h, w = image.shape[:2]
    pad_x0, pad_y0 = max(0, -x0), max(0, -y0)
    pad_x1, pad_y1 = max(0, x0 + side - w), max(0, y0 + side - h)
    if pad_x0 or pad_y0 or pad_x1 or pad_y1:
        image = cv2.copyMakeBorder(image, pad_y0, pad_y1, pad_x0, pad_x1, cv2.BORDER_REPLICATE)
        x0, y0 = x0 + pad_x0, y0 + pad_y0
    crop = image[y0:y0 + side, x0:x0 + side]
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interpolation)


def find_regions(cache_dir: Path, scenes, min_area_fraction: float) -> list[ObjectRegion]:
    """Every object region of the classes in each kept frame's image-level label, over ``scenes``."""
    regions = []
    for scene in scenes:
        frames = open_store(store_path(cache_dir, "frames", scene), "frames")
        image_labels = frames["image_labels"][...]
        if len(image_labels) == 0:
            continue
        labels = frames["label"][...]  # (F, H, W): one read of the scene's label images
        min_area = max(1, int(np.ceil(min_area_fraction * labels.shape[1] * labels.shape[2])))
        for f in range(len(image_labels)):
            present = np.flatnonzero(image_labels[f])
            for c, x, y, w, h in object_regions(labels[f], present, min_area):
                regions.append(ObjectRegion(scene, f, c, x, y, w, h))
    return regions


class _EpochItems(torch.utils.data.Dataset):
    """Items whose augmentation is drawn from (seed, epoch, index): ``set_epoch`` or ``train.EpochSampler``'s
    ``(epoch, index)`` keys (so persistent workers, which hold their own copy of the dataset, still follow the
    epoch)."""

    epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _epoch_and_index(self, index: int | tuple[int, int]) -> tuple[int, int]:
        return index if isinstance(index, tuple) else (self.epoch, index)


class ObjectCropDataset(_EpochItems):
    """Object-centric crops of the frames stores of ``cfg.scenes`` (see the module docstring)."""

    def __init__(self, cfg: CropConfig):
        self.cfg = cfg
        self.regions = find_regions(cfg.cache_dir, cfg.scenes, cfg.min_area_fraction)
        if not self.regions:
            raise ValueError(f"{cfg.cache_dir}: no labelled object region of at least {cfg.min_area_fraction:.1%} "
                             f"of a frame in scenes {list(cfg.scenes)[:5]}... -- are these frames stores labelled?")
        self._colors: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.regions)

    def class_counts(self) -> np.ndarray:
        """(20,) int64 number of crops per class."""
        return np.bincount([r.class_index for r in self.regions], minlength=NUM_CLASSES)

    def __getitem__(self, index: int | tuple[int, int]) -> dict:
        """Item ``index``, or ``(epoch, index)`` as ``train.EpochSampler`` yields it."""
        cfg = self.cfg
        epoch, i = self._epoch_and_index(index)
        r = self.regions[i]
        if r.scene not in self._colors:
            # A scene's kept frames are decoded once per worker process and kept: every frame yields several
            # crops per epoch, and the pretraining scenes' frames are small (~0.5 MB a scene at 160 x 120).
            self._colors[r.scene] = open_store(store_path(cfg.cache_dir, "frames", r.scene), "frames")["color"][...]
        image = self._colors[r.scene][r.frame]
        rng = np.random.default_rng([cfg.seed, epoch, i])
        lo, hi = cfg.context_range
        context = rng.uniform(lo, hi) if cfg.augment else (lo + hi) / 2
        crop = square_crop(image, r.x, r.y, r.width, r.height, context, cfg.crop_size)
        if cfg.augment:
            if rng.random() < 0.5:
                crop = crop[:, ::-1]
            if cfg.color_jitter > 0:
                crop = jitter_colour(crop, cfg.color_jitter, rng)
        return {"images": torch.from_numpy(normalize_image(np.ascontiguousarray(crop))),
                "class_index": torch.tensor(r.class_index, dtype=torch.long)}


@dataclass(frozen=True)
class FrameConfig:
    cache_dir: Path
    scenes: tuple[str, ...]
    augment: bool = True                             # random horizontal flip, colour jitter (and crop_size)
    color_jitter: float = 0.3
    seed: int = 0
    crop_size: tuple[int, int] | None = None         # (width, height) of a random window of each frame, in pixels


class LabelledFrameDataset(_EpochItems):
    """Every kept frame of the frames stores of ``cfg.scenes`` with at least one labelled pixel, with its label
    image (see the module docstring)."""

    def __init__(self, cfg: FrameConfig):
        self.cfg = cfg
        colors, labels = [], []
        for scene in cfg.scenes:
            # the pretrain scenes' kept frames are small (~0.5 MB a scene at 160 x 120): read once, kept
            frames = open_store(store_path(cfg.cache_dir, "frames", scene), "frames")
            label = frames["label"][...]
            labelled = (label != IGNORE_INDEX).any(axis=(1, 2))  # (F,); a store with no kept frame has F = 0
            if labelled.any():
                colors.append(frames["color"][...][labelled])
                labels.append(label[labelled])
        if not labels:
            raise ValueError(f"{cfg.cache_dir}: no kept frame with a labelled pixel in scenes {list(cfg.scenes)[:5]}... "
                             "-- are these frames stores labelled?")
        self.colors, self.labels = np.concatenate(colors), np.concatenate(labels)
        if cfg.crop_size is not None:
            (crop_w, crop_h), (height, width) = cfg.crop_size, self.labels.shape[1:]
            if crop_w > width or crop_h > height:
                raise ValueError(f"{cfg.cache_dir}: pretrain.frame_crop {crop_w} x {crop_h} is larger than the stored "
                                 f"frames ({width} x {height} pixels, frames.image_size); give a smaller crop or null")

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int | tuple[int, int]) -> dict:
        """Item ``index``, or ``(epoch, index)`` as ``train.EpochSampler`` yields it."""
        cfg = self.cfg
        epoch, i = self._epoch_and_index(index)
        image, label = self.colors[i], self.labels[i]
        if cfg.augment:
            rng = np.random.default_rng([cfg.seed, epoch, i])
            if rng.random() < 0.5:
                image, label = image[:, ::-1], label[:, ::-1]
            if cfg.crop_size is not None:
                (crop_w, crop_h), (height, width) = cfg.crop_size, label.shape
                y0, x0 = int(rng.integers(height - crop_h + 1)), int(rng.integers(width - crop_w + 1))
                image, label = image[y0:y0 + crop_h, x0:x0 + crop_w], label[y0:y0 + crop_h, x0:x0 + crop_w]
            if cfg.color_jitter > 0:
                image = jitter_colour(np.ascontiguousarray(image), cfg.color_jitter, rng)
        return {"images": torch.from_numpy(normalize_image(np.ascontiguousarray(image))),
                "label": torch.from_numpy(np.ascontiguousarray(label).astype(np.int64))}
