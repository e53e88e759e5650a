"""The joint trainer: both classifiers, the paper's loss (eq. 12), checkpoints, resume, DDP, AMP.

``train(settings, run_dir)`` is what ``jointwsss train`` (and the Snakemake rule ``train``) runs.
``settings`` is the resolved, schema-validated training configuration (see ``experiment_settings``
in the Snakefile's ``rules/common.smk`` and README "Training").

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

from jointwsss.classes import NUM_CLASSES
from jointwsss.data.crops import CropConfig, ObjectCropDataset
from jointwsss.data.dataset import NUM_POINT_FEATURES, JointDataConfig, JointDataset, collate_joint, scenes_from_index
from jointwsss.data.transforms import ImageAugment, PointAugment
from jointwsss.experiments import experiment_settings  # noqa: F401  (re-exported for callers of train)
from jointwsss.io.atomic import atomic_path
from jointwsss.losses import IMAGE_NETWORK_LABELS, TO3D_LABELS, JointInputs, LossSwitches, object_classification_loss, total_loss

log = logging.getLogger("jointwsss")

CHECKPOINT = "checkpoint.pt"
FINAL_MODEL = "model.pt"
METRICS = "metrics.jsonl"


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; training stopped, the last good checkpoint is kept."""


# ----------------------------------------------------------------------------- settings
def _to3d_labels(settings: dict) -> str:
    """Where eq. 7 takes its labels (losses.TO3D_LABELS); absent from the settings of the method itself."""
    to3d_labels = settings.get("to3d_labels", IMAGE_NETWORK_LABELS)
    if to3d_labels not in TO3D_LABELS:
        raise ValueError(f"experiment {settings['experiment']!r}: to3d_labels {to3d_labels!r} is not one of {TO3D_LABELS}")
    return to3d_labels


def loss_switches(settings: dict) -> LossSwitches:
    """Loss switches of an experiment: ``settings["losses"]`` names the terms, ``confidence`` the W's."""
    losses = set(settings["losses"])
    unknown = losses - {"cls2d", "cls3d", "to3d", "to2d", "pcam_like", "object_cls"}
    if unknown:
        raise ValueError(f"experiment {settings['experiment']!r}: unknown loss terms {sorted(unknown)}")
    if "object_cls" in losses and len(losses) > 1:
        raise ValueError(f"experiment {settings['experiment']!r}: object_cls (the image network's pretraining on "
                         "object crops) trains on its own data and cannot be combined with other loss terms")
    conf = settings.get("confidence", True)
    joint = settings["joint"]
    to3d_labels = _to3d_labels(settings)
    return LossSwitches(
        cls2d="cls2d" in losses, cls3d="cls3d" in losses, to3d="to3d" in losses, to2d="to2d" in losses,
        to3d_confidence=conf, to2d_confidence=conf, pcam_like="pcam_like" in losses, object_cls="object_cls" in losses,
        lambda_to2d=float(joint["lambda"]), confidence_2d_over=joint["confidence_2d_over"], to3d_labels=to3d_labels,
    )


def settings_hash(settings: dict) -> str:
    """Hash of everything that changes the trained weights (resume only continues an identical run).

    The image network's initial weights count by content, not by path: a re-pretrained
    ``runs/pretrain_image/model.pt`` must not let a run resume from a checkpoint built on the old one.
    """
    relevant = {k: v for k, v in settings.items() if k not in ("num_workers", "device", "log_every")}
    weights = settings.get("model", {}).get("image", {}).get("weights")
    if weights and Path(weights).is_file():
        relevant["image_weights_sha256"] = hashlib.sha256(Path(weights).read_bytes()).hexdigest()
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def build_models(settings: dict, switches: LossSwitches):
    """(image_net or None, point_net or None) as the experiment needs them."""
    from jointwsss.models.resnet38 import ResNet38, load_imagenet_weights, warn_no_pretrained

    model_cfg = settings["model"]
    image_net = point_net = None
    if switches.needs_image_network:
        img = model_cfg["image"]
        image_net = ResNet38(num_classes=NUM_CLASSES, width=img["width"], freeze_bn=img["freeze_bn"],
                             dropout=img.get("dropout", True))
        if img.get("weights"):
            report = load_imagenet_weights(image_net, img["weights"])
            log.info("ResNet38: backbone initialised from %s (%d tensors)", report["path"], report["loaded"])
        else:
            warn_no_pretrained()
    if switches.needs_point_network:
        point_net = point_network(model_cfg["point"])
    return image_net, point_net


