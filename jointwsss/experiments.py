"""Experiments: the named loss configurations of config.yaml (one per row of the paper's Table 2).

Kept free of torch so the Snakefile can import it cheaply.
"""

from __future__ import annotations

import copy
from pathlib import Path

# Settings that never change a trained model: given on the command line, not part of the settings.
NON_RESULT_TRAIN_KEYS = ("num_workers", "device", "gpus")


# Loss terms that train the image network (an experiment without them has no image network).
IMAGE_LOSSES = frozenset({"cls2d", "to3d", "to2d"})
# eq. 7's labels by default (losses.IMAGE_NETWORK_LABELS; spelled here so the Snakefile imports no torch)
IMAGE_NETWORK_LABELS = "image_network"
PRETRAIN_EXPERIMENT = "pretrain_image"
PRETRAIN_SPLIT = "pretrain"
# model.image.weights naming a file with this suffix is PSA's MXNet ImageNet file, converted by the pipeline.
MXNET_PARAMS_SUFFIX = ".params"


def uses_image_network(exp: dict) -> bool:
    """Whether an experiment entry of the config trains an image network (so has 2D outputs)."""
    image_losses = IMAGE_LOSSES & set(exp["losses"])
    if exp.get("to3d_labels", IMAGE_NETWORK_LABELS) != IMAGE_NETWORK_LABELS:  # eq. 7 takes the ground truth instead
        image_losses -= {"to3d"}
    return bool(image_losses)


def imported_weights_path(config: dict) -> str | None:
    """Where the pipeline writes the conversion of ``model.image.weights`` when that names an MXNet
    ``.params`` file (``<cache_dir>/weights/<stem>.pt``, rule import_imagenet_weights); else None."""
    weights = config["model"]["image"].get("weights")
    if not weights or not str(weights).endswith(MXNET_PARAMS_SUFFIX):
        return None
    return str(Path(config["cache_dir"]) / "weights" / (Path(weights).stem + ".pt"))


def pretrained_image_weights(config: dict) -> str | None:
    """The weights file every experiment's image network starts from, or None (random initialisation).

    ``model.image.weights`` (ImageNet weights, the paper's choice) when given -- a PyTorch state dict,
    or the conversion of an MXNet ``.params`` file (:func:`imported_weights_path`); otherwise, with
    ``pretrain.image: synthetic``, the image network pretrained on the synthetic pretrain scenes
    (``runs/pretrain_image/model.pt``, our stand-in for ImageNet on a machine without it).
    """
    if config["model"]["image"].get("weights"):
        return imported_weights_path(config) or str(config["model"]["image"]["weights"])
    if config.get("pretrain", {}).get("image") == "synthetic":
        return str(Path(config["runs_dir"]) / PRETRAIN_EXPERIMENT / "model.pt")
    return None


def _common_settings(config: dict) -> dict:
    return {
        "cache_dir": str(config["cache_dir"]),
        "seed": config["seed"],
        "points": config["points"],
        "joint": config["joint"],
        "augment": config["augment"],
        "train": {k: v for k, v in config["train"].items() if k not in NON_RESULT_TRAIN_KEYS},
    }


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
        "confidence": exp.get("confidence", True),
        "split": "train",
        "model": model,
        **_common_settings(config),
    }
    # Written only for the ground-truth diagnostics, so the method's settings (and their hashes) stay as they were.
    if exp.get("to3d_labels", IMAGE_NETWORK_LABELS) != IMAGE_NETWORK_LABELS:
        settings["to3d_labels"] = exp["to3d_labels"]
    return settings


def pretrain_settings(config: dict, scenes: list[str]) -> dict:
    """Settings of the image network's pretraining (``pretrain.image: synthetic``), our ImageNet stand-in.

    Object-centric, single-label classification (``object_cls``: softmax cross-entropy of the GAP of the
    CAM) of crops around every labelled object region in the frames of ``scenes`` -- the ``pretrain``
    scenes, which no experiment trains or evaluates on (``jointwsss.data.crops``). The experiments then
    start their image network from its backbone, as the paper's from ImageNet weights.
    """
    pre = config["pretrain"]
    model = copy.deepcopy(config["model"])
    # from scratch, as ImageNet training: batch norm learns (model.image.freeze_bn applies to the experiments)
    model["image"].update(weights=None, freeze_bn=False)
    settings = {"experiment": PRETRAIN_EXPERIMENT, "losses": ["object_cls"], "confidence": False,
                "split": PRETRAIN_SPLIT, "scenes": list(scenes), "model": model,
                "crops": {"size": pre["crop_size"], "min_area_fraction": pre["min_area_fraction"]},
                **_common_settings(config)}
    settings["train"] = {**settings["train"], "epochs": pre["epochs"], "lr": pre["lr"], "batch_size": pre["batch_size"],
                         "image_lr_mult": 1.0, "milestones": [], "amp": config["train"]["amp"]}
    return settings


REQUIRED_SETTINGS = {
    "": ("experiment", "losses", "cache_dir", "seed", "model", "points", "joint", "augment", "train"),
    "model": ("image", "point"),
    "points": ("num",),
    "joint": ("views_per_sample", "max_points_per_view", "lambda", "confidence_2d_over"),
    "augment": ("point_flip", "point_rotate", "image_scale_range", "image_hflip", "color_jitter"),
    "train": ("epochs", "batch_size", "optimizer", "lr", "image_lr_mult", "weight_decay", "milestones", "gamma", "amp"),
}


def check_settings(settings: dict) -> dict:
    """Raise ConfigError naming every missing key of a training settings dict (e.g. a hand-written JSON)."""
    from jointwsss.config import ConfigError

    missing = []
    for section, keys in REQUIRED_SETTINGS.items():
        node = settings if not section else settings.get(section, {})
        missing += [f"{section + '.' if section else ''}{k}" for k in keys if not isinstance(node, dict) or k not in node]
    if missing:
        raise ConfigError(f"training settings lack {', '.join(missing)} -- write them with "
                          "jointwsss.experiments.experiment_settings(config, name) (the Snakefile does) or copy "
                          "runs/<experiment>/config.json of an earlier run")
    return settings
