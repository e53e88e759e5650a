"""Experiments: the named loss configurations of config.yaml (one per row of the paper's Table 2).

Kept free of torch so the Snakefile can import it cheaply.
"""

from __future__ import annotations

# Settings that never change a trained model: given on the command line, not part of the settings.
NON_RESULT_TRAIN_KEYS = ("num_workers", "device", "gpus")


def experiment_settings(config: dict, name: str) -> dict:
    """Everything that determines the trained weights of experiment ``name`` of a validated config (JSON-able)."""
    if name not in config["experiments"]:
        raise ValueError(f"experiment {name!r} is not one of the configured experiments: {', '.join(config['experiments'])}")
    exp = config["experiments"][name]
    return {
        "experiment": name,
        "losses": list(exp["losses"]),
        "confidence": exp.get("confidence", True),
        "cache_dir": str(config["cache_dir"]),
        "seed": config["seed"],
        "model": config["model"],
        "points": config["points"],
        "joint": config["joint"],
        "augment": config["augment"],
        "train": {k: v for k, v in config["train"].items() if k not in NON_RESULT_TRAIN_KEYS},
    }


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
