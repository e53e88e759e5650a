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
