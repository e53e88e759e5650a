"""MXNet ``.params`` files (``mx.nd.save``: a named list of NDArrays), read with NumPy only.

The paper's image network starts from ImageNet weights that exist as an MXNet file: ResNet38 "model A1"
(Wu et al., the ``ademxapp`` project), ``ilsvrc-cls_rna-a1_cls1000_ep-0001.params``, the file every PSA-based
WSSS codebase asks for. Reading it needs no ``mxnet`` (whose last release does not run with NumPy 2).

Byte layout (little-endian), as ``NDArray::Save`` / ``NDArray::Load`` in MXNet's ``src/ndarray/ndarray.cc`` write
and read it, with dmlc-core's stream serialisation of vectors and strings:

- list header: ``uint64 magic = 0x112`` (``kMXAPINDArrayListMagic``), ``uint64 reserved = 0``;
- ``uint64 count``, then ``count`` arrays;
- ``uint64 count`` of names (0, or as many as arrays), each ``uint64 length`` + that many UTF-8 bytes; ``mx.nd.save``
  of a dict writes the keys, ``Module.save_params`` prefixes them ``arg:`` (parameters) and ``aux:`` (BN statistics).

One array starts with a ``uint32`` that says its version:

- ``0xF993fac9`` (V2, MXNet >= 0.11) or ``0xF993faca`` (V3, NumPy-shape semantics, MXNet >= 1.6): then ``int32``
  storage type (0 dense; 1 row-sparse and 2 CSR are rejected here), for sparse storage a storage shape, then the
  shape;
- ``0xF993fac8`` (V1): the shape follows at once;
- anything else (the oldest files): that ``uint32`` is the number of dimensions and the shape's dimensions follow as
  ``uint32`` each.

A shape (V1-V3) is ``uint32 ndim`` then ``ndim`` x ``int64``. An empty shape (ndim 0; V3: -1) ends the array there.
Otherwise: the context (``int32 dev_type``, ``int32 dev_id``; informational, every array is read to the CPU), the
``int32`` type flag (0 float32, 1 float64, 2 float16, 3 uint8, 4 int32, 5 int8, 6 int64, 7 bool), and the elements,
C order, ``prod(shape) * itemsize`` bytes.

:func:`read_params_index` walks the file once reading only the headers (it seeks over the data), so the index costs
a few kilobytes whatever the file's size; :func:`iter_params` then reads one array at a time, so converting never
holds the file twice in memory.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from jointwsss.io.errors import DataFormatError

LIST_MAGIC = 0x112
ARRAY_V1_MAGIC = 0xF993FAC8
ARRAY_V2_MAGIC = 0xF993FAC9
ARRAY_V3_MAGIC = 0xF993FACA
#: MXNet's type flags (mshadow) and their NumPy dtypes (little-endian).
DTYPES = {0: np.dtype("<f4"), 1: np.dtype("<f8"), 2: np.dtype("<f2"), 3: np.dtype("u1"), 4: np.dtype("<i4"),
          5: np.dtype("i1"), 6: np.dtype("<i8"), 7: np.dtype("?")}
STORAGE_TYPES = {0: "dense", 1: "row_sparse", 2: "csr"}
#: Where a good copy of the ImageNet weights comes from (said in every error about a bad copy).
GOOD_COPY_HINT = ("download ilsvrc-cls_rna-a1_cls1000_ep-0001.params again from the ademxapp project's model A1 "
                  "release (the link in PSA's README); the genuine file is about 416 MB, and mirrors have served "
                  "truncated 32 MB copies")


@dataclass(frozen=True)
class ArrayEntry:
    """One array of a ``.params`` file: its name, shape, dtype and where its elements start (bytes)."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    offset: int

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


