"""The rehearsal (rules/rehearsal.smk): its configuration is paper.yaml's but for the machine and the stand-in, and
its cost report computes what a hand count of hand-made records gives."""

from __future__ import annotations

import json
import math

import pytest

from jointwsss.bench.cost import (
    cost_report,
    projection,
    render_markdown,
    trainer_throughput,
    views_per_scan,
)
from jointwsss.config import resolve_config
from jointwsss.io.layout import index_path, store_path

#: Every key rehearsal.yaml may change in paper.yaml: the machine (device, GPUs, batch, workers, step limit), the
#: stand-in dataset in place of a ScanNet copy, the ImageNet file that is not here (and so
#: batch norm that trains), and S3DIS (not run).
REHEARSAL_CHANGES = {
    "dataset.source", "dataset.raw_dir",
    "synth.num_train_scenes", "synth.num_val_scenes", "synth.real_size", "synth.rendered_frame_step",
    "model.image.weights", "model.image.freeze_bn", "s3dis.source",
    "train.device", "train.gpus", "train.batch_size", "train.num_workers", "train.max_steps",
}


def _flat(config: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_the_rehearsal_is_paper_yaml_but_for_the_machine_and_the_stand_in(repo):
    configs = repo / "workflow/configs"
    paper = _flat(resolve_config(repo / "config.yaml", configs / "paper.yaml"))
    rehearsal = _flat(resolve_config(repo / "config.yaml", configs / "paper.yaml", configs / "rehearsal.yaml"))
    assert paper.keys() == rehearsal.keys()
    changed = {key for key in paper if paper[key] != rehearsal[key]}
    assert changed == REHEARSAL_CHANGES
    # The paper's model, data and loss settings, as the rehearsal runs them.
    assert (rehearsal["model.image.width"], rehearsal["model.point.width"]) == ("full", "full")
    assert rehearsal["points.num"] == 40000 and rehearsal["joint.max_points_per_view"] == 1024
    assert rehearsal["augment.image_crop_size"] == [448, 448] and rehearsal["frames.image_size"] == [640, 480]
    assert rehearsal["frames.skip"] == 100 and rehearsal["joint.lambda"] == 1.0
    # The stand-in renders exactly the frames the sampling reads, at ScanNet's sizes.
    assert rehearsal["synth.real_size"] and rehearsal["synth.rendered_frame_step"] == rehearsal["frames.skip"]
    assert rehearsal["dataset.source"] == "synthetic" and not rehearsal["dataset.raw_dir"].startswith("/")


def _record(path, seconds: float, max_rss_mb: float, cpu_s: float):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
                    f"{seconds}\t0:00:00\t{max_rss_mb}\t1\t1\t1\t0\t0\t50\t{cpu_s}\n")


