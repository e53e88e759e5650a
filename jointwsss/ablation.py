"""The paper's Table 2 (and the section 4.2 PCAM-like control) and Table 4 (S3DIS), regenerated from our runs.

One builder and one renderer serve both tables; a :class:`TableSpec` says which rows (the paper's
order and numbers), which metrics file and which of its splits fill the columns.

Table 2 reads ``runs/<experiment>/eval/metrics.json`` of every experiment and writes ``ablation.md``
(the paper's layout: one row per Table 2 row with loss-term check marks, our Train / Val mIoU beside
the paper's) and ``ablation.json``::

    {"dataset": "scannet", "rows": [{"experiment", "domain", "losses", "confidence", "train_miou", "val_miou",
                                     "paper_train", "paper_val"}, ...]}

Table 4 reads ``runs/<experiment>/eval/s3dis_metrics.json`` (split ``area_<N>``) and writes
``s3dis_table.md`` / ``s3dis_table.json`` in the same shape with ``"dataset": "s3dis"``, ``"area"``,
``"classes"`` (the shared classes) and one ``val_miou`` / ``paper_val`` per row.

mIoUs are fractions in [0, 1] (null where an experiment has no number for that split).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
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


# (domain, experiment, paper val mIoU): Table 4 of the paper (S3DIS Area 5 / 2D-3D-S, shared classes) in
# its order; the paper uses confidence-based scoring by default, so the joint rows are to2d, to3d, joint.
TABLE4_ROWS: tuple[tuple[str, str, float], ...] = (
    ("2d", "cls2d", 0.369),
    ("2d", "to2d", 0.433),
    ("2d", "joint", 0.495),
    ("3d", "cls3d", 0.175),
    ("3d", "to3d", 0.480),
    ("3d", "joint", 0.544),
)


@dataclass(frozen=True)
class TableSpec:
    """What one reproduced table holds.

    rows: (domain, experiment, {column: paper mIoU}) in the paper's order; columns: (column, split of
    the metrics file, header) -- the JSON keys are ``<column>_miou`` and ``paper_<column>``.
    """

    dataset: str
    title: str
    note: str
    metrics_file: str
    columns: tuple[tuple[str, str, str], ...]
    rows: tuple[tuple[str, str, dict[str, float]], ...]
    fix: str                       # how to produce a missing metrics file; {name} = the experiment
    extra: dict = field(default_factory=dict)


TABLE2 = TableSpec(
    dataset="scannet",
    title="# Table 2: ablation (mIoU %, ScanNet train / val)",
    note="Train = pseudo-label quality (CAM restricted to the known labels); Val = plain inference.",
    metrics_file="metrics.json",
    columns=(("train", "train", "Train"), ("val", "val", "Val")),
    rows=tuple((d, n, {"train": t, "val": v}) for d, n, t, v in TABLE2_ROWS),
    fix="run `snakemake eval --config experiment={name}`",
)


def table4_spec(area: int = 5, classes: tuple[str, ...] = ()) -> TableSpec:
    """Table 4 for S3DIS area ``area`` (metrics split ``area_<area>``), evaluated on ``classes``."""
    return TableSpec(
        dataset="s3dis",
        title=f"# Table 4: generalization, trained on ScanNet only (mIoU %, S3DIS / 2D-3D-S Area {area})",
        note=("No fine-tuning; 3D rows run the point network on S3DIS point clouds only, 2D rows the image "
              "network on 2D-3D-S images only; mIoU over the classes both label sets share: "
              + ", ".join(classes) + "."),
        metrics_file="s3dis_metrics.json",
        columns=(("val", f"area_{area}", "Val"),),
        rows=tuple((d, n, {"val": v}) for d, n, v in TABLE4_ROWS),
        fix="run `snakemake eval_s3dis`",
        extra={"area": int(area), "classes": list(classes)},
    )


def _split_miou(metrics: dict, split: str, domain: str) -> float | None:
    entry = metrics.get("splits", {}).get(split)
    if not entry or entry.get(domain) is None:
        return None
    return entry[domain]["miou"]


def build_table(runs_dir: Path, experiments: dict[str, dict], spec: TableSpec = TABLE2) -> dict:
    """The rows of ``spec`` from ``runs_dir/<experiment>/eval/<spec.metrics_file>``.

    ``experiments`` is the config's mapping (losses and confidence of each experiment).
    """
    rows = []
    for domain, name, paper in spec.rows:
        path = Path(runs_dir) / name / "eval" / spec.metrics_file
        try:
            metrics = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DataFormatError(path, f"cannot read the evaluation of experiment '{name}' ({exc})",
                                  spec.fix.format(name=name)) from exc
        exp = experiments[name]
        row = {
            "experiment": name, "domain": domain, "losses": list(exp["losses"]),
            "confidence": bool(exp["confidence"]) and any(t in exp["losses"] for t in ("to3d", "to2d")),
        }
        row.update({f"{col}_miou": _split_miou(metrics, split, domain) for col, split, _ in spec.columns})
        row.update({f"paper_{col}": paper[col] for col, _, _ in spec.columns})
        rows.append(row)
    return {"dataset": spec.dataset, **spec.extra, "rows": rows}


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def render_markdown(table: dict, spec: TableSpec = TABLE2) -> str:
    """The table in the paper's layout, ours beside the paper's."""
    cols = spec.columns
    head = ("| Domain | " + " | ".join(TERM_HEADERS) + " | Confidence | "
            + " | ".join(f"{h} (ours)" for _, _, h in cols) + " | "
            + " | ".join(f"{h} (paper)" for _, _, h in cols) + " | experiment |")
    lines = [spec.title, "", spec.note, "", head, "|" + " --- |" * (len(TERMS) + 3 + 2 * len(cols))]
    last_domain = None
    for row in table["rows"]:
        marks = ["✓" if t in row["losses"] else "" for t in TERMS]
        if row["experiment"] == "pcam_like":
            marks[2] = "(PCAM-like: BCE of projected 3D CAM vs image labels)"
        domain = row["domain"].upper() if row["domain"] != last_domain else ""
        last_domain = row["domain"]
        ours = " | ".join(_pct(row[f"{c}_miou"]) for c, _, _ in cols)
        paper = " | ".join(_pct(row[f"paper_{c}"]) for c, _, _ in cols)
        lines.append(f"| {domain} | " + " | ".join(marks) + f" | {'✓' if row['confidence'] else ''} | "
                     f"{ours} | {paper} | `{row['experiment']}` |")
    return "\n".join(lines) + "\n"


def write_table(runs_dir: Path, experiments: dict[str, dict], out_md: Path, out_json: Path,
                spec: TableSpec = TABLE2) -> dict:
    """Build the table of ``spec`` and write its JSON and Markdown atomically; returns the table."""
    table = build_table(runs_dir, experiments, spec)
    with atomic_path(out_json) as tmp:
        tmp.write_text(json.dumps(table, indent=2) + "\n")
    with atomic_path(out_md) as tmp:
        tmp.write_text(render_markdown(table, spec))
    return table


def write_ablation(runs_dir: Path, experiments: dict[str, dict], out_md: Path, out_json: Path) -> dict:
    """Table 2: ``ablation.md`` and ``ablation.json``."""
    return write_table(runs_dir, experiments, out_md, out_json, TABLE2)


def summary_lines(table: dict, spec: TableSpec = TABLE2) -> list[str]:
    """One log line per row of a table of :func:`build_table`: ours beside the paper's, per column of ``spec``."""
    lines = []
    for row in table["rows"]:
        ours = " ".join(f"{col} {_pct(row[f'{col}_miou']).replace('–', '-')}" for col, _, _ in spec.columns)
        paper = " / ".join(f"{100 * row[f'paper_{col}']:.1f}" for col, _, _ in spec.columns)
        lines.append(f"{row['domain']} {row['experiment']:<12} {ours} (paper {paper})")
    return lines
