"""`jointwsss bench train`: samples/s of the DataLoader alone and of full training steps.

Runs on the caches of a preprocessed dataset (``index/train.json``). On CPU it measures the configured
(small) models; when CUDA is available it also measures the paper's models (ResNet38 + PointNet++,
full widths) with AMP at batch 16. The result says which side is the bottleneck: if the loader
delivers fewer samples per second than the steps consume, training waits for data.
"""

from __future__ import annotations

import time

import torch

from jointwsss.networks import build_networks
from jointwsss.train import (
    DistInfo, Runtime, TrainingTask, cuda_memory_peak_bytes, loss_switches, make_optimisation, train_step, training_task,
)


def _loader(task: TrainingTask, batch_size: int, num_workers: int):
    # the items and collation the trainer itself uses (training_task), so the benchmark measures training's loader
    return torch.utils.data.DataLoader(task.dataset, batch_size=batch_size, shuffle=True, num_workers=num_workers,
                                       collate_fn=task.collate, drop_last=True,
                                       persistent_workers=num_workers > 0, pin_memory=torch.cuda.is_available())


def loader_throughput(settings: dict, batch_size: int, num_workers: int, batches: int) -> dict:
    loader = _loader(training_task(settings, loss_switches(settings)), batch_size, num_workers)
    it = iter(loader)
    next(it)  # worker start-up is not throughput
    t0 = time.perf_counter()
    n = 0
    for _ in range(batches):
        try:
            next(it)
        except StopIteration:
            it = iter(loader)
            next(it)
        n += batch_size
    seconds = time.perf_counter() - t0
    return {"samples_per_second": round(n / seconds, 2), "batches": batches, "batch_size": batch_size,
            "num_workers": num_workers}


def step_throughput(settings: dict, batch_size: int, batches: int, device: torch.device, amp: bool) -> dict:
    """Training's own steps (``train.train_step``: forward, eq. 12, backward, the trainer's optimiser with its
    parameter groups and AMP scaler) on batches prepared up front, so data loading is excluded."""
    task = training_task(settings, loss_switches(settings))
    nets = build_networks(settings).present()
    for net in nets.values():
        net.to(device).train()
    opt = make_optimisation(nets, settings["train"], amp)
    rt = Runtime(device=device, dist=DistInfo(), amp=amp)
    loader = _loader(task, batch_size, 0)
    prepared = []
    for batch in loader:
        prepared.append(batch)
        if len(prepared) == min(batches, len(loader)):
            break
    train_step(nets, prepared[0], task, opt, rt)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    n = 0
    for i in range(batches):
        train_step(nets, prepared[i % len(prepared)], task, opt, rt)
        n += batch_size
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    result = {"samples_per_second": round(n / seconds, 2), "seconds_per_step": round(seconds / batches, 4),
              "batches": batches, "batch_size": batch_size, "device": str(device), "amp": amp,
              "image_width": settings["model"]["image"]["width"], "point_width": settings["model"]["point"]["width"],
              "points": settings["points"]["num"]}
    if device.type == "cuda":
        result["peak_gpu_memory_bytes"] = cuda_memory_peak_bytes(device)
    return result


def bench_train(settings: dict, *, batch_size: int, num_workers: int, batches: int = 10) -> dict:
    """Loader and step throughput of ``settings`` (and of the paper's models on CUDA, when present)."""
    cpu = torch.device("cpu")
    loader = loader_throughput(settings, batch_size, num_workers, batches)
    steps = step_throughput(settings, batch_size, batches, cpu, amp=False)
    out = {"loader": loader, "steps_cpu": steps,
           "bottleneck_cpu": "loading" if loader["samples_per_second"] < steps["samples_per_second"] else "compute"}
    if torch.cuda.is_available():
        paper = {**settings, "model": {"image": {**settings["model"]["image"], "width": "full"},
                                       "point": {"width": "full"}}, "points": {"num": 40000}}
        gpu = step_throughput(paper, 16, batches, torch.device("cuda"), amp=True)
        gpu_loader = loader_throughput(paper, 16, num_workers, batches)
        out.update({"steps_gpu_paper_models": gpu, "loader_paper_settings": gpu_loader,
                    "bottleneck_gpu": "loading" if gpu_loader["samples_per_second"] < gpu["samples_per_second"]
                    else "compute"})
    else:
        out["steps_gpu_paper_models"] = None
        out["note"] = "no CUDA device here: GPU figures (paper models, AMP, batch 16) need a GPU machine"
    return out


def summary_lines(result: dict) -> list[str]:
    """The log lines of a result of :func:`bench_train`."""
    return [f"loader {result['loader']['samples_per_second']:.1f} samples/s, CPU steps "
            f"{result['steps_cpu']['samples_per_second']:.1f} samples/s -> bottleneck on CPU: {result['bottleneck_cpu']}"]
