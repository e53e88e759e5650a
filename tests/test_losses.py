"""Each loss term of the paper against values computed by hand on tiny tensors, and gradient isolation."""

from __future__ import annotations

import math

import pytest
import torch

from jointwsss.losses import (
    JointInputs, LossSwitches, classification_loss, confidence_2d, confidence_3d_pairs, confidence_scores, correlation,
    gather_projected, global_average_pool, ground_truth_to_3d_loss, loss_2d_to_3d, loss_3d_to_2d, pcam_like_loss,
    pseudo_label_2d, sample_at_pixels, teacher_targets, total_loss,
)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_gap_and_classification_loss_eq_1_2():
    cam = torch.tensor([[[0.0, 2.0], [-1.0, 1.0]]])  # (B=1, C=2, N=2)
    assert global_average_pool(cam).tolist() == [[1.0, 0.0]]
    # y = (1, 0), t = (1, 0): BCE(1 | 1) = log(1 + e^-1), BCE(0 | 0) = log 2; mean over classes
    expected = (softplus(-1.0) + math.log(2.0)) / 2
    assert classification_loss(cam, torch.tensor([[1.0, 0.0]])).item() == pytest.approx(expected, rel=1e-6)
    # 2D maps pool over both spatial dims
    cam2d = torch.arange(8.0).reshape(1, 2, 2, 2)
    assert global_average_pool(cam2d).tolist() == [[1.5, 5.5]]


def test_pseudo_label_ignores_absent_classes_eq_5_and_confidence_eq_6():
    scores = torch.tensor([[0.9, 0.2, 0.8]])
    labels = torch.tensor([[0.0, 1.0, 1.0]])
    assert pseudo_label_2d(scores, labels).tolist() == [2]          # class 0 scores highest but is absent
    assert pseudo_label_2d(scores, torch.tensor([[0.0, 1.0, 0.0]])).tolist() == [1]
    assert confidence_2d(scores).tolist() == pytest.approx([0.9])   # paper: max over all classes
    assert confidence_2d(scores, labels).tolist() == pytest.approx([0.8])


def _to3d_inputs():
    # one view, two projected points (+ one padding entry with garbage), two classes
    cam2d_p = torch.tensor([[[2.0, 0.0], [-1.0, 1.0], [9.0, -9.0]]])
    cam3d_p = torch.tensor([[[0.0, 0.0], [1.0, -1.0], [5.0, 5.0]]], requires_grad=True)
    mask = torch.tensor([[True, True, False]])
    return cam2d_p, cam3d_p, mask


def test_loss_2d_to_3d_eq_7_with_and_without_confidence():
    cam2d_p, cam3d_p, mask = _to3d_inputs()
    labels = torch.tensor([[1.0, 1.0]])
    # pseudo-labels: point 0 -> class 0 (sigmoid 0.881 > 0.5); point 1 -> class 1 (0.731 > 0.269)
    # BCE per point, mean over classes: point 0 vs (1, 0): (log2 + log2) / 2; point 1 vs (0, 1): softplus(1)
    bce0 = math.log(2.0)
    bce1 = softplus(1.0)
    with_conf = (sig(2.0) * bce0 + sig(1.0) * bce1) / 2
    with_logit = (2.0 * bce0 + 1.0 * bce1) / 2       # joint.confidence_score logit: the maximum logits, 2 and 1
    without = (bce0 + bce1) / 2
    got = loss_2d_to_3d(cam3d_p, cam2d_p, labels, mask, use_confidence=True)
    assert got.item() == pytest.approx(with_conf, rel=1e-6)
    got = loss_2d_to_3d(cam3d_p, cam2d_p, labels, mask, use_confidence=True, confidence_score="logit")
    assert got.item() == pytest.approx(with_logit, rel=1e-6)
    got = loss_2d_to_3d(cam3d_p, cam2d_p, labels, mask, use_confidence=False)
    assert got.item() == pytest.approx(without, rel=1e-6)


def test_confidence_scores_are_the_logits_clamped_at_zero_or_their_sigmoids():
    cam = torch.tensor([[2.0, -1.0], [-3.0, -0.5]])
    assert confidence_scores(cam, "logit").tolist() == [[2.0, 0.0], [0.0, 0.0]]
    # a point where every class's logit is negative gets confidence 0, not a negative weight
    assert confidence_2d(confidence_scores(cam, "logit")).tolist() == [2.0, 0.0]
    assert confidence_2d(confidence_scores(cam)).tolist() == pytest.approx([sig(2.0), sig(-0.5)])
    with pytest.raises(ValueError, match="confidence score must be one of"):
        confidence_scores(cam, "softmax")


