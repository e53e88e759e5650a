"""The paper's Table 2 (and the section 4.2 PCAM-like control), regenerated from our runs.

Reads ``runs/<experiment>/eval/metrics.json`` of every experiment and writes ``ablation.md`` (the
paper's layout: one row per Table 2 row with loss-term check marks, our Train / Val mIoU beside the
paper's) and ``ablation.json``::

    {"dataset": "scannet", "rows": [{"experiment", "domain", "losses", "confidence", "train_miou", "val_miou",
                                     "paper_train", "paper_val"}, ...]}

mIoUs are fractions in [0, 1] (null where an experiment has no number for that split).
"""

from __future__ import annotations

import json
from pathlib import Path

from jointwsss.io.atomic import atomic_path
from jointwsss.io.errors import DataFormatError

# (domain, experiment, paper train mIoU, paper val mIoU): Table 2 of the paper in its order, then the
# section 4.2 control ("43.9 % and 39.8 % on train and val").
TABLE2_ROWS: tuple[tuple[str, str, float, float], ...] = (
    ("2d", "cls2d", 0.380, 0.333),
    ("2d", "to2d_noconf", 0.478, 0.392),
    ("2d", "to2d", 0.500, 0.416),
    ("2d", "joint", 0.544, 0.445),
    ("3d", "cls3d", 0.179, 0.162),
    ("3d", "to3d_noconf", 0.513, 0.438),
    ("3d", "to3d", 0.535, 0.456),
    ("3d", "joint", 0.591, 0.496),
    ("3d", "pcam_like", 0.439, 0.398),
)
TERMS = ("cls2d", "cls3d", "to3d", "to2d")
TERM_HEADERS = ("L_cls^2d", "L_cls^3d", "L_2d→3d", "L_3d→2d")


def _split_miou(metrics: dict, split: str, domain: str) -> float | None:
    entry = metrics.get("splits", {}).get(split)
    if not entry or entry.get(domain) is None:
        return None
    return entry[domain]["miou"]


def build_table(runs_dir: Path, experiments: dict[str, dict]) -> dict:
    """The ablation rows from ``runs_dir/<experiment>/eval/metrics.json``; ``experiments`` is the config's mapping."""
    rows = []
    for domain, name, paper_train, paper_val in TABLE2_ROWS:
        path = Path(runs_dir) / name / "eval" / "metrics.json"
        try:
            metrics = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DataFormatError(path, f"cannot read the evaluation of experiment '{name}' ({exc})",
                                  f"run `snakemake eval --config experiment={name}`") from exc
        exp = experiments[name]
        rows.append({
            "experiment": name, "domain": domain, "losses": list(exp["losses"]),
            "confidence": bool(exp.get("confidence", True)) and any(t in exp["losses"] for t in ("to3d", "to2d")),
            "train_miou": _split_miou(metrics, "train", domain), "val_miou": _split_miou(metrics, "val", domain),
            "paper_train": paper_train, "paper_val": paper_val,
        })
    return {"dataset": "scannet", "rows": rows}


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def render_markdown(table: dict) -> str:
    """Table 2 in the paper's layout, ours beside the paper's."""
    head = ("| Domain | " + " | ".join(TERM_HEADERS) + " | Confidence | Train (ours) | Val (ours) "
            "| Train (paper) | Val (paper) | experiment |")
    lines = ["# Table 2: ablation (mIoU %, ScanNet train / val)", "",
             "Train = pseudo-label quality (CAM restricted to the known labels); Val = plain inference.", "",
             head, "|" + " --- |" * (len(TERMS) + 7)]
    last_domain = None
    for row in table["rows"]:
        marks = ["✓" if t in row["losses"] else "" for t in TERMS]
        if row["experiment"] == "pcam_like":
            marks[2] = "(PCAM-like: BCE of projected 3D CAM vs image labels)"
        domain = row["domain"].upper() if row["domain"] != last_domain else ""
        last_domain = row["domain"]
        lines.append(f"| {domain} | " + " | ".join(marks) + f" | {'✓' if row['confidence'] else ''} | "
                     f"{_pct(row['train_miou'])} | {_pct(row['val_miou'])} | {_pct(row['paper_train'])} | "
                     f"{_pct(row['paper_val'])} | `{row['experiment']}` |")
    return "\n".join(lines) + "\n"


def write_ablation(runs_dir: Path, experiments: dict[str, dict], out_md: Path, out_json: Path) -> dict:
    table = build_table(runs_dir, experiments)
    with atomic_path(out_json) as tmp:
        tmp.write_text(json.dumps(table, indent=2) + "\n")
    with atomic_path(out_md) as tmp:
        tmp.write_text(render_markdown(table))
    return table
