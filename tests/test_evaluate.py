"""2D inference reads the CAM at each label pixel the way training reads it at a point's pixel; the paper's two
modes (pseudo-label: only known classes; inference: all) in 3D and 2D; passes averaged; scenes summed in evaluation."""

import h5py
import numpy as np
import pytest
import torch

from jointwsss import evaluate
from jointwsss.classes import CLASS_NAMES, NUM_CLASSES
from jointwsss.evaluate import predict_image
from jointwsss.io.zarr_store import open_store


class _FixedCam(torch.nn.Module):
    """A stride-2 'network' whose CAM of any 4 x 4 image is one class with logits [[0, 2], [4, 6]]."""

    output_stride = 2

    def forward(self, images):
        assert images.shape == (1, 3, 4, 4)
        cam = torch.tensor([[[[0.0, 2.0], [4.0, 6.0]]]])
        return torch.zeros(1, 1, 2, 2), cam


def test_predict_image_reads_cells_at_their_receptive_field_centres():
    color = np.zeros((4, 4, 3), np.uint8)
    # Same resolution: cell (i, j) sits on pixel (2i, 2j); between centres bilinear, beyond them the border.
    # Logit at (row v, col u) = 4 * clamp(v / 2, 0, 1) + 2 * clamp(u / 2, 0, 1).
    logits = np.array([[4 * min(v / 2, 1) + 2 * min(u / 2, 1) for u in range(4)] for v in range(4)])
    got = predict_image(_FixedCam(), color, (4, 4), torch.device("cpu"))
    assert got.shape == (1, 4, 4)
    np.testing.assert_allclose(got[0], 1 / (1 + np.exp(-logits)), rtol=1e-6)
    # A 2 x 2 label image of the same frame: its pixel centres are input pixels 0.5 and 2.5, i.e. cells
    # 0.25 and 1.25 (clamped to 1).
    logits_half = np.array([[4 * r + 2 * c for c in (0.25, 1.0)] for r in (0.25, 1.0)])
    got_half = predict_image(_FixedCam(), color, (2, 2), torch.device("cpu"))
    np.testing.assert_allclose(got_half[0], 1 / (1 + np.exp(-logits_half)), rtol=1e-6)


# ----------------------------------------------------------------------------- the paper's two modes, on the tiny cache

SCENES = ["scene0000_00", "scene0001_00"]


def class_biases(unknown: int) -> np.ndarray:
    """Logit biases that rank class 0 > 1 > ... > 19 (one apart), with ``unknown`` on top of them all."""
    bias = -np.arange(NUM_CLASSES, dtype=np.float32)
    bias[unknown] = 5.0
    return bias


class _PointNetOfColour(torch.nn.Module):
    """3D CAM of a point = the class bias + 0.1 x its red feature (colour in [-1, 1]): a vertex's scores depend on
    the vertex alone, not on the chunk it is classified in, and the bias order decides every argmax."""

    def __init__(self, bias):
        super().__init__()
        # a parameter, as in a real network: inference must run without autograd to hand out numpy arrays
        self.bias = torch.nn.Parameter(torch.as_tensor(bias))

    def forward(self, xyz, features):
        # the inputs a real point network gets: centred chunks and their features (colour, height = xyz's z)
        assert xyz.shape[-1] == 3 and torch.equal(features[:, 3], xyz[..., 2])
        return features, self.bias[None, :, None] + 0.1 * features[:, 0:1, :]


