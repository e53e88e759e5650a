"""PointNet2Seg: per-point outputs for every input point, small clouds, gradients, determinism."""

from __future__ import annotations

import pytest
import torch

from jointwsss.models.pointnet2 import POINTNET2_WIDTHS, PointNet2Seg


def _room(batch: int, num_points: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Points in a centred 4 m x 4 m x 2.5 m box and RGB + height features."""
    gen = torch.Generator().manual_seed(seed)
    unit = torch.rand(batch, num_points, 3, generator=gen)
    xyz = unit * torch.tensor([4.0, 4.0, 2.5]) - torch.tensor([2.0, 2.0, 0.0])
    rgb = torch.rand(batch, 3, num_points, generator=gen)
    features = torch.cat([rgb, xyz[..., 2][:, None, :]], dim=1)
    return xyz, features


@pytest.mark.parametrize("num_points", [1000, 300])
def test_small_shapes_for_every_input_point(num_points):
    torch.manual_seed(0)
    net = PointNet2Seg(num_classes=20, in_channels=4, width="small")
    xyz, features = _room(2, num_points, seed=1)
    z, cam = net(xyz, features)
    assert z.shape == (2, 64, num_points) and net.feature_dim == 64
    assert cam.shape == (2, 20, num_points)
    assert torch.isfinite(z).all() and torch.isfinite(cam).all()


def test_full_width_on_fewer_points_than_npoint():
    # 300 points < every configured npoint (2048 ... 256): each SA layer caps at its input size.
    torch.manual_seed(0)
    net = PointNet2Seg(num_classes=20, in_channels=4, width="full").eval()
    xyz, features = _room(1, 300, seed=2)
    with torch.no_grad():
        z, cam = net(xyz, features)
    assert z.shape == (1, 256, 300) and cam.shape == (1, 20, 300)
    assert [layer.spec.npoint for layer in net.sa] == [2048, 1024, 512, 256]


def test_output_follows_point_order():
    """Per-point outputs belong to their input point: permuting the points permutes the outputs.

    Sampling starts at index 0, so a permutation that keeps point 0 first gives the same centres
    in the same order (FPS picks by distance). At this density every first-level ball holds fewer
    than ``nsample`` points, so the neighbour sets do not depend on index order either.
    """
    torch.manual_seed(0)
    net = PointNet2Seg(num_classes=5, in_channels=4, width="small").eval()
    xyz, features = _room(1, 400, seed=3)
    rest = torch.randperm(399, generator=torch.Generator().manual_seed(4)) + 1
    perm = torch.cat([torch.zeros(1, dtype=torch.long), rest])
    with torch.no_grad():
        _, cam = net(xyz, features)
        _, cam_perm = net(xyz[:, perm], features[:, :, perm])
    torch.testing.assert_close(cam_perm, cam[:, :, perm], atol=1e-5, rtol=1e-5)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    net = PointNet2Seg(num_classes=20, in_channels=4, width="small").train()
    xyz, features = _room(2, 600, seed=5)
    z, cam = net(xyz, features)
    (cam.mean(dim=2).sum() + z.pow(2).mean()).backward()
    for name, param in net.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_eval_mode_is_deterministic():
    torch.manual_seed(0)
    net = PointNet2Seg(num_classes=20, in_channels=4, width="small")
    xyz, features = _room(2, 500, seed=6)
    net.train()
    net(xyz, features)  # move the BN running statistics away from their initial values
    net.eval()
    with torch.no_grad():
        first = net(xyz, features)
        second = net(xyz, features)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_xyz_only_and_input_validation():
    torch.manual_seed(0)
    net = PointNet2Seg(num_classes=3, in_channels=0, width="small")
    xyz, _ = _room(1, 200, seed=7)
    z, cam = net(xyz, None)
    assert z.shape == (1, 64, 200) and cam.shape == (1, 3, 200)
    net4 = PointNet2Seg(num_classes=3, in_channels=4, width="small")
    with pytest.raises(ValueError, match=r"features must be \(B, 4, N\)"):
        net4(xyz, torch.zeros(1, 3, 200))
    with pytest.raises(ValueError, match="width"):
        PointNet2Seg(width="tiny")


def test_parameter_counts_of_both_widths():
    # Hand count with in_channels 4: SA MLPs (bias-free 1x1 conv + BN, 2 params per channel),
    # FP MLPs likewise, then the D -> 20 head with bias.
    def mlp(cin, widths):
        total = 0
        for w in widths:
            total += cin * w + 2 * w
            cin = w
        return total

    small = POINTNET2_WIDTHS["small"]
    expected = mlp(4 + 3, (16, 16, 32)) + mlp(32 + 3, (32, 32, 64)) + 2 * mlp(64 + 3, (32, 32, 64))
    expected += 2 * mlp(64 + 64, (64, 64)) + mlp(64 + 32, (64, 64)) + mlp(64 + 4, (64, 64))
    expected += 64 * 20 + 20
    assert [s.mlp for s in small.sa] == [(16, 16, 32), (32, 32, 64), (32, 32, 64), (32, 32, 64)]
    assert sum(p.numel() for p in PointNet2Seg(20, 4, "small").parameters()) == expected

    # Full (WyPR widths): SA 64-64-128, then three 128-128-256; FP 256-256 four times, D = 256.
    expected = mlp(4 + 3, (64, 64, 128)) + mlp(128 + 3, (128, 128, 256)) + 2 * mlp(256 + 3, (128, 128, 256))
    expected += 2 * mlp(256 + 256, (256, 256)) + mlp(256 + 128, (256, 256)) + mlp(256 + 4, (256, 256))
    expected += 256 * 20 + 20
    assert sum(p.numel() for p in PointNet2Seg(20, 4, "full").parameters()) == expected