class _Reader:
    """Little-endian fields from a binary file, with errors that name the file and the byte offset."""

    def __init__(self, handle: BinaryIO, path: Path, size: int):
        self.handle, self.path, self.size = handle, path, size

    def take(self, fmt: str, what: str) -> tuple:
        n = struct.calcsize(fmt)
        where = self.handle.tell()
        data = self.handle.read(n)
        if len(data) != n:
            raise DataFormatError(self.path, f"is truncated: {what} at byte {where} needs {n} bytes, the file ends at "
                                             f"byte {self.size}", GOOD_COPY_HINT)
        return struct.unpack("<" + fmt, data)

    def skip(self, nbytes: int, what: str) -> None:
        where = self.handle.tell()
        if where + nbytes > self.size:
            raise DataFormatError(self.path, f"is truncated: {what} at byte {where} needs {nbytes} bytes, the file "
                                             f"ends at byte {self.size} ({self.size / 2**20:.1f} MiB)", GOOD_COPY_HINT)
        self.handle.seek(nbytes, os.SEEK_CUR)


def _read_shape(r: _Reader, magic: int, index: int) -> tuple[int, ...] | None:
    """The array's shape, or None for an empty (none) array."""
    if magic in (ARRAY_V1_MAGIC, ARRAY_V2_MAGIC, ARRAY_V3_MAGIC):
        (ndim,) = r.take("i", f"array {index}'s number of dimensions")
        if ndim <= 0:  # 0 (V1/V2) or -1 (V3, unknown): an empty array
            return None
        if ndim > 32:
            raise DataFormatError(r.path, f"array {index} claims {ndim} dimensions: not an MXNet NDArray list",
                                  GOOD_COPY_HINT)
        dims = r.take(f"{ndim}q", f"array {index}'s shape")
    else:  # the oldest layout: the word read as magic is ndim, dimensions are uint32
        ndim = magic
        if ndim > 32:
            raise DataFormatError(r.path, f"array {index} starts with {magic:#x}, which is neither an NDArray magic "
                                          "number (0xf993fac8/9/a) nor a dimension count", GOOD_COPY_HINT)
        if ndim == 0:
            return None
        dims = r.take(f"{ndim}I", f"array {index}'s shape")
    if any(d < 0 for d in dims):
        raise DataFormatError(r.path, f"array {index} has a negative dimension {dims}", GOOD_COPY_HINT)
    return tuple(int(d) for d in dims)


def read_params_index(path: str | os.PathLike) -> list[ArrayEntry]:
    """Every array's name, shape, dtype and data offset, reading only headers (seeks over the data).

    Raises DataFormatError (naming the file) for a wrong list magic, a truncated file, an unknown type flag,
    sparse storage, or names that do not match the arrays.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        handle = open(path, "rb")
    except OSError as exc:
        raise DataFormatError(path, f"cannot be opened ({exc})", GOOD_COPY_HINT) from exc
    with handle:
        r = _Reader(handle, path, size)
        magic, _reserved = r.take("QQ", "the list header")
        if magic != LIST_MAGIC:
            raise DataFormatError(path, f"is not an MXNet NDArray list: magic number {magic:#x}, expected {LIST_MAGIC:#x} "
                                        "(is it a PyTorch file? give those to model.image.weights directly)",
                                  GOOD_COPY_HINT)
        (count,) = r.take("Q", "the array count")
        if count > 100_000:
            raise DataFormatError(path, f"claims {count} arrays: not an MXNet NDArray list", GOOD_COPY_HINT)
        arrays: list[tuple[tuple[int, ...], np.dtype, int]] = []
        for index in range(count):
            (magic,) = r.take("I", f"array {index}'s header")
            if magic in (ARRAY_V2_MAGIC, ARRAY_V3_MAGIC):
                (stype,) = r.take("i", f"array {index}'s storage type")
                if stype != 0:
                    kind = STORAGE_TYPES.get(stype, f"unknown ({stype})")
                    raise DataFormatError(path, f"array {index} has {kind} storage; only dense arrays are supported "
                                                "(network weights are dense)", GOOD_COPY_HINT)
            shape = _read_shape(r, magic, index)
            if shape is None:
                arrays.append(((), np.dtype("<f4"), handle.tell()))
                continue
            r.take("ii", f"array {index}'s context")
            (type_flag,) = r.take("i", f"array {index}'s type flag")
            if type_flag not in DTYPES:
                raise DataFormatError(path, f"array {index} has the unknown type flag {type_flag} (known: "
                                            f"{', '.join(f'{k} {v.name}' for k, v in DTYPES.items())})", GOOD_COPY_HINT)
            dtype = DTYPES[type_flag]
            offset = handle.tell()
            r.skip(int(np.prod(shape, dtype=np.int64)) * dtype.itemsize, f"array {index}'s {shape} {dtype.name} data")
            arrays.append((shape, dtype, offset))
        (num_names,) = r.take("Q", "the name count")
        if num_names not in (0, count):
            raise DataFormatError(path, f"lists {num_names} names for {count} arrays", GOOD_COPY_HINT)
        names = []
        for index in range(num_names):
            (length,) = r.take("Q", f"name {index}'s length")
            if length > 4096:
                raise DataFormatError(path, f"name {index} claims {length} bytes", GOOD_COPY_HINT)
            (raw,) = r.take(f"{length}s", f"name {index}")
            names.append(raw.decode("utf-8", errors="replace"))
        if handle.tell() != size:
            raise DataFormatError(path, f"has {size - handle.tell()} bytes after the last name (byte {handle.tell()} "
                                        f"of {size}): not one complete NDArray list", GOOD_COPY_HINT)
    if not names:
        names = [str(i) for i in range(count)]
    return [ArrayEntry(n, shape, dtype, offset) for n, (shape, dtype, offset) in zip(names, arrays)]


def iter_params(path: str | os.PathLike, entries: list[ArrayEntry] | None = None) -> Iterator[tuple[ArrayEntry, np.ndarray]]:
    """(entry, array) for every array of the file, read one at a time (native byte order)."""
    path = Path(path)
    entries = read_params_index(path) if entries is None else entries
    with open(path, "rb") as handle:
        for entry in entries:
            handle.seek(entry.offset)
            count = int(np.prod(entry.shape, dtype=np.int64))
            data = np.fromfile(handle, dtype=entry.dtype, count=count)
            if data.size != count:
                raise DataFormatError(path, f"is truncated inside array {entry.name!r}", GOOD_COPY_HINT)
            yield entry, data.astype(entry.dtype.newbyteorder("="), copy=False).reshape(entry.shape)


def read_params(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All arrays of a ``.params`` file by name (small files; :func:`iter_params` streams large ones)."""
    return {entry.name: array for entry, array in iter_params(path)}