class _ConstantImageNet(torch.nn.Module):
    output_stride = 8

    def __init__(self, bias):
        super().__init__()
        # a parameter, as in a real network: inference must run without autograd to hand out numpy arrays
        self.bias = torch.nn.Parameter(torch.as_tensor(bias))

    def forward(self, images):
        h, w = -(-images.shape[2] // 8), -(-images.shape[3] // 8)
        return torch.zeros(1, 1, h, w), self.bias[None, :, None, None].expand(1, -1, h, w)


def _absent_everywhere(tiny_cache) -> int:
    """A class in no scene's labels (hence in no image's): the class an unrestricted argmax would wrongly pick."""
    known = np.zeros(NUM_CLASSES, bool)
    for scene in SCENES:
        known |= np.asarray(open_store(tiny_cache / "points" / f"{scene}.zarr", "points").attrs["scene_labels"], bool)
        known |= open_store(tiny_cache / "frames" / f"{scene}.zarr", "frames")["image_labels"][...].astype(bool).any(0)
    return int(np.flatnonzero(~known)[0])


@pytest.fixture
def fake_networks(tiny_cache, monkeypatch):
    unknown = _absent_everywhere(tiny_cache)
    bias = class_biases(unknown)
    settings = {"experiment": "fake", "points": {"num": 256}}

    def load_networks(path, device):
        assert device == torch.device("cpu")                   # the device asked for reaches the networks
        return settings, _ConstantImageNet(bias), _PointNetOfColour(bias)

    monkeypatch.setattr(evaluate, "load_networks", load_networks)
    return unknown, bias


def _first_known(labels: np.ndarray) -> int:
    """With the biases' order, the best-scoring known class is the known class of the smallest index."""
    return int(np.flatnonzero(labels)[0]) if labels.any() else 255


@pytest.mark.parametrize("mode", ["pseudo_label", "inference"])
@pytest.mark.parametrize("passes", [1, 2])
def test_both_modes_and_averaged_passes_where_an_unknown_class_would_win(tiny_cache, tmp_path, fake_networks, mode,
                                                                         passes):
    unknown, bias = fake_networks
    out = tmp_path / "pred.h5"
    summary = evaluate.infer_split(tmp_path / "model.pt", tiny_cache, SCENES, "train", mode, out, passes_3d=passes,
                                   batch_3d=2, device="cpu")
    assert summary["scenes"] == 2 and 0 <= summary["seconds"] < 600 and summary["seconds"] == round(summary["seconds"], 2)
    with h5py.File(out) as h5:
        assert h5.attrs["mode"] == mode and h5.attrs["experiment"] == "fake" and h5.attrs["split"] == "train"
        assert h5.attrs["model"] == str(tmp_path / "model.pt") and list(h5.attrs["restricted_to"]) == []
        assert bool(h5.attrs["has_3d"]) and bool(h5.attrs["has_2d"])
        for scene in SCENES:
            points = open_store(tiny_cache / "points" / f"{scene}.zarr", "points")
            red = points["rgb"][...][:, 0].astype(np.float32) / 127.5 - 1.0
            # every vertex: the sigmoid of its own logits, not a sum over the passes
            expected_scores = 1 / (1 + np.exp(-(bias[None, :] + 0.1 * red[:, None])))
            np.testing.assert_allclose(h5[scene]["vertex_score"][...], expected_scores, atol=1e-3)
            scene_class = _first_known(np.asarray(points.attrs["scene_labels"], bool))
            want_3d = scene_class if mode == "pseudo_label" else unknown
            assert (h5[scene]["vertex_label"][...] == want_3d).all()
            frames = open_store(tiny_cache / "frames" / f"{scene}.zarr", "frames")
            labels = frames["image_labels"][...].astype(bool)
            got = h5[scene]["frame_label"][...]
            assert got.shape == frames["label"].shape
            np.testing.assert_array_equal(h5[scene]["frame_id"][...], frames["frame_id"][...])
            for f in range(len(labels)):
                want_2d = _first_known(labels[f]) if mode == "pseudo_label" else unknown
                assert (got[f] == want_2d).all(), (scene, f)


def test_restricted_argmax_and_the_allowed_classes():
    scores = np.array([[0.1, 0.9, 0.5], [0.7, 0.2, 0.6]])
    allowed = np.array([True, False, True])
    assert restricted_argmax_of(scores, None) == [1, 0]
    assert restricted_argmax_of(scores, allowed) == [2, 0]
    assert restricted_argmax_of(scores, np.zeros(3, bool)) == [255, 255]
    assert evaluate.combine_allowed(None, None) is None
    assert evaluate.combine_allowed(np.array([1, 0, 1]), None).tolist() == [True, False, True]
    assert evaluate.combine_allowed(None, allowed).tolist() == [True, False, True]
    assert evaluate.combine_allowed(np.array([1, 1, 0]), allowed).tolist() == [True, False, False]


def restricted_argmax_of(scores: np.ndarray, allowed) -> list[int]:
    """restricted_argmax over 3 classes (the module's NUM_CLASSES is 20: pad the scores with -1)."""
    padded = np.full((len(scores), NUM_CLASSES), -1.0)
    padded[:, :3] = scores
    mask = None if allowed is None else np.concatenate([allowed, np.zeros(NUM_CLASSES - 3, bool)])
    return evaluate.restricted_argmax(padded, mask, axis=1).tolist()


def test_evaluation_sums_the_scenes_and_restricts_to_the_chosen_classes(tiny_cache, tmp_path):
    """Predictions equal to the ground truth: IoU 1 for every class present, the elements of both scenes counted;
    with ``classes`` the others are ignored in the ground truth and get no IoU."""
    out = tmp_path / "pred.h5"
    with h5py.File(out, "w") as h5:
        h5.attrs.update({"mode": "inference", "has_3d": True, "has_2d": True})
        for scene in SCENES:
            g = h5.create_group(scene)
            g["vertex_label"] = open_store(tiny_cache / "points" / f"{scene}.zarr", "points")["label"][...]
            g["frame_label"] = open_store(tiny_cache / "frames" / f"{scene}.zarr", "frames")["label"][...]
    gt3d = np.concatenate([open_store(tiny_cache / "points" / f"{s}.zarr", "points")["label"][...] for s in SCENES])
    gt2d = np.concatenate([open_store(tiny_cache / "frames" / f"{s}.zarr", "frames")["label"][...].ravel()
                           for s in SCENES])
    result = evaluate.evaluate_predictions(out, tiny_cache)
    assert result["mode"] == "inference"
    for domain, gt in (("3d", gt3d), ("2d", gt2d)):
        present = sorted(set(gt[gt < NUM_CLASSES].tolist()))
        assert result[domain]["points_or_pixels"] == int((gt < NUM_CLASSES).sum())
        assert result[domain]["miou"] == 1.0 and result[domain]["classes_in_mean"] == len(present)
    kept = np.zeros(NUM_CLASSES, bool)
    kept[[0, 1]] = True                                     # wall and floor
    only = evaluate.evaluate_predictions(out, tiny_cache, classes=kept)
    assert only["3d"]["points_or_pixels"] == int(np.isin(gt3d, [0, 1]).sum())
    assert [name for name, iou in only["3d"]["per_class"].items() if iou is not None] == list(CLASS_NAMES[:2])


def test_point_features_are_averaged_per_vertex(tiny_cache, fake_networks):
    """``with_features``: Z^3d of every vertex averaged over its chunks; the fake's features are its inputs, whose
    colour channels are the vertex's own colour in [-1, 1] whatever chunk it is in."""
    _, bias = fake_networks
    points = open_store(tiny_cache / "points" / "scene0000_00.zarr", "points")
    xyz, rgb = points["xyz"][...], points["rgb"][...]
    scores, features = evaluate.point_outputs(_PointNetOfColour(bias), xyz, rgb, num_points=256, passes=2, batch=2,
                                              rng=np.random.default_rng(0), device=torch.device("cpu"),
                                              with_features=True)
    assert features.shape == (len(xyz), 4) and scores.shape == (len(xyz), NUM_CLASSES)
    np.testing.assert_allclose(features[:, :3], rgb.astype(np.float32) / 127.5 - 1.0, atol=1e-5)
    assert evaluate.point_outputs(_PointNetOfColour(bias), xyz, rgb, num_points=256, passes=1, batch=2,
                                  rng=np.random.default_rng(0), device=torch.device("cpu"))[1] is None


def test_add_rows_adds_a_row_listed_twice_twice():
    target = np.array([[1.0, 2.0], [0.0, 0.0], [5.0, -1.0]])
    evaluate.add_rows(target, np.array([2, 0, 2]), np.array([[1.0, 1.0], [0.5, 0.25], [2.0, 3.0]], np.float32))
    np.testing.assert_array_equal(target, [[1.5, 2.25], [0.0, 0.0], [8.0, 3.0]])