def point_network(point_cfg: dict):
    """The point network G of ``model.point`` (width, and ball radii where given), randomly initialised."""
    from jointwsss.models.pointnet2 import PointNet2Seg

    return PointNet2Seg(num_classes=NUM_CLASSES, in_channels=NUM_POINT_FEATURES, width=point_cfg["width"],
                        radii=point_cfg.get("radii"))


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
        point_labels=_to3d_labels(settings) != IMAGE_NETWORK_LABELS,
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
    object crops of ``settings["scenes"]`` (``object_cls``)."""
    cache_dir = Path(settings["cache_dir"])
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
    scenes = scenes_from_index(cache_dir / "index" / f"{settings.get('split', 'train')}.json")
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


def pick_device(name: str, info_local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("train.device is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
        return torch.device("cuda", info_local_rank)
    return torch.device("cpu")


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


# ----------------------------------------------------------------------------- checkpoints
def rng_state() -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(_as_python_state(state["python"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_python_state(s):
    # torch.save round-trips tuples as tuples; keep it robust to lists too
    return tuple(_as_python_state(x) for x in s) if isinstance(s, (list, tuple)) else s


def save_checkpoint(path: Path, payload: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _unwrap(model):
    return model.module if hasattr(model, "module") else model


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
        uv=batch["uv"].to(device), mask=batch["mask"].to(device), image_size=batch["image_size"],
        point_labels=batch["point_labels"].to(device) if "point_labels" in batch else None,
    )


def forward_batch(image_net, point_net, batch: dict, device, amp: bool) -> dict:
    """Run the networks the experiment uses; returns feat2d/cam2d/feat3d/cam3d (absent ones missing)."""
    out = {}
    ctx = torch.autocast(device_type="cuda", dtype=torch.float16) if amp else nullcontext()
    with ctx:
        if image_net is not None:
            out["feat2d"], out["cam2d"] = image_net(batch["images"].to(device, non_blocking=True))
        if point_net is not None:
            out["feat3d"], out["cam3d"] = point_net(batch["xyz"].to(device, non_blocking=True),
                                                    batch["features"].to(device, non_blocking=True))
    return out


def _progress(iterable, total: int, desc: str, enabled: bool):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True,
                disable=not sys.stderr.isatty())


def train(settings: dict, run_dir: Path, *, stop_after_epoch: int | None = None) -> dict:
    """Train one experiment into ``run_dir``; resumes from ``run_dir/checkpoint.pt`` when it matches.

    Writes ``checkpoint.pt`` (every epoch, atomically), ``metrics.jsonl`` (one line per epoch),
    ``tb/`` (TensorBoard events), ``config.json`` (the resolved settings) and, when the last epoch is
    done, ``model.pt`` (weights only). ``stop_after_epoch`` ends early (tests, time-boxed runs)
    without writing ``model.pt``. Returns the last epoch's metrics.
    """
    run_dir = Path(run_dir)
    tcfg = settings["train"]
    device = pick_device(tcfg["device"], int(os.environ.get("LOCAL_RANK", "0")))
    info = init_distributed(device.type)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    amp = bool(tcfg["amp"]) and device.type == "cuda"
    seed_everything(settings["seed"] + info.rank)
    switches = loss_switches(settings)

    task = training_task(settings, switches)
    dataset = task.dataset
    per_rank_batch = max(1, tcfg["batch_size"] // info.world_size)
    sampler = EpochSampler(len(dataset), settings["seed"], info.rank, info.world_size)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=per_rank_batch, sampler=sampler, num_workers=tcfg["num_workers"],
        collate_fn=task.collate, drop_last=True, pin_memory=device.type == "cuda",
        # workers keep their scene arrays across epochs; the epoch reaches them through the sampler's pairs
        persistent_workers=tcfg["num_workers"] > 0,
    )
    if len(loader) == 0:
        raise ValueError(f"train.batch_size {tcfg['batch_size']} is larger than the {len(dataset)} training items")

    image_net, point_net = build_models(settings, switches)
    nets = {k: v for k, v in (("image", image_net), ("point", point_net)) if v is not None}
    for net in nets.values():
        net.to(device)
    param_groups = []
    if image_net is not None:
        param_groups += [{"params": [p for p in image_net.parameters() if p.requires_grad],
                          "lr": tcfg["lr"] * tcfg["image_lr_mult"]}]
    if point_net is not None:
        param_groups += [{"params": list(point_net.parameters()), "lr": tcfg["lr"]}]
    if tcfg["optimizer"] == "adam":
        optimizer = torch.optim.Adam(param_groups, lr=tcfg["lr"], weight_decay=tcfg["weight_decay"])
    else:
        optimizer = torch.optim.SGD(param_groups, lr=tcfg["lr"], momentum=0.9, weight_decay=tcfg["weight_decay"])
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=tcfg["milestones"], gamma=tcfg["gamma"])
    scaler = torch.amp.GradScaler("cuda", enabled=amp)

    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / CHECKPOINT
    digest = settings_hash(settings)
    start_epoch = 0
    if ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        if ckpt.get("settings_hash") == digest:
            for name, net in nets.items():
                net.load_state_dict(ckpt["models"][name])
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            scaler.load_state_dict(ckpt["scaler"])
            set_rng_state(ckpt["rng"][min(info.rank, len(ckpt["rng"]) - 1)])
            start_epoch = ckpt["epoch"] + 1
            if info.is_main:
                # start_epoch counts from 0, so it is the 1-based number of the last finished epoch ("epoch 2/3")
                log.info("train %s: resuming after epoch %d from %s", settings["experiment"], start_epoch, ckpt_path)
        elif info.is_main:
            log.warning("train %s: %s belongs to other settings (hash %s != %s); starting from scratch",
                        settings["experiment"], ckpt_path, ckpt.get("settings_hash"), digest)

    if info.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if device.type == "cuda" else None
        nets = {k: DDP(v, device_ids=ids) for k, v in nets.items()}
    image_net, point_net = nets.get("image"), nets.get("point")

    writer = None
    if info.is_main:
        (run_dir / "config.json").write_text(json.dumps(settings, indent=2) + "\n")
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run_dir / "tb"))
    epochs = tcfg["epochs"]
    last_metrics: dict = {}
    for epoch in range(start_epoch, epochs):
        dataset.set_epoch(epoch)
        sampler.set_epoch(epoch)
        for net in nets.values():
            net.train()
        sums: dict[str, float] = {}
        steps = 0
        t0 = time.perf_counter()
        for batch in _progress(loader, len(loader), f"{settings['experiment']} epoch {epoch + 1}/{epochs}",
                               info.is_main):
            outputs = forward_batch(image_net, point_net, batch, device, amp)
            terms = task.loss(batch, outputs, device)
            _check_finite(terms, epoch, steps, info, ckpt_path)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(terms["total"]).backward()
            scaler.step(optimizer)
            scaler.update()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            steps += 1
        scheduler.step()
        seconds = time.perf_counter() - t0
        means = {k: v / steps for k, v in sums.items()}
        if info.world_size > 1:
            vec = torch.tensor([means[k] for k in sorted(means)], device=device)
            dist.all_reduce(vec)
            means = dict(zip(sorted(means), (vec / info.world_size).tolist()))
        lrs = dict(zip(nets, scheduler.get_last_lr()))  # one parameter group per network, in the same order
        last_metrics = {"epoch": epoch + 1, "loss": means, "lr": lrs, "seconds": round(seconds, 2),
                        "samples_per_second": round(steps * per_rank_batch * info.world_size / seconds, 2)}
        # every rank's RNG state, so a resumed DDP run continues each rank exactly
        rng_states = [rng_state()]
        if info.world_size > 1:
            gathered = [None] * info.world_size
            dist.all_gather_object(gathered, rng_states[0])
            rng_states = gathered
        if info.is_main:
            save_checkpoint(ckpt_path, {
                "epoch": epoch, "settings_hash": digest, "experiment": settings["experiment"],
                "models": {k: _unwrap(v).state_dict() for k, v in nets.items()},
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(), "rng": rng_states, "metrics": last_metrics,
            })
            with open(run_dir / METRICS, "a") as f:
                f.write(json.dumps(last_metrics) + "\n")
            for k, v in means.items():
                writer.add_scalar(f"loss/{k}", v, epoch + 1)
            for name, lr in lrs.items():
                writer.add_scalar(f"lr/{name}", lr, epoch + 1)
            writer.add_scalar("samples_per_second", last_metrics["samples_per_second"], epoch + 1)
            writer.flush()
            log.info("train %s: epoch %d/%d loss %s lr %s %.1f s (%.1f samples/s)", settings["experiment"],
                     epoch + 1, epochs, " ".join(f"{k}={v:.4f}" for k, v in means.items()),
                     " ".join(f"{k}={v:.2g}" for k, v in lrs.items()), seconds, last_metrics["samples_per_second"])
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch:
            break
    else:
        if info.is_main:
            final = {"experiment": settings["experiment"], "settings_hash": digest,
                     "models": {k: _unwrap(v).state_dict() for k, v in nets.items()}, "settings": settings}
            save_checkpoint(run_dir / FINAL_MODEL, final)
            log.info("train %s: done, weights in %s", settings["experiment"], run_dir / FINAL_MODEL)
    if writer is not None:
        writer.close()
    if info.world_size > 1:
        _check_ranks_in_sync(nets, info)
        dist.barrier()
    return last_metrics


def parameters_sha256(nets: dict) -> str:
    """SHA-256 of every parameter's bytes, networks in ``nets`` order: equal digests mean identical weights.

    Parameters only: DDP broadcasts buffers (BatchNorm statistics) from rank 0 before each forward, so the
    last forward leaves each rank's running statistics its own until the next broadcast.
    """
    digest = hashlib.sha256()
    for net in nets.values():
        for name, p in _unwrap(net).named_parameters():
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


def _check_finite(terms: dict, epoch: int, step: int, info: DistInfo, ckpt_path: Path) -> None:
    bad = [k for k, v in terms.items() if not torch.isfinite(v.detach()).all()]
    flag = torch.tensor([1.0 if bad else 0.0])
    if info.world_size > 1:
        flag = flag.to(terms["total"].device)
        dist.all_reduce(flag)
    if bad or float(flag) > 0:
        kept = f"the last good checkpoint is kept at {ckpt_path}" if ckpt_path.exists() else "no checkpoint was written yet"
        raise NonFiniteLossError(
            f"non-finite loss at epoch {epoch + 1}, step {step + 1}: "
            f"{', '.join(f'{k}={float(terms[k].detach()):g}' for k in bad) or 'on another rank'}; training stopped and "
            f"{kept} -- lower train.lr, or set train.amp: false if this happens under AMP"
        )


def load_trained(run_dir_or_model: Path) -> tuple[dict, dict]:
    """(settings, {"image": state_dict, "point": state_dict}) of a finished run's ``model.pt``."""
    path = Path(run_dir_or_model)
    if path.is_dir():
        path = path / FINAL_MODEL
    payload = load_checkpoint(path)
    return payload["settings"], payload["models"]
