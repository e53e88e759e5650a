"""Experiments: the named loss configurations of config.yaml (one per row of the paper's Table 2).

Kept free of torch so the Snakefile can import it cheaply.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

#: Settings that cannot change what a run trains, only where and how fast: the DataLoader workers (``--cores``),
#: the device string and the GPU count (how the batch is split over processes). Wherever they sit in a run's
#: settings (the config writes them under ``train``), :func:`result_settings` drops them, so neither the rules'
#: params nor the resume hash see them.
NON_RESULT_KEYS = ("num_workers", "device", "gpus")


PRETRAIN_EXPERIMENT = "pretrain_image"
PRETRAIN_SPLIT = "pretrain"
# model.image.weights naming a file with this suffix is PSA's MXNet ImageNet file, converted by the pipeline.
MXNET_PARAMS_SUFFIX = ".params"

#: Where eq. 7's per-point labels come from. ``image_network`` is the method (eq. 5-7). The two
#: ground-truth modes are diagnostics, not the method: the ground-truth class of each visible point
#: with W = 1 (a perfect 2D teacher), or of every sampled point (full supervision, the ceiling).
TO3D_LABELS = ("image_network", "ground_truth_visible", "ground_truth_all_points")
IMAGE_NETWORK_LABELS = TO3D_LABELS[0]  #: the default, the method itself


@dataclass(frozen=True)
class LossTerm:
    """One loss term an experiment can switch on (``experiments.<name>.losses``) and the networks it trains."""

    networks: frozenset[str]  # of "image" (ResNet38, the 2D network) and "point" (PointNet++, the 3D network)
    meaning: str
    alone: bool = False  # trains on its own data: cannot be combined with other terms


#: Every loss term, in the order of eq. 12; the switches (losses.LossSwitches), the checks of an experiment's
#: terms, the networks a run builds and the exports of the report all derive from this table.
LOSS_TERMS = {
    "cls2d": LossTerm(frozenset({"image"}), "eq. 2 on the image network's CAM, image-level labels"),
    "cls3d": LossTerm(frozenset({"point"}), "eq. 2 on the point network's CAM, scene-level labels"),
    "to3d": LossTerm(frozenset({"image", "point"}), "eq. 7: the image network's pseudo-labels teach the point network"),
    "to2d": LossTerm(frozenset({"image", "point"}), "eq. 11: the point network's feature correlations teach the "
                                                     "image network"),
    "pcam_like": LossTerm(frozenset({"point"}), "the PCAM-like control of section 4.2 (pooled projected 3D CAM)"),
    # not part of eq. 12: the pretraining of pretrain_settings, our ImageNet stand-in
    "object_cls": LossTerm(frozenset({"image"}), "the image network's pretraining on object crops", alone=True),
    "pixel_cls": LossTerm(frozenset({"image"}), "the image network's pretraining on labelled frames", alone=True),
}
NETWORKS = ("image", "point")  # the order of the networks everywhere (parameter groups, checkpoints, logs)


def result_settings(settings: dict) -> dict:
    """A copy of ``settings`` without the :data:`NON_RESULT_KEYS`, at every depth: what decides a run's result."""
    return {key: result_settings(value) if isinstance(value, dict) else copy.deepcopy(value)
            for key, value in settings.items() if key not in NON_RESULT_KEYS}


def to3d_labels_of(entry: dict) -> str:
    """Where eq. 7 takes its labels (:data:`TO3D_LABELS`) in an experiment entry or a run's settings: written only
    for the ground-truth diagnostics, absent for the method itself."""
    return entry.get("to3d_labels", IMAGE_NETWORK_LABELS)


def check_loss_terms(experiment: str, losses, to3d_labels: str = IMAGE_NETWORK_LABELS) -> None:
    """Raise ValueError naming an unknown term, a term that must train alone, or unknown eq. 7 labels."""
    losses = set(losses)
    unknown = losses - set(LOSS_TERMS)
    if unknown:
        raise ValueError(f"experiment {experiment!r}: unknown loss terms {sorted(unknown)}")
    for term in sorted(losses):
        if LOSS_TERMS[term].alone and len(losses) > 1:
            raise ValueError(f"experiment {experiment!r}: {term} ({LOSS_TERMS[term].meaning}) trains on its own "
                             "data and cannot be combined with other loss terms")
    if to3d_labels not in TO3D_LABELS:
        raise ValueError(f"experiment {experiment!r}: to3d_labels {to3d_labels!r} is not one of {TO3D_LABELS}")


