"""The networks of a run, built from its settings: one function for training, evaluation and diagnosis.

A run has an image network F (ResNet38, the 2D classifier) when its loss terms train one and a point
network G (PointNet++, the 3D classifier) when they train one (``jointwsss.experiments.networks_of``).
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import torch

from jointwsss.classes import NUM_CLASSES
from jointwsss.data.dataset import NUM_POINT_FEATURES
from jointwsss.experiments import IMAGE_NETWORK_LABELS, NETWORKS, networks_of

log = logging.getLogger("jointwsss")


class Networks(NamedTuple):
    """The image and the point network of a run; None where the run has none."""

    image: torch.nn.Module | None
    point: torch.nn.Module | None

    def present(self) -> dict[str, torch.nn.Module]:
        """``{"image": F, "point": G}`` without the absent ones, in the order of experiments.NETWORKS."""
        return {name: net for name, net in zip(NETWORKS, self) if net is not None}


def build_networks(settings: dict, states: dict[str, dict] | None = None) -> Networks:
    """The networks of a run with training ``settings`` (``model.image`` / ``model.point`` give their sizes).

    Without ``states``: the networks the loss terms train, freshly initialised (draws from the torch RNG),
    the image backbone from ``model.image.weights`` where given. With ``states`` (``{"image": state_dict,
    "point": state_dict}`` of a finished run's model.pt): exactly the saved networks, holding those weights.
    """
    if states is None:
        names = networks_of(settings["losses"], settings.get("to3d_labels", IMAGE_NETWORK_LABELS))
    else:
        names = tuple(n for n in NETWORKS if n in states)
    model_cfg = settings["model"]
    nets = Networks(image=image_network(model_cfg["image"], pretrained=states is None) if "image" in names else None,
                    point=point_network(model_cfg["point"]) if "point" in names else None)
    for name, net in nets.present().items():
        if states is not None:
            net.load_state_dict(states[name])
    return nets


def image_network(image_cfg: dict, *, pretrained: bool):
    """The image network F of ``model.image`` (width, frozen batch norm, dropout); with ``pretrained``, its
    backbone loaded from ``model.image.weights`` (a warning where none are given)."""
    from jointwsss.models.resnet38 import ResNet38, load_imagenet_weights, warn_no_pretrained

    net = ResNet38(num_classes=NUM_CLASSES, width=image_cfg["width"], freeze_bn=image_cfg["freeze_bn"],
                   dropout=image_cfg.get("dropout", True))
    if not pretrained:
        return net
    if image_cfg.get("weights"):
        report = load_imagenet_weights(net, image_cfg["weights"])
        log.info("ResNet38: backbone initialised from %s (%d tensors)", report["path"], report["loaded"])
    else:
        warn_no_pretrained()
    return net


def point_network(point_cfg: dict):
    """The point network G of ``model.point`` (width, and ball radii where given), randomly initialised."""
    from jointwsss.models.pointnet2 import PointNet2Seg

    return PointNet2Seg(num_classes=NUM_CLASSES, in_channels=NUM_POINT_FEATURES, width=point_cfg["width"],
                        radii=point_cfg.get("radii"))
