"""Fetch real ScanNet v2 scans from the official server, resumably, with the standard library only.

Facts about the official ``download-scannet.py`` this module relies on (users get that script and
the server's base URL by e-mail after accepting the ScanNet terms of use; neither is built in here):

* Per-scene files live at ``<base_url>/v2/scans/<scene>/<scene><suffix>``, where ``base_url`` is
  the URL from the e-mail, ending in a slash, and the release folder is simply appended to it.
* Exception: for scenes of the train/val release the script takes ``.sens`` from the v1 release,
  ``<base_url>/v1/scans/<scene>/<scene>.sens`` (it tells the user that v2 re-uses the v1 sensor
  streams). For hidden-test scenes the ``.sens`` comes from ``v2/scans`` like every other file.
* The label mapping table is ``<base_url>/v2/tasks/scannetv2-labels.combined.tsv`` and the script
  stores it at the top of the output folder.
* Suffixes offered for train/val scenes: ``.aggregation.json``, ``.sens``, ``.txt``,
  ``_vh_clean.ply``, ``_vh_clean_2.0.010000.segs.json``, ``_vh_clean_2.ply``, ``_vh_clean.segs.json``,
  ``_vh_clean.aggregation.json``, ``_vh_clean_2.labels.ply``, ``_2d-instance.zip``,
  ``_2d-instance-filt.zip``, ``_2d-label.zip``, ``_2d-label-filt.zip``. Test scenes only have
  ``.sens``, ``.txt``, ``_vh_clean.ply`` and ``_vh_clean_2.ply`` (no annotations).
* The script writes ``<out>/scans/<scene>/<scene><suffix>`` (and the tsv as
  ``<out>/scannetv2-labels.combined.tsv``); it puts test scenes in ``scans_test/``, whereas this
  pipeline keeps every scene under ``scans/`` so one path pattern serves all splits.

This pipeline needs only a handful of those files (:data:`SCENE_SUFFIXES`); a ``.sens`` alone is
hundreds of MB to several GB, so downloads stream to ``<dest>.part`` and resume with HTTP ``Range``
requests after a dropped connection or an interrupted run. The ``.part`` file is the resume state,
which is why this module does not go through :func:`jointwsss.io.atomic.atomic_path` (its
temporary names are random and removed on failure); the same guarantee holds nonetheless: the
final path only ever appears, via :func:`os.replace`, once the byte count has been verified.
"""

from __future__ import annotations

import functools
import http.client
import logging
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Iterable

from jointwsss.io.errors import DataFormatError
from jointwsss.io.scannet_labels import SCENE_ID_PATTERN, read_split, split_path

logger = logging.getLogger(__name__)

#: Per-scene files of a labelled (train/val) scene that this pipeline reads: sensor stream, scene
#: metadata (axis alignment), annotation mesh, its nyu40 vertex labels, filtered 2D label images.
SCENE_SUFFIXES: tuple[str, ...] = (".sens", ".txt", "_vh_clean_2.ply", "_vh_clean_2.labels.ply", "_2d-label-filt.zip")
#: Per-scene files of a hidden-test scene that this pipeline reads (the release has no labels for them).
TEST_SCENE_SUFFIXES: tuple[str, ...] = (".sens", ".txt", "_vh_clean_2.ply")

#: Files that ``scannet.transfer: sampled`` reads with HTTP Range requests in the frames stage
#: (:mod:`jointwsss.io.ranged`) instead of downloading them whole.
RANGED_SUFFIXES: tuple[str, ...] = (".sens", "_2d-label-filt.zip")
TRANSFERS = ("sampled", "whole")


def scene_suffixes(test: bool, transfer: str = "whole") -> tuple[str, ...]:
    """Suffixes of the files downloaded whole for a scene: all it needs, less the ranged ones for ``sampled``."""
    if transfer not in TRANSFERS:
        raise ValueError(f"scannet.transfer must be one of {TRANSFERS}, got {transfer!r}")
    suffixes = TEST_SCENE_SUFFIXES if test else SCENE_SUFFIXES
    return tuple(s for s in suffixes if transfer == "whole" or s not in RANGED_SUFFIXES)


