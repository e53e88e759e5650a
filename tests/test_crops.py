"""The image network's pretraining data (the ImageNet stand-in): labelled frames, object regions, crops, items, and
their losses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from jointwsss.data.crops import (CropConfig, FrameConfig, LabelledFrameDataset, ObjectCropDataset, find_regions,
                                  object_regions, square_crop)
from jointwsss.data.transforms import IMAGENET_MEAN, IMAGENET_STD, normalize_image
from jointwsss.io.zarr_store import open_store
from jointwsss.losses import object_classification_loss, pixel_classification_loss


def test_object_regions_are_connected_components_of_present_classes():
    label = np.full((10, 12), 255, np.uint8)
    label[1:4, 1:5] = 3        # 12 px
    label[6:9, 8:11] = 3       # 9 px, a second region of the same class
    label[0, 11] = 3           # 1 px: below min_area
    label[5:7, 0:2] = 7        # 4 px of a class that is not asked for
    regions = object_regions(label, np.array([3]), min_area=4)
    assert regions == [(3, 1, 1, 4, 3), (3, 8, 6, 3, 3)]
    # diagonal neighbours join a region (8-connectivity)
    diag = np.zeros((4, 4), np.uint8)
    diag[0, 0] = diag[1, 1] = diag[2, 2] = 1
    assert object_regions(diag, np.array([1]), min_area=3) == [(1, 0, 0, 3, 3)]


def test_square_crop_centres_the_box_and_repeats_edges():
    # pixel value = column index (R), row index (G)
    cols, rows = np.meshgrid(np.arange(20), np.arange(16))
    image = np.stack([cols, rows, np.zeros_like(cols)], axis=-1).astype(np.uint8)
    crop = square_crop(image, x=4, y=6, width=8, height=4, context=1.0, size=8)   # side 8, centred on (8, 8)
    assert crop.shape == (8, 8, 3)
    assert crop[0, :, 0].tolist() == list(range(4, 12))
    assert crop[:, 0, 1].tolist() == list(range(4, 12))
    # a box at the right edge: the part beyond column 19 repeats column 19
    edge = square_crop(image, x=16, y=0, width=4, height=4, context=1.0, size=4)
    assert edge[0, :, 0].tolist() == [16, 17, 18, 19]
    edge = square_crop(image, x=18, y=0, width=2, height=2, context=2.0, size=4)   # side 4 at columns 17..20
    assert edge[2, :, 0].tolist() == [17, 18, 19, 19]
    assert edge[:, 0, 1].tolist() == [0, 0, 1, 2]                                  # rows -1..2, row -1 -> 0


def test_crop_items_come_from_the_labelled_regions(tiny_cache):
    scenes = ("scene0000_00", "scene0001_00")
    regions = find_regions(tiny_cache, scenes, min_area_fraction=0.01)
    assert regions
    for r in regions[:20]:
        frames = open_store(tiny_cache / "frames" / f"{r.scene}.zarr", "frames")
        label = frames["label"][r.frame]
        box = label[r.y:r.y + r.height, r.x:r.x + r.width]
        assert frames["image_labels"][r.frame][r.class_index]
        assert (box == r.class_index).sum() >= math.ceil(0.01 * label.size)
        # the box is tight: its border rows/columns each touch the region
        assert (box[0] == r.class_index).any() and (box[-1] == r.class_index).any()
        assert (box[:, 0] == r.class_index).any() and (box[:, -1] == r.class_index).any()

    plain = ObjectCropDataset(CropConfig(tiny_cache, scenes, crop_size=16, min_area_fraction=0.01, augment=False))
    assert len(plain) == len(regions)
    assert plain.class_counts().sum() == len(regions)
    item = plain[0]
    r = regions[0]
    assert item["images"].shape == (3, 16, 16) and item["class_index"].item() == r.class_index
    image = open_store(tiny_cache / "frames" / f"{r.scene}.zarr", "frames")["color"][r.frame]
    expected = square_crop(image, r.x, r.y, r.width, r.height, 1.3, 16).astype(np.float32) / 255.0
    expected = ((expected - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)
    np.testing.assert_allclose(item["images"].numpy(), expected, atol=1e-6)

    augmented = ObjectCropDataset(CropConfig(tiny_cache, scenes, crop_size=16, min_area_fraction=0.01, seed=3))
    a = augmented[1]["images"]
    assert torch.equal(a, augmented[1]["images"])                 # reproducible for (seed, epoch, item)
    augmented.set_epoch(1)
    assert not torch.equal(a, augmented[1]["images"])             # new context / flip / jitter per epoch


def test_object_classification_loss_is_cross_entropy_of_the_pooled_cam():
    cam = torch.zeros(1, 3, 2, 2)
    cam[0, 0] = torch.tensor([[0.0, 4.0], [0.0, 0.0]])   # GAP: class 0 -> 1, classes 1, 2 -> 0
    expected = -math.log(math.e / (math.e + 2))
    assert object_classification_loss(cam, torch.tensor([0])).item() == pytest.approx(expected, rel=1e-6)
    assert object_classification_loss(cam, torch.tensor([2])).item() == pytest.approx(-math.log(1 / (math.e + 2)), rel=1e-6)


def test_pixel_classification_loss_reads_the_cam_at_each_pixel_and_skips_unlabelled_ones():
    # a constant CAM: every pixel reads logits (0, ln 3), softmax (1/4, 3/4)
    cam = torch.zeros(1, 2, 2, 3)
    cam[0, 1] = math.log(3.0)
    label = torch.full((1, 3, 4), 255, dtype=torch.long)
    label[0, 0, :3] = 1
    label[0, 2, 1] = 0
    expected = (3 * -math.log(0.75) - math.log(0.25)) / 4          # the 8 unlabelled pixels do not count
    assert pixel_classification_loss(cam, label, stride=8).item() == pytest.approx(expected, rel=1e-6)
    # cell (i, j) is read at pixel (8 i, 8 j) (losses.sample_at_pixels), bilinear between, the border cells beyond;
    # two images, the loss a mean over all their labelled pixels (not over images)
    cam = torch.zeros(2, 2, 2, 2)
    cam[0, 0] = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    label = torch.full((2, 16, 16), 255, dtype=torch.long)
    label[0, 0, 0] = 0                                              # cell (0, 0): logits (2, 0)
    label[0, 0, 4] = 0                                              # halfway to cell (0, 1): logits (1, 0)
    label[0, 0, 12] = 0                                             # beyond cell (0, 1): logits (0, 0)
    label[0, 8, 8] = 1                                              # cell (1, 1): logits (0, 0)
    label[1, 3, 5] = 1                                              # the second image: logits (0, 0)
    expected = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1)) + 3 * math.log(2)) / 5
    assert pixel_classification_loss(cam, label, stride=8).item() == pytest.approx(expected, rel=1e-6)


def test_one_vs_rest_pixel_loss_sums_a_bce_per_class_over_the_labelled_pixels():
    # a constant CAM: every pixel reads logits (0, ln 3, -ln 3); sigmoid (1/2, 3/4, 1/4)
    cam = torch.zeros(1, 3, 2, 3)
    cam[0, 1] = math.log(3.0)
    cam[0, 2] = -math.log(3.0)
    label = torch.full((1, 3, 4), 255, dtype=torch.long)
    label[0, 0, :2] = 1                                            # two pixels of class 1
    label[0, 2, 3] = 2                                             # one of class 2
    class_1 = -math.log(0.5) - math.log(0.75) - math.log(0.75)    # BCE of (0, 1, 0) against (1/2, 3/4, 1/4)
    class_2 = -math.log(0.5) - math.log(0.25) - math.log(0.25)    # BCE of (0, 0, 1)
    expected = (2 * class_1 + class_2) / 3                         # a mean over the labelled pixels only
    assert pixel_classification_loss(cam, label, stride=8, one_vs_rest=True).item() == pytest.approx(expected, rel=1e-6)
    # softmax cross-entropy of the same pixels differs: the two losses are not the same function
    assert pixel_classification_loss(cam, label, stride=8).item() != pytest.approx(expected, rel=1e-3)
    # no labelled pixel: zero, not NaN
    assert pixel_classification_loss(cam, torch.full((1, 3, 4), 255), stride=8, one_vs_rest=True).item() == 0.0


def test_frame_items_are_the_labelled_frames_with_their_labels(tiny_cache):
    scenes = ("scene0000_00", "scene0001_00")
    stores = [{key: open_store(tiny_cache / "frames" / f"{scene}.zarr", "frames")[key][...] for key in ("color", "label")}
              for scene in scenes]
    labelled = [(s, f) for s in stores for f in range(len(s["label"])) if (s["label"][f] != 255).any()]
    plain = LabelledFrameDataset(FrameConfig(tiny_cache, scenes, augment=False))
    assert len(plain) == len(labelled) > 0
    for k in (0, len(plain) - 1):
        store, f = labelled[k]
        item = plain[k]
        assert item["label"].dtype == torch.int64
        np.testing.assert_array_equal(item["label"].numpy(), store["label"][f])
        np.testing.assert_allclose(item["images"].numpy(), normalize_image(store["color"][f]), atol=1e-6)

    # flipped items flip image and label together; which items flip is fixed by (seed, epoch, item)
    flips = LabelledFrameDataset(FrameConfig(tiny_cache, scenes, color_jitter=0.0, seed=5))
    flipped = 0
    for k in range(len(flips)):
        store, f = labelled[k]
        item = flips[k]
        mirrored = not np.array_equal(item["label"].numpy(), store["label"][f])
        if mirrored:
            flipped += 1
            np.testing.assert_array_equal(item["label"].numpy(), store["label"][f][:, ::-1])
            np.testing.assert_allclose(item["images"].numpy(), normalize_image(store["color"][f][:, ::-1].copy()),
                                       atol=1e-6)
        assert torch.equal(item["label"], flips[k]["label"])
    assert 0 < flipped < len(flips)
    first = [flips[k]["label"] for k in range(len(flips))]
    flips.set_epoch(1)                                              # another epoch flips other frames
    assert any(not torch.equal(a, flips[k]["label"]) for k, a in enumerate(first))


def test_frame_items_are_random_windows_of_the_frames_with_pretrain_frame_crop(tiny_cache):
    """pretrain.frame_crop: each item is a (width, height) window of its stored frame (maybe mirrored), image and
    label cut alike; the window moves with the epoch; a crop larger than the frames is an error naming the key."""
    scenes = ("scene0000_00", "scene0001_00")
    stores = [{key: open_store(tiny_cache / "frames" / f"{scene}.zarr", "frames")[key][...] for key in ("color", "label")}
              for scene in scenes]
    labelled = [(s, f) for s in stores for f in range(len(s["label"])) if (s["label"][f] != 255).any()]
    height, width = labelled[0][0]["label"].shape[1:]
    crop_w, crop_h = width - 5, height - 3
    data = LabelledFrameDataset(FrameConfig(tiny_cache, scenes, color_jitter=0.0, seed=3, crop_size=(crop_w, crop_h)))
    offsets = set()
    for k in range(len(data)):
        store, f = labelled[k]
        item = data[k]
        assert item["images"].shape == (3, crop_h, crop_w) and item["label"].shape == (crop_h, crop_w)
        found = [(y0, x0, mirrored) for mirrored in (False, True) for y0 in range(4) for x0 in range(6)
                 if np.array_equal(item["label"].numpy(),
                                   (store["label"][f][:, ::-1] if mirrored else store["label"][f])[y0:y0 + crop_h,
                                                                                                    x0:x0 + crop_w])]
        assert found, k
        y0, x0, mirrored = found[0]
        color = store["color"][f][:, ::-1] if mirrored else store["color"][f]
        np.testing.assert_allclose(item["images"].numpy(), normalize_image(color[y0:y0 + crop_h, x0:x0 + crop_w].copy()),
                                   atol=1e-6)
        offsets.add((y0, x0))
    assert len(offsets) > 1
    with pytest.raises(ValueError, match=r"pretrain.frame_crop .* is larger than the stored frames"):
        LabelledFrameDataset(FrameConfig(tiny_cache, scenes, crop_size=(width + 1, height)))
