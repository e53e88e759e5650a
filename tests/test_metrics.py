"""mIoU with the official ScanNet semantics, on hand-built cases."""

from __future__ import annotations

import numpy as np
import pytest

from jointwsss.classes import NUM_CLASSES
from jointwsss.metrics import confusion_matrix, miou_report


def test_known_confusion_gives_known_ious():
    # wall=0, floor=1, chair=4
    gt = np.array([0, 0, 0, 0, 1, 1, 1, 4, 4, 255])
    pred = np.array([0, 0, 0, 1, 1, 1, 4, 4, 0, 0])
    # wall: TP 3, FN 1 (->floor), FP 1 (chair->wall)          -> 3 / 5
    # floor: TP 2, FN 1 (->chair), FP 1 (wall->floor)         -> 2 / 4
    # chair: TP 1, FN 1 (->wall), FP 1 (floor->chair)         -> 1 / 3
    # the ignored ground truth (255) predicted as wall counts nowhere
    rep = miou_report(confusion_matrix(gt, pred))
    assert rep["per_class"]["wall"] == pytest.approx(3 / 5)
    assert rep["per_class"]["floor"] == pytest.approx(2 / 4)
    assert rep["per_class"]["chair"] == pytest.approx(1 / 3)
    assert rep["classes_in_mean"] == 3
    assert rep["miou"] == pytest.approx((3 / 5 + 2 / 4 + 1 / 3) / 3)
    assert rep["points_or_pixels"] == 9


def test_prediction_outside_the_20_classes_is_a_miss_but_no_false_positive():
    gt = np.array([0, 0, 1, 1])
    pred = np.array([0, 255, 1, 30])   # 255 and 30: no benchmark class
    rep = miou_report(confusion_matrix(gt, pred))
    assert rep["per_class"]["wall"] == pytest.approx(1 / 2)
    assert rep["per_class"]["floor"] == pytest.approx(1 / 2)
    conf = np.array(rep["confusion"])
    assert conf.shape == (20, 21) and conf[0, 20] == 1 and conf[1, 20] == 1


def test_class_absent_from_both_is_left_out_of_the_mean():
    gt = np.array([0, 1])
    pred = np.array([0, 1])
    rep = miou_report(confusion_matrix(gt, pred))
    assert rep["per_class"]["sink"] is None
    assert rep["classes_in_mean"] == 2 and rep["miou"] == 1.0
    # a class only predicted (absent from ground truth) is in the mean with IoU 0
    rep = miou_report(confusion_matrix(np.array([0, 0]), np.array([0, 16])))  # 16 = toilet
    assert rep["per_class"]["toilet"] == 0.0
    assert rep["classes_in_mean"] == 2 and rep["miou"] == pytest.approx(0.25)


def test_confusions_add_up_over_scenes_and_2d_shapes_work():
    a = confusion_matrix(np.zeros((2, 3), int), np.zeros((2, 3), int))
    b = confusion_matrix(np.array([[1, 1]]), np.array([[0, 1]]))
    rep = miou_report(a + b)
    assert rep["per_class"]["wall"] == pytest.approx(6 / 7)
    assert rep["per_class"]["floor"] == pytest.approx(1 / 2)
    with pytest.raises(ValueError, match="differ in size"):
        confusion_matrix(np.zeros(3), np.zeros(4))


def test_ground_truth_outside_the_20_classes_is_ignored_whatever_its_value():
    # 20 is the first index past the classes (the unknown column's number): ignored like 255 and -1
    gt = np.array([0, 20, 255, -1, 1])
    pred = np.array([0, 0, 0, 0, 1])
    conf = confusion_matrix(gt, pred)
    assert conf.sum() == 2 and conf[0, 0] == 1 and conf[1, 1] == 1


def test_weighted_confusion_sums_the_weights_per_cell():
    gt = np.array([0, 0, 3, 255, 3])
    pred = np.array([0, 0, 1, 2, 40])                       # 255: ignored; 40: the unknown column
    conf = confusion_matrix(gt, pred, weights=np.array([0.5, 0.25, 2.0, 9.0, 1.5]))
    assert conf.dtype == np.float64 and conf.sum() == 4.25
    assert (conf[0, 0], conf[3, 1], conf[3, NUM_CLASSES]) == (0.75, 2.0, 1.5)