def write_params(path: str | os.PathLike, arrays, *, version: str = "v2") -> int:
    """Write ``arrays`` -- an iterable of (name, ndarray), consumed one at a time -- as an MXNet NDArray list.

    ``version``: ``"v2"`` (MXNet 0.11-1.x, dense storage), ``"v3"`` (NumPy-shape semantics), ``"v1"`` or ``"legacy"``
    (the oldest files: uint32 dimensions). Writes to ``path`` directly (benchmarks and tests make their inputs
    with it); returns the bytes written. The names list goes after the arrays, as MXNet writes it.
    """
    magic = {"v1": ARRAY_V1_MAGIC, "v2": ARRAY_V2_MAGIC, "v3": ARRAY_V3_MAGIC, "legacy": None}[version]
    flag_of = {dtype: flag for flag, dtype in DTYPES.items()}
    names: list[str] = []
    with open(path, "wb") as handle:
        handle.write(struct.pack("<QQQ", LIST_MAGIC, 0, 0))  # the array count is patched in at the end
        for name, array in arrays:
            array = np.ascontiguousarray(array)
            dtype = array.dtype.newbyteorder("<") if array.dtype.itemsize > 1 else array.dtype
            if magic is None:
                handle.write(struct.pack(f"<I{array.ndim}I", array.ndim, *array.shape))
            else:
                handle.write(struct.pack("<I", magic))
                if magic != ARRAY_V1_MAGIC:
                    handle.write(struct.pack("<i", 0))  # dense storage
                handle.write(struct.pack(f"<I{array.ndim}q", array.ndim, *array.shape))
            handle.write(struct.pack("<iii", 1, 0, flag_of[np.dtype(dtype)]))  # context cpu(0), type flag
            handle.write(array.astype(dtype, copy=False).tobytes())
            names.append(name)
        handle.write(struct.pack("<Q", len(names)))
        for name in names:
            raw = name.encode()
            handle.write(struct.pack("<Q", len(raw)) + raw)
        size = handle.tell()
        handle.seek(16)
        handle.write(struct.pack("<Q", len(names)))
    return size
