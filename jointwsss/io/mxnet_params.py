"""Reader of MXNet's NDArray list files (``mx.nd.save``, ``*.params`` checkpoints) with NumPy only.

Layout (from MXNet's ``src/ndarray/ndarray.cc``: ``NDArray::Save/Load`` for one array and for a list,
``include/mxnet/tuple.h``: ``Tuple::Save`` for shapes, ``include/mxnet/base.h``: ``Context::Save``,
dmlc-core's ``include/dmlc/serializer.h`` for vectors and strings). Every integer is little-endian
(dmlc streams write little-endian on every host); offsets are in bytes.

List (``NDArray::Save(stream, data, names)``)::

    uint64  list magic 0x112 (kMXAPINDArrayListMagic)
    uint64  reserved, 0
    uint64  number of arrays N
    N x     one array (below)
    uint64  number of names K (0, or N: a name per array, in the same order)
    K x     uint64 byte length L, then L bytes of the name (no terminator; UTF-8 in practice)

Checkpoints (``mx.model.save_checkpoint``) prefix names with ``arg:`` (parameters) or ``aux:``
(auxiliary states such as batch norm moving statistics).

One array starts with a uint32 that tells its format version:

- ``0xF993FACA`` (V3, "np shape" semantics, written under ``npx.set_np``) and ``0xF993FAC9``
  (V2, with the storage type; MXNet since August 2017, commit 0b1363116c "Sparse Tensor")::

      uint32  magic
      int32   storage type: 0 dense, 1 row_sparse, 2 csr (-1 undefined)
      [sparse only: storage shape, then the fields below plus aux types/shapes/data -- not read here]
      shape   int32 ndim, then ndim x int64 dims
              V2: ndim 0 is an empty ("none") array and nothing else of it follows;
              V3: ndim -1 or a dim -1 is the empty array, ndim 0 is a scalar with one value
      context int32 device type (1 cpu, 2 gpu, 3 cpu_pinned, 5 cpu_shared), int32 device id
      int32   dtype flag (mshadow: 0 float32, 1 float64, 2 float16, 3 uint8, 4 int32, 5 int8,
              6 int64, 7 bool, 8 int16, 9 uint16, 10 uint32, 11 uint64, 12 bfloat16)
      data    prod(shape) x itemsize bytes, C order

- ``0xF993FAC8`` (V1, int64 shapes, no storage type; MXNet from May 2017, commit 05e07287a7): magic,
  shape (int32 ndim + int64 dims), then as V2 from the context on; ndim 0 is the empty array.
- anything else (legacy, MXNet before May 2017): the uint32 is ndim itself, followed by ndim x uint32
  dims, then context, dtype flag and data as above; ndim 0 is the empty array. ademxapp's ILSVRC
  "model A1" file, whose md5 was published in January 2017, predates V1, so it has this layout.

The context only says where the array lived when it was saved; arrays are always read to the host.
The reader walks the headers once, seeking past the data, so a file cut short is caught before any
array is read, and reads an array only when asked, one at a time, with ``np.fromfile`` (the file is
never held in memory as a whole).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from jointwsss.io.errors import DataFormatError

LIST_MAGIC = 0x112
NDARRAY_V1_MAGIC = 0xF993FAC8
NDARRAY_V2_MAGIC = 0xF993FAC9
NDARRAY_V3_MAGIC = 0xF993FACA

#: mshadow type flags -> NumPy dtypes (little-endian). bfloat16 (12) has no NumPy dtype: it is read as
#: its 16 raw bits and widened to float32 exactly (a bfloat16 is the upper half of a float32).
MXNET_DTYPES: dict[int, np.dtype] = {
    0: np.dtype("<f4"), 1: np.dtype("<f8"), 2: np.dtype("<f2"), 3: np.dtype("u1"), 4: np.dtype("<i4"),
    5: np.dtype("i1"), 6: np.dtype("<i8"), 7: np.dtype("?"), 8: np.dtype("<i2"), 9: np.dtype("<u2"),
    10: np.dtype("<u4"), 11: np.dtype("<u8"), 12: np.dtype("<u2"),
}
BFLOAT16_FLAG = 12
MXNET_DTYPE_NAMES = {0: "float32", 1: "float64", 2: "float16", 3: "uint8", 4: "int32", 5: "int8", 6: "int64",
                     7: "bool", 8: "int16", 9: "uint16", 10: "uint32", 11: "uint64", 12: "bfloat16"}
STORAGE_TYPES = {-1: "undefined", 0: "dense", 1: "row_sparse", 2: "csr"}
DEVICE_TYPES = {1: "cpu", 2: "gpu", 3: "cpu_pinned", 5: "cpu_shared"}
# Sanity bounds that tell a damaged header from a real one (no real array has more dims or names this long).
_MAX_NDIM = 32
_MAX_NAME_BYTES = 1 << 16
_NOT_NDARRAY_FIX = "the file is damaged or not an MXNet NDArray file (mx.nd.save / *.params); download it again"


@dataclass(frozen=True)
class NDArrayEntry:
    """One array of a list file, as its header describes it.

    ``data_offset`` / ``data_bytes``: where its values lie in the file (bytes); ``shape`` is
    ``None`` for an empty ("none") array, which has no context, dtype or data.
    """

    index: int
    name: str
    version: str  # "v3", "v2", "v1" or "legacy"
    shape: tuple[int, ...] | None
    type_flag: int
    device: str
    device_id: int
    data_offset: int
    data_bytes: int

    @property
    def dtype_name(self) -> str:
        return MXNET_DTYPE_NAMES.get(self.type_flag, "none") if self.shape is not None else "none"

    @property
    def dtype(self) -> np.dtype:
        """The NumPy dtype of :func:`read_array`'s result (bfloat16 is widened to float32)."""
        return np.dtype("<f4") if self.type_flag == BFLOAT16_FLAG else MXNET_DTYPES[self.type_flag]


