"""Metrics as tables for people: per-class IoU of every split and domain as TSV (the HTML report shows it)."""

from __future__ import annotations

import json
from pathlib import Path

from jointwsss.classes import CLASS_NAMES
from jointwsss.io.atomic import atomic_path


def metrics_rows(metrics: dict) -> list[list[str]]:
    """Header + one row per class + the mean row: IoU in % for each (split, domain) column of metrics.json."""
    columns = [(split, domain) for split, entry in metrics["splits"].items() for domain in ("3d", "2d")
               if entry.get(domain) is not None]
    header = ["class"] + [f"{split} {domain} ({metrics['splits'][split]['mode']})" for split, domain in columns]

    def pct(value):
        return "" if value is None else f"{100 * value:.1f}"

    rows = [header]
    for name in CLASS_NAMES:
        rows.append([name] + [pct(metrics["splits"][s][d]["per_class"][name]) for s, d in columns])
    rows.append(["mIoU"] + [pct(metrics["splits"][s][d]["miou"]) for s, d in columns])
    return rows


def write_metrics_table(metrics_json: Path, out_tsv: Path) -> None:
    """``metrics.json`` -> a tab-separated per-class IoU table (percent)."""
    rows = metrics_rows(json.loads(Path(metrics_json).read_text()))
    with atomic_path(out_tsv) as tmp:
        tmp.write_text("\n".join("\t".join(r) for r in rows) + "\n")
