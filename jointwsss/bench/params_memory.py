"""Peak memory of converting a full-size MXNet ImageNet file (``jointwsss weights import``).

The claim under test: the conversion is streamed -- arrays are read one at a time, so memory holds
the converted tensors once and never the file a second time; peak RSS stays well under twice the
file size. The benchmark writes (or reuses) a synthetic "model A1" file with PSA's names and the
full ResNet38 shapes in the genuine file's legacy layout (float32, ~437 MB), then converts it in a
fresh Python process and records peak RSS after the imports (baseline) and after the conversion.

Usage: ``jointwsss bench params-memory``
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from jointwsss.bench import child_command, run_measuring_child
from jointwsss.bench.sens_memory import peak_rss_bytes


def write_synthetic_imagenet_params(path: Path, version: str = "legacy") -> tuple[int, bool]:
    """Write a full-width "model A1" file at ``path`` (``imagenet_model_a1_items``) unless one
    with the same names, shapes, dtype and format is there. Returns ``(file_bytes, reused)``."""
    from jointwsss.imagenet_weights import imagenet_params_layout
    from jointwsss.io.errors import DataFormatError
    from jointwsss.io.mxnet_params import scan_ndarray_list
    from jointwsss.synth.mxnet_params import imagenet_model_a1_items, write_ndarray_list

    layout = imagenet_params_layout("full")
    if path.exists():
        try:
            entries = scan_ndarray_list(path)
        except DataFormatError:
            entries = []
        if [(e.name, e.shape, e.dtype_name, e.version) for e in entries] == [
            (name, shape, "float32", version) for name, shape in layout
        ]:
            return path.stat().st_size, True
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_ndarray_list(path, imagenet_model_a1_items("full"), version=version), False


def measure_conversion(src: Path, dst: Path) -> dict:
    """Convert ``src`` to ``dst``; peak RSS before and after. Meant for a fresh process."""
    from jointwsss.imagenet_weights import convert_imagenet_params

    import torch  # noqa: F401  (imported before the baseline: it is not part of the conversion's cost)

    baseline = peak_rss_bytes()
    start = time.perf_counter()
    summary = convert_imagenet_params(src, dst)
    seconds = time.perf_counter() - start
    after = peak_rss_bytes()
    return {"summary": summary, "peak_rss_bytes_baseline": baseline, "peak_rss_bytes_after": after,
            "rss_increase_bytes": after - baseline, "seconds": seconds}


def bench_params_memory(work_dir: Path) -> dict:
    """Write or reuse the synthetic file in ``work_dir``; measure its conversion in a fresh process.

    Returns a JSON-serialisable dict; bytes in bytes, times in seconds. ``rss_increase_per_file_byte``
    is the conversion's peak RSS increase over the file size (the target: well under 2).
    """
    work_dir = Path(work_dir)
    src = work_dir / "imagenet_model_a1_synthetic.params"
    dst = work_dir / "imagenet_model_a1_synthetic.pt"
    write_start = time.perf_counter()
    file_bytes, reused = write_synthetic_imagenet_params(src)
    write_seconds = time.perf_counter() - write_start
    child = subprocess.run(child_command("jointwsss.bench.params_memory", src, dst),
                           check=True, capture_output=True, text=True)
    measured = json.loads(child.stdout.strip().splitlines()[-1])
    dst.unlink(missing_ok=True)
    return {
        "file": str(src),
        "file_bytes": file_bytes,
        "file_reused": reused,
        "write_seconds": write_seconds,
        **measured,
        "rss_increase_per_file_byte": measured["rss_increase_bytes"] / file_bytes,
        "peak_rss_per_file_byte": measured["peak_rss_bytes_after"] / file_bytes,
    }


if __name__ == "__main__":
    sys.exit(run_measuring_child(sys.argv[1:], lambda src, dst: measure_conversion(Path(src), Path(dst)),
                                 "params-memory"))


def summary_lines(result: dict) -> list[str]:
    """The log lines of a result of :func:`bench_params_memory`."""
    return [f"converting a {result['file_bytes'] / 1e6:.1f} MB file raised peak RSS by "
            f"{result['rss_increase_bytes'] / 1e6:.1f} MB ({result['rss_increase_per_file_byte']:.2f}x the file) in "
            f"{result['seconds']:.1f} s"]