#: Every per-scene suffix the official release offers for train/val scenes.
RELEASE_SCENE_SUFFIXES: tuple[str, ...] = (
    ".aggregation.json", ".sens", ".txt", "_vh_clean.ply", "_vh_clean_2.0.010000.segs.json",
    "_vh_clean_2.ply", "_vh_clean.segs.json", "_vh_clean.aggregation.json", "_vh_clean_2.labels.ply",
    "_2d-instance.zip", "_2d-instance-filt.zip", "_2d-label.zip", "_2d-label-filt.zip",
)
#: Every per-scene suffix the official release offers for hidden-test scenes.
RELEASE_TEST_SCENE_SUFFIXES: tuple[str, ...] = (".sens", ".txt", "_vh_clean.ply", "_vh_clean_2.ply")

LABEL_TSV_NAME = "scannetv2-labels.combined.tsv"

#: First wait in seconds before retrying a failed transfer; doubles per retry up to
#: :data:`MAX_RETRY_BACKOFF_S`. Module-level so tests can shorten it.
RETRY_BACKOFF_S = 1.0
MAX_RETRY_BACKOFF_S = 30.0

BASE_URL_KEY = "scannet.base_url"
_ACCESS_FIX = (f"check {BASE_URL_KEY} (the URL from the ScanNet access e-mail) and that you accepted "
               "the ScanNet terms of use")
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)")
# The 4xx answers worth retrying (request timeout, rate limit); every 5xx is retried too, other 4xx are not.
_RETRYABLE_HTTP = frozenset({408, 429})


class DownloadError(DataFormatError):
    """A download failed; the message names the destination file, the URL and what to do."""


@functools.lru_cache(maxsize=1)
def _test_scene_ids() -> frozenset[str]:
    """Scene ids of the ScanNet v2 hidden-test split, from the packaged official split list."""
    return frozenset(read_split(split_path("test")))


def is_test_scene(scene_id: str) -> bool:
    """True for a scene of the hidden-test split (no annotation files on the server)."""
    return _check_scene_id(scene_id) in _test_scene_ids()


def _check_base_url(base_url: str | None) -> str:
    """Return ``base_url`` with exactly one trailing slash, or raise naming the config key."""
    if base_url is None or not str(base_url).strip():
        raise DownloadError(BASE_URL_KEY, "is missing or empty, so ScanNet cannot be downloaded",
                            "set it to the base URL given in the ScanNet access e-mail (after accepting the "
                            "ScanNet terms of use), or point the config at an existing local copy")
    url = str(base_url).strip()
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise DownloadError(BASE_URL_KEY, f"{url!r} is not an http(s) URL",
                            "use the base URL given in the ScanNet access e-mail, e.g. https://<host>/<path>/")
    return url.rstrip("/") + "/"


def _check_scene_id(scene_id: str) -> str:
    if not isinstance(scene_id, str) or not SCENE_ID_PATTERN.fullmatch(scene_id):
        raise DownloadError(str(scene_id), "is not a ScanNet scene id",
                            "scene ids look like scene0000_00 (sceneNNNN_NN); take them from the split lists")
    return scene_id


def scene_file_url(base_url: str, scene_id: str, suffix: str) -> str:
    """URL of ``<scene_id><suffix>`` on the ScanNet server (``.sens`` of train/val scenes from v1)."""
    base = _check_base_url(base_url)
    _check_scene_id(scene_id)
    test = is_test_scene(scene_id)
    offered = RELEASE_TEST_SCENE_SUFFIXES if test else RELEASE_SCENE_SUFFIXES
    if suffix not in offered:
        raise DownloadError(f"{scene_id}{suffix}",
                            f"the ScanNet release has no file with suffix {suffix!r} for "
                            f"{'hidden-test' if test else 'train/val'} scene {scene_id}",
                            f"use one of {', '.join(offered)}")
    release = "v1/scans" if suffix == ".sens" and not test else "v2/scans"
    return f"{base}{release}/{scene_id}/{scene_id}{suffix}"


