"""PointNet2Seg: per-point outputs for every input point, small clouds, gradients, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jointwsss.models.pointnet2 import POINTNET2_WIDTHS, PointNet2Seg, density_radii


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


def _reference_forward(net: PointNet2Seg, xyz: torch.Tensor, features: torch.Tensor, training: bool):
    """PointNet++ as the reference code lays it out: (B, C, S, K) tensors, 1x1 Conv2d / Conv1d, 2D / 1D batch norm,
    brute-force neighbour search. Batch norm statistics are used (training) or the running ones (eval)."""
    import torch.nn.functional as F

    def mlp(seq, x):
        for layer in seq:
            if isinstance(layer, torch.nn.Conv2d):
                x = F.conv2d(x, layer.weight)
            elif isinstance(layer, torch.nn.Conv1d):
                x = F.conv1d(x, layer.weight)
            elif isinstance(layer, torch.nn.BatchNorm1d):
                x = F.batch_norm(x, layer.running_mean.clone(), layer.running_var.clone(), layer.weight, layer.bias,
                                 training, 0.0, layer.eps)
            else:
                x = F.relu(x)
        return x

    def dist(a, b):
        return ((a[:, :, None, :] - b[:, None, :, :]) ** 2).sum(-1)

    levels_xyz, levels_feat = [xyz], [features]
    for sa in net.sa:
        pts, feat = levels_xyz[-1], levels_feat[-1]
        b, n, _ = pts.shape
        npoint = min(sa.spec.npoint, n)
        # farthest point sampling from index 0, squared distances, first maximum
        chosen = torch.zeros(b, npoint, dtype=torch.long)
        best = torch.full((b, n), float("inf"), dtype=pts.dtype)
        for k in range(1, npoint):
            last = pts[torch.arange(b), chosen[:, k - 1]]
            best = torch.minimum(best, ((pts - last[:, None]) ** 2).sum(-1))
            chosen[:, k] = best.argmax(dim=1)
        centres = pts[torch.arange(b)[:, None], chosen]
        d = dist(centres, pts).sqrt()
        idx = torch.empty(b, npoint, sa.spec.nsample, dtype=torch.long)
        for bi in range(b):
            for s in range(npoint):
                inside = torch.nonzero(d[bi, s] < sa.spec.radius).flatten()[: sa.spec.nsample].tolist()
                inside = inside or [int(d[bi, s].argmin())]
                idx[bi, s] = torch.tensor(inside + [inside[0]] * (sa.spec.nsample - len(inside)))
        grouped_xyz = pts[torch.arange(b)[:, None, None], idx] - centres[:, :, None]   # (B, S, K, 3)
        grouped = (grouped_xyz / sa.spec.radius).permute(0, 3, 1, 2)
        grouped_feat = feat[torch.arange(b)[:, None, None], :, idx].permute(0, 3, 1, 2)  # (B, C, S, K)
        levels_xyz.append(centres)
        levels_feat.append(mlp(sa.mlp, torch.cat([grouped, grouped_feat], dim=1)).amax(dim=-1))
    coarse = levels_feat[-1]
    for fp, level in zip(net.fp, range(len(net.sa) - 1, -1, -1)):
        fine_xyz, coarse_xyz = levels_xyz[level], levels_xyz[level + 1]
        d, i = dist(fine_xyz, coarse_xyz).sqrt().topk(min(3, coarse_xyz.shape[1]), dim=-1, largest=False)
        w = 1.0 / (d + 1e-8)
        w = w / w.sum(-1, keepdim=True)
        b = fine_xyz.shape[0]
        gathered = coarse[torch.arange(b)[:, None, None], :, i]           # (B, n, 3, C)
        interpolated = (gathered * w[..., None]).sum(2).transpose(1, 2)  # (B, C, n)
        coarse = mlp(fp.mlp, torch.cat([interpolated, levels_feat[level]], dim=1))
    return coarse, F.conv1d(coarse, net.cam_head.weight, net.cam_head.bias)


@pytest.mark.parametrize("training", [False, True])
def test_channel_major_network_computes_the_reference_layout(training):
    """The fast layout (matrix products on channel-major rows, k-d tree search) is the same function as the
    reference code's (B, C, S, K) convolutions with brute-force neighbours, with and without batch statistics."""
    torch.manual_seed(0)
    net = PointNet2Seg(num_classes=7, in_channels=4, width="small", radii=[0.5, 0.9, 1.3, 1.9])
    xyz, features = _room(2, 700, seed=8)
    net.train()
    net(xyz, features)  # running statistics away from their initial values
    # float64: batch statistics amplify float32 summation-order differences in near-constant channels
    net.double().train(training)
    xyz, features = xyz.double(), features.double()
    with torch.no_grad():
        z, cam = net(xyz, features)
        z_ref, cam_ref = _reference_forward(net, xyz, features, training)
    torch.testing.assert_close(z, z_ref, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(cam, cam_ref, atol=1e-9, rtol=1e-9)


def test_radii_override_and_validation():
    net = PointNet2Seg(width="small", radii=[0.5, 1, 1.5, 2])
    assert net.radii == (0.5, 1.0, 1.5, 2.0) and [sa.spec.radius for sa in net.sa] == [0.5, 1.0, 1.5, 2.0]
    assert PointNet2Seg(width="full").radii == (0.2, 0.4, 0.8, 1.2)  # WyPR's
    with pytest.raises(ValueError, match="radii must be 4 positive"):
        PointNet2Seg(width="small", radii=[0.5, 1.0])


def _box_room(num_points: int, seed: int) -> torch.Tensor:
    """``num_points`` uniform on the floor and four walls of a 6 x 5 x 2.8 m room (about the synthetic rooms'
    110 m^2 of surface; no ceiling, as a ScanNet scan), centred in x, y. (1, N, 3)."""
    rng = np.random.default_rng(seed)
    w, d, h = 6.0, 5.0, 2.8
    faces = [(w * d, "floor"), (w * h, "y0"), (w * h, "y1"), (d * h, "x0"), (d * h, "x1")]
    areas = np.array([a for a, _ in faces])
    which = rng.choice(len(faces), size=num_points, p=areas / areas.sum())
    u, v = rng.random(num_points), rng.random(num_points)
    pts = np.zeros((num_points, 3))
    for k, (_, name) in enumerate(faces):
        m = which == k
        if name == "floor":
            pts[m] = np.stack([u[m] * w, v[m] * d, np.zeros(m.sum())], 1)
        elif name in ("y0", "y1"):
            pts[m] = np.stack([u[m] * w, np.full(m.sum(), 0.0 if name == "y0" else d), v[m] * h], 1)
        else:
            pts[m] = np.stack([np.full(m.sum(), 0.0 if name == "x0" else w), u[m] * d, v[m] * h], 1)
    pts[:, :2] -= pts[:, :2].mean(axis=0)
    return torch.from_numpy(pts[None].astype(np.float32))


def test_default_radii_give_every_layer_real_neighbourhoods(repo):
    """The floor: with the default config's radii, each SA layer's balls hold on average at least half their
    slots in distinct points at the default 4,096 points of a room (WyPR's balls at 40,000 points hold ~50 of
    64). Half is where max-pooling still sees a neighbourhood rather than a point and a few repeats; WyPR's
    radii at this density fall below it on every layer (the second layer's balls hold 2-3 points)."""
    from jointwsss.config import resolve_config

    config = resolve_config(repo / "config.yaml")
    xyz = _box_room(config["points"]["num"], seed=0)
    sizes = PointNet2Seg(width="small", radii=config["model"]["point"]["radii"]).neighbourhood_sizes(xyz)
    for layer in sizes:
        assert layer["mean_distinct"] >= layer["nsample"] / 2, sizes
        assert layer["share_alone"] == 0.0
    wypr = PointNet2Seg(width="small").neighbourhood_sizes(xyz)
    assert all(layer["mean_distinct"] < layer["nsample"] / 2 for layer in wypr), wypr
    assert wypr[1]["mean_distinct"] < 3 and wypr[1]["share_alone"] > 0.1, wypr


def test_density_radii_fill_each_ball_with_about_nsample_points():
    xyz = _box_room(4096, seed=1)
    radii = density_radii(xyz, "small")
    assert radii == sorted(radii) and 0.3 < radii[0] < 1.0  # sparser levels get larger balls
    sizes = PointNet2Seg(width="small", radii=radii).neighbourhood_sizes(xyz)
    for layer in sizes:  # the median ball reaches its nsample-th neighbour: about nsample distinct points
        assert 0.6 * layer["nsample"] <= layer["mean_distinct"] <= layer["nsample"], sizes
