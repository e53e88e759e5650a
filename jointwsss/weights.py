"""ImageNet weights for the image network: MXNet's model A1 ``.params`` -> a PyTorch state dict with our keys.

Wires the format reader (:mod:`jointwsss.io.mxnet_params`) to the model's key names
(:func:`jointwsss.models.resnet38.psa_key_from_mxnet`) and checks the result against the ``full`` ResNet38 before
anything is written: every backbone key present with its shape, nothing unknown. The arrays are read one at a time
and the state dict is written atomically, so a bad or partial copy never leaves a ``.pt`` behind.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import torch

from jointwsss.io.atomic import atomic_path
from jointwsss.io.errors import DataFormatError
from jointwsss.io.mxnet_params import GOOD_COPY_HINT, iter_params, read_params_index

log = logging.getLogger("jointwsss")


def import_mxnet_weights(src: str | os.PathLike, dst: str | os.PathLike) -> dict:
    """Convert ``src`` (an MXNet ``.params`` of ResNet38 model A1) to ``dst`` (``torch.save``-d state dict).

    Returns the summary: arrays read, mapped, ignored (the ImageNet classifier), bytes of data, seconds.
    Raises DataFormatError naming ``src`` when the file is not a complete NDArray list or its arrays do not cover
    the ``full`` ResNet38 backbone with the right shapes (every missing, unknown or mismatched key is listed).
    """
    from jointwsss.models.resnet38 import ResNet38, psa_key_from_mxnet

    src, dst = Path(src), Path(dst)
    t0 = time.perf_counter()
    entries = read_params_index(src)
    expected = {k: tuple(v.shape) for k, v in ResNet38(width="full").state_dict().items()
                if not k.startswith("cam_head.") and not k.endswith("num_batches_tracked")}
    keys, ignored, unknown, mismatched, misshapen_keys = {}, [], [], [], set()
    for entry in entries:
        try:
            key = psa_key_from_mxnet(entry.name)
        except ValueError:
            unknown.append(entry.name)
            continue
        if key is None:
            ignored.append(entry.name)
        elif key not in expected:
            unknown.append(entry.name)
        elif entry.shape != expected[key]:
            mismatched.append(f"{entry.name} -> {key}: file {entry.shape} vs model {expected[key]}")
            misshapen_keys.add(key)
        else:
            keys[entry.name] = key
    missing = sorted(set(expected) - set(keys.values()) - misshapen_keys)
    if missing or unknown or mismatched:
        problems = [f"{len(missing)} backbone keys missing ({', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''})"
                    if missing else "",
                    f"{len(unknown)} arrays not in ResNet38 model A1 ({', '.join(unknown[:8])})" if unknown else "",
                    f"{len(mismatched)} shape mismatches ({'; '.join(mismatched[:4])})" if mismatched else ""]
        raise DataFormatError(src, "does not cover the ResNet38 (model A1) backbone: " + "; ".join(p for p in problems if p),
                              GOOD_COPY_HINT)
    state: dict[str, torch.Tensor] = {}
    nbytes = 0
    for entry, array in iter_params(src, entries):
        if entry.name in keys:
            state[keys[entry.name]] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
            nbytes += entry.nbytes
    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dst) as tmp:
        torch.save(state, tmp)
    summary = {"source": str(src), "destination": str(dst), "arrays_read": len(entries), "mapped": len(state),
               "ignored": ignored, "data_bytes": nbytes, "file_bytes": src.stat().st_size,
               "seconds": round(time.perf_counter() - t0, 2)}
    log.info("weights import %s: %d arrays read, %d mapped to ResNet38 keys, %d ignored (%s), %.1f MB of weights -> %s "
             "(%.1f s)", src, len(entries), len(state), len(ignored), ", ".join(ignored) or "none", nbytes / 1e6, dst,
             summary["seconds"])
    return summary
