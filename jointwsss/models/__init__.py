"""The two classifiers of the paper: ``ResNet38`` (image, F) and ``PointNet2Seg`` (points, G).

Both return ``(Z, A)``: D-channel features and C-channel CAM logits at every output location.
This package knows nothing about data files or losses; the only file it reads is an ImageNet
weights state dict given by path (:func:`load_imagenet_weights`).
"""

from jointwsss.models.pointnet2 import POINTNET2_WIDTHS, PointNet2Seg
from jointwsss.models.resnet38 import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    RESNET38_WIDTHS,
    ResNet38,
    load_imagenet_weights,
    warn_no_pretrained,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "POINTNET2_WIDTHS",
    "RESNET38_WIDTHS",
    "PointNet2Seg",
    "ResNet38",
    "load_imagenet_weights",
    "warn_no_pretrained",
]
