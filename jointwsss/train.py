"""The joint trainer: both classifiers, the paper's loss (eq. 12), checkpoints, resume, DDP, AMP.

``train(settings, run_dir)`` is what ``jointwsss train`` (and the Snakemake rule ``train_experiment``) runs.
``settings`` is the resolved, schema-validated training configuration of one run, written by
``jointwsss.experiments.experiment_settings`` (or ``pretrain_settings``) and passed as one JSON.
``train`` is a short sequence of named steps: runtime (device, DDP, seed), task and loader, networks
(``jointwsss.networks.build_networks``), optimisation, resume, then per epoch: train, checkpoint, run log.
One optimisation step -- forward, eq. 12, backward, step -- reads in one place, :func:`train_step`, which
``jointwsss bench train`` times too. The run's files and devices are :mod:`jointwsss.runs`'.

Reproducibility: the data order and every augmentation are functions of (seed, epoch, item), and the
torch RNG (dropout, weight init) is seeded and checkpointed, so two CPU runs with the same settings
give identical weights, and a run stopped after epoch k and resumed ends with the same weights as
an uninterrupted one.

Multi-GPU: launch with ``torchrun --nproc-per-node N --no-python jointwsss train ...``; each process
reads its share of the items (DistributedSampler), gradients are averaged by DDP (NCCL on GPU, gloo
on CPU), rank 0 writes checkpoints, logs and TensorBoard events.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist

from jointwsss.data.crops import CropConfig, FrameConfig, LabelledFrameDataset, ObjectCropDataset
from jointwsss.data.dataset import JointDataConfig, JointDataset, collate_joint, scenes_from_index
from jointwsss.data.transforms import ImageAugment, PointAugment
from jointwsss.experiments import IMAGE_NETWORK_LABELS, LOSS_TERMS, check_loss_terms, result_settings, to3d_labels_of
from jointwsss.io.layout import index_path
from jointwsss.losses import (JointInputs, LossSwitches, object_classification_loss, pixel_classification_loss,
                              total_loss)
from jointwsss.networks import build_networks
from jointwsss.runs import (
    CHECKPOINT, FINAL_MODEL, METRICS, load_checkpoint, pick_device, rng_state, save_checkpoint, set_rng_state, unwrap,
)

log = logging.getLogger("jointwsss")


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; training stopped, the last good checkpoint is kept."""


# ----------------------------------------------------------------------------- settings
def loss_switches(settings: dict) -> LossSwitches:
    """Loss switches of an experiment: ``settings["losses"]`` names the terms, ``confidence`` the W's."""
    losses = set(settings["losses"])
    check_loss_terms(settings["experiment"], losses, to3d_labels_of(settings))
    conf = settings["confidence"]
    joint = settings["joint"]
    return LossSwitches(
        **{term: term in losses for term in LOSS_TERMS}, to3d_confidence=conf, to2d_confidence=conf,
        lambda_to2d=float(joint["lambda"]), confidence_2d_over=joint["confidence_2d_over"],
        confidence_score=joint["confidence_score"],
        to3d_labels=to3d_labels_of(settings),
    )


def hashed_settings(settings: dict) -> dict:
    """What the resume hash covers: the settings that can change the trained weights
    (``experiments.result_settings``: not the workers, the device or the GPU count) and the image network's
    initial weights by content, not by path -- a re-pretrained ``runs/pretrain_image/model.pt`` must not let a run
    resume from a checkpoint built on the old one."""
    relevant = result_settings(settings)
    weights = settings.get("model", {}).get("image", {}).get("weights")
    if weights and Path(weights).is_file():
        relevant["image_weights_sha256"] = hashlib.sha256(Path(weights).read_bytes()).hexdigest()
    return relevant


def settings_hash(settings: dict) -> str:
    """Hash of :func:`hashed_settings` (resume only continues a run of the same result settings)."""
    return hashlib.sha256(json.dumps(hashed_settings(settings), sort_keys=True).encode()).hexdigest()[:16]


def settings_changes(old: dict, new: dict, prefix: str = "") -> list[str]:
    """``key: old -> new`` (dotted keys) for every setting that differs between two :func:`hashed_settings`."""
    changes = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            changes += settings_changes(a, b, f"{prefix}{key}.")
        elif a != b:
            changes.append(f"{prefix}{key}: {json.dumps(a)} -> {json.dumps(b)}")
    return changes


