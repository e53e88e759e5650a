"""`jointwsss bench weights`: peak memory of converting a full-size ResNet38 model A1 ``.params``.

The file is written in the work folder with :func:`jointwsss.io.mxnet_params.write_params` (model A1's names and
shapes, the ImageNet classifier included: ~416 MB of float32, as the genuine file), then converted by
``jointwsss weights import`` in a child process. The child's peak RSS is compared with the file's size and with a
child that only imports the same modules (the interpreter, NumPy and PyTorch alone take a few hundred MB).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def model_a1_arrays(seed: int = 0):
    """(MXNet name, array) of every model A1 array, one at a time: the ResNet38 backbone and the 1000-way classifier."""
    import torch

    from jointwsss.models.resnet38 import ResNet38, mxnet_name_from_key

    rng = np.random.default_rng(seed)
    shapes = {k: tuple(v.shape) for k, v in ResNet38(width="full").state_dict().items()
              if not k.startswith("cam_head.") and not k.endswith("num_batches_tracked")}
    del torch
    for key, shape in shapes.items():
        yield mxnet_name_from_key(key), rng.standard_normal(shape, dtype=np.float32)
    yield "arg:linear1000_weight", rng.standard_normal((1000, 4096), dtype=np.float32)
    yield "arg:linear1000_bias", rng.standard_normal(1000, dtype=np.float32)


def _child_peak_rss_mb(code: str) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of ``python -c code`` (Linux: ru_maxrss of the waited-for child, in KiB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed: {proc.stderr[-2000:]}")
    # ru_maxrss of RUSAGE_CHILDREN is the largest of all waited-for children so far; each child here is larger
    # than the previous one (the baseline runs first), so the new maximum is this child's.
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(peak, before) / 1024, seconds


def bench_weights(work_dir: Path) -> dict:
    """Write a full-size model A1 file (kept for reuse) and measure converting it."""
    from jointwsss.io.mxnet_params import write_params

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    src = work_dir / "model_a1_synthetic.params"
    dst = work_dir / "model_a1_synthetic.pt"
    if not src.exists():
        write_params(src, model_a1_arrays())
    baseline_mb, _ = _child_peak_rss_mb("import numpy, torch, jointwsss.weights")
    peak_mb, seconds = _child_peak_rss_mb(
        f"import json, jointwsss.weights as w; print(json.dumps(w.import_mxnet_weights({str(src)!r}, {str(dst)!r})))")
    file_mb = src.stat().st_size / 2**20
    return {"file_mb": round(file_mb, 1), "baseline_rss_mb": round(baseline_mb, 1), "peak_rss_mb": round(peak_mb, 1),
            "peak_over_baseline_mb": round(peak_mb - baseline_mb, 1),
            "peak_rss_over_file_size": round(peak_mb / file_mb, 2),
            "peak_over_baseline_over_file_size": round((peak_mb - baseline_mb) / file_mb, 2),
            "seconds": round(seconds, 2), "output_mb": round(dst.stat().st_size / 2**20, 1)}


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(bench_weights(Path(sys.argv[1]))))