def test_loss_2d_to_3d_uses_only_present_classes_and_skips_label_free_views():
    cam2d_p, cam3d_p, mask = _to3d_inputs()
    # class 0 absent: both points get pseudo-label 1; point 0 vs (0, 1) with logits (0, 0): log 2
    # point 1 vs (0, 1) with logits (1, -1): softplus(1); confidence (over all classes) sig(2), sig(1)
    labels = torch.tensor([[0.0, 1.0]])
    expected = (sig(2.0) * math.log(2.0) + sig(1.0) * softplus(1.0)) / 2
    assert loss_2d_to_3d(cam3d_p, cam2d_p, labels, mask).item() == pytest.approx(expected, rel=1e-6)
    # a second view without any present class contributes nothing to the mean over views
    two = loss_2d_to_3d(torch.cat([cam3d_p, cam3d_p]), torch.cat([cam2d_p, cam2d_p]),
                        torch.tensor([[0.0, 1.0], [0.0, 0.0]]), torch.cat([mask, mask]))
    assert two.item() == pytest.approx(expected, rel=1e-6)


def test_correlation_and_loss_3d_to_2d_eq_8_to_11():
    feat2d_p = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [7.0, 7.0]]], requires_grad=True)
    feat3d_p = torch.tensor([[[0.0, 2.0], [3.0, 0.0], [1.0, 1.0]]])
    r = 1 / math.sqrt(2)
    s2d = correlation(feat2d_p)[0, :2, :2]
    torch.testing.assert_close(s2d, torch.tensor([[1.0, r], [r, 1.0]]))
    torch.testing.assert_close(correlation(feat3d_p)[0, :2, :2], torch.eye(2))
    cam3d_p = torch.tensor([[[0.0, math.log(3.0)], [math.log(4.0), 0.0], [9.0, 9.0]]])
    # per-point max scores: point a: max(0.5, 0.75) = 0.75; point b: max(0.8, 0.5) = 0.8
    w = confidence_3d_pairs(cam3d_p)[0, :2, :2]
    torch.testing.assert_close(w, torch.tensor([[0.5625, 0.6], [0.6, 0.64]]))
    # per-point max logits: point a: log 3; point b: log 4
    l3, l4 = math.log(3.0), math.log(4.0)
    w = confidence_3d_pairs(cam3d_p, "logit")[0, :2, :2]
    torch.testing.assert_close(w, torch.tensor([[l3 * l3, l3 * l4], [l3 * l4, l4 * l4]]))
    mask = torch.tensor([[True, True, False]])
    # |S2d - S3d| = [[0, r], [r, 0]]; 1/N_v^2 = 1/4
    assert loss_3d_to_2d(feat2d_p, feat3d_p, cam3d_p, mask, use_confidence=False).item() == pytest.approx(2 * r / 4)
    assert loss_3d_to_2d(feat2d_p, feat3d_p, cam3d_p, mask, use_confidence=True).item() == pytest.approx(
        2 * 0.6 * r / 4, rel=1e-6)
    assert loss_3d_to_2d(feat2d_p, feat3d_p, cam3d_p, mask, use_confidence=True,
                         confidence_score="logit").item() == pytest.approx(2 * l3 * l4 * r / 4, rel=1e-6)


def test_pcam_like_control():
    cam3d_p = torch.tensor([[[0.0, 2.0], [2.0, 0.0], [50.0, 50.0]]])
    mask = torch.tensor([[True, True, False]])
    # GAP over the two visible points = (1, 1); labels (1, 0)
    expected = (softplus(-1.0) + softplus(1.0)) / 2
    assert pcam_like_loss(cam3d_p, torch.tensor([[1.0, 0.0]]), mask).item() == pytest.approx(expected, rel=1e-6)


