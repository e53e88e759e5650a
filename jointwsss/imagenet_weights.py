"""ImageNet weights for ResNet38 from the file users have: PSA's MXNet ``ilsvrc-cls_rna-a1_cls1000_ep-0001.params``.

The file is ademxapp's ILSVRC "Model A1" (Wu et al., https://github.com/itijyou/ademxapp, README
"Pre-trained models"), which PSA, SEAM, OC-CSE (as ``resnet_38d.params``) and their successors start
from. It is read with :mod:`jointwsss.io.mxnet_params` (no mxnet) and written as a PyTorch state dict
with our ``ResNet38`` keys, which :func:`jointwsss.models.resnet38.load_imagenet_weights` loads.

Names (ademxapp's symbol names, ``arg:`` / ``aux:`` prefixes of ``mx.model.save_checkpoint``) map as
PSA's ``convert_mxnet_to_torch`` maps them:

- ``conv1a_weight`` -> ``conv1a.weight``;
- ``res{S}{U}_branch{B}_weight`` -> ``{block}.conv_branch{B}.weight``;
- ``bn{S}{U}_branch{B}_{gamma,beta,moving_mean,moving_var}`` ->
  ``{block}.bn_branch{B}.{weight,bias,running_mean,running_var}``;
- ``bn7_*`` -> ``bn7.*``; ``linear1000_{weight,bias}`` (the ImageNet classifier) is dropped;

where stage S is 2..7, unit U is ``a`` (block ``bS``) or ``b<k>`` (block ``bS_k``), branch B is ``1``
(the shortcut conv), ``2a``, ``2b1`` or ``2b2``. E.g. ``aux:bn4b5_branch2b1_moving_var`` ->
``b4_5.bn_branch2b1.running_var``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from pathlib import Path


from jointwsss.io.atomic import atomic_path
from jointwsss.io.errors import DataFormatError
from jointwsss.io.mxnet_params import NDArrayEntry, iter_arrays, scan_ndarray_list

log = logging.getLogger(__name__)

IMAGENET_PARAMS_FILE = "ilsvrc-cls_rna-a1_cls1000_ep-0001.params"
#: md5 of the genuine file, published in ademxapp's models/checksum.md5.
IMAGENET_PARAMS_MD5 = "ff21f45d6bf03284100dcbec571edfad"
IMAGENET_PARAMS_SOURCE = "https://github.com/itijyou/ademxapp (README, 'Pre-trained models', ILSVRC Model A1)"
GOOD_COPY_FIX = (
    f"download {IMAGENET_PARAMS_FILE} (ILSVRC 'Model A1', about 416 MiB, md5 {IMAGENET_PARAMS_MD5}) again from "
    f"{IMAGENET_PARAMS_SOURCE}; PSA, SEAM and OC-CSE (as resnet_38d.params) link the same file"
)
CLASSIFIER_NAME = "linear1000"
_BN_FIELDS = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_var": "running_var"}
_BLOCK_PARAM = re.compile(
    r"^(?P<kind>res|bn)(?P<stage>[2-7])(?P<unit>a|b[1-9][0-9]*)_branch(?P<branch>1|2a|2b1|2b2)_"
    r"(?P<field>weight|gamma|beta|moving_mean|moving_var)$"
)
_BN7 = re.compile(r"^bn7_(?P<field>gamma|beta|moving_mean|moving_var)$")


def _strip_prefix(name: str) -> str:
    return name.split(":", 1)[1] if name.startswith(("arg:", "aux:")) else name


def mxnet_to_resnet38_key(name: str) -> str | None:
    """Our ``ResNet38`` state dict key of MXNet array ``name``; None for the ImageNet classifier.

    Raises:
        KeyError: ``name`` is not a ResNet38 "model A1" name.
    """
    bare = _strip_prefix(name)
    if bare == "conv1a_weight":
        return "conv1a.weight"
    if bare.startswith(CLASSIFIER_NAME + "_"):
        return None
    if match := _BN7.match(bare):
        return f"bn7.{_BN_FIELDS[match['field']]}"
    match = _BLOCK_PARAM.match(bare)
    if match is None or (match["kind"] == "res") != (match["field"] == "weight"):
        raise KeyError(name)
    unit = match["unit"]
    block = f"b{match['stage']}" if unit == "a" else f"b{match['stage']}_{unit[1:]}"
    if match["kind"] == "res":
        return f"{block}.conv_branch{match['branch']}.weight"
    return f"{block}.bn_branch{match['branch']}.{_BN_FIELDS[match['field']]}"


def resnet38_key_to_mxnet(key: str) -> str:
    """The inverse of :func:`mxnet_to_resnet38_key` for a backbone key, with its ``arg:``/``aux:`` prefix."""
    if key == "conv1a.weight":
        return "arg:conv1a_weight"
    module, field = key.rsplit(".", 1)
    is_bn = module == "bn7" or ".bn_" in module
    mx_field = {v: k for k, v in _BN_FIELDS.items()}[field] if is_bn else field
    prefix = "aux:" if mx_field.startswith("moving_") else "arg:"
    if module == "bn7":
        return f"{prefix}bn7_{mx_field}"
    block, layer = module.split(".")
    stage, _, index = block[1:].partition("_")
    unit = f"b{index}" if index else "a"
    kind, branch = layer.split("_branch")
    return f"{prefix}{'res' if kind == 'conv' else 'bn'}{stage}{unit}_branch{branch}_{mx_field}"


def resnet38_backbone_shapes(width: str = "full") -> dict[str, tuple[int, ...]]:
    """``{key: shape}`` of every ImageNet-initialised ResNet38 tensor (no CAM head, no BN counters).

    Built on torch's meta device: no memory is allocated for the ~100 M parameters.
    """
    import torch

    from jointwsss.models.resnet38 import ResNet38

    with torch.device("meta"):
        model = ResNet38(width=width)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()
            if not k.startswith("cam_head.") and not k.endswith("num_batches_tracked")}


def imagenet_params_layout(width: str = "full", num_classes: int = 1000) -> list[tuple[str, tuple[int, ...]]]:
    """``(MXNet name, shape)`` of every array of a "model A1" checkpoint of ``width``: ``arg:`` arrays
    (with the classifier ``linear1000``) then ``aux:`` arrays, as ``mx.model.save_checkpoint`` orders them."""
    shapes = resnet38_backbone_shapes(width)
    named = [(resnet38_key_to_mxnet(k), s) for k, s in shapes.items()]
    features = shapes["bn7.weight"][0]
    named += [(f"arg:{CLASSIFIER_NAME}_weight", (num_classes, features)), (f"arg:{CLASSIFIER_NAME}_bias", (num_classes,))]
    return [item for item in named if item[0].startswith("arg:")] + [item for item in named if item[0].startswith("aux:")]


def file_md5(path: str | os.PathLike, chunk_bytes: int = 8 << 20) -> str:
    """md5 of a file, read in ``chunk_bytes`` pieces."""
    digest = hashlib.md5()
    with open(path, "rb") as file:
        while chunk := file.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def _mapped_entries(path: str, entries: list[NDArrayEntry]) -> tuple[dict[str, NDArrayEntry], list[str]]:
    """Entries by ResNet38 key, and the ignored classifier names; DataFormatError on any mismatch."""
    if entries and not entries[0].name:
        raise DataFormatError(path, f"its {len(entries)} arrays have no names", GOOD_COPY_FIX)
    mapped: dict[str, NDArrayEntry] = {}
    ignored, unknown, duplicated = [], [], []
    for entry in entries:
        try:
            key = mxnet_to_resnet38_key(entry.name)
        except KeyError:
            unknown.append(entry.name)
            continue
        if key is None:
            ignored.append(entry.name)
        elif key in mapped:
            duplicated.append(entry.name)
        else:
            mapped[key] = entry
    expected = resnet38_backbone_shapes("full")
    missing = [k for k in expected if k not in mapped]
    mismatched = [f"{mapped[k].name}: file {mapped[k].shape} vs ResNet38 {s}"
                  for k, s in expected.items() if k in mapped and mapped[k].shape != s]
    not_float = [f"{mapped[k].name}: {mapped[k].dtype_name}" for k in expected
                 if k in mapped and mapped[k].shape is not None and mapped[k].dtype.kind != "f"]
    problems = []
    if missing:
        problems.append(f"{len(missing)} of {len(expected)} ResNet38 arrays missing: "
                        + ", ".join(resnet38_key_to_mxnet(k) for k in missing[:12]) + (" ..." if len(missing) > 12 else ""))
    if unknown:
        problems.append(f"{len(unknown)} names that are not ResNet38 'model A1' names: "
                        + ", ".join(unknown[:12]) + (" ..." if len(unknown) > 12 else ""))
    if duplicated:
        problems.append(f"duplicated arrays: {', '.join(duplicated)}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches: " + "; ".join(mismatched[:12]))
    if not_float:
        problems.append("non-floating-point arrays: " + ", ".join(not_float[:12]))
    if problems:
        raise DataFormatError(path, "does not hold the ResNet38 'model A1' weights (" + " | ".join(problems) + ")",
                              GOOD_COPY_FIX)
    return mapped, ignored


def convert_imagenet_params(src: str | os.PathLike, dst: str | os.PathLike, require_genuine: bool = False) -> dict:
    """Convert PSA's MXNet ImageNet file ``src`` to a PyTorch state dict ``dst`` (written atomically).

    Checks, before anything is written: the NDArray list structure (magic, every header, no
    truncation, dense storage, known dtypes), that the names and shapes cover every ResNet38 backbone
    tensor, and the md5 against ademxapp's published one (a mismatch is an error with
    ``require_genuine``, else reported: a copy re-saved by another MXNet has other bytes but the same
    arrays). Arrays are then read one at a time, so memory holds the converted tensors once and never
    the file a second time.

    Returns:
        A JSON-able summary: arrays read / mapped / ignored (names), bytes of the file and of the
        converted tensors, the md5 and whether it is the genuine file's, format versions, dtypes.

    Raises:
        DataFormatError: any check fails; the message names ``src`` and where to get a good copy.
    """
    import torch

    src, dst = os.fspath(src), Path(dst)
    start = time.perf_counter()
    try:
        entries = scan_ndarray_list(src)
    except DataFormatError as exc:
        raise DataFormatError(exc.path, exc.problem, GOOD_COPY_FIX if os.path.isfile(src) else
                              f"give the path of {IMAGENET_PARAMS_FILE}; to get it, {GOOD_COPY_FIX}") from exc
    mapped, ignored = _mapped_entries(src, entries)
    md5 = file_md5(src)
    genuine = md5 == IMAGENET_PARAMS_MD5
    if not genuine and require_genuine:
        raise DataFormatError(src, f"md5 {md5} is not the genuine file's {IMAGENET_PARAMS_MD5} (ademxapp's "
                              "models/checksum.md5)", GOOD_COPY_FIX)
    if not genuine:
        log.warning("%s: md5 %s differs from the genuine %s's %s; every array and shape checked out, so it may be "
                    "a re-saved copy -- if training misbehaves, %s", src, md5, IMAGENET_PARAMS_FILE,
                    IMAGENET_PARAMS_MD5, GOOD_COPY_FIX)
    key_of = {entry.index: key for key, entry in mapped.items()}
    state: dict[str, torch.Tensor] = {}
    converted_bytes = 0
    for entry, values in iter_arrays(src, list(mapped.values())):
        state[key_of[entry.index]] = torch.from_numpy(values)
        converted_bytes += values.nbytes
    ordered = {key: state[key] for key in resnet38_backbone_shapes("full")}
    with atomic_path(dst) as tmp:
        torch.save(ordered, tmp)
    return {
        "source": src,
        "output": str(dst),
        "file_bytes": os.path.getsize(src),
        "arrays_read": len(entries),
        "arrays_mapped": len(mapped),
        "arrays_ignored": len(ignored),
        "ignored_names": ignored,
        "converted_bytes": converted_bytes,
        "output_bytes": dst.stat().st_size,
        "md5": md5,
        "md5_genuine": genuine,
        "format_versions": sorted({e.version for e in entries}),
        "dtypes": sorted({e.dtype_name for e in entries}),
        "seconds": round(time.perf_counter() - start, 3),
    }


def summary_lines(summary: dict) -> list[str]:
    """One line per result of a conversion, for the log."""
    return [
        f"read {summary['arrays_read']} arrays ({summary['file_bytes'] / 1e6:.1f} MB, "
        f"{'/'.join(summary['format_versions'])} format, {'/'.join(summary['dtypes'])}) from {summary['source']}",
        f"mapped {summary['arrays_mapped']} to ResNet38 keys, ignored {summary['arrays_ignored']} "
        f"({', '.join(summary['ignored_names']) or 'none'})",
        f"md5 {summary['md5']}: " + ("the genuine file's (ademxapp models/checksum.md5)" if summary["md5_genuine"]
                                      else f"not the genuine {IMAGENET_PARAMS_MD5}; arrays and shapes checked out"),
        f"wrote {summary['output']} ({summary['converted_bytes'] / 1e6:.1f} MB of tensors, "
        f"{summary['output_bytes'] / 1e6:.1f} MB file) in {summary['seconds']:.1f} s",
    ]

