"""Torch datasets over the caches: ``points/``, ``frames/`` and ``corr/`` Zarr stores of a split.

A training *item* is one point cloud of a scene, subsampled to ``num_points`` (with its scene-level labels),
plus up to ``views_per_sample`` = K distinct views of that scene, each with its image, image-level labels and
the correspondences of the points that survived subsampling. Every epoch splits each scene's views, in a
new random order, into ceil(views / K) groups of near-equal size, one group per item, so one epoch visits
every view exactly once whatever K is. K = 1 is the paper's sample (one image and its scene's cloud); a larger
K pays one point-network forward for K views' worth of eq. 7 labels (README, "Samples").

Stores are opened lazily in each DataLoader worker process (Zarr handles are not shared across
processes), so workers read the caches concurrently.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from jointwsss.classes import NUM_CLASSES
from jointwsss.data.transforms import (
    ImageAugment, PointAugment, augment_image, augment_points, normalize_image, point_features, subsample_points,
)
from jointwsss.io.errors import DataFormatError
from jointwsss.io.layout import index_path, store_path
from jointwsss.io.zarr_store import open_store


@dataclass(frozen=True)
class JointDataConfig:
    cache_dir: Path
    scenes: tuple[str, ...]
    num_points: int = 8192
    views_per_sample: int = 1
    max_points_per_view: int = 1024      # N_v cap (random subsample) before the N_v x N_v matrices
    point_augment: PointAugment | None = field(default_factory=PointAugment)
    image_augment: ImageAugment | None = field(default_factory=ImageAugment)
    seed: int = 0
    point_labels: bool = False           # add each point's ground-truth class (the to3d_labels diagnostics)
    images: bool = True                  # read (and augment) the colour images; False when no image network runs


class SceneCache:
    """One scene's stores, opened lazily (one instance per worker process).

    The per-scene arrays a training item needs (points, colours, every view's correspondences, image labels;
    ~1 MB for a synthetic scene, ~15 MB for a real one) are read whole on first use and kept, so an item of K
    views costs a few in-memory slices instead of 3 K + 2 Zarr reads (measured: 60 -> ~5 ms per item of 8 views);
    colour images are read per view. ``JointDataset`` keeps the most recently used scenes (``SCENE_CACHE_SIZE``).
    """

    def __init__(self, cache_dir: Path, scene: str):
        self.points_path = store_path(cache_dir, "points", scene)
        self.points = open_store(self.points_path, "points")
        self.frames = open_store(store_path(cache_dir, "frames", scene), "frames")
        self.corr = open_store(store_path(cache_dir, "corr", scene), "corr")
        self.offsets = self.corr["offsets"][...]
        self.scene_labels = np.asarray(self.points.attrs["scene_labels"], dtype=np.float32)
        self.xyz = self.points["xyz"][...]
        self.rgb = self.points["rgb"][...]
        self.image_labels = self.frames["image_labels"][...]
        self._pairs: tuple[np.ndarray, np.ndarray] | None = None
        self._point_labels: np.ndarray | None = None

    def point_labels(self) -> np.ndarray:
        """(N,) uint8 ground-truth class per point, ``IGNORE_INDEX`` outside the 20 classes (read once per scene)."""
        if self._point_labels is None:
            if not self.points.attrs.get("has_labels") or "label" not in self.points:
                raise DataFormatError(
                    self.points_path, "has no ground-truth point labels, which the to3d_labels ground-truth diagnostics need",
                    "train them on a labelled split (ScanNet train has labels) or use to3d_labels: image_network")
            self._point_labels = self.points["label"][...]
        return self._point_labels

    def view_pairs(self, f: int) -> tuple[np.ndarray, np.ndarray]:
        """(point_idx (M,) int32, uv (M, 2) float32 pixels) of view ``f``."""
        if self._pairs is None:
            self._pairs = (self.corr["point_idx"][...], self.corr["uv"][...])
        a, b = int(self.offsets[f]), int(self.offsets[f + 1])
        return self._pairs[0][a:b], self._pairs[1][a:b]


#: Scenes whose arrays a dataset keeps per worker (least recently used dropped first); the default synthetic
#: split (48 scenes) stays whole, real ScanNet's 1,201 scenes cost at most ~0.5 GB per worker.
SCENE_CACHE_SIZE = 48


def usable_views(cache_dir: Path, scenes) -> list[tuple[str, int]]:
    """(scene, frame index) of every view that has at least one correspondence."""
    items = []
    for scene in scenes:
        corr = open_store(store_path(cache_dir, "corr", scene), "corr")
        counts = corr.attrs["pairs_per_view"]
        items.extend((scene, f) for f, c in enumerate(counts) if c > 0)
    return items


def scenes_from_index(index_path: Path, *, usable_only: bool = True) -> list[str]:
    """Usable scenes listed in ``index/{split}.json`` (every listed scene with ``usable_only`` False: also those
    without a usable frame, whose points are still evaluated)."""
    try:
        index = json.loads(Path(index_path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataFormatError(index_path, f"cannot read the split index ({exc})", "run `snakemake preprocess`") from exc
    return [s["scene"] for s in index["scenes"] if s.get("usable", True) or not usable_only]


def cloud_samples(cache_dir: Path, split: str, *, num_clouds: int, num_points: int, seed: int = 0) -> torch.Tensor:
    """``(B, num_points, 3)`` clouds as training sees them (subsampled, centred; no random flip or rotation),
    one from each of the first ``num_clouds`` usable scenes of ``index/{split}.json``."""
    scenes = scenes_from_index(index_path(cache_dir, split))[:num_clouds]
    if not scenes:
        raise ValueError(f"{cache_dir}/index/{split}.json lists no usable scene")
    clouds = []
    for k, scene in enumerate(scenes):
        xyz = open_store(store_path(cache_dir, "points", scene), "points")["xyz"][...]
        rng = np.random.default_rng([seed, k])
        clouds.append(augment_points(xyz[subsample_points(len(xyz), num_points, rng)], None, rng))
    return torch.from_numpy(np.stack(clouds))


class JointDataset(torch.utils.data.Dataset):
    """Items of one cloud plus a group of its scene's views; see the module docstring."""

    def __init__(self, cfg: JointDataConfig):
        self.cfg = cfg
        views = usable_views(cfg.cache_dir, cfg.scenes)
        if not views:
            raise ValueError(f"{cfg.cache_dir}: no view with correspondences in scenes {list(cfg.scenes)[:5]}...")
        if cfg.views_per_sample < 1:
            raise ValueError(f"views_per_sample must be >= 1, got {cfg.views_per_sample}")
        self.views_of_scene: dict[str, list[int]] = {}
        for scene, f in views:
            self.views_of_scene.setdefault(scene, []).append(f)
        # (scene, group) per item: ceil(n / K) groups of a scene with n usable views
        self.items = [(scene, g) for scene, frames in self.views_of_scene.items()
                      for g in range(-(-len(frames) // cfg.views_per_sample))]
        self._scene_number = {scene: k for k, scene in enumerate(self.views_of_scene)}
        self._cache: OrderedDict[str, SceneCache] = OrderedDict()
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, epoch: int) -> None:
        """Makes the view groups and the random augmentation differ per epoch yet reproducible (call before each epoch)."""
        self.epoch = epoch

    def scene(self, name: str) -> SceneCache:
        if name not in self._cache:
            self._cache[name] = SceneCache(Path(self.cfg.cache_dir), name)
            while len(self._cache) > SCENE_CACHE_SIZE:
                self._cache.popitem(last=False)
        self._cache.move_to_end(name)
        return self._cache[name]

    def view_group(self, scene: str, group: int, epoch: int) -> list[int]:
        """Frame indices of ``group`` of ``scene`` in ``epoch``: the scene's views in an order drawn from
        (seed, epoch, scene), split into near-equal consecutive groups (they partition the views)."""
        frames = self.views_of_scene[scene]
        order = np.random.default_rng([self.cfg.seed, epoch, self._scene_number[scene]]).permutation(frames)
        groups = np.array_split(order, -(-len(frames) // self.cfg.views_per_sample))
        return [int(f) for f in groups[group]]

    def __getitem__(self, index: int | tuple[int, int]) -> dict:
        """Item ``index``, or ``(epoch, index)`` as ``train.EpochSampler`` yields it (so persistent workers,
        which hold their own copy of the dataset, still follow the epoch)."""
        cfg = self.cfg
        epoch, i = index if isinstance(index, tuple) else (self.epoch, index)
        rng = np.random.default_rng([cfg.seed, epoch, i])
        scene_name, group = self.items[i]
        sc = self.scene(scene_name)
        xyz, rgb = sc.xyz, sc.rgb
        keep = subsample_points(len(xyz), cfg.num_points, rng)
        # original point index -> position in the subsampled cloud (first occurrence), -1 if dropped
        new_index = np.full(len(xyz), -1, dtype=np.int64)
        new_index[keep[::-1]] = np.arange(len(keep))[::-1]
        xyz_aug = augment_points(xyz[keep], cfg.point_augment, rng)
        sample = {
            "xyz": torch.from_numpy(xyz_aug),
            "features": torch.from_numpy(point_features(xyz_aug, rgb[keep])),
            "scene_labels": torch.from_numpy(sc.scene_labels),
            "scene": scene_name,
            "views": [self._view(sc, f, new_index, rng) for f in self.view_group(scene_name, group, epoch)],
        }
        if cfg.point_labels:
            sample["point_labels"] = torch.from_numpy(sc.point_labels()[keep].astype(np.int64))
        return sample

    def _view(self, sc: SceneCache, f: int, new_index: np.ndarray, rng: np.random.Generator) -> dict:
        cfg = self.cfg
        point_idx, uv = sc.view_pairs(f)
        mapped = new_index[point_idx]
        alive = mapped >= 0
        mapped, uv = mapped[alive], uv[alive]
        view = {"image_labels": torch.from_numpy(sc.image_labels[f].astype(np.float32)), "frame": f}
        if cfg.images:  # without an image network the pixels are never looked at: no read, no crop, every pair kept
            image, uv, inside, _ = augment_image(sc.frames["color"][f], uv, cfg.image_augment, rng)
            mapped = mapped[inside]
            view["image"] = torch.from_numpy(normalize_image(image))
        if len(mapped) > cfg.max_points_per_view:
            pick = np.sort(rng.choice(len(mapped), size=cfg.max_points_per_view, replace=False))
            mapped, uv = mapped[pick], uv[pick]
        view["point_idx"] = torch.from_numpy(mapped.astype(np.int64))
        view["uv"] = torch.from_numpy(uv.astype(np.float32))
        return view


def collate_joint(samples: list[dict]) -> dict:
    """Stack clouds (B, N, .), views (V, 3, H, W) and pad correspondences to P = max N_v with a mask.

    ``images`` and ``image_size`` are None when the dataset reads no images (``JointDataConfig.images``).
    """
    views = [(b, v) for b, s in enumerate(samples) for v in s["views"]]
    p = max(1, max(len(v["point_idx"]) for _, v in views))
    num_views = len(views)
    point_idx = torch.zeros(num_views, p, dtype=torch.long)
    uv = torch.zeros(num_views, p, 2, dtype=torch.float32)
    mask = torch.zeros(num_views, p, dtype=torch.bool)
    for i, (_, v) in enumerate(views):
        n = len(v["point_idx"])
        point_idx[i, :n] = v["point_idx"]
        uv[i, :n] = v["uv"]
        mask[i, :n] = True
    images = torch.stack([v["image"] for _, v in views]) if "image" in views[0][1] else None
    return {
        "xyz": torch.stack([s["xyz"] for s in samples]),
        "features": torch.stack([s["features"] for s in samples]),
        "scene_labels": torch.stack([s["scene_labels"] for s in samples]),
        "images": images,
        "image_labels": torch.stack([v["image_labels"] for _, v in views]),
        "cloud_of_view": torch.tensor([b for b, _ in views], dtype=torch.long),
        "point_idx": point_idx,
        "uv": uv,
        "mask": mask,
        "image_size": None if images is None else (images.shape[-1], images.shape[-2]),
        "scenes": [s["scene"] for s in samples],
        "frames": [v["frame"] for _, v in views],
        **({"point_labels": torch.stack([s["point_labels"] for s in samples])} if "point_labels" in samples[0] else {}),
    }


NUM_POINT_FEATURES = 4  # RGB + height; see point_features
__all__ = ["JointDataConfig", "JointDataset", "collate_joint", "usable_views", "scenes_from_index",
           "NUM_POINT_FEATURES", "NUM_CLASSES"]
