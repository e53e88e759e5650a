"""What the pipeline's jobs cost: Snakemake's ``benchmark:`` records summed per rule (the report's "job costs").

Every heavy rule writes ``<logs_dir>/benchmarks/<rule>/<wildcards>.tsv``, Snakemake's per-job record: a header line
and one line of ``s  h:m:s  max_rss  max_vms  max_uss  max_pss  io_in  io_out  mean_load  cpu_time`` (seconds of
wall time, MB of peak resident memory, MB read and written, CPU seconds; ``NA`` where the platform gives none).
:func:`job_costs` sums them per rule: jobs, wall time (sum and longest job), CPU time and the peak RSS of the
largest job, and writes a TSV for the report and a JSON.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from jointwsss.io.atomic import atomic_path
from jointwsss.io.errors import DataFormatError

#: The columns of a Snakemake benchmark record that the summary reads, and what they are.
RECORD_COLUMNS = {"s": "wall seconds", "max_rss": "peak resident memory, MB", "cpu_time": "CPU seconds"}


def read_benchmark(path: Path) -> dict[str, float]:
    """``{"s", "max_rss", "cpu_time"}`` of one Snakemake benchmark record (its last line: the last repeat); NaN
    where the record says ``NA``. DataFormatError if the file is not such a record."""
    lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
    header = lines[0].split("\t") if lines else []
    if len(lines) < 2 or any(col not in header for col in RECORD_COLUMNS):
        raise DataFormatError(path, f"not a Snakemake benchmark record (columns {header})",
                              "delete it; the rule's next run writes it again")
    values = dict(zip(header, lines[-1].split("\t")))

    def number(text: str) -> float:
        try:
            return float(text)
        except ValueError:
            return math.nan

    return {col: number(values[col]) for col in RECORD_COLUMNS}


def job_costs(benchmarks_dir: Path) -> dict:
    """Per rule (a folder of ``benchmarks_dir``) and in total: jobs, wall seconds (sum and longest), CPU seconds
    and the largest peak RSS in MB, over every record found."""
    rules = {}
    for rule_dir in sorted(p for p in Path(benchmarks_dir).glob("*") if p.is_dir()):
        records = [read_benchmark(path) for path in sorted(rule_dir.glob("*.tsv"))]
        if records:
            rules[rule_dir.name] = _summed(records)
    every = list(rules.values())
    total = {"jobs": sum(r["jobs"] for r in every), "wall_seconds": round(sum(r["wall_seconds"] for r in every), 2),
             "longest_job_seconds": max((r["longest_job_seconds"] for r in every), default=0.0),
             "cpu_seconds": round(sum(r["cpu_seconds"] for r in every), 2),
             "peak_rss_mb": max((r["peak_rss_mb"] for r in every), default=0.0)}
    return {"benchmarks_dir": str(benchmarks_dir), "rules": rules, "total": total}


def _summed(records: list[dict[str, float]]) -> dict:
    def known(col):
        return [r[col] for r in records if not math.isnan(r[col])]

    return {"jobs": len(records), "wall_seconds": round(sum(known("s")), 2),
            "longest_job_seconds": round(max(known("s"), default=0.0), 2),
            "cpu_seconds": round(sum(known("cpu_time")), 2), "peak_rss_mb": round(max(known("max_rss"), default=0.0), 1)}


def render_tsv(costs: dict) -> str:
    """The summary as a TSV: one row per rule, then the total."""
    cols = ("jobs", "wall_seconds", "longest_job_seconds", "cpu_seconds", "peak_rss_mb")
    lines = ["rule\t" + "\t".join(cols)]
    for name, row in [*costs["rules"].items(), ("total", costs["total"])]:
        lines.append(name + "\t" + "\t".join(str(row[c]) for c in cols))
    return "\n".join(lines) + "\n"


def write_job_costs(benchmarks_dir: Path, out_tsv: Path, out_json: Path) -> dict:
    """Sum the records of ``benchmarks_dir`` (:func:`job_costs`) into ``out_tsv`` and ``out_json`` (atomically)."""
    costs = job_costs(benchmarks_dir)
    with atomic_path(out_json) as tmp:
        tmp.write_text(json.dumps(costs, indent=2) + "\n")
    with atomic_path(out_tsv) as tmp:
        tmp.write_text(render_tsv(costs))
    return costs


def summary_lines(costs: dict) -> list[str]:
    """One log line per rule and one for the total."""
    return [f"{name}: {row['jobs']} jobs, {row['wall_seconds']:.1f} s wall ({row['longest_job_seconds']:.1f} s the "
            f"longest), {row['cpu_seconds']:.1f} s CPU, peak RSS {row['peak_rss_mb']:.0f} MB"
            for name, row in [*costs["rules"].items(), ("total", costs["total"])]]