def data_config(settings: dict, scenes: list[str], *, train: bool) -> JointDataConfig:
    aug = settings["augment"]
    return JointDataConfig(
        cache_dir=Path(settings["cache_dir"]),
        scenes=tuple(scenes),
        num_points=settings["points"]["num"],
        views_per_sample=settings["joint"]["views_per_sample"],
        max_points_per_view=settings["joint"]["max_points_per_view"],
        point_augment=PointAugment(flip=aug["point_flip"], rotate=aug["point_rotate"]) if train else None,
        image_augment=ImageAugment(scale_range=tuple(aug["image_scale_range"]),
                                   crop_size=tuple(aug["image_crop_size"]) if aug.get("image_crop_size") else None,
                                   hflip=aug["image_hflip"], color_jitter=aug["color_jitter"]) if train else None,
        seed=settings["seed"],
        point_labels=to3d_labels_of(settings) != IMAGE_NETWORK_LABELS,
        images=loss_switches(settings).needs_image_network,
    )


@dataclass
class TrainingTask:
    """What a run trains on: its items, how they are batched, and the loss terms of a batch."""

    dataset: torch.utils.data.Dataset
    collate: Callable
    loss: Callable[[dict, dict, torch.device], dict]  # (batch, network outputs, device) -> terms incl. "total"


def training_task(settings: dict, switches: LossSwitches) -> TrainingTask:
    """The joint task (views + clouds of the split's index, eq. 12) or the image network's pretraining on
    ``settings["scenes"]``: their labelled frames (``pixel_cls``) or object crops (``object_cls``)."""
    cache_dir = Path(settings["cache_dir"])
    if switches.pixel_cls:
        dataset = LabelledFrameDataset(FrameConfig(cache_dir=cache_dir, scenes=tuple(settings["scenes"]),
                                                   color_jitter=settings["augment"]["color_jitter"],
                                                   seed=settings["seed"], crop_size=settings.get("frame_crop")))

        def frame_loss(batch: dict, outputs: dict, device) -> dict:
            term = pixel_classification_loss(outputs["cam2d"], batch["label"].to(device), outputs["stride2d"],
                                             one_vs_rest=settings["pixel_loss"] == "one_vs_rest")
            return {"pixel_cls": term, "total": term}

        return TrainingTask(dataset, torch.utils.data.default_collate, frame_loss)
    if switches.object_cls:
        crops = settings["crops"]
        dataset = ObjectCropDataset(CropConfig(
            cache_dir=cache_dir, scenes=tuple(settings["scenes"]), crop_size=crops["size"],
            min_area_fraction=crops["min_area_fraction"], color_jitter=settings["augment"]["color_jitter"],
            seed=settings["seed"]))

        def crop_loss(batch: dict, outputs: dict, device) -> dict:
            term = object_classification_loss(outputs["cam2d"], batch["class_index"].to(device))
            return {"object_cls": term, "total": term}

        return TrainingTask(dataset, torch.utils.data.default_collate, crop_loss)
    scenes = scenes_from_index(index_path(cache_dir, settings.get('split', 'train')))
    dataset = JointDataset(data_config(settings, scenes, train=True))
    return TrainingTask(dataset, collate_joint,
                        lambda batch, outputs, device: total_loss(_to_inputs(batch, outputs, device), switches))


