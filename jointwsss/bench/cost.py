"""What the paper's real run will cost, from a rehearsal of it (`snakemake --cores N rehearsal`, rules/rehearsal.smk).

The rehearsal runs the whole pipeline with ``paper.yaml``'s model, data and loss settings on a ScanNet-sized synthetic
stand-in (``workflow/configs/rehearsal.yaml``) in a folder of its own. :func:`cost_report` turns what that run left
behind into ``cost.json`` and ``cost.md``:

- per stage (rule): jobs, wall seconds, CPU seconds and the peak RSS of its largest job, from Snakemake's
  ``benchmark:`` records (:func:`jointwsss.export.job_costs.job_costs`), and the whole rehearsal's record;
- the peak of allocated GPU memory the trainer recorded on CUDA (``metrics.jsonl``; null on a CPU);
- disk per scene: the raw files (kept or not) and the three cache stores;
- loader samples/s (a short timed loop over the training items, as ``bench train`` measures it) and trainer
  samples/s (the training run's own steps, ``metrics.jsonl``);
- the extrapolation to the real job, with every assumption printed next to it: preprocessing all ScanNetV2 scans
  (the official split lists) per core and on this machine's cores, the paper's schedule (``paper.yaml``: epochs x the
  train scans' views at its batch size) and the inference of every train and val scan, in hours on this machine;
- on CUDA only: training steps with AMP and in float32, and the largest batch per GPU that fits.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from jointwsss.export.job_costs import job_costs, read_benchmark
from jointwsss.io.atomic import atomic_path
from jointwsss.io.layout import STORE_KINDS, file_sizes, index_path, store_path
from jointwsss.io.scannet_labels import read_split, split_path
from jointwsss.io.zarr_store import store_files

#: The preprocessing stages of one scan (one job each per scene), whose sum is a scan's preprocessing cost.
PREPROCESS_RULES = ("points", "frames", "correspondences")
#: The official splits whose scans a real run preprocesses: train and val, ScanNetV2's 1,513 labelled scans (the
#: 100 test scans add 7 % where a benchmark submission is wanted).
PREPROCESS_SPLITS = ("train", "val")
#: The splits the real run's evaluation infers (rule infer: pseudo-labels on train, plain inference on val).
INFER_SPLITS = ("train", "val")
SECONDS_PER_HOUR = 3600.0


def disk_per_scene(raw_dir: Path, cache_dir: Path, scenes: list[str], raw_kept: bool) -> dict:
    """Per scene: the raw files by name (bytes) and each cache store (bytes), and their sums."""
    out = {}
    for scene in scenes:
        raw = file_sizes(Path(raw_dir) / "scans" / scene)
        caches = {kind: store_files(store_path(cache_dir, kind, scene))[1] for kind in STORE_KINDS}
        out[scene] = {"raw_bytes": raw, "raw_total_bytes": sum(raw.values()), "raw_kept": raw_kept,
                      "cache_bytes": caches, "cache_total_bytes": sum(caches.values())}
    return out


def trainer_throughput(metrics_lines: list[dict], batch_size: int) -> dict:
    """Samples/s of a training run from its ``metrics.jsonl`` lines (each: the epoch's seconds and the run's steps
    so far): every step of ``batch_size`` items over the epochs' seconds, loading included."""
    steps = [0] + [int(line["steps"]) for line in metrics_lines]
    seconds = sum(float(line["seconds"]) for line in metrics_lines)
    samples = (steps[-1] - steps[0]) * batch_size
    return {"steps": steps[-1], "batch_size": batch_size, "seconds": round(seconds, 2),
            "samples_per_second": round(samples / seconds, 4) if seconds > 0 else None,
            "seconds_per_step": round(seconds / steps[-1], 2) if steps[-1] else None,
            "max_cuda_memory_allocated_bytes": max((line.get("max_cuda_memory_allocated_bytes") or 0
                                                    for line in metrics_lines), default=0) or None}


def views_per_scan(index: dict) -> float:
    """Kept frames per usable scene of a split's index (``index/<split>.json``): the views a scan gives an epoch."""
    usable = [scene for scene in index["scenes"] if scene["usable"]]
    return sum(scene["frames"] for scene in usable) / len(usable) if usable else math.nan


