"""Image classifier F: wide ResNet-38 ("model A1", Wu et al. 2019) as used by PSA / AffinityNet.

Topology (full widths; ``small`` divides every width by 8, see ``RESNET38_WIDTHS``):

- ``conv1a``: 3x3 conv 3 -> 64, stride 1, no BN before it;
- stage 2 ``b2, b2_1, b2_2``: basic blocks at 128 channels, ``b2`` has stride 2;
- stage 3 ``b3, b3_1, b3_2``: 256 channels, ``b3`` stride 2;
- stage 4 ``b4, b4_1 .. b4_5``: 512 channels, ``b4`` stride 2 (output stride 8 from here on);
- stage 5 ``b5, b5_1, b5_2``: basic blocks with branch widths (512, 1024), dilation 2 (the first
  3x3 conv of ``b5`` keeps dilation 1 because its input comes from the undilated stage 4);
- stage 6 ``b6``: bottleneck 1024 -> (512, 1024, 2048), dilation 4, dropout 0.3;
- stage 7 ``b7``: bottleneck 2048 -> (1024, 2048, 4096), dilation 4, dropout 0.5;
- ``bn7`` + ReLU: the features ``Z^2d`` (B, 4096, ceil(H/8), ceil(W/8)).

Blocks are pre-activation: ``x -> BN -> ReLU -> y``; the residual branch starts from ``y``; the
shortcut is ``x`` itself when shape and channels are unchanged, else a 1x1 conv (with the block's
stride) applied to ``y`` (not to ``x``). Basic block branch: 3x3 conv (stride, first dilation) ->
BN -> ReLU -> 3x3 conv (dilation). Bottleneck branch: 1x1 conv (stride) -> BN -> ReLU -> dropout ->
3x3 conv (dilation) -> BN -> ReLU -> dropout -> 1x1 conv. Every conv is bias-free; padding equals
the dilation, so a stride-2 layer maps size s to ceil(s/2) and the output is ceil(H/8) x ceil(W/8).
The same padding keeps every receptive field centred: output cell (i, j) is centred on input pixel
(8 i, 8 j) (``OUTPUT_STRIDE``; ``tests/test_resnet38.py`` checks it on the gradient's support).

CAM head: ``cam_head``, a bias-free 1x1 conv D -> C (PSA's ``fc8``). ``forward`` returns the
features and the raw per-pixel class logits; GAP, sigmoid and losses are the caller's.
Unlike PSA's classifier, no dropout is applied between the features and the head, because the
same ``Z`` feeds the correlation loss and the per-pixel CAM.

ImageNet weights: :func:`load_imagenet_weights` reads a PyTorch state dict converted from PSA's
MXNet file ``ilsvrc-cls_rna-a1_cls1000_ep-0001.params`` (PSA's ``convert_mxnet_to_torch``). Module
attribute names follow that converter's keys so they load without renaming:

- ``conv1a.weight``
- per basic block ``bX[_i]``: ``bn_branch2a.{weight,bias,running_mean,running_var}``,
  ``conv_branch2a.weight``, ``bn_branch2b1.*``, ``conv_branch2b1.weight`` and, where the shortcut
  is a conv, ``conv_branch1.weight`` (e.g. ``b2.conv_branch2a.weight``, ``b4_5.bn_branch2b1.running_var``);
- bottlenecks ``b6``, ``b7`` additionally ``bn_branch2b2.*`` and ``conv_branch2b2.weight``;
- ``bn7.{weight,bias,running_mean,running_var}``.

Keys of the ImageNet classifier (``linear1000.*``, ``fc*``) are ignored; ``num_batches_tracked``
may be present or absent. Every other backbone key must be present with the right shape.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from jointwsss.io.errors import DataFormatError

IMAGENET_WEIGHTS_FILE = "ilsvrc-cls_rna-a1_cls1000_ep-0001.params"
#: Key prefixes of the ImageNet 1000-way classifier, which the CAM head replaces.
IMAGENET_CLASSIFIER_PREFIXES = ("linear1000", "fc")
#: Per-channel RGB mean and std (of [0,1] pixel values) the ImageNet weights were trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OUTPUT_STRIDE = 8  # input pixels per output cell; cell (i, j) is centred on pixel (8 i, 8 j)


@dataclass(frozen=True)
class ResNet38Widths:
    """Channel widths: stem, stages 2-4, stage 5 (mid, out), stage 6 and 7 (out; mid = out/4, out/2)."""

    stem: int
    stage2: int
    stage3: int
    stage4: int
    stage5: tuple[int, int]
    stage6: int
    stage7: int


RESNET38_WIDTHS: dict[str, ResNet38Widths] = {
    "full": ResNet38Widths(64, 128, 256, 512, (512, 1024), 2048, 4096),
    "small": ResNet38Widths(8, 16, 32, 64, (64, 128), 256, 512),
}


class BasicBlock(nn.Module):
    """Pre-activation block with two 3x3 convs (ResNet38 stages 2-5)."""

    def __init__(
        self,
        in_channels: int,
        mid_channels: int,
        out_channels: int,
        stride: int = 1,
        dilation: int = 1,
        first_dilation: int | None = None,
    ):
        super().__init__()
        first_dilation = dilation if first_dilation is None else first_dilation
        self.bn_branch2a = nn.BatchNorm2d(in_channels)
        self.conv_branch2a = nn.Conv2d(
            in_channels, mid_channels, 3, stride, padding=first_dilation, dilation=first_dilation, bias=False
        )
        self.bn_branch2b1 = nn.BatchNorm2d(mid_channels)
        self.conv_branch2b1 = nn.Conv2d(
            mid_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=False
        )
        self.conv_branch1 = (
            nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)
            if in_channels != out_channels or stride != 1
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = F.relu(self.bn_branch2a(x))
        shortcut = x if self.conv_branch1 is None else self.conv_branch1(activated)
        branch = self.conv_branch2a(activated)
        branch = self.conv_branch2b1(F.relu(self.bn_branch2b1(branch)))
        return shortcut + branch


class BottleneckBlock(nn.Module):
    """Pre-activation bottleneck 1x1 -> 3x3 (dilated) -> 1x1 with dropout (ResNet38 stages 6-7).

    Branch widths are ``out/4, out/2, out``; the shortcut is always a 1x1 conv because the
    channel count changes.
    """

    def __init__(self, in_channels: int, out_channels: int, dilation: int, dropout: float):
        super().__init__()
        quarter, half = out_channels // 4, out_channels // 2
        self.bn_branch2a = nn.BatchNorm2d(in_channels)
        self.conv_branch2a = nn.Conv2d(in_channels, quarter, 1, bias=False)
        self.bn_branch2b1 = nn.BatchNorm2d(quarter)
        self.dropout_branch2b1 = nn.Dropout2d(dropout)
        self.conv_branch2b1 = nn.Conv2d(quarter, half, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn_branch2b2 = nn.BatchNorm2d(half)
        self.dropout_branch2b2 = nn.Dropout2d(dropout)
        self.conv_branch2b2 = nn.Conv2d(half, out_channels, 1, bias=False)
        self.conv_branch1 = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = F.relu(self.bn_branch2a(x))
        shortcut = self.conv_branch1(activated)
        branch = self.conv_branch2a(activated)
        branch = self.conv_branch2b1(self.dropout_branch2b1(F.relu(self.bn_branch2b1(branch))))
        branch = self.conv_branch2b2(self.dropout_branch2b2(F.relu(self.bn_branch2b2(branch))))
        return shortcut + branch


class ResNet38(nn.Module):
    """ResNet38 backbone + bias-free 1x1 CAM head; ``forward(images) -> (Z^2d, A^2d)``.

    Args:
        num_classes: C, CAM channels.
        width: ``"full"`` (D = 4096, ImageNet weights fit) or ``"small"`` (every width / 8,
            D = 512: stem 8, stages 16/32/64, stage 5 (64, 128), bottlenecks to 256 and 512).
        freeze_bn: batch norm layers stay in eval mode (running statistics never update) and
            their affine parameters get no gradient, as in PSA. Sensible with ImageNet weights;
            from scratch the BN layers then stay identity maps, so prefer ``False`` there.
        dropout: use the bottleneck dropouts (0.3 in stage 6, 0.5 in stage 7) in training mode.
        freeze_stem: also freeze ``conv1a`` and stage 2 (PSA does this when fine-tuning from
            ImageNet weights); their parameters get ``requires_grad = False``.
    """

    output_stride = OUTPUT_STRIDE

    def __init__(
        self,
        num_classes: int = 20,
        width: str = "full",
        freeze_bn: bool = True,
        dropout: bool = True,
        freeze_stem: bool = False,
    ):
        super().__init__()
        if width not in RESNET38_WIDTHS:
            raise ValueError(f"width must be one of {sorted(RESNET38_WIDTHS)}, got {width!r}")
        w = RESNET38_WIDTHS[width]
        self.width = width
        self.freeze_bn = freeze_bn
        self.freeze_stem = freeze_stem

        self.conv1a = nn.Conv2d(3, w.stem, 3, padding=1, bias=False)

        self.b2 = BasicBlock(w.stem, w.stage2, w.stage2, stride=2)
        self.b2_1 = BasicBlock(w.stage2, w.stage2, w.stage2)
        self.b2_2 = BasicBlock(w.stage2, w.stage2, w.stage2)

        self.b3 = BasicBlock(w.stage2, w.stage3, w.stage3, stride=2)
        self.b3_1 = BasicBlock(w.stage3, w.stage3, w.stage3)
        self.b3_2 = BasicBlock(w.stage3, w.stage3, w.stage3)

        self.b4 = BasicBlock(w.stage3, w.stage4, w.stage4, stride=2)
        self.b4_1 = BasicBlock(w.stage4, w.stage4, w.stage4)
        self.b4_2 = BasicBlock(w.stage4, w.stage4, w.stage4)
        self.b4_3 = BasicBlock(w.stage4, w.stage4, w.stage4)
        self.b4_4 = BasicBlock(w.stage4, w.stage4, w.stage4)
        self.b4_5 = BasicBlock(w.stage4, w.stage4, w.stage4)

        mid5, out5 = w.stage5
        self.b5 = BasicBlock(w.stage4, mid5, out5, dilation=2, first_dilation=1)
        self.b5_1 = BasicBlock(out5, mid5, out5, dilation=2)
        self.b5_2 = BasicBlock(out5, mid5, out5, dilation=2)

        self.b6 = BottleneckBlock(out5, w.stage6, dilation=4, dropout=0.3 if dropout else 0.0)
        self.b7 = BottleneckBlock(w.stage6, w.stage7, dilation=4, dropout=0.5 if dropout else 0.0)
        self.bn7 = nn.BatchNorm2d(w.stage7)

        self.feature_dim = w.stage7
        self.cam_head = nn.Conv2d(self.feature_dim, num_classes, 1, bias=False)

        self._blocks = [
            self.b2, self.b2_1, self.b2_2, self.b3, self.b3_1, self.b3_2,
            self.b4, self.b4_1, self.b4_2, self.b4_3, self.b4_4, self.b4_5,
            self.b5, self.b5_1, self.b5_2, self.b6, self.b7,
        ]  # fmt: skip
        self._init_weights()
        self._apply_freezing()

    def _init_weights(self) -> None:
        """He init for backbone convs (used when no ImageNet weights are loaded), Xavier for the head."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d) and module is not self.cam_head:
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        nn.init.xavier_uniform_(self.cam_head.weight)

    def _apply_freezing(self) -> None:
        if self.freeze_bn:
            for module in self.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()
                    module.weight.requires_grad_(False)
                    module.bias.requires_grad_(False)
        if self.freeze_stem:
            for module in (self.conv1a, self.b2, self.b2_1, self.b2_2):
                for param in module.parameters():
                    param.requires_grad_(False)

    def train(self, mode: bool = True) -> "ResNet38":
        """Set training mode; with ``freeze_bn`` every BN layer stays in eval mode."""
        super().train(mode)
        self._apply_freezing()
        return self

    def backbone(self, images: torch.Tensor) -> torch.Tensor:
        """``images (B, 3, H, W)`` normalised with ``IMAGENET_MEAN/STD`` -> ``Z (B, D, ceil(H/8), ceil(W/8))``."""
        x = self.conv1a(images)
        for block in self._blocks:
            x = block(x)
        return F.relu(self.bn7(x))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features ``Z^2d (B, D, h, w)`` and CAM logits ``A^2d (B, C, h, w)``, ``h, w = ceil(H/8), ceil(W/8)``."""
        features = self.backbone(images)
        return features, self.cam_head(features)


def _is_imagenet_classifier_key(key: str) -> bool:
    return key.split(".", 1)[0].startswith(IMAGENET_CLASSIFIER_PREFIXES)


def load_imagenet_weights(model: ResNet38, path: str | os.PathLike) -> dict:
    """Load converted ImageNet weights into the backbone of ``model`` (the CAM head is untouched).

    Args:
        model: a ``ResNet38`` of width ``"full"`` (the file's shapes are the full widths).
        path: a ``torch.save``-d state dict ``{key: tensor}`` with the keys listed in the module
            docstring (e.g. PSA's conversion of ``ilsvrc-cls_rna-a1_cls1000_ep-0001.params``), or a
            jointwsss ``model.pt`` with an image network (its backbone is used, its CAM head is not).

    Returns:
        ``{"path", "loaded", "ignored"}``: the file, the number of backbone tensors loaded, and the
        sorted ImageNet classifier keys that were skipped.

    Raises:
        DataFormatError: the file cannot be read, is not a state dict, or any backbone key is
            missing, unexpected or of the wrong shape (all of them are listed).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataFormatError(
            path,
            "image network weights file not found",
            f"for ImageNet weights convert {IMAGENET_WEIGHTS_FILE} to a PyTorch state dict and give its path; "
            "runs/pretrain_image/model.pt is written by the pipeline's pretraining (snakemake runs it first)",
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types (pickle, zip, unsupported global)
        if path.endswith(".params"):  # torch's message (about weights_only) would mislead here
            raise DataFormatError(path, "cannot be read as a PyTorch state dict: it is an MXNet .params file",
                                  "convert it first with `jointwsss weights import SRC.params DST.pt` (the pipeline "
                                  "does this itself when model.image.weights names it)") from exc
        problem = f"cannot be read as a PyTorch state dict ({type(exc).__name__}: {exc})"
        raise DataFormatError(path, problem) from exc
    if isinstance(state, dict) and isinstance(state.get("models"), dict) and "image" in state["models"]:
        # A jointwsss run's model.pt (e.g. runs/pretrain_image/model.pt): its image network's backbone;
        # its CAM head belongs to that run's task and is not carried over (as ImageNet's classifier is not).
        state = {k: v for k, v in state["models"]["image"].items() if not k.startswith("cam_head.")}
    is_state_dict = isinstance(state, dict) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    )
    if not is_state_dict:
        raise DataFormatError(path, "is not a state dict (a mapping of parameter names to tensors)")

    current = model.state_dict()
    head_keys = {k for k in current if k.startswith("cam_head.")}
    optional = {k for k in current if k.endswith("num_batches_tracked")}
    expected = set(current) - head_keys - optional

    ignored = sorted(k for k in state if _is_imagenet_classifier_key(k))
    provided = {k: v for k, v in state.items() if not _is_imagenet_classifier_key(k)}
    missing = sorted(expected - set(provided))
    unexpected = sorted(set(provided) - expected - optional)
    mismatched = sorted(
        f"{k}: file {tuple(provided[k].shape)} vs model {tuple(current[k].shape)}"
        for k in expected & set(provided)
        if provided[k].shape != current[k].shape
    )
    if missing or unexpected or mismatched:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing backbone keys: {', '.join(missing)}")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected keys: {', '.join(unexpected)}")
        if mismatched:
            problems.append(f"{len(mismatched)} shape mismatches: {'; '.join(mismatched)}")
        raise DataFormatError(
            path,
            "does not match the ResNet38 backbone (" + " | ".join(problems) + ")",
            f"use a width='full' model and a state dict converted from {IMAGENET_WEIGHTS_FILE} with PSA's key names",
        )

    merged = dict(current)
    for key, value in provided.items():
        merged[key] = value.to(dtype=current[key].dtype)
    model.load_state_dict(merged, strict=True)
    return {"path": path, "loaded": len(expected), "ignored": ignored}


def warn_no_pretrained() -> None:
    """Warn that the image classifier trains from random initialisation (no ImageNet weights)."""
    warnings.warn(
        "ResNet38: no ImageNet weights given; the image classifier trains from scratch. The paper "
        f"initialises it from ImageNet ({IMAGENET_WEIGHTS_FILE} converted to a PyTorch state dict); "
        "expect much weaker 2D CAMs.",
        UserWarning,
        stacklevel=2,
    )
