"""The training data: augmentations keep point-pixel pairs consistent; collation pads correspondences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jointwsss.data.dataset import JointDataset, collate_joint
from jointwsss.data.transforms import ImageAugment, PointAugment, augment_image, augment_points, subsample_points
from jointwsss.io.zarr_store import open_store
from jointwsss.preprocess.quality import agreement_counts, labels_at_pixels
from jointwsss.train import data_config

from conftest import tiny_settings


def coordinate_image(h: int, w: int) -> np.ndarray:
    """An image whose red channel is the column and green channel the row of each pixel."""
    v, u = np.mgrid[0:h, 0:w]
    return np.stack([u, v, np.zeros_like(u)], axis=-1).astype(np.uint8)


def test_image_augmentation_moves_uv_with_the_image():
    rng = np.random.default_rng(0)
    image = coordinate_image(60, 80)
    uv = np.stack([rng.uniform(0, 79, 300), rng.uniform(0, 59, 300)], axis=1).astype(np.float32)
    for seed in range(20):
        aug = ImageAugment(scale_range=(1.0, 1.6), crop_size=(64, 48), hflip=True, color_jitter=0.0)
        out, uv2, keep, _ = augment_image(image, uv, aug, np.random.default_rng(seed))
        assert out.shape == (48, 64, 3)
        assert keep.sum() == len(uv2) > 0
        col = np.clip(np.floor(uv2[:, 0] + 0.5).astype(int), 0, 63)
        row = np.clip(np.floor(uv2[:, 1] + 0.5).astype(int), 0, 47)
        # the augmented image at the moved pixel shows (within interpolation) the original pixel
        np.testing.assert_allclose(out[row, col, 0], uv[keep, 0], atol=1.6)
        np.testing.assert_allclose(out[row, col, 1], uv[keep, 1], atol=1.6)


def test_image_downscale_pads_and_keeps_every_pair():
    """A resize below the crop size pads (ImageNet mean colour, label 255) instead of cropping: no pair is lost,
    and every moved pixel still shows the original one."""
    rng = np.random.default_rng(0)
    image = coordinate_image(60, 80)
    label = np.full((60, 80), 7, dtype=np.uint8)
    uv = np.stack([rng.uniform(0, 79, 300), rng.uniform(0, 59, 300)], axis=1).astype(np.float32)
    for seed in range(20):
        aug = ImageAugment(scale_range=(0.7, 1.0), crop_size=None, hflip=True, color_jitter=0.0)
        out, uv2, keep, lab = augment_image(image, uv, aug, np.random.default_rng(seed), label=label)
        assert out.shape == (60, 80, 3) and lab.shape == (60, 80)
        assert keep.all() and len(uv2) == len(uv)
        col = np.floor(uv2[:, 0] + 0.5).astype(int)
        row = np.floor(uv2[:, 1] + 0.5).astype(int)
        assert (lab[row, col] == 7).all()
        np.testing.assert_allclose(out[row, col, 0], uv[:, 0], atol=2.1)
        np.testing.assert_allclose(out[row, col, 1], uv[:, 1], atol=2.1)
        padded = lab == 255
        assert padded.any() or seed == 0  # only a scale of exactly 1 fills the frame
        assert (out[padded] == np.round(np.array([0.485, 0.456, 0.406]) * 255).astype(np.uint8)).all()


def test_items_group_a_scenes_views_and_visit_each_view_once_per_epoch(tiny_cache):
    settings = tiny_settings(tiny_cache)
    for k in (1, 2, 3, 100):
        settings["joint"]["views_per_sample"] = k
        ds = JointDataset(data_config(settings, ["scene0000_00", "scene0001_00"], train=True))
        for epoch in (0, 1):
            ds.set_epoch(epoch)
            seen = [(s["scene"], v["frame"]) for i in range(len(ds)) for s in [ds[i]] for v in s["views"]]
            expected = [(scene, f) for scene, frames in ds.views_of_scene.items() for f in frames]
            assert sorted(seen) == sorted(expected)  # every usable view exactly once
            sizes = [len(ds[i]["views"]) for i in range(len(ds))]
            assert max(sizes) <= k and len(ds) == sum(-(-len(f) // k) for f in ds.views_of_scene.values())


def test_no_image_is_read_or_cropped_without_an_image_network(tiny_cache):
    settings = tiny_settings(tiny_cache, "cls3d")
    ds = JointDataset(data_config(settings, ["scene0000_00"], train=True))
    assert ds.cfg.images is False
    item = ds[0]
    assert all("image" not in v for v in item["views"])
    # every correspondence of the sampled points survives (no crop), up to the N_v cap
    sc = ds.scene("scene0000_00")
    rng = np.random.default_rng([settings["seed"], 0, 0])
    keep = subsample_points(len(sc.xyz), settings["points"]["num"], rng)
    for view in item["views"]:
        alive = np.isin(sc.view_pairs(view["frame"])[0], keep).sum()
        assert len(view["point_idx"]) == min(alive, settings["joint"]["max_points_per_view"])
    batch = collate_joint([item])
    assert batch["images"] is None and batch["image_size"] is None


def test_point_augmentation_keeps_shape_and_distances():
    rng = np.random.default_rng(1)
    xyz = rng.random((100, 3)).astype(np.float32) * 5
    out = augment_points(xyz, PointAugment(flip=True, rotate=True), rng)
    assert out[:, 2].min() == 0.0 and abs(out[:, :2].mean()) < 1e-5
    d_in = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1)
    d_out = np.linalg.norm(out[:, None] - out[None], axis=-1)
    np.testing.assert_allclose(d_in, d_out, atol=1e-4)   # flips and rotations are isometries
    keep = subsample_points(100, 40, rng)
    assert len(np.unique(keep)) == 40 and keep.max() < 100
    assert len(subsample_points(10, 25, rng)) == 25      # fewer points than asked: all of them, plus repeats


def test_augmented_pairs_still_agree_in_labels(tiny_cache):
    """Subsample + re-index + resize/crop/flip: a pair's 3D label still equals the 2D label at its pixel."""
    scene = "scene0000_00"
    points = open_store(tiny_cache / "points" / f"{scene}.zarr", "points")
    frames = open_store(tiny_cache / "frames" / f"{scene}.zarr", "frames")
    corr = open_store(tiny_cache / "corr" / f"{scene}.zarr", "corr")
    offsets = corr["offsets"][...]
    rng = np.random.default_rng(3)
    keep = subsample_points(points["xyz"].shape[0], 20000, rng)
    new_index = np.full(points["xyz"].shape[0], -1)
    new_index[keep] = np.arange(len(keep))
    label_3d_kept = points["label"][...][keep]
    l3, l2 = [], []
    for f in range(len(offsets) - 1):
        idx = corr["point_idx"][offsets[f]:offsets[f + 1]]
        uv = corr["uv"][offsets[f]:offsets[f + 1]]
        mapped = new_index[idx]
        alive = mapped >= 0
        _, uv2, inside, label2 = augment_image(frames["color"][f], uv[alive], ImageAugment(crop_size=(56, 40),
                                               color_jitter=0.0), rng, label=frames["label"][f])
        l3.append(label_3d_kept[mapped[alive][inside]])
        l2.append(labels_at_pixels(label2, uv2))
    result = agreement_counts(np.concatenate(l3), np.concatenate(l2))
    assert result["labelled_pairs"] > 200 and result["agreement"] > 0.9


