"""Shared fixtures: repository paths and a runner for the `jointwsss` CLI and Snakemake."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The project's copy of the real ScanNet metadata (beside the checkout in this workplace and in CI).
SHARED_SCANNET = next((p for p in (REPO.parent / "shared" / "data" / "scannet", Path("/work/shared/data/scannet"))
                       if p.is_dir()), None)
BIN = Path(sys.executable).parent


def command_env(env: dict | None = None) -> dict:
    """``env`` (default: this process's environment) with this interpreter's bin folder first on PATH."""
    env = dict(os.environ if env is None else env)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_cmd(args, cwd=None, check=True, timeout=900, env: dict | None = None):
    """Run a command with this interpreter's bin folder first on PATH; return the CompletedProcess."""
    proc = subprocess.run(args, cwd=cwd, env=command_env(env), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def snakemake_command(args, workdir: Path) -> list[str]:
    """The command line that runs snakemake on this repository's Snakefile inside ``workdir``."""
    exe = shutil.which("snakemake", path=str(BIN)) or "snakemake"
    return [exe, "-s", str(REPO / "Snakefile"), "-d", str(workdir), *args]


def snakemake(args, workdir: Path, check=True, timeout=900, env: dict | None = None):
    """Run snakemake on this repository's Snakefile inside ``workdir`` (outputs land there)."""
    return run_cmd(snakemake_command(args, workdir), check=check, timeout=timeout, env=env)


TINY = REPO / "workflow" / "configs" / "tiny.yaml"


def write_config(tmp_path: Path, **overrides) -> Path:
    """tiny.yaml with ``section__key=value`` overrides, raw data and logs under ``tmp_path``; returns its path."""
    import yaml

    cfg = yaml.safe_load(TINY.read_text())
    for dotted, value in overrides.items():
        section, key = dotted.split("__")
        cfg.setdefault(section, {})[key] = value
    cfg["dataset"]["raw_dir"] = str(tmp_path / "raw")
    cfg["logs_dir"] = str(tmp_path / "logs")
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def repo() -> Path:
    return REPO


def build_tiny_cache(root: Path, *, frames_per_scene: int = 12, skip: int = 3) -> Path:
    """Synthesize 2 train + 1 val tiny scenes and build their caches and indexes under ``root``; returns the cache dir."""
    from jointwsss.preprocess.correspondences import VisibilityParams, build_corr_store
    from jointwsss.preprocess.frames import build_frames_store
    from jointwsss.preprocess.index import build_index
    from jointwsss.preprocess.points import build_points_store
    from jointwsss.synth.scannet import SynthScanNetConfig, scene_ids, synthesize_scene, write_metadata

    cfg = SynthScanNetConfig(seed=0, num_train_scenes=2, num_val_scenes=1, frames_per_scene=frames_per_scene,
                             color_size=(96, 72), depth_size=(64, 48), rendered_frame_step=skip)
    raw, cache = root / "raw", root / "cache"
    write_metadata(raw, cfg)
    splits = scene_ids(cfg)
    for split in ("train", "val"):
        for scene in splits[split]:
            scene_dir = raw / "scans" / scene
            synthesize_scene(scene, scene_dir, cfg)
            build_points_store(scene_dir, cache / "points" / f"{scene}.zarr", min_points=20)
            build_frames_store(scene_dir, cache / "frames" / f"{scene}.zarr", skip=skip, image_size=(64, 48),
                               min_pixel_fraction=0.01)
            build_corr_store(cache / "points" / f"{scene}.zarr", cache / "frames" / f"{scene}.zarr",
                             cache / "corr" / f"{scene}.zarr", visibility=VisibilityParams())
        build_index(split, splits[split], cache, cache / "index" / f"{split}.json")
    return cache


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory) -> Path:
    return build_tiny_cache(tmp_path_factory.mktemp("tiny"))


def tiny_settings(cache_dir: Path, experiment: str = "joint", **train) -> dict:
    """Training settings of ``experiment`` from the default config, shrunk to the tiny cache."""
    from jointwsss.config import load_yaml, validate_config
    from jointwsss.experiments import experiment_settings

    config = validate_config(load_yaml(REPO / "config.yaml"))
    config["cache_dir"] = str(cache_dir)
    config["pretrain"]["image"] = "none"  # tests start from random weights unless they pretrain themselves
    config["points"]["num"] = 512
    config["joint"]["max_points_per_view"] = 64
    config["train"].update({"epochs": 2, "batch_size": 2, "milestones": [1], "num_workers": 0, "device": "cpu"})
    config["train"].update(train)
    settings = experiment_settings(config, experiment)
    settings["train"].update({"num_workers": 0, "device": "cpu"})
    return settings


def hand_built_model(tmp_path: Path, cache: Path, experiment: str) -> Path:
    """model.pt with freshly initialised networks of ``experiment`` (seeded): predictions we can recompute."""
    import torch

    from jointwsss.networks import build_networks
    from jointwsss.runs import save_checkpoint

    settings = tiny_settings(cache, experiment)
    torch.manual_seed(0)
    image_net, point_net = build_networks(settings)
    models = {name: net.state_dict() for name, net in (("image", image_net), ("point", point_net)) if net is not None}
    path = tmp_path / experiment / "model.pt"
    path.parent.mkdir(parents=True)
    save_checkpoint(path, {"experiment": experiment, "settings": settings, "models": models})
    return path
