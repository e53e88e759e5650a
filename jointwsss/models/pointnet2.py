"""Point classifier G: PointNet++ segmentation network with a linear CAM head.

Architecture (single-scale grouping, as the WyPR ScanNet backbone + segmentation head):

- four set-abstraction (SA) layers. Each samples ``npoint`` centres by farthest point sampling,
  groups ``nsample`` neighbours within ``radius`` (metres), concatenates the neighbours'
  centre-relative coordinates divided by the radius with their features, applies a shared MLP
  (1x1 conv + batch norm + ReLU per layer) and max-pools over the neighbours;
- four feature-propagation (FP) layers back up SA4 -> SA3 -> SA2 -> SA1 -> every input point. Each
  interpolates the coarse features with inverse-distance weights of the three nearest coarse
  points, concatenates the skip features of the finer level (the raw input features at the
  last one) and applies a shared MLP;
- the output of the last FP layer is the per-point feature ``Z^3d`` (B, D, N); the CAM head is one
  1x1 ``Conv1d`` D -> C **with bias** (as WyPR's classifier), giving ``A^3d`` (B, C, N) logits.
  WyPR puts an extra BN + ReLU before its classifier; the paper's head is a single linear layer
  on ``Z``, and ``Z`` already ends in BN + ReLU, so that extra pair is left out.

Widths (``POINTNET2_WIDTHS``; SA MLP inputs are the previous level's channels + 3 for xyz):

- ``full``: npoint 2048/1024/512/256, radius 0.2/0.4/0.8/1.2 m, nsample 64/32/16/16, SA MLPs
  [64,64,128], [128,128,256], [128,128,256], [128,128,256]; FP MLPs [256,256] x 4; D = 256;
  945,236 parameters with in_channels 4 and C = 20.
- ``small``: npoint 512/256/128/64, the same radii, nsample 32/16/16/16, SA MLPs [16,16,32],
  [32,32,64] x 3; FP MLPs [64,64] x 4; D = 64; 61,988 parameters.

The full widths are WyPR's (its two backbone FP layers ``[512->256,256]`` and its segmentation
head's two FP layers ``[384->256,256]``, ``[Cin+256->256,256]``), so ``D = 256``; the original
PointNet++ ScanNet segmentation network ends at 128 channels instead. ``small`` keeps the topology
with MLP widths divided by 4 and fewer centres, for CPU training on ~8k points.

``npoint`` adapts to small clouds: each SA layer samples ``min(npoint, points at its input)``.

Input conventions (the caller's job): ``xyz`` in metres, centred per sample (the radii assume
metric, roughly room-centred coordinates); ``features`` channel-first, e.g. RGB in [0, 1] plus
height above the floor (``in_channels = 4``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from jointwsss.models.pointnet2_ops import (
    ball_query,
    farthest_point_sample,
    group_points,
    inverse_distance_weights,
    three_interpolate,
    three_nn,
)


@dataclass(frozen=True)
class SetAbstractionSpec:
    """One SA layer: centres, ball radius (metres), neighbours, MLP output widths."""

    npoint: int
    radius: float
    nsample: int
    mlp: tuple[int, ...]


@dataclass(frozen=True)
class PointNet2Widths:
    """Four SA layers and four FP MLPs (FP from the coarsest level to the input points)."""

    sa: tuple[SetAbstractionSpec, ...]
    fp: tuple[tuple[int, ...], ...]


POINTNET2_WIDTHS: dict[str, PointNet2Widths] = {
    "full": PointNet2Widths(
        sa=(
            SetAbstractionSpec(2048, 0.2, 64, (64, 64, 128)),
            SetAbstractionSpec(1024, 0.4, 32, (128, 128, 256)),
            SetAbstractionSpec(512, 0.8, 16, (128, 128, 256)),
            SetAbstractionSpec(256, 1.2, 16, (128, 128, 256)),
        ),
        fp=((256, 256), (256, 256), (256, 256), (256, 256)),
    ),
    "small": PointNet2Widths(
        sa=(
            SetAbstractionSpec(512, 0.2, 32, (16, 16, 32)),
            SetAbstractionSpec(256, 0.4, 16, (32, 32, 64)),
            SetAbstractionSpec(128, 0.8, 16, (32, 32, 64)),
            SetAbstractionSpec(64, 1.2, 16, (32, 32, 64)),
        ),
        fp=((64, 64), (64, 64), (64, 64), (64, 64)),
    ),
}


def _shared_mlp(in_channels: int, widths: tuple[int, ...], dims: int) -> nn.Sequential:
    """1x1 conv + BN + ReLU per width, applied point-wise by :func:`_apply_shared_mlp`.

    The convolutions stay ``Conv1d`` / ``Conv2d`` (``dims`` 1 or 2) so that weights keep the layout of
    earlier checkpoints; they run as matrix products on channel-major rows (see ``_apply_shared_mlp``).
    """
    conv = nn.Conv1d if dims == 1 else nn.Conv2d
    layers: list[nn.Module] = []
    for width in widths:
        layers += [conv(in_channels, width, 1, bias=False), nn.BatchNorm1d(width), nn.ReLU(inplace=True)]
        in_channels = width
    return nn.Sequential(*layers)


def _apply_shared_mlp(mlp: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """Run a shared MLP on channel-major ``x (C_in, ...)`` -> ``(C_out, ...)``.

    A 1x1 convolution is the matrix product ``(C_out, C_in) @ (C_in, M)`` over all M positions, and batch norm
    normalises each channel over all positions. With these few channels, on CPU, the product and the norm on
    contiguous ``(C, M)`` rows take a fraction of oneDNN's 1x1 convolution and 2D batch norm on the usual
    ``(B, C, S, K)`` layout (``jointwsss bench pointnet``); the function computed is the same.
    """
    rest = x.shape[1:]
    x = x.reshape(x.shape[0], -1)
    for layer in mlp:
        if isinstance(layer, (nn.Conv1d, nn.Conv2d)):
            x = layer.weight.flatten(1) @ x
        elif isinstance(layer, nn.BatchNorm1d):
            x = layer(x[None])[0]  # (1, C, M): statistics over every position, per channel
        else:
            x = layer(x)
    return x.view(x.shape[0], *rest)


def sample_centres(xyz: torch.Tensor, npoint: int) -> torch.Tensor:
    """Farthest-point-sampled centres ``(B, min(npoint, N), 3)`` of ``xyz (B, N, 3)``, constants for autograd."""
    centre_idx = farthest_point_sample(xyz, min(npoint, xyz.shape[1]))
    return xyz.detach().gather(1, centre_idx[:, :, None].expand(-1, -1, 3))


class SetAbstraction(nn.Module):
    """Sample centres, group neighbours in a ball, shared MLP, max-pool over the neighbours."""

    def __init__(self, spec: SetAbstractionSpec, in_channels: int):
        super().__init__()
        self.spec = spec
        self.mlp = _shared_mlp(in_channels + 3, spec.mlp, dims=2)
        self.out_channels = spec.mlp[-1]

    def neighbourhoods(self, xyz: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``xyz (B, N, 3)`` -> centres ``(B, S, 3)`` (farthest point sampling) and their balls'
        ``(B, S, nsample)`` neighbour indices into ``xyz``; constants for autograd."""
        centres = sample_centres(xyz, self.spec.npoint)
        return centres, ball_query(self.spec.radius, self.spec.nsample, xyz, centres)

    def forward(
        self, xyz: torch.Tensor, features: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``xyz (B, N, 3)``, channel-major ``features (C, B, N)`` or None -> ``(centres (B, S, 3), (C', B, S))``."""
        centres, neighbour_idx = self.neighbourhoods(xyz)
        # Relative coordinates in units of the radius, so every layer sees offsets in [-1, 1].
        grouped = (group_points(xyz.permute(2, 0, 1), neighbour_idx) - centres.permute(2, 0, 1)[..., None]) \
            / self.spec.radius
        if features is not None:
            grouped = torch.cat([grouped, group_points(features, neighbour_idx)], dim=0)
        # max (not amax): its backward routes each gradient through one saved index, 2-3x cheaper on CPU
        return centres, _apply_shared_mlp(self.mlp, grouped).max(dim=-1).values


class FeaturePropagation(nn.Module):
    """Interpolate coarse features onto finer points, concatenate skip features, shared MLP."""

    def __init__(self, in_channels: int, widths: tuple[int, ...]):
        super().__init__()
        self.mlp = _shared_mlp(in_channels, widths, dims=1)
        self.out_channels = widths[-1]

    def forward(
        self,
        fine_xyz: torch.Tensor,
        coarse_xyz: torch.Tensor,
        fine_features: torch.Tensor | None,
        coarse_features: torch.Tensor,
    ) -> torch.Tensor:
        """``fine_xyz (B, n, 3)``, ``coarse_xyz (B, m, 3)``, channel-major ``fine_features (C1, B, n)`` or None,
        ``coarse_features (C2, B, m)`` -> ``(widths[-1], B, n)``."""
        dist, idx = three_nn(fine_xyz, coarse_xyz)
        interpolated = three_interpolate(coarse_features, idx, inverse_distance_weights(dist))
        if fine_features is not None:
            interpolated = torch.cat([interpolated, fine_features], dim=0)
        return _apply_shared_mlp(self.mlp, interpolated)


class PointNet2Seg(nn.Module):
    """PointNet++ per-point classifier ``G``: ``forward(xyz, features) -> (Z^3d, A^3d)``.

    Args:
        num_classes: C, CAM channels.
        in_channels: per-point input feature channels (default 4: RGB + height); 0 for xyz only.
        width: ``"full"`` (WyPR widths, D = 256) or ``"small"`` (CPU variant, D = 64).
        radii: the four SA ball radii in metres, or None for the width's (WyPR's, made for 40,000 points of a
            ScanNet room). Sparser clouds need larger balls: see :func:`density_radii`.
    """

    def __init__(self, num_classes: int = 20, in_channels: int = 4, width: str = "full",
                 radii: Sequence[float] | None = None):
        super().__init__()
        if width not in POINTNET2_WIDTHS:
            raise ValueError(f"width must be one of {sorted(POINTNET2_WIDTHS)}, got {width!r}")
        widths = POINTNET2_WIDTHS[width]
        if radii is not None:
            radii = [float(r) for r in radii]
            if len(radii) != len(widths.sa) or min(radii) <= 0:
                raise ValueError(f"radii must be {len(widths.sa)} positive distances in metres, got {radii}")
            widths = replace(widths, sa=tuple(replace(spec, radius=r) for spec, r in zip(widths.sa, radii)))
        self.radii = tuple(spec.radius for spec in widths.sa)
        self.in_channels = in_channels
        self.width = width

        level_channels = [in_channels]
        sa_layers = []
        for spec in widths.sa:
            sa_layers.append(SetAbstraction(spec, level_channels[-1]))
            level_channels.append(spec.mlp[-1])
        self.sa = nn.ModuleList(sa_layers)

        # fp[0] goes from SA4 to SA3, ..., fp[3] from SA1 to the input points.
        fp_layers = []
        coarse_channels = level_channels[-1]
        for level, fp_widths in zip(range(len(widths.sa) - 1, -1, -1), widths.fp):
            fp_layers.append(FeaturePropagation(coarse_channels + level_channels[level], fp_widths))
            coarse_channels = fp_widths[-1]
        self.fp = nn.ModuleList(fp_layers)

        self.feature_dim = coarse_channels
        self.cam_head = nn.Conv1d(self.feature_dim, num_classes, 1, bias=True)

    def forward(self, xyz: torch.Tensor, features: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-point features and CAM.

        Args:
            xyz: ``(B, N, 3)`` float coordinates in metres, centred per sample by the caller.
            features: ``(B, in_channels, N)`` float, or None when ``in_channels == 0``.

        Returns:
            ``Z (B, D, N)`` per-point features and ``A (B, C, N)`` per-point class logits, for
            every input point in input order.
        """
        if xyz.dim() != 3 or xyz.shape[-1] != 3:
            raise ValueError(f"xyz must be (B, N, 3), got {tuple(xyz.shape)}")
        if self.in_channels == 0:
            if features is not None:
                raise ValueError("this network was built with in_channels=0; pass features=None")
        elif features is None or features.shape != (xyz.shape[0], self.in_channels, xyz.shape[1]):
            got = None if features is None else tuple(features.shape)
            raise ValueError(f"features must be (B, {self.in_channels}, N) matching xyz, got {got}")

        # Channel-major (C, B, N) inside: every shared MLP is then one matrix product over contiguous rows.
        level_xyz = [xyz.contiguous()]
        level_features = [None if features is None else features.permute(1, 0, 2).contiguous()]
        for sa in self.sa:
            new_xyz, new_features = sa(level_xyz[-1], level_features[-1])
            level_xyz.append(new_xyz)
            level_features.append(new_features)

        coarse = level_features[-1]
        for fp, level in zip(self.fp, range(len(self.sa) - 1, -1, -1)):
            coarse = fp(level_xyz[level], level_xyz[level + 1], level_features[level], coarse)
        dims, batch, num_points = coarse.shape
        cam = torch.addmm(self.cam_head.bias[:, None], self.cam_head.weight.flatten(1), coarse.reshape(dims, -1))
        return coarse.permute(1, 0, 2), cam.view(-1, batch, num_points).permute(1, 0, 2)

    @torch.no_grad()
    def neighbourhood_sizes(self, xyz: torch.Tensor) -> list[dict]:
        """Per SA layer, how many distinct points its balls hold on ``xyz (B, N, 3)`` (metres, as ``forward``).

        Returns one dict per layer: ``radius`` (m), ``nsample``, ``centres``, ``mean_distinct`` (distinct
        neighbours per ball, centre included, at most ``nsample``) and ``share_alone`` (share of balls holding
        only their centre). A ball with few distinct points makes the layer a per-point MLP.
        """
        sizes, level_xyz = [], xyz.contiguous()
        for sa in self.sa:
            centres, idx = sa.neighbourhoods(level_xyz)
            ordered = idx.sort(dim=-1).values
            distinct = 1 + (ordered[..., 1:] != ordered[..., :-1]).sum(dim=-1)
            sizes.append({"radius": sa.spec.radius, "nsample": sa.spec.nsample, "centres": int(centres.shape[1]),
                          "mean_distinct": round(float(distinct.float().mean()), 3),
                          "share_alone": round(float((distinct == 1).float().mean()), 4)})
            level_xyz = centres
        return sizes


@torch.no_grad()
def density_radii(xyz: torch.Tensor, width: str) -> list[float]:
    """Ball radii (metres) that fit the density of the clouds ``xyz (B, N, 3)``, one per SA layer of ``width``.

    The rule: a ball should hold about as many points of its layer's input as it has slots (``nsample``).
    Fewer, and the remaining slots repeat the first neighbour, so the layer degenerates towards a per-point MLP;
    many more, and the slots keep only a part of the ball. So each layer's radius is the median, over its
    centres, of the distance to the ``nsample``-th nearest point of the layer's input. Farthest point sampling
    does not depend on the radii, so every layer's input is known before any radius is chosen.

    WyPR's radii (0.2 / 0.4 / 0.8 / 1.2 m for 40,000 points of a ScanNet room) are of this size for its clouds;
    the embedded default's 4,096 points of a sparser synthetic room need 3-4x larger balls (README, Architecture).
    """
    from scipy.spatial import cKDTree

    radii, level = [], xyz.detach().cpu().contiguous()
    for spec in POINTNET2_WIDTHS[width].sa:
        centres = sample_centres(level, spec.npoint)
        k = min(spec.nsample, level.shape[1])
        kth = [cKDTree(p.numpy()).query(c.numpy(), k=k)[0].reshape(len(c), k)[:, -1]
               for p, c in zip(level, centres)]
        radii.append(round(float(np.median(np.concatenate(kth))), 3))
        level = centres
    return radii
