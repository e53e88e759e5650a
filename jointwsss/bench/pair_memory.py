"""Peak memory of the N_v x N_v loss terms (eq. 7-11) at the paper's sizes.

The claim under test: eq. 8-11 build a few (V, N_v, N_v) matrices and nothing larger -- no (V, N_v, N_v, D)
intermediate, which at the paper's D = 4096 would be 32 GiB for two views of 1,024 points. Each case runs in a
fresh Python process: random (V, N_v, D) inputs (D2 = 4096 image features, D3 = 128 point features, C = 20 CAMs,
all points valid), then the forward and backward pass of ``loss_3d_to_2d`` + ``loss_2d_to_3d``; peak RSS before
and after. Sizes in bytes, times in seconds.

Usage: ``jointwsss bench pair-memory``
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from jointwsss.bench import child_command, run_measuring_child
from jointwsss.bench.sens_memory import peak_rss_bytes

#: (views, N_v) cases: the rehearsal's batch, the paper's 16 views on one GPU, and no cap at 4 x the paper's.
DEFAULT_CASES = ((2, 1024), (16, 1024), (2, 4096))
IMAGE_FEATURES, POINT_FEATURES, CLASSES = 4096, 128, 20


def measure_pair_terms(views: int, num_points: int, image_features: int = IMAGE_FEATURES) -> dict:
    """Forward + backward of eq. 7 and eq. 11 at ``views`` x ``num_points``; meant for a fresh process."""
    import torch

    from jointwsss.losses import loss_2d_to_3d, loss_3d_to_2d

    torch.manual_seed(0)
    feat2d = torch.randn(views, num_points, image_features, requires_grad=True)
    feat3d = torch.randn(views, num_points, POINT_FEATURES)
    cam3d = torch.randn(views, num_points, CLASSES, requires_grad=True)
    cam2d = torch.randn(views, num_points, CLASSES)
    labels = (torch.rand(views, CLASSES) < 0.3).float()
    mask = torch.ones(views, num_points, dtype=torch.bool)
    baseline = peak_rss_bytes()
    start = time.perf_counter()
    loss = loss_3d_to_2d(feat2d, feat3d, cam3d, mask) + loss_2d_to_3d(cam3d, cam2d, labels, mask)
    loss.backward()
    seconds = time.perf_counter() - start
    after = peak_rss_bytes()
    return {"views": views, "num_points": num_points, "image_features": image_features,
            "peak_rss_bytes_inputs": baseline, "peak_rss_bytes_after": after, "rss_increase_bytes": after - baseline,
            "pair_matrix_bytes": views * num_points * num_points * 4,
            "image_feature_bytes": views * num_points * image_features * 4, "seconds": seconds,
            "loss": loss.item()}


def bench_pair_memory(cases=DEFAULT_CASES, image_features: int = IMAGE_FEATURES) -> dict:
    """Every ``(views, N_v)`` case of ``cases`` in its own process. ``rss_increase_per_pair_matrix``: the increase
    over one float32 (V, N_v, N_v) matrix (a dense (V, N_v, N_v, D) blow-up would make it ~D)."""
    results = []
    for views, num_points in cases:
        child = subprocess.run(child_command("jointwsss.bench.pair_memory", views, num_points, image_features),
                               check=True, capture_output=True, text=True)
        measured = json.loads(child.stdout.strip().splitlines()[-1])
        measured["rss_increase_per_pair_matrix"] = measured["rss_increase_bytes"] / measured["pair_matrix_bytes"]
        results.append(measured)
    return {"cases": results}


def summary_lines(result: dict) -> list[str]:
    """One log line per case of :func:`bench_pair_memory`."""
    return [f"{c['views']} views x N_v {c['num_points']}: eq. 7 + 11 forward/backward raised peak RSS by "
            f"{c['rss_increase_bytes'] / 1e6:.0f} MB ({c['rss_increase_per_pair_matrix']:.1f}x one N_v x N_v "
            f"float32 matrix of all views) in {c['seconds']:.2f} s" for c in result["cases"]]


if __name__ == "__main__":
    sys.exit(run_measuring_child(sys.argv[1:], lambda v, n, d: measure_pair_terms(int(v), int(n), int(d)),
                                 "pair-memory"))