def test_the_cost_report_from_hand_made_records(repo, tmp_path):
    config = resolve_config(repo / "config.yaml", repo / "workflow/configs/paper.yaml",
                            repo / "workflow/configs/rehearsal.yaml")
    schedule = resolve_config(repo / "config.yaml", repo / "workflow/configs/paper.yaml")
    work = tmp_path / "rehearsal"
    bench = work / config["logs_dir"] / "benchmarks"
    # 3 scenes: points 10 + 20 + 30 s, frames 40 s each, correspondences 5 s each; infer 90 s (train) + 60 s (val).
    for k, scene in enumerate(("scene0000_00", "scene0001_00", "scene0002_00")):
        _record(bench / "points" / f"{scene}.tsv", 10.0 * (k + 1), 900.0 + k, 9.0)
        _record(bench / "frames" / f"{scene}.tsv", 40.0, 500.0, 38.0)
        _record(bench / "correspondences" / f"{scene}.tsv", 5.0, 2000.0, 5.0)
    _record(bench / "infer" / "joint_train.tsv", 90.0, 3000.0, 170.0)
    _record(bench / "infer" / "joint_val.tsv", 60.0, 3100.5, 110.0)
    _record(bench / "train_experiment" / "joint.tsv", 300.0, 9000.0, 590.0)
    run_record = tmp_path / "rehearsal_run.tsv"
    _record(run_record, 1200.0, 9100.0, 2000.0)
    # Training: epoch 1 took 3 steps of 2 items in 240 s.
    run_dir = work / config["runs_dir"] / "joint"
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "seconds": 240.0, "steps": 3,
                                                       "max_cuda_memory_allocated_bytes": None}) + "\n")
    # The train index: two usable scenes of 15 and 14 kept frames, one unusable.
    cache = work / config["cache_dir"]
    index = index_path(cache, "train")
    index.parent.mkdir(parents=True)
    index.write_text(json.dumps({"scenes": [{"scene": "scene0000_00", "frames": 15, "usable": True},
                                            {"scene": "scene0001_00", "frames": 14, "usable": True},
                                            {"scene": "scene0009_00", "frames": 0, "usable": False}]}))
    # Disk: one raw scene of 1,000 + 24 bytes, its points store 300 bytes in two files.
    scans = work / config["dataset"]["raw_dir"] / "scans" / "scene0000_00"
    scans.mkdir(parents=True)
    (scans / "scene0000_00.sens").write_bytes(b"x" * 1000)
    (scans / "scene0000_00.txt").write_bytes(b"y" * 24)
    points = store_path(cache, "points", "scene0000_00")
    (points / "xyz").mkdir(parents=True)
    (points / "zarr.json").write_bytes(b"z" * 100)
    (points / "xyz" / "c").write_bytes(b"z" * 200)

    loader = {"samples_per_second": 1.5, "batches": 4, "batch_size": 2, "num_workers": 0}
    report = cost_report(config=config, schedule=schedule, workdir=work, run_benchmark=run_record, cores=2,
                         loader=loader, cuda=None)

    assert report["stages"]["points"] == {"jobs": 3, "wall_seconds": 60.0, "longest_job_seconds": 30.0,
                                          "cpu_seconds": 27.0, "peak_rss_mb": 902.0}
    assert report["stages"]["infer"]["peak_rss_mb"] == 3100.5
    assert report["rehearsal"] == {"s": 1200.0, "max_rss": 9100.0, "cpu_time": 2000.0}
    assert report["trainer"]["samples_per_second"] == pytest.approx(6 / 240)
    assert report["trainer"]["seconds_per_step"] == 80.0
    assert report["trainer"]["max_cuda_memory_allocated_bytes"] is None and report["cuda"] is None
    assert report["views_per_scan"] == 14.5
    disk = report["disk_per_scene"]["scene0000_00"]
    assert disk["raw_total_bytes"] == 1024 and disk["raw_kept"] is True
    assert disk["cache_bytes"] == {"points": 300, "frames": 0, "corr": 0} and disk["cache_total_bytes"] == 300
    p = report["projection"]
    # a scan: 20 (mean points) + 40 + 5 = 65 s; 1,201 train + 312 val = 1,513 scans
    assert p["preprocess_seconds_per_scan"] == 65.0 and p["preprocess_scans"] == 1513
    assert p["preprocess_hours_one_core"] == round(1513 * 65 / 3600, 2)          # 27.32
    assert p["preprocess_hours_this_machine"] == round(1513 * 65 / 3600 / 2, 2)  # 13.66
    # 200 epochs x 1,201 scans x 14.5 views at 0.025 samples/s
    assert p["train_samples_per_epoch"] == round(1201 * 14.5)                     # 17,414 (17,414.5)
    assert p["train_steps_per_epoch"] == math.floor(1201 * 14.5 / 16)              # 1,088
    assert p["train_hours"] == round(200 * 1201 * 14.5 / 0.025 / 3600, 1)          # 3,482,900 samples / 0.025 / 3600 = 38,698.9
    # inference: (90 + 60) s over 3 scenes = 50 s a scan, 1,201 + 312 scans
    assert p["infer_scans"] == 1513 and p["infer_hours"] == round(1513 * 50 / 3600, 2)
    assert any("1513 scans (1201 train, 312 val)" in a for a in p["assumptions"])
    page = render_markdown(report)
    assert "| points | 3 | 60.0 | 30.0 | 27.0 | 902 |" in page
    assert "no CUDA device" in page and "38,698.9 h" in page


def test_trainer_throughput_counts_steps_across_epochs():
    lines = [{"seconds": 10.0, "steps": 4}, {"seconds": 5.0, "steps": 6, "max_cuda_memory_allocated_bytes": 7}]
    out = trainer_throughput(lines, batch_size=3)
    assert out["samples_per_second"] == round(18 / 15, 4) and out["seconds_per_step"] == 2.5
    assert out["max_cuda_memory_allocated_bytes"] == 7


def test_views_per_scan_and_an_empty_projection_input():
    assert views_per_scan({"scenes": [{"frames": 3, "usable": True}, {"frames": 5, "usable": True}]}) == 4.0
    p = projection({}, views_per_scan=10.0, trainer_samples_per_second=1.0, infer_seconds_per_scan=1.0,
                   scans={"train": 1, "val": 1}, epochs=1, batch_size=1, cores=1)
    assert math.isnan(p["preprocess_seconds_per_scan"])      # no preprocessing records: unknown, not 0