# ----------------------------------------------------------------------------- distributed
@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_kind: str) -> DistInfo:
    """torchrun sets WORLD_SIZE / RANK / LOCAL_RANK; a plain process is rank 0 of 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    backend = "nccl" if device_kind == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(),
                    local_rank=int(os.environ.get("LOCAL_RANK", "0")))


class EpochSampler(torch.utils.data.Sampler):
    """Shuffles items per epoch with a generator seeded by (seed, epoch); splits them across ranks.

    Yields ``(epoch, item)`` pairs: the datasets draw their augmentation from (seed, epoch, item), and the pair
    carries the epoch into persistent DataLoader workers, whose copies of the dataset never see ``set_epoch``.
    """

    def __init__(self, num_items: int, seed: int, rank: int = 0, world_size: int = 1, drop_last: bool = True):
        self.num_items, self.seed, self.rank, self.world = num_items, seed, rank, world_size
        self.epoch = 0
        per_rank = num_items // world_size if drop_last else math.ceil(num_items / world_size)
        self.per_rank = per_rank

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.num_items)
        order = np.resize(order, self.per_rank * self.world)  # pads by wrapping if needed
        return iter((self.epoch, i) for i in order[self.rank::self.world].tolist())

    def __len__(self) -> int:
        return self.per_rank


# ----------------------------------------------------------------------------- training
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _to_inputs(batch: dict, outputs: dict, device) -> JointInputs:
    return JointInputs(
        feat2d=outputs.get("feat2d"), cam2d=outputs.get("cam2d"),
        feat3d=outputs.get("feat3d"), cam3d=outputs.get("cam3d"),
        image_labels=batch["image_labels"].to(device), scene_labels=batch["scene_labels"].to(device),
        cloud_of_view=batch["cloud_of_view"].to(device), point_idx=batch["point_idx"].to(device),
        uv=batch["uv"].to(device), mask=batch["mask"].to(device), stride2d=outputs.get("stride2d"),
        point_labels=batch["point_labels"].to(device) if "point_labels" in batch else None,
    )


def forward_networks(nets: dict, batch: dict, device: torch.device) -> dict:
    """Run the networks of ``nets`` (``{"image": F, "point": G}``, absent ones missing) on a batch; returns
    feat2d/cam2d and feat3d/cam3d of the present ones and the image network's output stride as stride2d."""
    out = {}
    if "image" in nets:
        out["feat2d"], out["cam2d"] = nets["image"](batch["images"].to(device, non_blocking=True))
        out["stride2d"] = unwrap(nets["image"]).output_stride
    if "point" in nets:
        out["feat3d"], out["cam3d"] = nets["point"](batch["xyz"].to(device, non_blocking=True),
                                                    batch["features"].to(device, non_blocking=True))
    return out


def _progress(iterable, total: int, desc: str, enabled: bool):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True,
                disable=not sys.stderr.isatty())


# ----------------------------------------------------------------------------- the steps of a run
@dataclass
class Runtime:
    """Where this process trains: its device, its rank among the DDP processes, and whether AMP is on."""

    device: torch.device
    dist: DistInfo
    amp: bool


def setup_runtime(settings: dict) -> Runtime:
    """Pick the device, join the DDP process group (under torchrun) and seed this rank's RNGs."""
    tcfg = settings["train"]
    device = pick_device(tcfg["device"], int(os.environ.get("LOCAL_RANK", "0")))
    info = init_distributed(device.type)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    seed_everything(settings["seed"] + info.rank)
    return Runtime(device=device, dist=info, amp=bool(tcfg["amp"]) and device.type == "cuda")


@dataclass
class Batches:
    """The loader of this rank's share of the items, its sampler (set per epoch) and the per-rank batch size."""

    loader: torch.utils.data.DataLoader
    sampler: EpochSampler
    per_rank_batch: int