def test_gather_projected_and_sample_at_pixels():
    cam3d = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 4)  # (B=2, C=3, N=4)
    out = gather_projected(cam3d, torch.tensor([1]), torch.tensor([[3, 0]]))
    assert out.tolist() == [[[15.0, 19.0, 23.0], [12.0, 16.0, 20.0]]]
    # a 2x2 map of a stride-2 network: cell (row i, col j) is centred on pixel (u = 2j, v = 2i)
    maps = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    uv = torch.tensor([[[0.0, 2.0], [1.0, 1.0], [0.5, 0.0], [3.0, 3.0], [-1.0, 0.5]]])
    got = sample_at_pixels(maps, uv, 2)
    # (0, 2): cell (1, 0) = 3; (1, 1): the middle of the four centres -> mean 2.5; (0.5, 0): a quarter
    # of the way from cell (0, 0) to (0, 1) -> 1.25; beyond the last centres the border cells: (3, 3) -> 4,
    # (-1, 0.5) -> a quarter of the way down column 0 -> 1.5
    torch.testing.assert_close(got, torch.tensor([[[3.0], [2.5], [1.25], [4.0], [1.5]]]))
    # a 1 x 1 map is read everywhere
    torch.testing.assert_close(sample_at_pixels(torch.full((1, 1, 1, 1), 7.0), uv, 8), torch.full((1, 5, 1), 7.0))


class _Tiny(torch.nn.Module):
    def __init__(self, c_in, d, c):
        super().__init__()
        self.feat = torch.nn.Linear(c_in, d)
        self.head = torch.nn.Linear(d, c, bias=False)


def _joint_batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    img_net, pt_net = _Tiny(3, 8, 4), _Tiny(3, 6, 4)
    image = torch.randn(1, 4, 4, 3, generator=g)                  # (V, h, w, 3) with stride 1
    f2 = img_net.feat(image)
    feat2d = f2.permute(0, 3, 1, 2)
    cam2d = img_net.head(f2).permute(0, 3, 1, 2)
    pts = torch.randn(1, 10, 3, generator=g)
    f3 = pt_net.feat(pts)
    feat3d = f3.transpose(1, 2)
    cam3d = pt_net.head(f3).transpose(1, 2)
    x = JointInputs(feat2d=feat2d, cam2d=cam2d, feat3d=feat3d, cam3d=cam3d,
                    image_labels=torch.tensor([[1.0, 0.0, 1.0, 0.0]]), scene_labels=torch.tensor([[1.0, 1.0, 1.0, 0.0]]),
                    cloud_of_view=torch.tensor([0]), point_idx=torch.tensor([[0, 3, 5, 7]]),
                    uv=torch.tensor([[[0.0, 0.0], [1.0, 2.0], [3.0, 3.0], [2.2, 0.7]]]),
                    mask=torch.ones(1, 4, dtype=torch.bool), stride2d=1)
    return img_net, pt_net, x


def _has_grad(net):
    return any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


@pytest.mark.parametrize("term, student, teacher", [("to3d", "point", "image"), ("to2d", "image", "point")])
def test_joint_losses_train_only_their_student(term, student, teacher):
    img_net, pt_net, x = _joint_batch()
    sw = LossSwitches(cls2d=False, cls3d=False, to3d=term == "to3d", to2d=term == "to2d")
    terms = total_loss(x, sw)
    assert set(terms) == {term, "total"}
    terms["total"].backward()
    nets = {"image": img_net, "point": pt_net}
    assert _has_grad(nets[student])
    assert not _has_grad(nets[teacher])


def test_total_loss_sums_enabled_terms_with_lambda():
    _, _, x = _joint_batch()
    full = total_loss(x, LossSwitches(lambda_to2d=1.0))
    assert set(full) == {"cls2d", "cls3d", "to3d", "to2d", "total"}
    assert full["total"].item() == pytest.approx(sum(full[k].item() for k in ("cls2d", "cls3d", "to3d", "to2d")))
    half = total_loss(x, LossSwitches(lambda_to2d=0.5))
    assert half["to2d"].item() == pytest.approx(0.5 * full["to2d"].item())
    only3d = total_loss(x, LossSwitches(cls2d=False, to3d=False, to2d=False))
    assert set(only3d) == {"cls3d", "total"}
    with pytest.raises(ValueError, match="no loss term"):
        total_loss(x, LossSwitches(cls2d=False, cls3d=False, to3d=False, to2d=False))