class _Cursor:
    """Reads little-endian fields from ``file`` and turns every short read into a DataFormatError."""

    def __init__(self, path: str, file, size: int):
        self.path, self.file, self.size = path, file, size

    def fields(self, fmt: str, what: str) -> tuple:
        offset = self.file.tell()
        count = struct.calcsize(fmt)
        raw = self.file.read(count)
        if len(raw) != count:
            raise truncated(self.path, self.size, offset + count, what)
        return struct.unpack(fmt, raw)

    def field(self, fmt: str, what: str):
        return self.fields(fmt, what)[0]

    def skip(self, count: int, what: str) -> int:
        """Seek ``count`` bytes on; returns the offset skipped from. The file must hold them."""
        offset = self.file.tell()
        if offset + count > self.size:
            raise truncated(self.path, self.size, offset + count, what)
        self.file.seek(count, os.SEEK_CUR)
        return offset


def truncated(path: str, size: int, needed: int, what: str) -> DataFormatError:
    return DataFormatError(
        path,
        f"truncated: {what} needs bytes up to offset {needed:,} but the file ends at {size:,} bytes",
        "the download was cut short; download the file again",
    )


def _read_shape(cur: _Cursor, magic: int, what: str) -> tuple[int, ...] | None:
    """The shape after ``magic``; None for the empty array (see the module docstring per version)."""
    if magic in (NDARRAY_V1_MAGIC, NDARRAY_V2_MAGIC, NDARRAY_V3_MAGIC):
        ndim = cur.field("<i", f"{what} shape")
        if ndim == -1 and magic == NDARRAY_V3_MAGIC:
            return None
        if not 0 <= ndim <= _MAX_NDIM:
            raise DataFormatError(cur.path, f"{what}: impossible number of dimensions {ndim} at offset "
                                  f"{cur.file.tell() - 4:,}", _NOT_NDARRAY_FIX)
        dims = cur.fields(f"<{ndim}q", f"{what} shape")
    else:
        ndim = magic  # legacy: the first uint32 is ndim
        if ndim > _MAX_NDIM:
            raise DataFormatError(
                cur.path,
                f"{what}: unknown array header 0x{magic:08X} at offset {cur.file.tell() - 4:,} "
                f"(neither an NDArray format magic 0x{NDARRAY_V1_MAGIC:08X}..0x{NDARRAY_V3_MAGIC:08X} nor a legacy ndim)",
                _NOT_NDARRAY_FIX,
            )
        dims = cur.fields(f"<{ndim}I", f"{what} shape")
    if magic == NDARRAY_V3_MAGIC:
        return None if any(d == -1 for d in dims) else tuple(dims)
    if ndim == 0:
        return None
    if any(d < 0 for d in dims):
        raise DataFormatError(cur.path, f"{what}: negative dimension in shape {tuple(dims)}", _NOT_NDARRAY_FIX)
    return tuple(int(d) for d in dims)


def _read_entry(cur: _Cursor, index: int) -> NDArrayEntry:
    what = f"array {index}"
    magic = cur.field("<I", f"{what} header")
    version = {NDARRAY_V1_MAGIC: "v1", NDARRAY_V2_MAGIC: "v2", NDARRAY_V3_MAGIC: "v3"}.get(magic, "legacy")
    if version in ("v2", "v3"):
        storage = cur.field("<i", f"{what} storage type")
        if storage != 0:
            known = STORAGE_TYPES.get(storage)
            problem = (f"{what} has {known} storage; only dense arrays are supported" if known
                       else f"{what} has unknown storage type {storage}")
            raise DataFormatError(cur.path, problem, "weights files hold dense arrays: " + _NOT_NDARRAY_FIX)
    shape = _read_shape(cur, magic, what)
    if shape is None:
        return NDArrayEntry(index, "", version, None, -1, "none", 0, cur.file.tell(), 0)
    device_type, device_id = cur.fields("<ii", f"{what} context")
    if device_type not in DEVICE_TYPES:
        raise DataFormatError(cur.path, f"{what}: unknown device type {device_type} in its context", _NOT_NDARRAY_FIX)
    type_flag = cur.field("<i", f"{what} dtype")
    if type_flag not in MXNET_DTYPES:
        raise DataFormatError(
            cur.path,
            f"{what} has unknown dtype flag {type_flag} (known: "
            + ", ".join(f"{k} {v}" for k, v in MXNET_DTYPE_NAMES.items()) + ")",
            _NOT_NDARRAY_FIX,
        )
    data_bytes = int(np.prod(shape, dtype=np.int64)) * MXNET_DTYPES[type_flag].itemsize
    offset = cur.skip(data_bytes, f"{what} ({MXNET_DTYPE_NAMES[type_flag]} {shape}) data")
    return NDArrayEntry(index, "", version, shape, type_flag, DEVICE_TYPES[device_type], device_id, offset, data_bytes)


