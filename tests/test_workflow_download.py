"""dataset.source download through Snakemake against a real HTTP server on 127.0.0.1: scannet.transfer
sampled / whole and dataset.keep_raw false (bounded disk; a rerun downloads nothing while the caches are current)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from conftest import REPO, snakemake
from jointwsss.bench.range_server import RangeServer
from jointwsss.io.download import scene_suffixes
from jointwsss.io.scannet_labels import LABEL_TSV_NAME, resource_path
from jointwsss.synth.scannet import SynthScanNetConfig, synthesize_scene

# first scene of the official train and val lists (max_scenes_per_split: 1)
SCENES = ("scene0191_00", "scene0568_00")


@pytest.fixture
def server(tmp_path, monkeypatch):
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    root = tmp_path / "server"
    cfg = SynthScanNetConfig(seed=1, num_train_scenes=1, num_val_scenes=1, frames_per_scene=12,
                             color_size=(96, 72), depth_size=(64, 48))
    for scene in SCENES:
        local = tmp_path / "synth" / scene
        synthesize_scene(scene, local, cfg)
        for suffix in scene_suffixes(test=False):
            dest = root / ("v1" if suffix == ".sens" else "v2") / "scans" / scene / f"{scene}{suffix}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local / f"{scene}{suffix}", dest)
    (root / "v2" / "tasks").mkdir(parents=True)
    shutil.copyfile(resource_path(LABEL_TSV_NAME), root / "v2" / "tasks" / LABEL_TSV_NAME)
    with RangeServer(root) as srv:
        yield srv


def write_config(tmp_path: Path, base_url: str, transfer: str, keep_raw: bool) -> Path:
    cfg = yaml.safe_load((REPO / "workflow" / "configs" / "tiny.yaml").read_text())
    cfg["dataset"].update(source="download", raw_dir=str(tmp_path / "raw"), max_scenes_per_split=1, keep_raw=keep_raw)
    cfg["scannet"] = {"base_url": base_url, "transfer": transfer}
    cfg["cache_dir"] = str(tmp_path / "cache")
    cfg["logs_dir"] = str(tmp_path / "logs")
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("transfer", ["whole", "sampled"])
def test_keep_raw_false_leaves_no_sens_and_a_rerun_downloads_nothing(server, tmp_path, transfer):
    cfg = write_config(tmp_path, server.base_url, transfer, keep_raw=False)
    snakemake(["--cores", "2", "preprocess", "--configfile", str(cfg)], tmp_path)
    for scene in SCENES:
        assert (tmp_path / "cache" / "frames" / f"{scene}.zarr").is_dir()
        assert (tmp_path / "cache" / "corr" / f"{scene}.zarr").is_dir()
    raw_files = sorted(p.name for p in (tmp_path / "raw").rglob("*") if p.is_file())
    assert not [n for n in raw_files if n.endswith((".sens", ".zip", ".ply", ".part"))], raw_files
    gets = server.gets
    ranged = [r for p, r in zip(server.paths, server.ranges) if p.endswith((".sens", ".zip"))]
    if transfer == "sampled":
        # the frames stage read .sens and label zip through ranges: every such GET carried a Range header
        assert ranged and all(r is not None for r in ranged), ranged
        for scene in SCENES:
            assert (tmp_path / "raw" / "scans" / scene / f"{scene}.sens.ranges" / "ranges.json").is_file()
    log = "".join(p.read_text() for p in (tmp_path / "logs" / "frames").glob("*.log"))
    if transfer == "whole":
        assert len(ranged) == 2 * len(SCENES) and all(r is None for r in ranged)
    else:
        assert "range requests" in log and "bytes fetched" in log, log

    proc = snakemake(["-n", "preprocess", "--configfile", str(cfg)], tmp_path)
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    snakemake(["--cores", "2", "preprocess", "--configfile", str(cfg)], tmp_path)
    assert server.gets == gets  # nothing fetched again
