"""bench pair-memory: the N_v x N_v terms (eq. 7-11) cost a few pair matrices, never a (V, N_v, N_v, D) one."""

from __future__ import annotations

import math

from jointwsss.bench.pair_memory import bench_pair_memory, measure_pair_terms, summary_lines


def test_the_pair_terms_cost_a_few_pair_matrices_not_one_per_feature_channel():
    # D = 1024: a broadcast (V, N_v, N_v, D) correlation would raise peak RSS by ~1024 pair matrices (2 GB here)
    result = bench_pair_memory(cases=((2, 512),), image_features=1024)
    (case,) = result["cases"]
    assert (case["views"], case["num_points"], case["pair_matrix_bytes"]) == (2, 512, 2 * 512 * 512 * 4)
    assert case["image_feature_bytes"] == 2 * 512 * 1024 * 4
    assert 0 < case["rss_increase_bytes"] and case["rss_increase_per_pair_matrix"] < 64
    assert math.isfinite(case["loss"]) and case["loss"] > 0
    assert summary_lines(result)[0].startswith("2 views x N_v 512: eq. 7 + 11 forward/backward raised peak RSS by ")


def test_the_measured_loss_is_the_losses_own():
    import torch

    from jointwsss.losses import loss_2d_to_3d, loss_3d_to_2d

    measured = measure_pair_terms(1, 16, image_features=8)
    torch.manual_seed(0)  # the same draws, in the same order, as measure_pair_terms
    feat2d, feat3d = torch.randn(1, 16, 8), torch.randn(1, 16, 128)
    cam3d, cam2d = torch.randn(1, 16, 20), torch.randn(1, 16, 20)
    labels, mask = (torch.rand(1, 20) < 0.3).float(), torch.ones(1, 16, dtype=torch.bool)
    expected = loss_3d_to_2d(feat2d, feat3d, cam3d, mask) + loss_2d_to_3d(cam3d, cam2d, labels, mask)
    assert measured["loss"] == expected.item()
