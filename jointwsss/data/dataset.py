"""Torch datasets over the caches: ``points/``, ``frames/`` and ``corr/`` Zarr stores of a split.

A training *item* is one view of a scene: the scene's point cloud subsampled to ``num_points``
(with its scene-level labels) plus ``views_per_sample`` = K views (the item's own view and K - 1 other
random views of the same scene; the paper uses K = 1), each with its image, image-level labels and the
correspondences of the points that survived subsampling. One epoch therefore visits every view once.

Stores are opened lazily in each DataLoader worker process (Zarr handles are not shared across
processes), so workers read the caches concurrently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from jointwsss.classes import NUM_CLASSES
from jointwsss.data.transforms import (
    ImageAugment, PointAugment, augment_image, augment_points, normalize_image, point_features, subsample_points,
)
from jointwsss.io.errors import DataFormatError
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


class SceneCache:
    """Lazily opened stores of one scene (one instance per worker process)."""

    def __init__(self, cache_dir: Path, scene: str):
        self.points_path = cache_dir / "points" / f"{scene}.zarr"
        self.points = open_store(self.points_path, "points")
        self.frames = open_store(cache_dir / "frames" / f"{scene}.zarr", "frames")
        self.corr = open_store(cache_dir / "corr" / f"{scene}.zarr", "corr")
        self.offsets = self.corr["offsets"][...]
        self.scene_labels = np.asarray(self.points.attrs["scene_labels"], dtype=np.float32)
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
        a, b = int(self.offsets[f]), int(self.offsets[f + 1])
        return self.corr["point_idx"][a:b], self.corr["uv"][a:b]


def usable_views(cache_dir: Path, scenes) -> list[tuple[str, int]]:
    """(scene, frame index) of every view that has at least one correspondence."""
    items = []
    for scene in scenes:
        corr = open_store(Path(cache_dir) / "corr" / f"{scene}.zarr", "corr")
        counts = corr.attrs["pairs_per_view"]
        items.extend((scene, f) for f, c in enumerate(counts) if c > 0)
    return items


def scenes_from_index(index_path: Path) -> list[str]:
    """Usable scenes listed in ``index/{split}.json``."""
    try:
        index = json.loads(Path(index_path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataFormatError(index_path, f"cannot read the split index ({exc})", "run `snakemake preprocess`") from exc
    return [s["scene"] for s in index["scenes"] if s.get("usable", True)]


class JointDataset(torch.utils.data.Dataset):
    """Items of one view plus its scene's cloud; see the module docstring."""

    def __init__(self, cfg: JointDataConfig):
        self.cfg = cfg
        self.items = usable_views(cfg.cache_dir, cfg.scenes)
        if not self.items:
            raise ValueError(f"{cfg.cache_dir}: no view with correspondences in scenes {list(cfg.scenes)[:5]}...")
        self.views_of_scene: dict[str, list[int]] = {}
        for scene, f in self.items:
            self.views_of_scene.setdefault(scene, []).append(f)
        self._cache: dict[str, SceneCache] = {}
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, epoch: int) -> None:
        """Makes the random augmentation differ per epoch yet reproducible (call before each epoch)."""
        self.epoch = epoch

    def scene(self, name: str) -> SceneCache:
        if name not in self._cache:
            self._cache[name] = SceneCache(Path(self.cfg.cache_dir), name)
        return self._cache[name]

    def __getitem__(self, i: int) -> dict:
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, self.epoch, i])
        scene_name, frame = self.items[i]
        sc = self.scene(scene_name)
        xyz = sc.points["xyz"][...]
        rgb = sc.points["rgb"][...]
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
            "views": [],
        }
        if cfg.point_labels:
            sample["point_labels"] = torch.from_numpy(sc.point_labels()[keep].astype(np.int64))
        others = [f for f in self.views_of_scene[scene_name] if f != frame]
        extra = list(rng.choice(others, size=min(len(others), cfg.views_per_sample - 1), replace=False)) if others else []
        for f in [frame, *extra]:
            sample["views"].append(self._view(sc, int(f), new_index, rng))
        return sample

    def _view(self, sc: SceneCache, f: int, new_index: np.ndarray, rng: np.random.Generator) -> dict:
        cfg = self.cfg
        point_idx, uv = sc.view_pairs(f)
        mapped = new_index[point_idx]
        alive = mapped >= 0
        mapped, uv = mapped[alive], uv[alive]
        image = sc.frames["color"][f]
        image, uv, inside, _ = augment_image(image, uv, cfg.image_augment, rng)
        mapped = mapped[inside]
        if len(mapped) > cfg.max_points_per_view:
            pick = np.sort(rng.choice(len(mapped), size=cfg.max_points_per_view, replace=False))
            mapped, uv = mapped[pick], uv[pick]
        return {
            "image": torch.from_numpy(normalize_image(image)),
            "image_labels": torch.from_numpy(sc.frames["image_labels"][f].astype(np.float32)),
            "point_idx": torch.from_numpy(mapped.astype(np.int64)),
            "uv": torch.from_numpy(uv.astype(np.float32)),
            "frame": f,
        }


def collate_joint(samples: list[dict]) -> dict:
    """Stack clouds (B, N, .), views (V, 3, H, W) and pad correspondences to P = max N_v with a mask."""
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
    images = torch.stack([v["image"] for _, v in views])
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
        "image_size": (images.shape[-1], images.shape[-2]),
        "scenes": [s["scene"] for s in samples],
        "frames": [v["frame"] for _, v in views],
        **({"point_labels": torch.stack([s["point_labels"] for s in samples])} if "point_labels" in samples[0] else {}),
    }


NUM_POINT_FEATURES = 4  # RGB + height; see point_features
__all__ = ["JointDataConfig", "JointDataset", "collate_joint", "usable_views", "scenes_from_index",
           "NUM_POINT_FEATURES", "NUM_CLASSES"]