def per_job_seconds(rules: dict, rule: str) -> float:
    """Mean wall seconds of one job of ``rule`` in a :func:`job_costs` summary; NaN where it ran no job."""
    row = rules.get(rule)
    return row["wall_seconds"] / row["jobs"] if row and row["jobs"] else math.nan


def projection(stages: dict, *, views_per_scan: float, trainer_samples_per_second: float, infer_seconds_per_scan: float,
               scans: dict[str, int], epochs: int, batch_size: int, cores: int) -> dict:
    """The real job's hours on this machine, from the rehearsal's measured rates; each assumption as a sentence."""
    preprocess_s = sum(per_job_seconds(stages, rule) for rule in PREPROCESS_RULES)
    all_scans = sum(scans[s] for s in PREPROCESS_SPLITS)
    samples_per_epoch = scans["train"] * views_per_scan
    train_hours = epochs * samples_per_epoch / trainer_samples_per_second / SECONDS_PER_HOUR
    infer_scans = sum(scans[s] for s in INFER_SPLITS)
    out = {
        "preprocess_seconds_per_scan": round(preprocess_s, 2),
        "preprocess_scans": all_scans,
        "preprocess_hours_one_core": round(all_scans * preprocess_s / SECONDS_PER_HOUR, 2),
        "preprocess_hours_this_machine": round(all_scans * preprocess_s / SECONDS_PER_HOUR / cores, 2),
        "train_samples_per_epoch": round(samples_per_epoch),
        "train_steps_per_epoch": math.floor(samples_per_epoch / batch_size),
        "train_hours": round(train_hours, 1),
        "infer_scans": infer_scans,
        "infer_hours": round(infer_scans * infer_seconds_per_scan / SECONDS_PER_HOUR, 2),
    }
    out["assumptions"] = [
        (f"preprocessing: {all_scans} scans ({', '.join(f'{scans[s]} {s}' for s in PREPROCESS_SPLITS)}), each "
         f"costing the rehearsal's mean {' + '.join(PREPROCESS_RULES)} job ({preprocess_s:.1f} s); jobs are "
         f"single-threaded, so {cores} cores divide the time by {cores}; the download (or the synthesis of the "
         "stand-in) is not counted"),
        (f"training: the paper's schedule, {epochs} epochs x {scans['train']} train scans x {views_per_scan:.1f} views "
         f"a scan (the rehearsal's; real scans hold ~17 at frames.skip 100) = {samples_per_epoch:.0f} samples an "
         f"epoch, at batch {batch_size}, at the rehearsal trainer's {trainer_samples_per_second:.4g} samples/s "
         "(loading included; assumes the per-sample rate does not depend on the batch size)"),
        (f"inference: {infer_scans} scans (train pseudo-labels + val) at the rehearsal's "
         f"{infer_seconds_per_scan:.1f} s a scan (rule infer, per scene)"),
    ]
    return out


def cuda_measurements(settings: dict, batch_size: int, batches: int = 3) -> dict | None:
    """On CUDA only (None elsewhere): training steps at ``batch_size`` with AMP and in float32, and the largest batch
    per GPU (powers of two up to the training items) whose step fits in memory. Untested off a GPU machine."""
    import torch

    if not torch.cuda.is_available():
        return None
    from jointwsss.bench.train import step_throughput
    from jointwsss.train import loss_switches, training_task

    device = torch.device("cuda")
    out = {"device": torch.cuda.get_device_name(device)}
    for amp in (True, False):
        out["amp" if amp else "float32"] = step_throughput(settings, batch_size, batches, device, amp=amp)
    out["amp_speedup"] = round(out["amp"]["samples_per_second"] / out["float32"]["samples_per_second"], 2)
    items = len(training_task(settings, loss_switches(settings)).dataset)
    largest, batch = None, 1
    while batch <= items:
        try:
            step_throughput(settings, batch, 1, device, amp=True)
        except torch.cuda.OutOfMemoryError:
            break
        finally:
            torch.cuda.empty_cache()
        largest, batch = batch, batch * 2
    out["largest_batch_per_gpu_amp"] = largest
    out["largest_batch_searched_up_to"] = items
    return out