def _ground_truth_inputs() -> JointInputs:
    # One cloud of 3 points, C = 2. Logits per point: (2, -2), (0, 0), (5, 5); ground truth 0, 1, ignored (255).
    cam3d = torch.tensor([[[2.0, 0.0, 5.0], [-2.0, 0.0, 5.0]]])  # (B=1, C=2, N=3)
    return JointInputs(
        feat2d=None, cam2d=None, feat3d=torch.zeros(1, 4, 3), cam3d=cam3d,
        image_labels=torch.tensor([[1.0, 1.0]]), scene_labels=torch.tensor([[1.0, 1.0]]),
        cloud_of_view=torch.tensor([0]), point_idx=torch.tensor([[2, 1]]), uv=torch.zeros(1, 2, 2),
        mask=torch.tensor([[True, True]]), stride2d=None, point_labels=torch.tensor([[0, 1, 255]]),
    )


def test_ground_truth_diagnostics_of_eq_7():
    # Point 0: BCE((2, -2) | (1, 0)) = softplus(-2) for both classes; point 1: BCE((0, 0) | (0, 1)) = log 2.
    point0, point1 = softplus(-2.0), math.log(2.0)
    x = _ground_truth_inputs()
    # The view sees points 2 (ignored) and 1: only point 1 counts, W = 1.
    visible = LossSwitches(cls2d=False, cls3d=False, to3d=True, to2d=False, to3d_labels="ground_truth_visible")
    assert total_loss(x, visible)["to3d"].item() == pytest.approx(point1, rel=1e-6)
    # Every sampled point: points 0 and 1 (point 2 is ignored).
    every = LossSwitches(cls2d=False, cls3d=False, to3d=True, to2d=False, to3d_labels="ground_truth_all_points")
    assert total_loss(x, every)["to3d"].item() == pytest.approx((point0 + point1) / 2, rel=1e-6)
    # Neither needs the image network; the method's eq. 7 does.
    assert not visible.needs_image_network and not every.needs_image_network
    assert LossSwitches(cls2d=False, cls3d=False, to3d=True, to2d=False).needs_image_network
    # The function itself, with padding: a masked entry never counts, whatever its label.
    cam_p = torch.tensor([[[0.0, 0.0], [9.0, -9.0]]])
    loss = ground_truth_to_3d_loss(cam_p, torch.tensor([[1, 0]]), torch.tensor([[True, False]]))
    assert loss.item() == pytest.approx(point1, rel=1e-6)


def test_eq_7_and_eq_11_average_per_view_then_over_views_with_different_n_v():
    """Two labelled views, N_v = 2 and 1 (eq. 7) or 2 and 3 (eq. 11): each view's mean, then the mean of the views
    -- not one mean over every point of the batch, which would weigh the larger view more."""
    # eq. 7, view A: the two points of _to3d_inputs (see above); view B: one point, 2D logits (0, 3) -> pseudo-label 1
    # with W = sigmoid(3), 3D logits (1, -1) vs (0, 1): softplus(1) for both classes. P = 3, padding masked.
    cam2d_a, cam3d_a, mask_a = _to3d_inputs()
    cam2d_p = torch.cat([cam2d_a, torch.tensor([[[0.0, 3.0], [9.0, -9.0], [9.0, -9.0]]])])
    cam3d_p = torch.cat([cam3d_a.detach(), torch.tensor([[[1.0, -1.0], [5.0, 5.0], [5.0, 5.0]]])])
    mask = torch.cat([mask_a, torch.tensor([[True, False, False]])])
    view_a = (sig(2.0) * math.log(2.0) + sig(1.0) * softplus(1.0)) / 2
    view_b = sig(3.0) * softplus(1.0)
    got = loss_2d_to_3d(cam3d_p, cam2d_p, torch.ones(2, 2), mask)
    assert got.item() == pytest.approx((view_a + view_b) / 2, rel=1e-6)
    # eq. 11 without W, view A: the pair of test_correlation_and_loss_3d_to_2d_eq_8_to_11, 2 r / 4; view B: three
    # equal 2D features (S2d = 1 everywhere), 3D features e1, e2, e1 (S3d 0 at the 4 pairs with point 1): 4 / 9.
    r = 1 / math.sqrt(2)
    feat2d_p = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [7.0, 7.0]], [[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]]])
    feat3d_p = torch.tensor([[[0.0, 2.0], [3.0, 0.0], [1.0, 1.0]], [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    got = loss_3d_to_2d(feat2d_p, feat3d_p, torch.zeros(2, 3, 2), mask, use_confidence=False)
    assert got.item() == pytest.approx((2 * r / 4 + 4 / 9) / 2, rel=1e-6)


def _two_view_batch() -> JointInputs:
    """Two clouds (N = 5), three views with N_v = 3, 2, 1; the 2D maps are 3 rows x 4 columns of a stride-1
    network, read at integer pixels, so the values at the points are plain entries of the maps (u = column)."""
    g = torch.Generator().manual_seed(3)
    return JointInputs(
        feat2d=torch.randn(3, 5, 3, 4, generator=g), cam2d=torch.randn(3, 4, 3, 4, generator=g),
        feat3d=torch.randn(2, 6, 5, generator=g), cam3d=torch.randn(2, 4, 5, generator=g),
        image_labels=torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]]),
        scene_labels=torch.ones(2, 4), cloud_of_view=torch.tensor([0, 1, 1]),
        point_idx=torch.tensor([[4, 0, 2], [1, 3, 0], [2, 0, 0]]),
        uv=torch.tensor([[[3.0, 0.0], [0.0, 2.0], [1.0, 1.0]], [[2.0, 0.0], [3.0, 2.0], [0.0, 0.0]],
                         [[1.0, 2.0], [0.0, 0.0], [0.0, 0.0]]]),
        mask=torch.tensor([[True, True, True], [True, True, False], [True, False, False]]), stride2d=1)