def label_tsv_url(base_url: str) -> str:
    """URL of the ScanNet v2 label mapping table ``scannetv2-labels.combined.tsv``."""
    return f"{_check_base_url(base_url)}v2/tasks/{LABEL_TSV_NAME}"


def _part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _size_or_zero(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _content_length(headers) -> int | None:
    value = headers.get("Content-Length")
    return int(value) if value is not None and value.strip().isdigit() else None


def _remote_size(url: str, timeout_s: float) -> int | None:
    """Size in bytes the server reports for ``url`` (HEAD request), or None when it does not say."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout_s) as resp:
            return _content_length(resp.headers)
    except (OSError, http.client.HTTPException) as exc:
        logger.warning("could not check the size of %s (%s)", url, exc)
        return None


class _Retry(Exception):
    """A transfer attempt failed in a way that another attempt may fix."""


def _open_progress(progress: bool, dest: Path, total: int | None, initial: int):
    """A tqdm bar on an interactive terminal, else None (callers then log plain lines)."""
    if not (progress and sys.stderr.isatty()):
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                desc=dest.name, leave=False)


def _raise_unless_complete(exc: urllib.error.HTTPError, url: str, dest: Path, part: Path, offset: int) -> None:
    """Raise for an HTTP error answer to a GET from byte ``offset``: :class:`_Retry` for a rejected resume
    (the ``.part`` is removed) and for 5xx / 408 / 429, :class:`DownloadError` for any other status.

    Returns only for a 416 whose ``Content-Range: bytes */<size>`` says the ``.part`` already holds every byte.
    """
    if exc.code == 416 and offset:
        match = _UNSATISFIED_RANGE.fullmatch((exc.headers.get("Content-Range") or "").strip())
        if match and int(match.group(1)) == offset:
            return
        logger.warning("%s: server rejected resuming at byte %d; restarting from zero", url, offset)
        part.unlink()
        raise _Retry(f"HTTP 416 for a resume at byte {offset}") from None
    if exc.code >= 500 or exc.code in _RETRYABLE_HTTP:
        raise _Retry(f"HTTP {exc.code} {exc.reason}") from None
    # 401 / 403 / 404 / 410 (no access, no such file) and every other 4xx: retrying will not help
    raise DownloadError(dest, f"HTTP {exc.code} {exc.reason} for {url}", _ACCESS_FIX) from None


def _body_range(resp, url: str, dest: Path, part: Path, offset: int) -> tuple[int, int | None, str]:
    """Where the body of a successful answer to a GET from byte ``offset`` goes: (the byte of the file it
    starts at, the file's total size in bytes or None when unknown, the ``.part`` open mode).

    A 206 appends at ``offset`` (:class:`_Retry`, removing the ``.part``, if its Content-Range starts
    elsewhere); a 200 is the whole file, written from byte 0; any other status is a :class:`DownloadError`.
    """
    length = _content_length(resp.headers)
    if resp.status == 206:
        match = _CONTENT_RANGE.fullmatch((resp.headers.get("Content-Range") or "").strip())
        if not match or int(match.group(1)) != offset:
            # Appending a range that does not start where the .part ends would corrupt the file.
            logger.warning("%s: unusable Content-Range %r for a resume at byte %d; restarting from zero",
                           url, resp.headers.get("Content-Range"), offset)
            part.unlink(missing_ok=True)  # a fresh download (offset 0) has no .part yet
            raise _Retry("unusable Content-Range")
        total = int(match.group(3)) if match.group(3) != "*" else (
            offset + length if length is not None else None)
        return offset, total, "ab"
    if resp.status == 200:
        if offset:
            logger.warning("%s: server ignored the Range request; restarting from zero", url)
        return 0, length, "wb"
    raise DownloadError(dest, f"unexpected HTTP {resp.status} {resp.reason} for {url}", _ACCESS_FIX)


def _remember_total(total: int | None, known_total: list, url: str, dest: Path, part: Path) -> None:
    """Store the total size (bytes) an answer reports in ``known_total``; a :class:`DownloadError` (removing the
    ``.part``) if an earlier attempt was told another size."""
    if total is None:
        return
    if known_total[0] is not None and total != known_total[0]:
        part.unlink(missing_ok=True)
        raise DownloadError(dest, f"size mismatch for {url}: the server first reported {known_total[0]} "
                            f"bytes, then {total}", "the file changed on the server; rerun to fetch it again")
    known_total[0] = total


def _copy_body(resp, out, received: int, total: int | None, chunk_bytes: int, bar) -> int:
    """Copy the response body to the open file ``out`` in ``chunk_bytes`` reads, starting at file byte
    ``received``; stops early once past ``total``. Returns the file byte reached; a dropped connection is a
    :class:`_Retry`."""
    while True:
        try:
            chunk = resp.read(chunk_bytes)
        except (OSError, http.client.HTTPException) as exc:
            raise _Retry(f"connection dropped at byte {received}: {exc}") from None
        if not chunk:
            return received
        out.write(chunk)
        received += len(chunk)
        if bar is not None:
            bar.update(len(chunk))
        if total is not None and received > total:
            return received


def _receive(resp, url: str, dest: Path, part: Path, offset: int, total: int | None, mode: str, *,
             chunk_bytes: int, progress: bool) -> int:
    """Write the body to ``part`` (``mode`` "ab": after its first ``offset`` bytes, "wb": from scratch), synced
    to disk, with a progress bar or log line if ``progress``; returns the bytes the ``.part`` holds then."""
    bar = _open_progress(progress, dest, total, offset)
    if bar is None and progress:
        logger.info("downloading %s -> %s (%s bytes%s)", url, dest, "unknown" if total is None else total,
                    f", resuming at byte {offset}" if offset else "")
    try:
        with open(part, mode) as out:
            received = _copy_body(resp, out, offset, total, chunk_bytes, bar)
            out.flush()
            os.fsync(out.fileno())
    finally:
        if bar is not None:
            bar.close()
    return received


def _verified_total(url: str, dest: Path, part: Path, received: int, total: int | None) -> int | None:
    """``total`` once the ``.part`` holds exactly ``received == total`` bytes (None, with a warning, if the total
    is unknown); :class:`_Retry` for a short body, :class:`DownloadError` (removing the ``.part``) for a long one."""
    if total is None:
        logger.warning("%s: the server did not report a size; %d received bytes cannot be verified", url, received)
        return None
    if received > total:
        part.unlink()
        raise DownloadError(dest, f"size mismatch for {url}: received more than the {total} bytes announced",
                            "the server response is inconsistent; rerun, and report it if it persists")
    if received < total:
        # urllib returns a short body silently when the peer closes early; this is that case.
        raise _Retry(f"connection closed after {received} of {total} bytes")
    return total


def _attempt(url: str, dest: Path, part: Path, known_total: list, *, chunk_bytes: int, timeout_s: float,
             progress: bool) -> int | None:
    """One GET, resuming from the current ``.part`` size; returns the verified total (None: unknown).

    Raises :class:`_Retry` for failures another attempt may fix and :class:`DownloadError` for the
    others. ``known_total`` is a one-element list carrying the total size learned by earlier attempts
    of the same call, so a server that changes its story is caught.
    """
    offset = _size_or_zero(part)
    request = urllib.request.Request(url)
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        resp = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        exc.close()
        _raise_unless_complete(exc, url, dest, part, offset)
        return offset  # the .part already holds every byte of the file
    except (OSError, http.client.HTTPException) as exc:
        raise _Retry(f"cannot connect: {exc}") from None

    with resp:
        offset, total, mode = _body_range(resp, url, dest, part, offset)
        _remember_total(total, known_total, url, dest, part)
        received = _receive(resp, url, dest, part, offset, total, mode, chunk_bytes=chunk_bytes, progress=progress)
    return _verified_total(url, dest, part, received, total)


def download_file(url: str, dest: Path, *, chunk_bytes: int = 1 << 20, max_retries: int = 5, timeout_s: float = 60.0,
                  progress: bool = True) -> Path:
    """Download ``url`` to ``dest``, resuming from ``<dest>.part``; return ``dest``.

    ``chunk_bytes`` is the read size per step, ``timeout_s`` the socket timeout in seconds per
    connect / read, ``max_retries`` how many failed attempts (dropped connections, 5xx) are retried
    within this call, with a doubling pause starting at :data:`RETRY_BACKOFF_S` seconds.

    An existing ``dest`` is kept without a GET when a HEAD request reports the same size or no size;
    a different size replaces it. The ``.part`` file is kept when retries run out, so a rerun
    resumes. Raises :class:`DownloadError` (a :class:`DataFormatError`) naming ``dest`` and ``url``.
    """
    dest = Path(dest)
    part = _part_path(dest)
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise DownloadError(dest, f"{url!r} is not an http(s) URL", f"check {BASE_URL_KEY}")
    if dest.is_file():
        remote = _remote_size(url, timeout_s)
        local = dest.stat().st_size
        if remote is None or remote == local:
            logger.debug("%s already present (%d bytes); not downloading again", dest, local)
            return dest
        logger.warning("%s has %d bytes but %s has %d; downloading it again", dest, local, url, remote)
    dest.parent.mkdir(parents=True, exist_ok=True)

    known_total: list[int | None] = [None]
    started = time.monotonic()
    failures = 0
    while True:
        try:
            total = _attempt(url, dest, part, known_total, chunk_bytes=chunk_bytes, timeout_s=timeout_s,
                             progress=progress)
            break
        except _Retry as exc:
            failures += 1
            if failures > max_retries:
                kept = _size_or_zero(part)
                raise DownloadError(dest, f"download of {url} failed after {failures} attempt(s); last error: {exc}",
                                    f"{kept} bytes are kept in {part.name}; rerun to resume" if kept else
                                    "check the network connection and rerun") from None
            wait_s = min(RETRY_BACKOFF_S * 2 ** (failures - 1), MAX_RETRY_BACKOFF_S)
            logger.warning("%s: %s; retry %d/%d in %.1f s", url, exc, failures, max_retries, wait_s)
            time.sleep(wait_s)

    size = _size_or_zero(part)
    if total is not None and size != total:  # the .part is ours alone, so this guards against surprises
        raise DownloadError(dest, f"size mismatch for {url}: {size} bytes on disk, {total} expected",
                            f"delete {part.name} and rerun")
    os.replace(part, dest)
    if progress:
        logger.info("downloaded %s (%d bytes in %.1f s)", dest, size, time.monotonic() - started)
    return dest


def scene_dir(raw_dir: Path, scene_id: str) -> Path:
    """``<raw_dir>/scans/<scene_id>``: where the files of one scene are stored (official layout)."""
    return Path(raw_dir) / "scans" / _check_scene_id(scene_id)


def download_scene(base_url: str, scene_id: str, raw_dir: Path, suffixes: Iterable[str] = SCENE_SUFFIXES,
                   **kw) -> list[Path]:
    """Download ``<scene_id><suffix>`` for each suffix into ``<raw_dir>/scans/<scene_id>/``.

    For a hidden-test scene, suffixes the release does not hold for test scenes (the annotation
    files) are skipped with a log line, so the default works for every split. ``kw`` goes to
    :func:`download_file`. Returns the local paths in the order of ``suffixes``.
    """
    _check_base_url(base_url)
    folder = scene_dir(raw_dir, scene_id)
    test = is_test_scene(scene_id)
    paths = []
    for suffix in suffixes:
        if test and suffix not in RELEASE_TEST_SCENE_SUFFIXES and suffix in RELEASE_SCENE_SUFFIXES:
            logger.info("%s is a hidden-test scene without %s files; skipping", scene_id, suffix)
            continue
        url = scene_file_url(base_url, scene_id, suffix)
        paths.append(download_file(url, folder / f"{scene_id}{suffix}", **kw))
    return paths


def download_label_tsv(base_url: str, raw_dir: Path, **kw) -> Path:
    """Download the label mapping table to ``<raw_dir>/scannetv2-labels.combined.tsv``."""
    return download_file(label_tsv_url(base_url), Path(raw_dir) / LABEL_TSV_NAME, **kw)