def make_batches(task: TrainingTask, settings: dict, rt: Runtime) -> Batches:
    """``train.batch_size`` items a step, split across the ranks; ValueError if not even one batch fits."""
    tcfg = settings["train"]
    per_rank_batch = max(1, tcfg["batch_size"] // rt.dist.world_size)
    sampler = EpochSampler(len(task.dataset), settings["seed"], rt.dist.rank, rt.dist.world_size)
    loader = torch.utils.data.DataLoader(
        task.dataset, batch_size=per_rank_batch, sampler=sampler, num_workers=tcfg["num_workers"],
        collate_fn=task.collate, drop_last=True, pin_memory=rt.device.type == "cuda",
        # workers keep their scene arrays across epochs; the epoch reaches them through the sampler's pairs
        persistent_workers=tcfg["num_workers"] > 0,
        # Every DataLoader iterator draws its workers' base seed from this generator. From the global torch RNG
        # (the default) it would take one draw per epoch with 0 workers and one per run with persistent workers,
        # so the dropout masks, and the weights, would depend on --cores. Items draw their randomness from
        # (seed, epoch, item), so the worker seeds themselves decide nothing.
        generator=torch.Generator().manual_seed(settings["seed"] + rt.dist.rank),
    )
    if len(loader) == 0:
        raise ValueError(f"train.batch_size {tcfg['batch_size']} is larger than the {len(task.dataset)} training items")
    return Batches(loader, sampler, per_rank_batch)


@dataclass
class Optimisation:
    """Optimizer (one parameter group per network, in the order of the networks), LR schedule, AMP scaler."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])



def make_optimisation(nets: dict, tcfg: dict, amp: bool) -> Optimisation:
    """Adam or SGD (momentum 0.9) at ``train.lr`` (the image network's times ``image_lr_mult``, only its trainable
    parameters), decayed by ``gamma`` at the ``milestones`` epochs."""
    lr_mult = {"image": tcfg["image_lr_mult"], "point": 1.0}
    param_groups = [{"params": [p for p in net.parameters() if p.requires_grad], "lr": tcfg["lr"] * lr_mult[name]}
                    for name, net in nets.items()]
    if tcfg["optimizer"] == "adam":
        optimizer = torch.optim.Adam(param_groups, lr=tcfg["lr"], weight_decay=tcfg["weight_decay"])
    else:
        optimizer = torch.optim.SGD(param_groups, lr=tcfg["lr"], momentum=0.9, weight_decay=tcfg["weight_decay"])
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=tcfg["milestones"], gamma=tcfg["gamma"])
    return Optimisation(optimizer, scheduler, torch.amp.GradScaler("cuda", enabled=amp))


def train_step(nets: dict, batch: dict, task: TrainingTask, opt: Optimisation, rt: Runtime, *, position: str = "",
               ckpt_path: Path | None = None) -> dict[str, torch.Tensor]:
    """One optimisation step: forward the networks, the loss terms of eq. 12, backward, optimizer step.

    Returns the loss terms (``total`` is eq. 12's L). NonFiniteLossError, before anything is updated, where a term
    is not finite on any rank (``position`` and ``ckpt_path`` go into its message).
    """
    with torch.autocast(device_type="cuda", dtype=torch.float16) if rt.amp else nullcontext():
        outputs = forward_networks(nets, batch, rt.device)
    terms = task.loss(batch, outputs, rt.device)  # outside autocast: the losses are computed in float32
    check_finite(terms, rt.dist, position, ckpt_path)
    opt.optimizer.zero_grad(set_to_none=True)
    opt.scaler.scale(terms["total"]).backward()  # under AMP the loss is scaled so float16 gradients do not underflow
    opt.scaler.step(opt.optimizer)
    opt.scaler.update()
    return terms


def resume(ckpt_path: Path, settings: dict, nets: dict, opt: Optimisation, rt: Runtime) -> int:
    """The first epoch to train (0-based): 0, or the one after the checkpoint's when ``ckpt_path`` holds a run
    of these result settings (:func:`settings_hash`), whose networks, optimisation and this rank's RNG state it
    restores. A checkpoint of other settings is left to be overwritten, with a warning naming what changed."""
    experiment, digest = settings["experiment"], settings_hash(settings)
    if not ckpt_path.exists():
        return 0
    ckpt = load_checkpoint(ckpt_path)
    if ckpt.get("settings_hash") != digest:
        if rt.dist.is_main:
            log.warning("train %s: %s belongs to other settings (hash %s != %s): %s; starting from scratch",
                        experiment, ckpt_path, ckpt.get("settings_hash"), digest, _why_not_resumed(ckpt, settings))
        return 0
    for name, net in nets.items():
        net.load_state_dict(ckpt["models"][name])
    opt.load_state_dict(ckpt)
    set_rng_state(ckpt["rng"][min(rt.dist.rank, len(ckpt["rng"]) - 1)])
    start_epoch = ckpt["epoch"] + 1
    if rt.dist.is_main:
        # start_epoch counts from 0, so it is the 1-based number of the last finished epoch ("epoch 2/3")
        log.info("train %s: resuming after epoch %d from %s", experiment, start_epoch, ckpt_path)
    return start_epoch


def _why_not_resumed(ckpt: dict, settings: dict) -> str:
    """The settings that differ between a checkpoint and this run, one ``key: old -> new`` each."""
    if "hashed_settings" not in ckpt:
        return "the checkpoint predates the settings it keeps, so what changed is unknown"
    changes = settings_changes(ckpt["hashed_settings"], hashed_settings(settings))
    return "; ".join(changes) or "the same settings under an older hash"


def distribute(nets: dict, rt: Runtime) -> dict:
    """The networks wrapped in DistributedDataParallel under torchrun (several processes); else unchanged."""
    if rt.dist.world_size <= 1:
        return nets
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [rt.device.index] if rt.device.type == "cuda" else None
    return {k: DDP(v, device_ids=ids) for k, v in nets.items()}


def epochs_to_run(start_epoch: int, epochs: int, stop_after_epoch: int | None) -> tuple[range, bool]:
    """The 0-based epochs this call trains, and whether they end the run (then ``model.pt`` is written).

    ``stop_after_epoch`` k ends the call after epoch k (1-based) -- or after the first epoch trained when the
    run resumes beyond k -- unless k exceeds ``epochs``; a run stopped that way writes no ``model.pt``, even at
    its last epoch. A run resumed after its last epoch trains nothing and ends.
    """
    if stop_after_epoch is None or start_epoch >= epochs or stop_after_epoch > epochs:
        return range(start_epoch, epochs), True
    return range(start_epoch, max(start_epoch + 1, stop_after_epoch)), False


def train_epoch(epoch: int, nets: dict, batches: Batches, task: TrainingTask, opt: Optimisation, rt: Runtime,
                ckpt_path: Path, desc: str, max_steps: int | None = None) -> tuple[dict[str, float], int, float]:
    """One pass over this rank's items, or its first ``max_steps`` batches: (mean of each loss term over the steps
    and ranks, steps, seconds). The learning rate schedule steps at its end either way."""
    task.dataset.set_epoch(epoch)
    batches.sampler.set_epoch(epoch)
    for net in nets.values():
        net.train()
    sums: dict[str, float] = {}
    steps = 0
    t0 = time.perf_counter()
    for batch in _progress(batches.loader, len(batches.loader), desc, rt.dist.is_main):
        terms = train_step(nets, batch, task, opt, rt, position=f"epoch {epoch + 1}, step {steps + 1}",
                           ckpt_path=ckpt_path)
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        steps += 1
        if max_steps is not None and steps >= max_steps:
            break
    opt.scheduler.step()
    seconds = time.perf_counter() - t0
    return _mean_over_ranks({k: v / steps for k, v in sums.items()}, rt), steps, seconds


def _mean_over_ranks(means: dict[str, float], rt: Runtime) -> dict[str, float]:
    if rt.dist.world_size <= 1:
        return means
    vec = torch.tensor([means[k] for k in sorted(means)], device=rt.device)
    dist.all_reduce(vec)
    return dict(zip(sorted(means), (vec / rt.dist.world_size).tolist()))


def rng_states_of_ranks(rt: Runtime) -> list[dict]:
    """Every rank's RNG state (a collective under DDP), so a resumed DDP run continues each rank exactly."""
    states = [rng_state()]
    if rt.dist.world_size > 1:
        gathered = [None] * rt.dist.world_size
        dist.all_gather_object(gathered, states[0])
        states = gathered
    return states


class RunLog:
    """What a run tells its user, written by rank 0 only: ``config.json`` (the settings), one line per epoch in
    ``metrics.jsonl``, TensorBoard events in ``tb/`` and one log line per epoch."""

    def __init__(self, run_dir: Path, settings: dict, enabled: bool):
        self.run_dir, self.experiment, self.epochs = run_dir, settings["experiment"], settings["train"]["epochs"]
        self.writer = None
        if enabled:
            (run_dir / "config.json").write_text(json.dumps(settings, indent=2) + "\n")
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tb"))

    def epoch(self, metrics: dict) -> None:
        """Record one epoch's metrics (see ``epoch_metrics``)."""
        if self.writer is None:
            return
        with open(self.run_dir / METRICS, "a") as f:
            f.write(json.dumps(metrics) + "\n")
        step = metrics["epoch"]
        for k, v in metrics["loss"].items():
            self.writer.add_scalar(f"loss/{k}", v, step)
        for name, lr in metrics["lr"].items():
            self.writer.add_scalar(f"lr/{name}", lr, step)
        self.writer.add_scalar("samples_per_second", metrics["samples_per_second"], step)
        self.writer.flush()
        # %g, not a fixed number of decimals: a rehearsal step's 0.04 samples/s and a diverging 1e14 loss stay readable
        log.info("train %s: epoch %d/%d loss %s lr %s %.1f s (%.3g samples/s)", self.experiment, step, self.epochs,
                 " ".join(f"{k}={v:.4g}" for k, v in metrics["loss"].items()),
                 " ".join(f"{k}={v:.2g}" for k, v in metrics["lr"].items()), metrics["seconds"],
                 metrics["samples_per_second"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def epoch_metrics(epoch: int, means: dict[str, float], lrs: dict[str, float], seconds: float, samples: int, *,
                  steps: int, cuda_memory_bytes: int | None = None) -> dict:
    """The line of ``metrics.jsonl`` of 0-based ``epoch``: mean loss terms, learning rates, wall time and
    throughput (``samples`` items over all ranks in ``seconds``), the run's optimiser steps so far, and on CUDA this
    rank's peak of allocated GPU memory so far (``torch.cuda.max_memory_allocated``; None elsewhere)."""
    return {"epoch": epoch + 1, "loss": means, "lr": lrs, "seconds": round(seconds, 2),
            "samples_per_second": round(samples / seconds, 2), "steps": steps,
            "max_cuda_memory_allocated_bytes": cuda_memory_bytes}


def cuda_memory_peak_bytes(device: torch.device) -> int | None:
    """This process's peak of allocated memory on ``device`` since it started, if it is a GPU; else None."""
    return int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None


def steps_done_before(start_epoch: int, steps_per_epoch: int, max_steps: int | None) -> int:
    """Optimiser steps a run resumed at 0-based ``start_epoch`` has taken: every finished epoch is a full one, except
    the epoch where ``max_steps`` stopped it, which ended the run -- so the count is capped at the limit."""
    done = start_epoch * steps_per_epoch
    return done if max_steps is None else min(done, max_steps)


def checkpoint_payload(epoch: int, digest: str, settings: dict, nets: dict, opt: Optimisation, rng_states: list,
                       metrics: dict) -> dict:
    """What ``checkpoint.pt`` holds after 0-based ``epoch``: everything ``resume`` restores."""
    return {"epoch": epoch, "settings_hash": digest, "hashed_settings": hashed_settings(settings),
            "experiment": settings["experiment"], "models": {k: unwrap(v).state_dict() for k, v in nets.items()},
            **opt.state_dict(), "rng": rng_states, "metrics": metrics}


def save_final_model(path: Path, digest: str, settings: dict, nets: dict) -> None:
    """``model.pt``: the settings and the weights of the networks, what evaluation loads (``load_trained``)."""
    save_checkpoint(path, {"experiment": settings["experiment"], "settings_hash": digest,
                           "models": {k: unwrap(v).state_dict() for k, v in nets.items()}, "settings": settings})
    log.info("train %s: done, weights in %s", settings["experiment"], path)


def train(settings: dict, run_dir: Path, *, stop_after_epoch: int | None = None) -> dict:
    """Train one experiment into ``run_dir``; resumes from ``run_dir/checkpoint.pt`` when it matches.

    Writes ``checkpoint.pt`` (every epoch, atomically), ``metrics.jsonl`` (one line per epoch),
    ``tb/`` (TensorBoard events), ``config.json`` (the resolved settings) and, when the last epoch is
    done, ``model.pt`` (weights only). ``stop_after_epoch`` ends early (tests, time-boxed runs)
    without writing ``model.pt`` (see ``epochs_to_run``). Returns the last epoch's metrics.

    ``train.max_steps`` (None: no limit) ends the run after that many optimiser steps in total, counted across
    epochs and resumes, in the middle of an epoch if need be: that epoch's checkpoint, metrics line and
    ``model.pt`` are written as at the end of the last epoch, and the log says the run stopped at the step limit.
    It is a result setting, deliberately: a limit changes the weights (fewer steps, a cut epoch), so it is not
    one of ``experiments.NON_RESULT_KEYS``, enters the resume hash (``settings_hash``) and the rule's params,
    and a run of another limit starts from scratch. Where no limit is set the settings carry no ``max_steps``
    (``experiments.experiment_settings``), so their hashes are those of runs from before the key existed.
    """
    run_dir = Path(run_dir)
    rt = setup_runtime(settings)
    task = training_task(settings, loss_switches(settings))
    batches = make_batches(task, settings, rt)
    nets = build_networks(settings).present()
    for net in nets.values():
        net.to(rt.device)
    opt = make_optimisation(nets, settings["train"], rt.amp)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path, digest = run_dir / CHECKPOINT, settings_hash(settings)
    start_epoch = resume(ckpt_path, settings, nets, opt, rt)
    nets = distribute(nets, rt)
    run_log = RunLog(run_dir, settings, enabled=rt.dist.is_main)
    epochs, ends_run = epochs_to_run(start_epoch, settings["train"]["epochs"], stop_after_epoch)
    max_steps = settings["train"].get("max_steps")
    steps_done = steps_done_before(start_epoch, len(batches.loader), max_steps)
    last_metrics: dict = {}
    for epoch in epochs:
        if max_steps is not None and steps_done >= max_steps:
            ends_run = True  # a resumed run that had reached its step limit: nothing left to train
            break
        desc = f"{settings['experiment']} epoch {epoch + 1}/{settings['train']['epochs']}"
        means, steps, seconds = train_epoch(epoch, nets, batches, task, opt, rt, ckpt_path, desc,
                                            None if max_steps is None else max_steps - steps_done)
        steps_done += steps
        lrs = dict(zip(nets, opt.scheduler.get_last_lr()))  # one parameter group per network, in the same order
        last_metrics = epoch_metrics(epoch, means, lrs, seconds, steps * batches.per_rank_batch * rt.dist.world_size,
                                     steps=steps_done, cuda_memory_bytes=cuda_memory_peak_bytes(rt.device))
        rng_states = rng_states_of_ranks(rt)
        if rt.dist.is_main:
            save_checkpoint(ckpt_path, checkpoint_payload(epoch, digest, settings, nets, opt, rng_states, last_metrics))
        run_log.epoch(last_metrics)
        if max_steps is not None and steps_done >= max_steps:
            ends_run = True
            if rt.dist.is_main:
                log.info("train %s: stopped at the step limit, train.max_steps %d, in epoch %d/%d",
                         settings["experiment"], max_steps, epoch + 1, settings["train"]["epochs"])
            break
    if ends_run and rt.dist.is_main:
        save_final_model(run_dir / FINAL_MODEL, digest, settings, nets)
    run_log.close()
    if rt.dist.world_size > 1:
        _check_ranks_in_sync(nets, rt.dist)
        dist.barrier()
    return last_metrics


def parameters_sha256(nets: dict) -> str:
    """SHA-256 of every parameter's bytes, networks in ``nets`` order: equal digests mean identical weights.

    Parameters only: DDP broadcasts buffers (BatchNorm statistics) from rank 0 before each forward, so the
    last forward leaves each rank's running statistics its own until the next broadcast.
    """
    digest = hashlib.sha256()
    for net in nets.values():
        for name, p in unwrap(net).named_parameters():
            digest.update(name.encode())
            digest.update(p.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _check_ranks_in_sync(nets: dict, info: DistInfo) -> None:
    """DDP keeps replicas identical; verify it bit for bit (a digest per rank) and say so in the log."""
    digests = [None] * info.world_size
    dist.all_gather_object(digests, parameters_sha256(nets))
    if len(set(digests)) > 1:
        raise RuntimeError(f"DDP replicas diverged: parameter sha256 per rank {digests}")
    if info.is_main:
        log.info("train: ranks in sync (all %d replicas hold identical weights, parameter sha256 %s)",
                 info.world_size, digests[0])


def check_finite(terms: dict, info: DistInfo, position: str, ckpt_path: Path | None) -> None:
    """NonFiniteLossError naming the terms (and ``position``, e.g. ``epoch 2, step 1``) where one is NaN or infinite
    on this rank or any other (a collective under DDP)."""
    bad = [k for k, v in terms.items() if not torch.isfinite(v.detach()).all()]
    flag = torch.tensor([1.0 if bad else 0.0])
    if info.world_size > 1:
        flag = flag.to(terms["total"].device)
        dist.all_reduce(flag)
    if bad or float(flag) > 0:
        kept = (f"the last good checkpoint is kept at {ckpt_path}" if ckpt_path is not None and ckpt_path.exists()
                else "no checkpoint was written yet")
        raise NonFiniteLossError(
            f"non-finite loss at {position}: "
            f"{', '.join(f'{k}={float(terms[k].detach()):g}' for k in bad) or 'on another rank'}; training stopped and "
            f"{kept} -- lower train.lr, or set train.amp: false if this happens under AMP"
        )