def scan_ndarray_list(path: str | os.PathLike) -> list[NDArrayEntry]:
    """Every array's header and name of an NDArray list file, without reading any data.

    Raises:
        DataFormatError: the file is missing, truncated, has the wrong magic number, a sparse or
            unknown storage type, an unknown dtype or device, or a names list that does not match.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataFormatError(path, "file not found")
    size = os.path.getsize(path)
    with open(path, "rb") as file:
        cur = _Cursor(path, file, size)
        magic, _reserved = cur.fields("<QQ", "the list header")
        if magic != LIST_MAGIC:
            raise DataFormatError(
                path, f"wrong magic number 0x{magic:X} (an MXNet NDArray list starts with 0x{LIST_MAGIC:X})",
                _NOT_NDARRAY_FIX,
            )
        count = cur.field("<Q", "the number of arrays")
        if count > size // 16:  # every array takes more than 16 bytes: a damaged count, or a file cut short
            raise truncated(path, size, 24 + 16 * count, f"the {count:,} arrays the header announces")
        entries = [_read_entry(cur, index) for index in range(count)]
        num_names = cur.field("<Q", "the number of names")
        if num_names not in (0, count):
            raise DataFormatError(path, f"{num_names:,} names for {count:,} arrays (MXNet needs 0 or one per array)",
                                  _NOT_NDARRAY_FIX)
        names = []
        for index in range(num_names):
            length = cur.field("<Q", f"name {index} length")
            if length > _MAX_NAME_BYTES:
                raise DataFormatError(path, f"name {index} claims {length:,} bytes", _NOT_NDARRAY_FIX)
            offset = file.tell()
            raw = file.read(length)
            if len(raw) != length:
                raise truncated(path, size, offset + length, f"name {index}")
            names.append(raw.decode("utf-8", errors="replace"))
        if file.tell() != size:
            raise DataFormatError(path, f"{size - file.tell():,} unexpected bytes after the names list "
                                  f"(the list ends at offset {file.tell():,})", _NOT_NDARRAY_FIX)
    if names:
        entries = [replace(entry, name=name) for entry, name in zip(entries, names)]
    return entries


def read_array(path: str | os.PathLike, entry: NDArrayEntry, file=None) -> np.ndarray:
    """The values of one array (C order, its own memory; bfloat16 widened to float32).

    ``file``: an open binary handle of ``path`` to reuse (else the file is opened for this read).
    """
    path = os.fspath(path)
    if entry.shape is None:
        return np.empty((0,), dtype=np.float32)
    stored = MXNET_DTYPES[entry.type_flag]
    count = entry.data_bytes // stored.itemsize
    if file is None:
        with open(path, "rb") as own:
            return read_array(path, entry, own)
    file.seek(entry.data_offset)
    values = np.fromfile(file, dtype=stored, count=count)
    if values.size != count:
        raise truncated(path, os.path.getsize(path), entry.data_offset + entry.data_bytes,
                        f"array {entry.index} data")
    if entry.type_flag == BFLOAT16_FLAG:
        values = (values.astype(np.uint32) << 16).view(np.float32)
    return values.reshape(entry.shape)


def iter_arrays(path: str | os.PathLike, entries: list[NDArrayEntry]) -> Iterator[tuple[NDArrayEntry, np.ndarray]]:
    """``(entry, values)`` for each of ``entries`` in file order, one array in memory at a time
    (the caller decides what to keep)."""
    path = os.fspath(path)
    with open(path, "rb") as file:
        for entry in sorted(entries, key=lambda e: e.data_offset):
            yield entry, read_array(path, entry, file)


def load_ndarray_list(path: str | os.PathLike) -> dict[str, np.ndarray] | list[np.ndarray]:
    """All arrays of a small file: ``{name: array}`` when it has names, else a list (``mx.nd.load``)."""
    entries = scan_ndarray_list(path)
    arrays = [values for _, values in iter_arrays(path, entries)]
    if entries and entries[0].name:
        return {e.name: a for e, a in zip(entries, arrays)}
    return arrays