def test_dataset_items_and_collation(tiny_cache):
    settings = tiny_settings(tiny_cache)
    settings["joint"]["views_per_sample"] = 2
    ds = JointDataset(data_config(settings, ["scene0000_00", "scene0001_00"], train=True))
    a, b = ds[0], ds[0]
    assert torch.equal(a["xyz"], b["xyz"])                      # deterministic for (seed, epoch, item)
    ds.set_epoch(1)
    assert not torch.equal(ds[0]["xyz"], a["xyz"])              # new augmentation each epoch
    assert a["xyz"].shape == (512, 3) and a["features"].shape == (4, 512)
    assert len(a["views"]) == 2 and a["views"][0]["frame"] != a["views"][1]["frame"]
    for v in a["views"]:
        assert len(v["point_idx"]) <= 64 and int(v["point_idx"].max()) < 512
    # the first group of the other scene (a scene's last group holds fewer views where K does not divide them)
    other = ds[ds.items.index(("scene0001_00", 0))]
    assert len(other["views"]) == 2
    batch = collate_joint([a, other])
    nv = [len(v["point_idx"]) for s in (a, other) for v in s["views"]]
    assert batch["images"].shape[0] == 4 and batch["cloud_of_view"].tolist() == [0, 0, 1, 1]
    assert batch["point_idx"].shape == (4, max(nv)) and batch["mask"].sum(dim=1).tolist() == nv
    assert batch["image_size"] == (batch["images"].shape[-1], batch["images"].shape[-2])


