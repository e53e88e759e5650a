"""`jointwsss diagnose`: coverage, the 2D teacher against ground truth, seen/unseen 3D, feature pairs."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from jointwsss.classes import CLASS_INDEX, NUM_CLASSES
from jointwsss.data.dataset import scenes_from_index
from jointwsss.diagnose import (
    class_counts, diagnose_split, image_level_auc, pair_auc, pair_similarities, seen_vertices, teacher_labels,
    teacher_report,
)
from jointwsss.data.transforms import normalize_image
from jointwsss.evaluate import infer_split
from jointwsss.runs import load_networks
from jointwsss.export.tables import diagnosis_rows, write_diagnosis_table, write_metrics_table
from jointwsss.io.errors import DataFormatError
from jointwsss.io.zarr_store import open_store
from jointwsss.metrics import confusion_matrix

from conftest import hand_built_model, run_cmd

WALL, FLOOR, CHAIR, TABLE = (CLASS_INDEX[n] for n in ("wall", "floor", "chair", "table"))


def test_pair_auc_counts_ties_half():
    # positives 3, 1 vs negatives 2, 1: (3>2) + (3>1) + (1<2: 0) + (1=1: 0.5) = 2.5 of 4 pairs
    assert pair_auc(np.array([3.0, 1.0]), np.array([2.0, 1.0])) == pytest.approx(0.625)
    assert pair_auc(np.array([1.0]), np.array([0.0, 0.5])) == 1.0
    assert pair_auc(np.array([]), np.array([1.0])) is None


def test_image_level_auc_per_class_by_hand():
    # class 0 (wall): views 0, 1 have it (scores 3, 1), views 2, 3 lack it (scores 2, 0): pairs (3>2, 3>0, 1<2, 1>0)
    # -> 3/4; class 1 (floor): tie between the one positive and one of the negatives -> (1 + 0.5) / 3;
    # class 2: on every view -> None; every other class: on no view -> None
    scores = np.zeros((4, NUM_CLASSES))
    scores[:, 0] = [3.0, 1.0, 2.0, 0.0]
    scores[:, 1] = [5.0, 0.0, 5.0, 9.0]
    labels = np.zeros((4, NUM_CLASSES), np.uint8)
    labels[:2, 0] = 1
    labels[2, 1] = 1
    labels[:, 2] = 1
    auc = image_level_auc(scores, labels)
    assert auc["wall"] == pytest.approx(0.75)
    assert auc["floor"] == pytest.approx(0.5)      # beats 0.0, ties 5.0, loses to 9.0: (1 + 0.5 + 0) / 3
    assert auc["cabinet"] is None and auc["bed"] is None and len(auc) == NUM_CLASSES


def test_pair_similarities_split_by_class_and_skip_unlabelled():
    features = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    labels = np.array([WALL, WALL, CHAIR, 255])      # the last point has no ground-truth class
    same, different = pair_similarities(features, labels)
    np.testing.assert_allclose(same, [1.0], atol=1e-6)            # (0, 1): parallel
    np.testing.assert_allclose(different, [0.0, 0.0], atol=1e-6)  # (0, 2), (1, 2): orthogonal


def test_teacher_labels_are_eq5_and_eq6():
    logits = torch.full((2, NUM_CLASSES), -4.0)
    logits[0, WALL], logits[0, CHAIR], logits[0, TABLE] = 1.0, 2.0, 5.0   # table highest but not in the image
    logits[1, WALL], logits[1, CHAIR] = 3.0, -1.0
    image_labels = torch.zeros(NUM_CLASSES)
    image_labels[[WALL, CHAIR]] = 1
    label, confidence = teacher_labels(logits, image_labels)
    assert label.tolist() == [CHAIR, WALL]
    sigmoid = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    np.testing.assert_allclose(confidence, [sigmoid(5.0), sigmoid(3.0)], rtol=1e-6)  # eq. 6: max over all classes
    # a run trained with joint.confidence_2d_over: present takes eq. 6's max over the image's classes only
    label, confidence = teacher_labels(logits, image_labels, "present")
    assert label.tolist() == [CHAIR, WALL]
    np.testing.assert_allclose(confidence, [sigmoid(2.0), sigmoid(3.0)], rtol=1e-6)
    # a run trained with joint.confidence_score: logit (the maximum logit)
    _, confidence = teacher_labels(logits, image_labels, "all", "logit")
    np.testing.assert_allclose(confidence, [5.0, 3.0], rtol=1e-6)


def test_teacher_report_recall_precision_and_most_given_label():
    conf = np.zeros((NUM_CLASSES, NUM_CLASSES + 1), np.int64)
    conf[WALL, WALL], conf[WALL, CHAIR] = 8, 2        # 10 wall points: 8 right
    conf[CHAIR, CHAIR], conf[CHAIR, WALL] = 1, 4      # 5 chair points: 4 called wall
    report = teacher_report(conf, conf.astype(float))
    wall, chair = report["per_class"]["wall"], report["per_class"]["chair"]
    assert (wall["recall"], wall["precision"], wall["iou"]) == pytest.approx((0.8, 8 / 12, 8 / 14))
    assert (chair["recall"], chair["precision"], chair["iou"]) == pytest.approx((0.2, 1 / 3, 1 / 7))
    assert chair["most_given"] == "wall" and not chair["learnable_by_2d_to_3d"]
    assert report["learnable_classes"] == ["wall"] and set(report["per_class"]) == {"wall", "chair"}
    assert report["accuracy"] == pytest.approx(9 / 15)
    assert report["label_share"]["wall"] == pytest.approx(12 / 15)
    assert report["truth_share"]["chair"] == pytest.approx(5 / 15)
    assert report["miou"] == pytest.approx((8 / 14 + 1 / 7) / 2)


def test_teacher_report_weighs_each_label_by_its_confidence():
    """The confidence-weighted confusion is how eq. 7 weighs the labels: right wall labels at W = 0.9, wrong ones at
    0.5; right chair labels at 0.4, chair points called wall at 0.8 (the confidence favours wall, not right labels)."""
    conf = np.zeros((NUM_CLASSES, NUM_CLASSES + 1), np.int64)
    conf[WALL, WALL], conf[WALL, CHAIR] = 8, 2
    conf[CHAIR, CHAIR], conf[CHAIR, WALL] = 1, 4
    weighted = np.zeros(conf.shape)
    weighted[WALL, WALL], weighted[WALL, CHAIR] = 8 * 0.9, 2 * 0.5
    weighted[CHAIR, CHAIR], weighted[CHAIR, WALL] = 1 * 0.4, 4 * 0.8
    report = teacher_report(conf, weighted)
    wall, chair = report["per_class"]["wall"], report["per_class"]["chair"]
    assert (wall["confidence_right"], wall["confidence_wrong"]) == pytest.approx((0.9, 0.5))
    assert (chair["confidence_right"], chair["confidence_wrong"]) == pytest.approx((0.4, 0.8))
    assert report["confidence_weighted_accuracy"] == pytest.approx(7.6 / 11.8)
    # weighted IoU: wall 7.2 / (7.2 + 1.0 + 3.2), chair 0.4 / (0.4 + 3.2 + 1.0)
    assert report["confidence_weighted_miou"] == pytest.approx((7.2 / 11.4 + 0.4 / 4.6) / 2)
    assert report["miou"] == pytest.approx((8 / 14 + 1 / 7) / 2)


def test_diagnosis_table_rows_in_percent():
    conf = np.zeros((NUM_CLASSES, NUM_CLASSES + 1), np.int64)
    conf[WALL, WALL], conf[WALL, CHAIR] = 8, 2
    conf[CHAIR, CHAIR], conf[CHAIR, WALL] = 1, 4
    coverage = {"seen_fraction": 0.25, "per_class": {n: {"seen_fraction": None} for n in CLASS_INDEX}}
    coverage["per_class"]["wall"]["seen_fraction"], coverage["per_class"]["chair"]["seen_fraction"] = 0.5, 0.125
    seen = {"miou": 0.3, "per_class": {n: None for n in CLASS_INDEX}}
    unseen = {"miou": 0.2, "per_class": {n: None for n in CLASS_INDEX}}
    seen["per_class"]["wall"], unseen["per_class"]["wall"] = 0.6, 0.4
    diagnosis = {"coverage": coverage, "teacher": teacher_report(conf, conf.astype(float)),
                 "student": {"seen": seen, "unseen": unseen}}
    rows = diagnosis_rows(diagnosis)
    assert rows[0] == ["class", "vertices seen", "teacher recall", "teacher precision", "teacher IoU",
                       "most-given label", "3D IoU seen", "3D IoU unseen"]
    assert len(rows) == 1 + NUM_CLASSES + 1
    by_class = {r[0]: r[1:] for r in rows[1:]}
    # wall: 8 of 10 right, 12 labelled wall -> precision 66.7 %, IoU 8 / 14 = 57.1 %
    assert by_class["wall"] == ["50.0", "80.0", "66.7", "57.1", "wall", "60.0", "40.0"]
    assert by_class["chair"] == ["12.5", "20.0", "33.3", "14.3", "wall", "", ""]
    assert by_class["sofa"] == ["", "", "", "", "", "", ""]          # no points: nothing to report
    # overall: 9 of 15 right (60 %), mIoU (57.1 + 14.3) / 2 = 35.7 %, one class right by plurality
    assert rows[-1] == ["all (accuracy / mIoU)", "25.0", "60.0", "", "35.7", "right for 1 of 2", "30.0", "20.0"]
    # an image-only run has no 3D columns, a point-only run no teacher columns
    assert diagnosis_rows({"coverage": coverage, "teacher": diagnosis["teacher"]})[0][-1] == "most-given label"
    assert diagnosis_rows({"coverage": coverage, "student": diagnosis["student"]})[0] == [
        "class", "vertices seen", "3D IoU seen", "3D IoU unseen"]


def test_class_counts_and_seen_vertices():
    assert class_counts(np.array([0, 0, 3, 255]))[[0, 3]].tolist() == [2, 1]
    assert seen_vertices(5, np.array([4, 1, 1])).tolist() == [False, True, False, False, True]


def _scenes(cache, split):
    return scenes_from_index(cache / "index" / f"{split}.json")


def test_diagnose_split_end_to_end_matches_independent_counts(tiny_cache, tmp_path):
    model = hand_built_model(tmp_path, tiny_cache, "joint")
    scenes = _scenes(tiny_cache, "train")
    pred = tmp_path / "train.h5"
    infer_split(model, tiny_cache, scenes, "train", "pseudo_label", pred, passes_3d=1, batch_3d=2, device="cpu")
    result = diagnose_split(model, tiny_cache, scenes, "train", predictions=pred, feature_points_per_view=16)

    seen_total = labelled = pairs = views = 0
    student = {"seen": np.zeros((NUM_CLASSES, NUM_CLASSES + 1), np.int64)}
    student["unseen"] = student["seen"].copy()
    expected_pairs = 0
    with h5py.File(pred, "r") as h5:
        for scene in scenes:
            gt = open_store(tiny_cache / "points" / f"{scene}.zarr", "points")["label"][...]
            corr = open_store(tiny_cache / "corr" / f"{scene}.zarr", "corr")
            image_labels = open_store(tiny_cache / "frames" / f"{scene}.zarr", "frames")["image_labels"][...]
            offsets, idx = corr["offsets"][...], corr["point_idx"][...]
            seen = np.zeros(len(gt), bool)
            seen[idx] = True
            labelled += int((gt < NUM_CLASSES).sum())
            seen_total += int(((gt < NUM_CLASSES) & seen).sum())
            for f in range(len(offsets) - 1):
                view = idx[offsets[f]:offsets[f + 1]]
                views += len(view) > 0
                if len(view) and image_labels[f].any():
                    pairs += int((gt[view] < NUM_CLASSES).sum())
                n = min(len(view), 16)  # the labelled share of the 16 picked points is random: bound below
                expected_pairs += n * (n - 1) // 2
            predicted = h5[scene]["vertex_label"][...]
            student["seen"] += confusion_matrix(gt[seen], predicted[seen])
            student["unseen"] += confusion_matrix(gt[~seen], predicted[~seen])

    assert result["views"] == views and result["scenes"] == len(scenes)
    assert result["coverage"]["seen_fraction"] == pytest.approx(seen_total / labelled)
    assert sum(sum(row) for row in result["teacher"]["confusion"]) == pairs
    for part in ("seen", "unseen"):
        assert result["student"][part]["vertices"] == int(student[part].sum())
        accuracy = np.trace(student[part][:, :20]) / student[part].sum()
        assert result["student"][part]["accuracy"] == pytest.approx(accuracy)
    f3, f2 = result["features"]["3d"], result["features"]["2d"]
    assert f3["pairs"] == f2["pairs"]                  # the same point pairs in both domains
    assert 0 < f3["pairs"]["same_class"] + f3["pairs"]["different_class"] <= expected_pairs
    assert -1.0 <= f2["different_class_cosine"] <= 1.0 and 0.0 <= f3["pair_auc"] <= 1.0


def test_diagnose_cli_writes_json_and_names_a_missing_scene(tiny_cache, tmp_path):
    model = hand_built_model(tmp_path, tiny_cache, "to3d")
    out = tmp_path / "diagnose" / "val.json"
    proc = run_cmd(["jointwsss", "diagnose", "--model", str(model), "--cache-dir", str(tiny_cache), "--split", "val",
                    "--out", str(out), "--device", "cpu", "--threads", "1"])
    result = json.loads(out.read_text())
    assert result["experiment"] == "to3d" and result["split"] == "val" and "teacher" in result
    assert "teacher (eq. 5 at visible points)" in proc.stderr
    table = tmp_path / "diagnose" / "val.tsv"
    run_cmd(["jointwsss", "export", "table", "--diagnose", str(out), "--out", str(table)])
    assert [line.split("\t") for line in table.read_text().splitlines()] == diagnosis_rows(result)
    # the wrong JSON for the table, or none, is an error naming the file; the table already written stays
    with pytest.raises(DataFormatError, match=r"val\.json: not an evaluation \(metrics\.json\): it has no 'splits'"):
        write_metrics_table(out, table)
    with pytest.raises(DataFormatError, match=r"missing\.json: cannot read a diagnosis .* `snakemake diagnose`"):
        write_diagnosis_table(tmp_path / "missing.json", table)
    assert [line.split("\t") for line in table.read_text().splitlines()] == diagnosis_rows(result)

    empty = tmp_path / "empty.h5"
    with h5py.File(empty, "w"):
        pass
    with pytest.raises(DataFormatError, match=r"empty\.h5: no predictions for scene .* run `snakemake eval`"):
        diagnose_split(model, tiny_cache, _scenes(tiny_cache, "val"), "val", predictions=empty)


def test_image_only_run_gets_coverage_and_teacher_but_no_3d_sections(tiny_cache, tmp_path):
    model = hand_built_model(tmp_path, tiny_cache, "cls2d")
    scenes = _scenes(tiny_cache, "val")
    pred = tmp_path / "val.h5"
    infer_split(model, tiny_cache, scenes, "val", "inference", pred, device="cpu")   # frame labels only
    result = diagnose_split(model, tiny_cache, scenes, "val", predictions=pred)
    assert {"coverage", "teacher"} <= set(result) and not {"student", "features"} & set(result)
    # the image-level AUC ranks the views' own eq. 1 outputs; recomputed here from the network directly
    settings, image_net, _ = load_networks(model, torch.device("cpu"))
    scores, labels = [], []
    for scene in scenes:
        frames = open_store(tiny_cache / "frames" / f"{scene}.zarr", "frames")
        offsets = open_store(tiny_cache / "corr" / f"{scene}.zarr", "corr")["offsets"][...]
        for f in range(len(offsets) - 1):
            if offsets[f + 1] > offsets[f]:
                with torch.no_grad():
                    _, cam = image_net(torch.from_numpy(normalize_image(frames["color"][f]))[None])
                scores.append(cam.float().mean(dim=(2, 3))[0].numpy())
                labels.append(frames["image_labels"][f])
    expected = image_level_auc(np.stack(scores), np.stack(labels))
    assert result["teacher"]["image_level_auc"] == pytest.approx(expected)
    measured = [v for v in expected.values() if v is not None]
    assert measured and result["teacher"]["mean_image_level_auc"] == pytest.approx(np.mean(measured))