def _by_hand(x: JointInputs):
    """The per-point inputs of eq. 7 and eq. 11, gathered with plain indexing (independent of gather_projected and
    sample_at_pixels): 3D values of point point_idx[v, p] of cloud cloud_of_view[v], 2D values at row uv[..., 1],
    column uv[..., 0]."""
    rows = {"cam3d": [], "feat3d": [], "cam2d": [], "feat2d": []}
    for v in range(x.point_idx.shape[0]):
        b = int(x.cloud_of_view[v])
        for name, maps in (("cam3d", x.cam3d), ("feat3d", x.feat3d)):
            rows[name].append(torch.stack([maps[b, :, int(i)] for i in x.point_idx[v]]))
        for name, maps in (("cam2d", x.cam2d), ("feat2d", x.feat2d)):
            rows[name].append(torch.stack([maps[v, :, int(row), int(col)] for col, row in x.uv[v]]))
    return {k: torch.stack(v) for k, v in rows.items()}


@pytest.mark.parametrize("confidence", [True, False])
def test_total_loss_terms_equal_eq_7_and_eq_11_on_the_same_batch(confidence):
    x = _two_view_batch()
    hand = _by_hand(x)
    sw = LossSwitches(lambda_to2d=0.5, to3d_confidence=confidence, to2d_confidence=confidence)
    terms = total_loss(x, sw)
    to3d = loss_2d_to_3d(hand["cam3d"], hand["cam2d"], x.image_labels, x.mask, use_confidence=confidence)
    to2d = loss_3d_to_2d(hand["feat2d"], hand["feat3d"], hand["cam3d"], x.mask, use_confidence=confidence)
    assert terms["to3d"].item() == pytest.approx(to3d.item(), rel=1e-6)
    assert terms["to2d"].item() == pytest.approx(0.5 * to2d.item(), rel=1e-6)
    assert terms["cls2d"].item() == pytest.approx(classification_loss(x.cam2d, x.image_labels).item(), rel=1e-6)
    assert terms["cls3d"].item() == pytest.approx(classification_loss(x.cam3d, x.scene_labels).item(), rel=1e-6)
    pcam = total_loss(x, LossSwitches(cls2d=False, cls3d=False, to3d=False, to2d=False, pcam_like=True))
    assert pcam["pcam_like"].item() == pytest.approx(pcam_like_loss(hand["cam3d"], x.image_labels, x.mask).item())


