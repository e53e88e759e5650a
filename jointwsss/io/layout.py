"""Where the preprocessed caches live inside ``cache_dir``: the paths every stage, rule and reader shares.

Kept free of zarr and torch so the Snakefile can import it cheaply.
"""

from __future__ import annotations

import os
from pathlib import Path


def file_sizes(folder: Path) -> dict[str, int]:
    """Bytes of each file directly in ``folder`` (a raw scene's ``scans/<scene>/``), by name in sorted order;
    {} where the folder is missing."""
    folder = Path(folder)
    return {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file()} if folder.is_dir() else {}

#: The per-scene Zarr stores (jointwsss.io.zarr_store): a scene's (or S3DIS room's) mesh vertices, its
#: kept frames, and the point-pixel correspondences between them.
STORE_KINDS = ("points", "frames", "corr")


def store_path(cache_dir: str | os.PathLike, kind: str, scene: str) -> Path:
    """``<cache_dir>/<kind>/<scene>.zarr``: the store of ``kind`` (one of STORE_KINDS) of one scene or room
    (``scene`` may be a Snakemake wildcard such as ``"{scene}"``)."""
    if kind not in STORE_KINDS:
        raise ValueError(f"store kind must be one of {STORE_KINDS}, got {kind!r}")
    return Path(cache_dir) / kind / f"{scene}.zarr"


def index_path(cache_dir: str | os.PathLike, split: str) -> Path:
    """``<cache_dir>/index/<split>.json``: the index of a split (its scenes, views and items)."""
    return Path(cache_dir) / "index" / f"{split}.json"
