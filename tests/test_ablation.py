"""The Table 2 reproduction from hand-made metrics files."""

from __future__ import annotations

import json

import pytest

from jointwsss.ablation import TABLE2_ROWS, build_table, render_markdown, write_ablation
from jointwsss.config import resolve_config
from jointwsss.io.errors import DataFormatError

from conftest import REPO

EXPERIMENTS = resolve_config(REPO / "config.yaml")["experiments"]


def write_metrics(runs, name, train2d, val2d, train3d, val3d):
    def m(v):
        return None if v is None else {"miou": v}
    path = runs / name / "eval" / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"experiment": name, "splits": {
        "train": {"mode": "pseudo_label", "2d": m(train2d), "3d": m(train3d)},
        "val": {"mode": "inference", "2d": m(val2d), "3d": m(val3d)}}}))


def test_table_rows_marks_and_numbers(tmp_path):
    for i, name in enumerate(dict.fromkeys(n for _, n, _, _ in TABLE2_ROWS)):
        two = None if name == "cls3d" else 0.10 + i / 100
        three = None if name == "cls2d" else 0.20 + i / 100
        write_metrics(tmp_path, name, two, two and two - 0.05, three, three and three - 0.05)
    table = build_table(tmp_path, EXPERIMENTS)
    rows = table["rows"]
    assert [(r["domain"], r["experiment"]) for r in rows] == [(d, n) for d, n, _, _ in TABLE2_ROWS]
    joint2d = next(r for r in rows if r["experiment"] == "joint" and r["domain"] == "2d")
    joint3d = next(r for r in rows if r["experiment"] == "joint" and r["domain"] == "3d")
    # experiments in first-appearance order: cls2d 0, to2d_noconf 1, to2d 2, joint 3, cls3d 4, ...
    assert joint2d["train_miou"] == pytest.approx(0.13) and joint2d["val_miou"] == pytest.approx(0.08)
    assert joint3d["train_miou"] == pytest.approx(0.23) and joint3d["paper_val"] == 0.496
    assert [r["confidence"] for r in rows] == [False, False, True, True, False, False, True, True, False]
    md = render_markdown(table)
    assert "| 2D | ✓ |  |  |  |  | 10.0 | 5.0 | 38.0 | 33.3 | `cls2d` |" in md
    assert "|  | ✓ | ✓ | ✓ | ✓ | ✓ | 23.0 | 18.0 | 59.1 | 49.6 | `joint` |" in md
    write_ablation(tmp_path, EXPERIMENTS, tmp_path / "ablation.md", tmp_path / "ablation.json")
    assert json.loads((tmp_path / "ablation.json").read_text()) == table


def test_missing_experiment_names_the_file_and_the_fix(tmp_path):
    with pytest.raises(DataFormatError, match="cls2d.*snakemake eval --config experiment=cls2d"):
        build_table(tmp_path, EXPERIMENTS)