def cost_report(*, config: dict, schedule: dict, workdir: Path, run_benchmark: Path | None, cores: int,
                loader: dict, cuda: dict | None) -> dict:
    """The report of a finished rehearsal: ``config`` its resolved configuration (paths relative to ``workdir``),
    ``schedule`` the resolved configuration of the real job (``paper.yaml``: epochs, batch), ``run_benchmark`` the
    benchmark record of the whole rehearsal, ``loader`` the measured loader throughput (``bench.train.loader_throughput`` in one process)."""
    workdir = Path(workdir)
    raw_dir, cache_dir = workdir / config["dataset"]["raw_dir"], workdir / config["cache_dir"]
    run_dir = workdir / config["runs_dir"] / config["experiment"]
    costs = job_costs(workdir / config["logs_dir"] / "benchmarks")
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    trainer = trainer_throughput(lines, config["train"]["batch_size"])
    views = views_per_scan(json.loads(index_path(cache_dir, "train").read_text()))
    infer_row = costs["rules"].get("infer", {"wall_seconds": math.nan})
    infer_scenes = config["synth"]["num_train_scenes"] + config["synth"]["num_val_scenes"]
    scans = {split: len(read_split(split_path(split))) for split in PREPROCESS_SPLITS}
    scenes = sorted(p.name for p in (raw_dir / "scans").iterdir() if p.is_dir())
    keep_raw = config["dataset"]["source"] != "download" or config["dataset"]["keep_raw"]
    report = {
        "machine": {"cores": cores, "cpu_count": os.cpu_count(), "cuda": cuda["device"] if cuda else None},
        "settings": {key: config[key] for key in ("points", "joint", "frames")} | {
            "model": {net: config["model"][net]["width"] for net in ("image", "point")},
            "image_crop_size": config["augment"]["image_crop_size"], "train": config["train"],
            "image_weights": config["model"]["image"]["weights"]},
        "rehearsal": read_benchmark(run_benchmark) if run_benchmark else None,
        "stages": costs["rules"],
        "stages_total": costs["total"],
        "disk_per_scene": disk_per_scene(raw_dir, cache_dir, scenes, keep_raw),
        "loader": loader,
        "trainer": trainer,
        "cuda": cuda,
        "projection": projection(
            costs["rules"], views_per_scan=views, trainer_samples_per_second=trainer["samples_per_second"],
            infer_seconds_per_scan=infer_row["wall_seconds"] / infer_scenes, scans=scans,
            epochs=schedule["train"]["epochs"], batch_size=schedule["train"]["batch_size"], cores=cores),
    }
    report["views_per_scan"] = round(views, 2)
    return report


def _mb(n_bytes: float) -> str:
    return f"{n_bytes / 1e6:,.1f}"


