"""Metrics as tables for people (the HTML report shows them): per-class IoU of every split and domain, and a
diagnosis (jointwsss.diagnose) per class, as TSV."""

from __future__ import annotations

import json
from pathlib import Path

from jointwsss.classes import CLASS_NAMES
from jointwsss.io.atomic import atomic_path
from jointwsss.io.errors import DataFormatError


def metrics_rows(metrics: dict) -> list[list[str]]:
    """Header + one row per class + the mean row: IoU in % for each (split, domain) column of metrics.json."""
    columns = [(split, domain) for split, entry in metrics["splits"].items() for domain in ("3d", "2d")
               if entry.get(domain) is not None]
    header = ["class"] + [f"{split} {domain} ({metrics['splits'][split]['mode']})" for split, domain in columns]

    rows = [header]
    for name in CLASS_NAMES:
        rows.append([name] + [_pct(metrics["splits"][s][d]["per_class"][name]) for s, d in columns])
    rows.append(["mIoU"] + [_pct(metrics["splits"][s][d]["miou"]) for s, d in columns])
    return rows


def _pct(value) -> str:
    return "" if value is None else f"{100 * value:.1f}"


def diagnosis_rows(diagnosis: dict) -> list[list[str]]:
    """Header + one row per class + an overall row of a ``jointwsss diagnose`` result (percent).

    Columns: the share of the class's vertices some view sees; where the run has an image network, its
    eq. 5 pseudo-labels at the visible points (recall, precision, IoU, the label the class's points get
    most often); where it has 3D predictions, their IoU on seen and on unseen vertices. The overall row
    holds the seen share of all vertices, the teacher's accuracy and mIoU, how many classes' most-given
    label is right, and the 3D mIoUs.
    """
    coverage, teacher, student = diagnosis["coverage"], diagnosis.get("teacher"), diagnosis.get("student")
    header = ["class", "vertices seen"]
    if teacher is not None:
        header += ["teacher recall", "teacher precision", "teacher IoU", "most-given label"]
    if student is not None:
        header += ["3D IoU seen", "3D IoU unseen"]
    rows = [header]
    for name, cov in coverage["per_class"].items():
        row = [name, _pct(cov["seen_fraction"])]
        if teacher is not None:
            t = teacher["per_class"].get(name)
            row += ["", "", "", ""] if t is None else [_pct(t["recall"]), _pct(t["precision"]), _pct(t["iou"]),
                                                       t["most_given"]]
        if student is not None:
            row += [_pct(student["seen"]["per_class"][name]), _pct(student["unseen"]["per_class"][name])]
        rows.append(row)
    overall = ["all (accuracy / mIoU)", _pct(coverage["seen_fraction"])]
    if teacher is not None:
        overall += [_pct(teacher["accuracy"]), "", _pct(teacher["miou"]),
                    f"right for {len(teacher['learnable_classes'])} of {len(teacher['per_class'])}"]
    if student is not None:
        overall += [_pct(student["seen"]["miou"]), _pct(student["unseen"]["miou"])]
    rows.append(overall)
    return rows


def write_rows(rows: list[list[str]], out_tsv: Path) -> None:
    """Rows of cells -> a tab-separated file, written atomically."""
    with atomic_path(out_tsv) as tmp:
        tmp.write_text("\n".join("\t".join(r) for r in rows) + "\n")


def _read_result(path: Path, section: str, what: str, fix: str) -> dict:
    """A result JSON that must have ``section``; anything else is a DataFormatError naming the file."""
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataFormatError(path, f"cannot read {what} ({exc})", fix) from exc
    if not isinstance(result, dict) or section not in result:
        raise DataFormatError(path, f"not {what}: it has no '{section}' section", fix)
    return result


def write_metrics_table(metrics_json: Path, out_tsv: Path) -> None:
    """``metrics.json`` -> a tab-separated per-class IoU table (percent)."""
    metrics = _read_result(metrics_json, "splits", "an evaluation (metrics.json)",
                           "pass runs/<experiment>/eval/metrics.json, written by `snakemake eval`")
    write_rows(metrics_rows(metrics), out_tsv)


def write_diagnosis_table(diagnosis_json: Path, out_tsv: Path) -> None:
    """``runs/<exp>/diagnose/<split>.json`` -> a tab-separated per-class diagnosis table (percent)."""
    diagnosis = _read_result(diagnosis_json, "coverage", "a diagnosis",
                             "pass runs/<experiment>/diagnose/<split>.json, written by `snakemake diagnose`")
    write_rows(diagnosis_rows(diagnosis), out_tsv)