def test_dataset_adds_ground_truth_point_labels_only_for_the_diagnostics(tiny_cache):
    settings = tiny_settings(tiny_cache)
    assert "point_labels" not in JointDataset(data_config(settings, ["scene0000_00"], train=True))[0]
    settings["to3d_labels"] = "ground_truth_visible"
    ds = JointDataset(data_config(settings, ["scene0000_00"], train=True))
    item = ds[0]
    # the labels of exactly the points the item sampled: recompute the sample with the item's RNG
    store = open_store(tiny_cache / "points" / "scene0000_00.zarr", "points")
    rng = np.random.default_rng([settings["seed"], 0, 0])
    keep = subsample_points(store["xyz"].shape[0], settings["points"]["num"], rng)
    assert item["point_labels"].dtype == torch.int64 and item["point_labels"].shape == (settings["points"]["num"],)
    np.testing.assert_array_equal(item["point_labels"].numpy(), store["label"][...][keep])
    batch = collate_joint([item, ds[1]])
    assert batch["point_labels"].shape == (2, settings["points"]["num"])


def test_the_pixel_under_every_uv_of_a_real_item_is_its_points_pixel(tiny_cache):
    """JointDataset's own output after subsampling, resize + crop + flip and the N_v cap, collated: the augmented
    image at every ``uv`` shows the pixel where the corr store says its ``point_idx`` point projects.

    The scene's colour images are replaced by coordinate images (red = column, green = row of the stored frame) and
    its point labels by the point numbers, so each pair can be traced back to the store without recomputing the
    loader's sampling."""
    import dataclasses

    settings = tiny_settings(tiny_cache)
    settings["augment"].update(image_crop_size=[56, 40], image_hflip=True, color_jitter=0.0,
                               image_scale_range=[1.0, 1.25])
    settings["points"]["num"] = 4096
    settings["joint"].update(views_per_sample=3, max_points_per_view=24)
    scene = "scene0000_00"
    ds = JointDataset(dataclasses.replace(data_config(settings, [scene], train=True), point_labels=True))
    sc = ds.scene(scene)
    num_frames, height, width = sc.frames["color"].shape[:3]
    sc.frames = {"color": np.broadcast_to(coordinate_image(height, width), (num_frames, height, width, 3))}
    sc._point_labels = np.arange(len(sc.xyz))
    corr = open_store(tiny_cache / "corr" / f"{scene}.zarr", "corr")
    offsets, store_idx, store_uv = corr["offsets"][...], corr["point_idx"][...], corr["uv"][...]
    capped = flipped_or_cropped = 0
    for epoch in range(3):
        ds.set_epoch(epoch)
        items = [ds[i] for i in range(len(ds))]
        batch = collate_joint(items)
        mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
        pixels = (batch["images"] * std[:, None, None] + mean[:, None, None]) * 255   # (V, 3, H, W) back to 0..255
        for v, frame in enumerate(batch["frames"]):
            n = int(batch["mask"][v].sum())
            capped += n == 24
            f_uv = dict(zip(store_idx[offsets[frame]:offsets[frame + 1]].tolist(),
                            store_uv[offsets[frame]:offsets[frame + 1]].tolist()))
            original_points = batch["point_labels"][batch["cloud_of_view"][v], batch["point_idx"][v, :n]].tolist()
            expected = np.array([f_uv[p] for p in original_points])            # where the store projects them
            col = np.floor(batch["uv"][v, :n, 0].numpy() + 0.5).astype(int)
            row = np.floor(batch["uv"][v, :n, 1].numpy() + 0.5).astype(int)
            assert (col >= 0).all() and (col < 56).all() and (row >= 0).all() and (row < 40).all()
            shown = np.stack([pixels[v, 0, row, col].numpy(), pixels[v, 1, row, col].numpy()], axis=1)
            np.testing.assert_allclose(shown, expected, atol=1.6)
            assert len(set(original_points)) == n              # the cap draws distinct pairs
            flipped_or_cropped += not np.allclose(batch["uv"][v, :n].numpy(), expected)
        # the rest of the batch is the items' own, stacked in order
        for key in ("xyz", "features", "scene_labels"):
            assert torch.equal(batch[key], torch.stack([it[key] for it in items])), key
        assert torch.equal(batch["image_labels"], torch.stack([v["image_labels"] for it in items for v in it["views"]]))
        assert batch["scenes"] == [scene] * len(items) and batch["image_size"] == (56, 40)
    assert capped > 0 and flipped_or_cropped > 0   # the cap and the geometric augmentation were both exercised


