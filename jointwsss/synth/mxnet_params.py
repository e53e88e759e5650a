"""Writer of MXNet NDArray list files (``mx.nd.save`` / ``*.params``), byte for byte as MXNet lays them out.

For tests and benchmarks: MXNet itself cannot share an environment with ours. The layout is the one
documented in :mod:`jointwsss.io.mxnet_params`; the constants are spelled out again here on purpose,
so a misread of the format on one side does not hide in the other.

Arrays are produced one at a time (an item may be a callable returning the array), so a file of
any size is written with one array in memory.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Sequence

import numpy as np

# mshadow type flags by NumPy dtype name (base.h: kFloat32 = 0 ... kUint64 = 11; kBfloat16 = 12 has no NumPy dtype).
TYPE_FLAGS = {"float32": 0, "float64": 1, "float16": 2, "uint8": 3, "int32": 4, "int8": 5, "int64": 6, "bool": 7,
              "int16": 8, "uint16": 9, "uint32": 10, "uint64": 11}
BFLOAT16 = "bfloat16"
MAGICS = {"v1": 0xF993FAC8, "v2": 0xF993FAC9, "v3": 0xF993FACA}
ArrayItem = tuple[str, "np.ndarray | Callable[[], np.ndarray]"]


def ndarray_bytes(array: np.ndarray, version: str = "v2", device: tuple[int, int] = (1, 0),
                  bfloat16_bits: bool = False) -> bytes:
    """The header of one array (``NDArray::Save``) in format ``version``: legacy, v1, v2 or v3.

    ``bfloat16_bits``: ``array`` is uint16 holding bfloat16 bit patterns, written with flag 12.
    The data follows the header; it is not part of the returned bytes.
    """
    flag = 12 if bfloat16_bits else TYPE_FLAGS[array.dtype.name]
    ndim, dims = array.ndim, array.shape
    if version == "legacy":
        header = struct.pack(f"<I{ndim}I", ndim, *dims)
    elif version == "v1":
        header = struct.pack(f"<Ii{ndim}q", MAGICS["v1"], ndim, *dims)
    elif version in ("v2", "v3"):
        header = struct.pack(f"<Iii{ndim}q", MAGICS[version], 0, ndim, *dims)  # storage type 0: dense
    else:
        raise ValueError(f"unknown NDArray format version {version!r}")
    return header + struct.pack("<iii", device[0], device[1], flag)


def write_ndarray_list(path: str | os.PathLike, items: Sequence[ArrayItem], version: str = "v2",
                       with_names: bool = True, device: tuple[int, int] = (1, 0),
                       bfloat16_names: frozenset[str] = frozenset()) -> int:
    """Write ``items`` (name, array or a callable making it) as ``mx.nd.save`` would; returns the file size.

    Arrays are written little-endian in C order; names (when ``with_names``) follow the arrays.
    """
    with open(path, "wb") as out:
        out.write(struct.pack("<QQQ", 0x112, 0, len(items)))
        for name, item in items:
            array = item() if callable(item) else item
            array = np.asarray(array, dtype=array.dtype.newbyteorder("<"), order="C")  # keeps 0-d arrays 0-d
            out.write(ndarray_bytes(array, version, device, bfloat16_bits=name in bfloat16_names))
            array.tofile(out)
            del array
        if with_names:
            out.write(struct.pack("<Q", len(items)))
            for name, _ in items:
                encoded = name.encode("utf-8")
                out.write(struct.pack("<Q", len(encoded)) + encoded)
        else:
            out.write(struct.pack("<Q", 0))
        return out.tell()


def pattern_array(shape: tuple[int, ...], seed: int, dtype: str = "float32") -> np.ndarray:
    """Cheap, distinct, exactly representable values: ``((i * 7 + seed) % 1021 - 510) / 256`` for flat index i.

    Every array of a synthetic weights file gets its own ``seed``, so swapped arrays are told apart.
    """
    count = int(np.prod(shape, dtype=np.int64))
    values = (np.arange(count, dtype=np.int64) * 7 + seed) % 1021 - 510
    return (values.astype(np.float32) / np.float32(256.0)).astype(dtype).reshape(shape)


def imagenet_model_a1_items(width: str = "full") -> list[ArrayItem]:
    """A synthetic ImageNet "model A1" checkpoint: PSA's names and ResNet38 shapes of ``width`` (with the
    1000-way classifier), array i holding ``pattern_array(shape, seed=i)`` as float32, made when written."""
    from jointwsss.imagenet_weights import imagenet_params_layout

    return [(name, lambda shape=shape, seed=seed: pattern_array(shape, seed))
            for seed, (name, shape) in enumerate(imagenet_params_layout(width))]