def render_markdown(report: dict) -> str:
    """``cost.md``: the stages, disk, throughput and projection tables, the assumptions as a list."""
    out = ["# Rehearsal cost report", ""]
    rehearsal = report["rehearsal"]
    if rehearsal:
        out += [(f"Whole rehearsal: {rehearsal['s']:.0f} s wall, peak RSS {rehearsal['max_rss']:,.0f} MB "
                 f"(one job's tree at a time), on {report['machine']['cores']} cores."), ""]
    out += ["| stage (rule) | jobs | wall s | longest job s | CPU s | peak RSS MB |", "| --- | --- | --- | --- | --- | --- |"]
    for name, row in [*report["stages"].items(), ("total", report["stages_total"])]:
        out.append(f"| {name} | {row['jobs']} | {row['wall_seconds']:.1f} | {row['longest_job_seconds']:.1f} | "
                   f"{row['cpu_seconds']:.1f} | {row['peak_rss_mb']:,.0f} |")
    out += ["", "| scene | raw MB | raw kept | cache MB (points / frames / corr) |", "| --- | --- | --- | --- |"]
    for scene, row in report["disk_per_scene"].items():
        caches = " / ".join(_mb(v) for v in row["cache_bytes"].values())
        out.append(f"| {scene} | {_mb(row['raw_total_bytes'])} | {'yes' if row['raw_kept'] else 'no'} | "
                   f"{_mb(row['cache_total_bytes'])} ({caches}) |")
    trainer, loader = report["trainer"], report["loader"]
    gpu = trainer["max_cuda_memory_allocated_bytes"]
    out += ["", (f"- loader: {loader['samples_per_second']} samples/s (one process, {loader['batches']} batches of "
                 f"{loader['batch_size']})"),
            (f"- trainer: {trainer['samples_per_second']} samples/s, {trainer['seconds_per_step']} s a step "
             f"({trainer['steps']} steps of {trainer['batch_size']}, loading included)"),
            f"- peak GPU memory allocated: {_mb(gpu) + ' MB' if gpu else 'none (no CUDA device)'}"]
    cuda = report["cuda"]
    if cuda:
        out.append(f"- CUDA ({cuda['device']}): AMP {cuda['amp']['samples_per_second']} vs float32 "
                   f"{cuda['float32']['samples_per_second']} samples/s ({cuda['amp_speedup']}x); largest batch per "
                   f"GPU with AMP {cuda['largest_batch_per_gpu_amp']} (searched up to {cuda['largest_batch_searched_up_to']})")
    else:
        out.append("- CUDA: no device here, so no AMP / float32 comparison and no largest batch")
    p = report["projection"]
    out += ["", "## The real job on this machine", "",
            (f"- preprocessing: {p['preprocess_hours_one_core']} h on one core, "
             f"{p['preprocess_hours_this_machine']} h on {report['machine']['cores']} cores ({p['preprocess_scans']} "
             "scans)"),
            f"- training, the paper's schedule: {p['train_hours']:,} h ({p['train_steps_per_epoch']} steps an epoch)",
            f"- inference of {p['infer_scans']} scans: {p['infer_hours']} h", "", "Assumptions:", ""]
    out += [f"- {a}" for a in p["assumptions"]]
    return "\n".join(out) + "\n"


def write_cost_report(report: dict, out_json: Path, out_md: Path) -> None:
    """``cost.json`` and ``cost.md``, each atomically."""
    for path, text in ((out_json, json.dumps(report, indent=2) + "\n"), (out_md, render_markdown(report))):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_text(text)


def summary_lines(report: dict) -> list[str]:
    p = report["projection"]
    return [(f"trainer {report['trainer']['samples_per_second']} samples/s, loader "
             f"{report['loader']['samples_per_second']} samples/s"),
            f"paper schedule {p['train_hours']:,} h, preprocessing {p['preprocess_hours_one_core']} h on one core"]


def rehearsal_cost(config_files: list[Path], schedule_files: list[Path], workdir: Path, *, cores: int,
                   run_benchmark: Path | None = None, loader_batches: int = 4) -> dict:
    """:func:`cost_report` of the rehearsal run in ``workdir`` with the configuration ``config_files`` (merged in
    order, as the rule passes them to Snakemake), against the real job's ``schedule_files``; measures the loader
    (and, on CUDA, AMP, float32 and the largest batch) on the rehearsal's caches first."""
    from jointwsss.bench.train import loader_throughput
    from jointwsss.config import resolve_config
    from jointwsss.experiments import experiment_settings

    config, schedule = resolve_config(*config_files), resolve_config(*schedule_files)
    settings = experiment_settings(config, config["experiment"])
    settings["cache_dir"] = str(Path(workdir) / config["cache_dir"])
    settings["train"].update(num_workers=0, device="cpu")
    # one process, no workers: what the trainer's loader delivers per core
    loader = loader_throughput(settings, config["train"]["batch_size"], 0, loader_batches)
    per_gpu_batch = max(1, schedule["train"]["batch_size"] // max(1, schedule["train"]["gpus"]))
    cuda = cuda_measurements(settings, per_gpu_batch)
    return cost_report(config=config, schedule=schedule, workdir=workdir, run_benchmark=run_benchmark, cores=cores,
                       loader=loader, cuda=cuda)