def test_the_switches_default_to_the_papers_eq_12():
    """LossSwitches() is the paper's method: the four terms of eq. 12, both confidences, λ = 1, eq. 6 over all
    classes, eq. 7's labels from the image network; nothing else."""
    sw = LossSwitches()
    assert sw.terms == ("cls2d", "cls3d", "to3d", "to2d")
    assert (sw.to3d_confidence, sw.to2d_confidence, sw.pcam_like, sw.object_cls) == (True, True, False, False)
    assert (sw.lambda_to2d, sw.confidence_2d_over, sw.to3d_labels) == (1.0, "all", "image_network")
    assert sw.confidence_score == "sigmoid"
    assert sw.needs_image_network is True and sw.needs_point_network is True
    image_only = LossSwitches(cls3d=False, to3d=False, to2d=False)
    assert image_only.needs_point_network is False and image_only.needs_image_network is True
    # the teacher and eq. 11 default to the confident weights too (diagnose calls the teacher with its defaults)
    cam2d_p = torch.tensor([[2.0, 0.0], [-1.0, 1.0]])
    labels, weights = teacher_targets(cam2d_p, torch.tensor([[0.0, 1.0], [0.0, 1.0]]))
    assert labels.tolist() == [1, 1] and weights.tolist() == pytest.approx([sig(2.0), sig(1.0)])
    feat2d_p = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])
    feat3d_p = torch.tensor([[[0.0, 2.0], [3.0, 0.0]]])
    cam3d_p = torch.tensor([[[0.0, math.log(3.0)], [math.log(4.0), 0.0]]])
    r = 1 / math.sqrt(2)
    assert loss_3d_to_2d(feat2d_p, feat3d_p, cam3d_p, torch.ones(1, 2, dtype=torch.bool)).item() == pytest.approx(
        2 * 0.6 * r / 4, rel=1e-6)


def test_batches_without_a_visible_point_give_zero_losses_with_a_graph():
    """A batch whose views see no point (every mask False) contributes 0 -- not NaN, not the padding's values --
    and still has a graph back to the student, so DDP's gradient sync sees every parameter."""
    cam3d_p = torch.full((2, 3, 2), 4.0, requires_grad=True)
    cam2d_p = torch.full((2, 3, 2), 1.0)
    feat2d_p = torch.full((2, 3, 2), 3.0, requires_grad=True)
    none = torch.zeros(2, 3, dtype=torch.bool)
    labels = torch.ones(2, 2)
    for loss in (loss_2d_to_3d(cam3d_p, cam2d_p, labels, none), pcam_like_loss(cam3d_p, labels, none),
                 loss_3d_to_2d(feat2d_p, torch.randn(2, 3, 2), cam3d_p, none)):
        assert loss.item() == 0.0 and loss.requires_grad


def test_pcam_like_leaves_out_views_without_points():
    # view 0 sees nothing; view 1 sees one point with logits (2, 0) against labels (1, 0)
    cam3d_p = torch.tensor([[[9.0, 9.0]], [[2.0, 0.0]]])
    mask = torch.tensor([[False], [True]])
    expected = (softplus(-2.0) + math.log(2.0)) / 2
    assert pcam_like_loss(cam3d_p, torch.tensor([[1.0, 0.0], [1.0, 0.0]]), mask).item() == pytest.approx(expected)


def test_no_term_enabled_names_the_terms_of_eq_12():
    _, _, x = _joint_batch()
    with pytest.raises(ValueError, match="switch on at least one of cls2d, cls3d, to3d, to2d, pcam_like$"):
        total_loss(x, LossSwitches(cls2d=False, cls3d=False, to3d=False, to2d=False))


def test_eq_6_over_the_present_classes_and_frozen_switches():
    """``confidence_over="present"`` through eq. 7 (the config's joint.confidence_2d_over): with class 0 absent,
    point 0's weight is sigmoid(0) (its best present class; its logit 0 with logit scores), not sigmoid(2); an unknown
    choice is an error."""
    cam2d_p, cam3d_p, mask = _to3d_inputs()
    labels = torch.tensor([[0.0, 1.0]])
    expected = (0.5 * math.log(2.0) + sig(1.0) * softplus(1.0)) / 2
    got = loss_2d_to_3d(cam3d_p, cam2d_p, labels, mask, confidence_over="present")
    assert got.item() == pytest.approx(expected, rel=1e-6)
    expected = (0.0 * math.log(2.0) + 1.0 * softplus(1.0)) / 2
    got = loss_2d_to_3d(cam3d_p, cam2d_p, labels, mask, confidence_over="present", confidence_score="logit")
    assert got.item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="confidence_over must be 'all' or 'present'"):
        loss_2d_to_3d(cam3d_p, cam2d_p, labels, mask, confidence_over="max")
    # a run's switches are fixed once built, and the inputs' ground truth is absent unless given
    with pytest.raises(AttributeError):
        LossSwitches().lambda_to2d = 2.0
    assert _joint_batch()[2].point_labels is None
