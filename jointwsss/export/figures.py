"""Figures: training curves from ``runs/<exp>/metrics.jsonl`` and a legend of the class palette."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import cv2
import numpy as np

from jointwsss.classes import CLASS_NAMES, IGNORE_INDEX, NYU40_IDS, palette
from jointwsss.export.images import write_png
from jointwsss.io.atomic import atomic_path
from jointwsss.io.errors import DataFormatError

CURVES_SIZE_IN = (10.0, 4.0)  # figure size in inches; at CURVES_DPI the PNG is 1000 x 400 pixels
CURVES_DPI = 100

LEGEND_ROW_PX = 22            # height of one legend row in pixels
LEGEND_WIDTH_PX = 260
LEGEND_SWATCH_PX = (36, 16)   # (width, height) of a colour swatch
LEGEND_MARGIN_PX = 6


def read_metrics(metrics_jsonl: Path) -> list[dict]:
    """The epoch records of a ``metrics.jsonl`` (one JSON object per line, see ``jointwsss.train``), by epoch.

    Each record needs ``epoch`` (int) and ``loss`` ({term: value}); ``lr`` is optional. A later line for
    an epoch already seen replaces the earlier one (a run restarted from an older checkpoint rewrites
    its epochs). A line that is not such a record is a DataFormatError naming the file and the line.
    """
    try:
        lines = Path(metrics_jsonl).read_text().splitlines()
    except OSError as exc:
        raise DataFormatError(metrics_jsonl, f"cannot be read ({exc})", "train the experiment first") from exc
    by_epoch: dict[int, dict] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFormatError(metrics_jsonl, f"line {number} is not JSON ({exc.msg})",
                                  "the run may have been killed mid-write; delete the partial line") from exc
        if (not isinstance(record, dict) or not isinstance(record.get("epoch"), int)
                or not isinstance(record.get("loss"), dict)):
            raise DataFormatError(metrics_jsonl, f"line {number} lacks an integer 'epoch' and a 'loss' object")
        by_epoch[record["epoch"]] = record
    if not by_epoch:
        raise DataFormatError(metrics_jsonl, "holds no epoch records", "train at least one epoch first")
    return [by_epoch[e] for e in sorted(by_epoch)]


def _series(records: list[dict], key: str) -> dict[str, tuple[list[int], list[float]]]:
    """{name: (epochs, values)} of every entry of ``record[key]`` (terms may be absent in some epochs)."""
    out: dict[str, tuple[list[int], list[float]]] = {}
    for record in records:
        for name, value in (record.get(key) or {}).items():
            if value is not None and math.isfinite(float(value)):
                epochs, values = out.setdefault(name, ([], []))
                epochs.append(record["epoch"])
                values.append(float(value))
    return out


def plot_training_curves(metrics_jsonl: Path, out_png: Path) -> None:
    """Write a 1000 x 400 pixel PNG: every loss term vs epoch (left; log scale when all values are
    positive) and each network's learning rate vs epoch (right, log scale), from ``metrics.jsonl``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    records = read_metrics(metrics_jsonl)
    # Figure + Agg canvas directly (no pyplot): no global state, no display needed.
    fig = Figure(figsize=CURVES_SIZE_IN, dpi=CURVES_DPI)
    FigureCanvasAgg(fig)
    ax_loss, ax_lr = fig.subplots(1, 2)
    losses = _series(records, "loss")
    for name, (epochs, values) in sorted(losses.items()):
        ax_loss.plot(epochs, values, marker="o", markersize=3, linewidth=2.5 if name == "total" else 1.5, label=name)
    if losses and all(v > 0 for _, values in losses.values() for v in values):
        ax_loss.set_yscale("log")
    ax_loss.set(xlabel="epoch", ylabel="loss (mean over the epoch)", title="loss terms")
    ax_loss.legend(fontsize=8)
    ax_loss.grid(alpha=0.3)
    rates = _series(records, "lr")
    for name, (epochs, values) in sorted(rates.items()):
        ax_lr.plot(epochs, values, marker="o", markersize=3, label=name)
    if rates and all(v > 0 for _, values in rates.values() for v in values):
        ax_lr.set_yscale("log")
    ax_lr.set(xlabel="epoch", ylabel="learning rate", title="learning rate at the end of the epoch")
    if rates:
        ax_lr.legend(fontsize=8)
    ax_lr.grid(alpha=0.3)
    for ax in (ax_loss, ax_lr):
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=CURVES_DPI)
    with atomic_path(out_png) as tmp:
        tmp.write_bytes(buffer.getvalue())


def palette_legend() -> np.ndarray:
    """(21 * LEGEND_ROW_PX, LEGEND_WIDTH_PX, 3) uint8 RGB legend: one row per class (swatch, index,
    name, nyu40 id) in class order, then the black swatch of 255 (no label / ignore).

    Row ``r``'s swatch fills x in [LEGEND_MARGIN_PX, LEGEND_MARGIN_PX + swatch width) and is vertically
    centred in the row.
    """
    pal = palette()
    rows = [(i, f"{i:2d} {name} ({nyu})") for i, (name, nyu) in enumerate(zip(CLASS_NAMES, NYU40_IDS))]
    rows.append((IGNORE_INDEX, f"{IGNORE_INDEX} none / ignore (0)"))
    image = np.full((len(rows) * LEGEND_ROW_PX, LEGEND_WIDTH_PX, 3), 255, np.uint8)
    width, height = LEGEND_SWATCH_PX
    for r, (index, text) in enumerate(rows):
        top = r * LEGEND_ROW_PX + (LEGEND_ROW_PX - height) // 2
        image[top:top + height, LEGEND_MARGIN_PX:LEGEND_MARGIN_PX + width] = pal[index]
        baseline = r * LEGEND_ROW_PX + LEGEND_ROW_PX // 2 + 5
        cv2.putText(image, text, (2 * LEGEND_MARGIN_PX + width, baseline), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (0, 0, 0), 1, cv2.LINE_AA)
    return image


def write_palette_legend(out_png: Path) -> None:
    """Write ``palette_legend()`` as a PNG (atomically)."""
    write_png(out_png, palette_legend())
