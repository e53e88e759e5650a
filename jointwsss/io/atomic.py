"""Write-to-temporary-then-rename, so an interrupted job never leaves a half file that looks finished."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextlib.contextmanager
def atomic_path(final_path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path of ``final_path``; move it into place only on success.

    Works for files and for directories (Zarr stores). The temporary lives in the same folder,
    so the final rename is atomic on POSIX file systems. On any exception the temporary is
    removed and whatever was at ``final_path`` before is left untouched.
    """
    final = Path(final_path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if not tmp.exists():
        raise FileNotFoundError(f"{tmp}: nothing was written for {final}")
    if tmp.is_dir() and final.exists():
        # os.replace cannot replace a non-empty directory: swap through a backup name.
        backup = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(final, backup)
        os.replace(tmp, final)
        _remove(backup)
    else:
        os.replace(tmp, final)
