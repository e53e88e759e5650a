"""A run's files and where its networks run: what training, evaluation, diagnosis, the exports and the benchmarks
share.

A run folder ``runs/<experiment>/`` holds ``checkpoint.pt`` (written by the trainer after every epoch: weights,
optimiser, RNG states, the settings and their hash; :func:`save_checkpoint` writes it atomically) and, once the last
epoch is done, ``model.pt`` (the settings and the weights: what :func:`load_trained` and :func:`load_networks` read).
"""

from __future__ import annotations

import random
from pathlib import Path

import torch

from jointwsss.io.atomic import atomic_path

CHECKPOINT = "checkpoint.pt"
FINAL_MODEL = "model.pt"
METRICS = "metrics.jsonl"


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """The torch device of ``train.device`` (``auto``, ``cpu`` or ``cuda``); under torchrun, the process's GPU
    ``local_rank``. RuntimeError if ``cuda`` is asked for where there is none."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("train.device is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def rng_state() -> dict:
    """This process's Python and torch RNG states (and CUDA's where present), as a checkpoint keeps them."""
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned."""
    random.setstate(_as_python_state(state["python"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_python_state(s):
    # torch.save round-trips tuples as tuples; keep it robust to lists too
    return tuple(_as_python_state(x) for x in s) if isinstance(s, (list, tuple)) else s


def save_checkpoint(path: Path, payload: dict) -> None:
    """``torch.save(payload)`` to ``path`` atomically: a reader sees the old file or the new one, never a part."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path) -> dict:
    """A checkpoint or ``model.pt`` written by :func:`save_checkpoint`, on the CPU (tensors and plain data only)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The network inside a DistributedDataParallel wrapper (or the network itself)."""
    return model.module if hasattr(model, "module") else model


def load_trained(run_dir_or_model: Path) -> tuple[dict, dict]:
    """(settings, {"image": state_dict, "point": state_dict}) of a finished run's ``model.pt``."""
    path = Path(run_dir_or_model)
    if path.is_dir():
        path = path / FINAL_MODEL
    payload = load_checkpoint(path)
    return payload["settings"], payload["models"]


def load_networks(model_path: Path, device: torch.device):
    """(settings, image_net or None, point_net or None) of a finished run, in eval mode on ``device``."""
    from jointwsss.networks import build_networks

    settings, states = load_trained(model_path)
    nets = build_networks(settings, states)
    for net in nets.present().values():
        net.to(device).eval()
    return settings, nets.image, nets.point
