"""Zarr v3 stores for the preprocessing caches (points, frames, correspondences).

Layout choices (see README "Caches"):
- one chunk per frame for per-frame arrays (training reads one view at a time), one chunk for small
  per-scene arrays;
- every array is one *shard* (Zarr v3 sharding codec): all its chunks live in one file with an index,
  so a store is a handful of files instead of thousands -- shared cluster file systems suffer from
  millions of tiny files -- while a reader still fetches only the bytes of the chunk it needs;
- Blosc-zstd with shuffle: fast to decode in DataLoader workers, ~2-4x smaller than raw.

Stores are written to a temporary folder and renamed into place (``atomic_path``), and carry
``attrs["jointwsss"] = {"kind": ..., "version": ...}`` so a reader can tell a finished store of the
right kind from anything else.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from jointwsss.io.errors import DataFormatError

STORE_VERSION = 1


def _compressor(dtype: np.dtype) -> BloscCodec:
    # Byte shuffle groups the high and low bytes of multi-byte values (depth, coordinates),
    # which is what makes them compress; for uint8 images bit shuffle helps a little more.
    shuffle = "bitshuffle" if np.dtype(dtype).itemsize == 1 else "shuffle"
    return BloscCodec(cname="zstd", clevel=3, shuffle=shuffle)


def create_store(path: str | os.PathLike, kind: str, attrs: dict[str, Any] | None = None) -> zarr.Group:
    """Create an empty Zarr v3 group at ``path`` (normally a temporary path from ``atomic_path``)."""
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    group.attrs.update({"jointwsss": {"kind": kind, "version": STORE_VERSION}, **(attrs or {})})
    return group


def create_array(group: zarr.Group, name: str, shape: tuple[int, ...], dtype, *, per_item: bool = False,
                 items_per_shard: int | None = None, rows_per_chunk: int | None = None) -> zarr.Array:
    """Create an empty array: one chunk per leading index if ``per_item``, chunks of ``rows_per_chunk``
    leading indices if given (long ragged arrays read in slices, e.g. one view's correspondences), else one chunk.

    Shards hold ``items_per_shard`` leading indices (per-item arrays written block by block: each
    partial write into a shard rewrites that shard, so writing frame by frame into one big shard
    costs O(F^2)), or the whole array when None.
    """
    shape = tuple(int(s) for s in shape)
    if per_item and len(shape) >= 1:
        chunks = (1, *[max(1, s) for s in shape[1:]])
    elif rows_per_chunk is not None and len(shape) >= 1:
        chunks = (max(1, min(rows_per_chunk, shape[0])), *[max(1, s) for s in shape[1:]])
    else:
        chunks = tuple(max(1, s) for s in shape)
    # a shard must hold a whole number of chunks
    shards = tuple(max(c, -(-s // c) * c) for c, s in zip(chunks, shape))
    if items_per_shard is not None and len(shape) >= 1:
        shards = (max(chunks[0], items_per_shard), *shards[1:])
    return group.create_array(
        name, shape=shape, chunks=chunks, shards=shards, dtype=dtype, compressors=_compressor(dtype), fill_value=0,
    )


def write_array(group: zarr.Group, name: str, data: np.ndarray, *, per_item: bool = False,
                rows_per_chunk: int | None = None) -> zarr.Array:
    """Write ``data`` as array ``name`` (one shard file; chunks as in :func:`create_array`)."""
    data = np.ascontiguousarray(data)
    array = create_array(group, name, data.shape, data.dtype, per_item=per_item, rows_per_chunk=rows_per_chunk)
    if data.size:
        array[...] = data
    return array


def open_store(path: str | os.PathLike, kind: str) -> zarr.Group:
    """Open a finished store of ``kind`` read-only; DataFormatError naming the path otherwise."""
    path = Path(path)
    if not (path / "zarr.json").is_file():
        raise DataFormatError(path, f"is not a Zarr store (no zarr.json)",
                              f"run the '{kind}' stage (snakemake preprocess) to create it")
    group = zarr.open_group(str(path), mode="r", zarr_format=3)
    meta = group.attrs.get("jointwsss")
    if not isinstance(meta, dict) or meta.get("kind") != kind:
        raise DataFormatError(path, f"is not a jointwsss '{kind}' store (attrs say {meta!r})")
    if meta.get("version") != STORE_VERSION:
        raise DataFormatError(path, f"store version {meta.get('version')} != {STORE_VERSION}",
                              "rerun preprocessing with this version of jointwsss")
    return group


def store_files(path: str | os.PathLike) -> tuple[int, int]:
    """(number of files, total bytes) under a store folder."""
    count = total = 0
    for root, _, files in os.walk(path):
        for name in files:
            count += 1
            total += os.path.getsize(os.path.join(root, name))
    return count, total