def networks_of(losses, to3d_labels: str = IMAGE_NETWORK_LABELS) -> tuple[str, ...]:
    """The networks (of NETWORKS, in that order) that the loss terms ``losses`` train.

    Eq. 7 with ground-truth labels (``to3d_labels``, a diagnostic) has no image network as its teacher.
    """
    needed = set()
    for term in losses:
        networks = LOSS_TERMS[term].networks
        needed |= {"point"} if term == "to3d" and to3d_labels != IMAGE_NETWORK_LABELS else networks
    return tuple(n for n in NETWORKS if n in needed)


def uses_image_network(exp: dict) -> bool:
    """Whether an experiment entry of the config trains an image network (so has 2D outputs)."""
    return "image" in networks_of(exp["losses"], to3d_labels_of(exp))


def uses_point_network(exp: dict) -> bool:
    """Whether an experiment entry of the config trains a point network (so has 3D outputs)."""
    return "point" in networks_of(exp["losses"], to3d_labels_of(exp))


def imported_weights_path(config: dict) -> str | None:
    """Where the pipeline writes the conversion of ``model.image.weights`` when that names an MXNet
    ``.params`` file (``<cache_dir>/weights/<stem>.pt``, rule import_imagenet_weights); else None."""
    weights = config["model"]["image"].get("weights")
    if not weights or not str(weights).endswith(MXNET_PARAMS_SUFFIX):
        return None
    return str(Path(config["cache_dir"]) / "weights" / (Path(weights).stem + ".pt"))


def pretrains_image(config: dict) -> bool:
    """Whether the pipeline pretrains the image network on extra synthetic scenes (:func:`pretrain_settings`):
    ``pretrain.image: synthetic`` on the synthetic dataset, where no ImageNet weights are given."""
    return (config["pretrain"]["image"] == "synthetic" and config["dataset"]["source"] == "synthetic"
            and not config["model"]["image"]["weights"])


def pretrained_image_weights(config: dict) -> str | None:
    """The weights file every experiment's image network starts from, or None (random initialisation).

    ``model.image.weights`` (ImageNet weights, the paper's choice) when given -- a PyTorch state dict,
    or the conversion of an MXNet ``.params`` file (:func:`imported_weights_path`); otherwise, where
    :func:`pretrains_image`, the image network pretrained on the synthetic pretrain scenes
    (``runs/pretrain_image/model.pt``, our stand-in for ImageNet on a machine without it).
    """
    if config["model"]["image"]["weights"]:
        return imported_weights_path(config) or str(config["model"]["image"]["weights"])
    if pretrains_image(config):
        return str(Path(config["runs_dir"]) / PRETRAIN_EXPERIMENT / "model.pt")
    return None


def _common_settings(config: dict) -> dict:
    return {
        "cache_dir": str(config["cache_dir"]),
        "seed": config["seed"],
        "points": config["points"],
        "joint": config["joint"],
        "augment": config["augment"],
        "train": _train_settings(config["train"]),
    }


def _train_settings(train: dict) -> dict:
    """The train section's result settings; ``max_steps`` only where a limit is set, so the settings (and resume
    hashes) of runs without one stay as they were before the key existed."""
    settings = result_settings(train)
    if settings.get("max_steps") is None:
        settings.pop("max_steps", None)
    return settings


def experiment_settings(config: dict, name: str) -> dict:
    """Everything that determines the trained weights of experiment ``name`` of a validated config (JSON-able)."""
    if name not in config["experiments"]:
        raise ValueError(f"experiment {name!r} is not one of the configured experiments: {', '.join(config['experiments'])}")
    exp = config["experiments"][name]
    model = copy.deepcopy(config["model"])
    model["image"]["weights"] = pretrained_image_weights(config) if uses_image_network(exp) else None
    settings = {
        "experiment": name,
        "losses": list(exp["losses"]),
        "confidence": exp["confidence"],
        "split": "train",
        "model": model,
        **_common_settings(config),
    }
    # Written only for the ground-truth diagnostics, so the method's settings (and their hashes) stay as they were.
    if to3d_labels_of(exp) != IMAGE_NETWORK_LABELS:
        settings["to3d_labels"] = exp["to3d_labels"]
    return settings