@pytest.mark.parametrize("extra_points", [None, 10])
def test_without_images_or_cap_an_item_keeps_exactly_the_pairs_of_its_sampled_points(tiny_cache, extra_points):
    """No image network (no crop) and a cap above every view's pairs: each view's pairs are exactly the stored pairs
    of the frame whose point survived subsampling, each point once, in the store's order. 1500 points drop some pairs;
    every point plus 10 repeats keeps them all, with the repeated points' first copies.

    The scene's points are renumbered (rolled) so that a visible point is number 0: the subsampled cloud's first
    point then has pairs too."""
    import dataclasses

    settings = tiny_settings(tiny_cache, "cls3d")
    settings["joint"].update(views_per_sample=4, max_points_per_view=10**6)
    scene = "scene0000_00"
    corr = open_store(tiny_cache / "corr" / f"{scene}.zarr", "corr")
    offsets, store_idx, store_uv = corr["offsets"][...], corr["point_idx"][...], corr["uv"][...]
    first_visible = int(store_idx.min())
    num_all = open_store(tiny_cache / "points" / f"{scene}.zarr", "points")["xyz"].shape[0]
    settings["points"]["num"] = 1500 if extra_points is None else num_all + extra_points
    ds = JointDataset(dataclasses.replace(data_config(settings, [scene], train=True), point_labels=True))
    sc = ds.scene(scene)
    sc.xyz, sc.rgb = np.roll(sc.xyz, -first_visible, axis=0), np.roll(sc.rgb, -first_visible, axis=0)
    store_idx = ((store_idx.astype(np.int64) - first_visible) % num_all).astype(np.int32)
    sc._pairs = (store_idx, store_uv)
    sc._point_labels = np.arange(num_all)
    dropped, first_point_seen = 0, False
    for i in range(len(ds)):
        item = ds[i]
        sampled = set(item["point_labels"].tolist())
        for view in item["views"]:
            frame = view["frame"]
            stored = store_idx[offsets[frame]:offsets[frame + 1]].tolist()
            expected = [p for p in stored if p in sampled]
            got = item["point_labels"][view["point_idx"]].tolist()
            assert got == expected
            assert len(view["uv"]) == len(got)
            dropped += len(stored) - len(expected)
            first_point_seen |= 0 in got
    assert first_point_seen or extra_points is None   # with every point sampled, point 0 is the first
    assert (dropped > 0) is (extra_points is None)
