"""Opening ``predictions/<split>.h5`` (written by ``jointwsss.evaluate.infer_split``) for the exports."""

from __future__ import annotations

from pathlib import Path

import h5py

from jointwsss.io.errors import DataFormatError


def open_predictions(pred_h5: Path, domain: str) -> h5py.File:
    """Open ``predictions/<split>.h5`` read-only, checking it holds ``domain`` ("3d" or "2d") predictions."""
    try:
        h5 = h5py.File(pred_h5, "r")
    except OSError as exc:
        raise DataFormatError(pred_h5, f"cannot open predictions ({exc})", "run `jointwsss infer` first") from exc
    flag = f"has_{domain}"
    if not bool(h5.attrs.get(flag, False)):
        h5.close()
        raise DataFormatError(pred_h5, f"holds no {domain.upper()} predictions (attribute {flag} is false or missing)",
                              "infer with an experiment that trains that network")
    return h5