#: The loss term of each pretraining task (``pretrain.task``).
PRETRAIN_TASK_LOSS = {"frames": "pixel_cls", "crops": "object_cls"}


def pretrain_settings(config: dict, scenes: list[str]) -> dict:
    """Settings of the image network's pretraining (``pretrain.image: synthetic``), our ImageNet stand-in.

    On the frames of ``scenes`` -- the ``pretrain`` scenes, which no experiment trains or evaluates on
    (``jointwsss.data.crops``): with ``pretrain.task`` ``frames``, per-pixel classification of the labelled frames
    (``pixel_cls``); with ``crops``, object-centric single-label classification (``object_cls``: softmax
    cross-entropy of the GAP of the CAM) of crops around every labelled object region. The experiments then
    start their image network from its backbone, as the paper's from ImageNet weights.
    """
    pre = config["pretrain"]
    model = copy.deepcopy(config["model"])
    # from scratch, as ImageNet training: batch norm learns (model.image.freeze_bn applies to the experiments)
    model["image"].update(weights=None, freeze_bn=False)
    settings = {"experiment": PRETRAIN_EXPERIMENT, "losses": [PRETRAIN_TASK_LOSS[pre["task"]]], "confidence": False,
                "split": PRETRAIN_SPLIT, "scenes": list(scenes), "model": model, **_common_settings(config)}
    if pre["task"] == "crops":
        settings["crops"] = {"size": pre["crop_size"], "min_area_fraction": pre["min_area_fraction"]}
    else:
        settings["pixel_loss"] = pre["pixel_loss"]
        if pre["frame_crop"] is not None:  # only when set: pretrainings made before the key keep their settings
            settings["frame_crop"] = list(pre["frame_crop"])
    settings["train"] = {**settings["train"], "epochs": pre["epochs"], "lr": pre["lr"], "batch_size": pre["batch_size"],
                         "image_lr_mult": 1.0, "milestones": pre["milestones"], "amp": config["train"]["amp"]}
    return settings


REQUIRED_SETTINGS = {
    "": ("experiment", "losses", "confidence", "cache_dir", "seed", "model", "points", "joint", "augment", "train"),
    "model": ("image", "point"),
    "model.image": ("width", "weights", "freeze_bn", "dropout"),
    "model.point": ("width", "radii"),
    "points": ("num",),
    "joint": ("views_per_sample", "max_points_per_view", "lambda", "confidence_2d_over", "confidence_score"),
    "augment": ("point_flip", "point_rotate", "image_scale_range", "image_hflip", "color_jitter"),
    "train": ("epochs", "batch_size", "optimizer", "lr", "image_lr_mult", "weight_decay", "milestones", "gamma", "amp"),
}
#: Top-level settings that a pretraining loss needs besides those (pretrain_settings writes them).
REQUIRED_BY_LOSS = {"pixel_cls": ("pixel_loss",), "object_cls": ("crops",)}


def check_settings(settings: dict) -> dict:
    """Raise ConfigError naming every missing key of a training settings dict (e.g. a hand-written JSON)."""
    from jointwsss.config import ConfigError

    missing = []
    for section, keys in REQUIRED_SETTINGS.items():
        node = settings
        for part in filter(None, section.split(".")):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        missing += [f"{section + '.' if section else ''}{k}" for k in keys if not isinstance(node, dict) or k not in node]
    losses = settings.get("losses")
    if isinstance(losses, list):
        missing += [key for loss in losses for key in REQUIRED_BY_LOSS.get(loss, ()) if key not in settings]
    if missing:
        raise ConfigError(f"training settings lack {', '.join(missing)} -- write them with "
                          "jointwsss.experiments.experiment_settings(config, name) (the Snakefile does) or copy "
                          "runs/<experiment>/config.json of an earlier run")
    return settings
