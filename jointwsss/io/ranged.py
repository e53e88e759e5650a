"""A seekable, read-only file over HTTP Range requests, with a persistent per-file cache of the bytes fetched.

:class:`RangeFile` lets the existing parsers (:class:`jointwsss.io.sens.SensReader`,
:mod:`zipfile` via :class:`jointwsss.io.scannet_labels.LabelZip`) read a remote ScanNet file as if
it were local: every ``read`` becomes at most a few ``Range: bytes=a-b`` requests for the bytes not
yet cached. Reading a ``.sens`` this way fetches the header, the chain of 96-byte frame headers
(each gives the next offset) and then only the payloads of the frames asked for; a label zip costs
its central directory plus the entries read.

Cache (``cache_dir``): ``data`` is a sparse file holding every fetched byte at its own offset,
``ranges.json`` lists the fetched byte intervals, the file's URL path and size. A later run (another
``frames.skip``) serves the frame headers and already-fetched payloads from it and requests only
new payloads. ``ranges.json`` is written atomically after ``data`` is flushed, so an interrupted run
loses at most bytes it has to fetch again, never claims bytes it does not hold.

Robustness: dropped connections, short bodies, 5xx, 408 and 429 are retried with exponential
backoff (:data:`jointwsss.io.download.RETRY_BACKOFF_S`); every 206 answer's ``Content-Range`` and
body length are checked against the request; a server that ignores ``Range`` (answers 200 with the
whole file) is an error naming the fix ``scannet.transfer: whole``.
"""

from __future__ import annotations

import bisect
import http.client
import io
import json
import logging
import os
import time
import urllib.parse
from pathlib import Path

from jointwsss.io import download as dl
from jointwsss.io.atomic import atomic_path

logger = logging.getLogger(__name__)

#: Smallest request in bytes: a 96-byte frame header costs one round trip either way, and a few
#: hundred extra bytes are free next to it, but not the ~500 KB payload that follows.
MIN_REQUEST_BYTES = 1024
#: Largest read-ahead in bytes for sequential reads (zipfile reads entries in small pieces).
MAX_READAHEAD_BYTES = 1 << 20
#: Cached intervals separated by fewer bytes than this are fetched as one request (coalescing).
COALESCE_GAP_BYTES = 4096
_SAVE_EVERY_FETCHES = 256
RANGE_FIX = "set scannet.transfer: whole in the config to download whole files instead"


class RangeFile(io.RawIOBase):
    """Read ``url`` through HTTP Range requests; ``name`` is the URL (used in error messages).

    ``cache_dir``: folder of the persistent byte cache (created), or None for a temporary one.
    Attributes ``requests``, ``bytes_fetched``, ``size`` (bytes of the remote file) and
    ``seconds`` (time spent in requests) describe the transfer; :meth:`summary` formats them.
    """

    def __init__(self, url: str, *, cache_dir: str | os.PathLike | None = None, max_retries: int = 5,
                 timeout_s: float = 60.0):
        super().__init__()
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise dl.DownloadError(url, "is not an http(s) URL", f"check {dl.BASE_URL_KEY}")
        self.name = url
        self._parsed = parsed
        self._max_retries = max_retries
        self._timeout_s = timeout_s
        self._conn: http.client.HTTPConnection | None = None
        self.requests = 0
        self.bytes_fetched = 0
        self.seconds = 0.0
        self._pos = 0
        self._last_fetch_end = -1
        self._readahead = MIN_REQUEST_BYTES
        self._fetches_unsaved = 0
        self._starts: list[int] = []  # sorted, disjoint, non-adjacent fetched intervals [start, end)
        self._ends: list[int] = []
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.size: int | None = None
        if self.cache_dir is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            self._load_ranges()
            self._data = open(self.cache_dir / "data", "r+b" if (self.cache_dir / "data").exists() else "w+b")
        else:
            import tempfile

            self._data = tempfile.TemporaryFile()
        if self.size is None:
            self._fetch(0, 0)  # learns the size from Content-Range

    # -- the io.RawIOBase interface -----------------------------------------------------------
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError(f"{self.name}: negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer) -> int:
        n = max(0, min(len(buffer), self.size - self._pos))
        if n == 0:
            return 0
        start, end = self._pos, self._pos + n
        self._ensure(start, end)
        self._data.seek(start)
        got = self._data.readinto(memoryview(buffer)[:n])
        if got != n:  # the sparse file holds every fetched byte; a shortfall means the cache was tampered with
            raise dl.DownloadError(self.cache_dir or self.name, f"byte cache returned {got} of {n} bytes at {start}",
                                   f"delete {self.cache_dir} and rerun")
        self._pos = end
        return n

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._save_ranges()
        finally:
            self._data.close()
            if self._conn is not None:
                self._conn.close()
            super().close()

    # -- cache bookkeeping ------------------------------------------------------------------
    def _ranges_path(self) -> Path:
        return self.cache_dir / "ranges.json"

    def _load_ranges(self) -> None:
        path = self._ranges_path()
        if not path.exists() or not (self.cache_dir / "data").exists():
            return
        try:
            state = json.loads(path.read_text())
            if state["url_path"] != self._parsed.path:
                raise ValueError(f"cache is for {state['url_path']}")
            self.size = int(state["size"])
            for start, end in state["ranges"]:
                self._add_interval(int(start), int(end))
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("%s: unusable byte cache (%s); starting it afresh", path, exc)
            self.size, self._starts, self._ends = None, [], []
            (self.cache_dir / "data").unlink(missing_ok=True)

    def _save_ranges(self) -> None:
        if self.cache_dir is None or self.size is None:
            return
        self._data.flush()
        os.fsync(self._data.fileno())
        state = {"url_path": self._parsed.path, "size": self.size,
                 "ranges": [[s, e] for s, e in zip(self._starts, self._ends)]}
        with atomic_path(self._ranges_path()) as tmp:
            tmp.write_text(json.dumps(state))
        self._fetches_unsaved = 0

    def _add_interval(self, start: int, end: int) -> None:
        """Record [start, end) as cached, merging with overlapping or adjacent intervals."""
        i = bisect.bisect_left(self._ends, start)
        j = bisect.bisect_right(self._starts, end)
        if i < j:
            start, end = min(start, self._starts[i]), max(end, self._ends[j - 1])
        self._starts[i:j] = [start]
        self._ends[i:j] = [end]

    def _gaps(self, start: int, end: int) -> list[tuple[int, int]]:
        """Uncached sub-intervals of [start, end), gaps closer than COALESCE_GAP_BYTES merged."""
        gaps, cursor = [], start
        i = bisect.bisect_right(self._ends, start)
        while cursor < end:
            if i < len(self._starts) and self._starts[i] <= cursor:
                cursor = self._ends[i]
                i += 1
                continue
            gap_end = min(end, self._starts[i]) if i < len(self._starts) else end
            if gaps and cursor - gaps[-1][1] < COALESCE_GAP_BYTES:
                gaps[-1] = (gaps[-1][0], gap_end)
            else:
                gaps.append((cursor, gap_end))
            cursor = gap_end
        return gaps

    def _ensure(self, start: int, end: int) -> None:
        for gap_start, gap_end in self._gaps(start, end):
            # Sequential reads (zip entries read piecewise) grow a read-ahead window; others reset it.
            self._readahead = min(2 * self._readahead, MAX_READAHEAD_BYTES) \
                if gap_start == self._last_fetch_end else MIN_REQUEST_BYTES
            want_end = min(self.size, max(gap_end, gap_start + self._readahead))
            # never re-fetch bytes the cache already holds beyond the gap
            i = bisect.bisect_right(self._starts, gap_start)
            if i < len(self._starts):
                want_end = min(want_end, max(gap_end, self._starts[i]))
            self._fetch(gap_start, want_end)

    # -- HTTP --------------------------------------------------------------------------------
    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._parsed.scheme == "https" else http.client.HTTPConnection
            self._conn = cls(self._parsed.netloc, timeout=self._timeout_s)
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _fetch(self, start: int, end: int) -> None:
        """Fetch bytes [start, end) into the cache (end == start == 0: only learn the size)."""
        last_byte = max(end, start + 1) - 1
        failures = 0
        while True:
            try:
                body = self._request(start, last_byte)
                break
            except dl._Retry as exc:
                failures += 1
                if failures > self._max_retries:
                    raise dl.DownloadError(self.name, f"range request for bytes {start}-{last_byte} failed after "
                                           f"{failures} attempt(s); last error: {exc}",
                                           "check the network connection and rerun (fetched bytes are cached)") \
                        from None
                wait_s = min(dl.RETRY_BACKOFF_S * 2 ** (failures - 1), dl.MAX_RETRY_BACKOFF_S)
                logger.warning("%s: %s; retry %d/%d in %.2f s", self.name, exc, failures, self._max_retries, wait_s)
                time.sleep(wait_s)
        self._data.seek(start)
        self._data.write(body)
        self._add_interval(start, start + len(body))
        self._last_fetch_end = start + len(body)
        self._fetches_unsaved += 1
        if self._fetches_unsaved >= _SAVE_EVERY_FETCHES:
            self._save_ranges()

    def _request(self, start: int, last_byte: int) -> bytes:
        """One GET for bytes start..last_byte (inclusive, clipped by the server at the end); checked body."""
        path = self._parsed.path + (f"?{self._parsed.query}" if self._parsed.query else "")
        t0 = time.perf_counter()
        try:
            conn = self._connection()
            conn.request("GET", path, headers={"Range": f"bytes={start}-{last_byte}"})
            resp = conn.getresponse()
            self.requests += 1
            status, headers = resp.status, resp.headers
            if status != 206:
                # Do not read a 200's body: it is the whole file, which is what this mode avoids.
                self._drop_connection()
                self._status_error(status, resp.reason)
            body = resp.read()
        except http.client.IncompleteRead as exc:
            self._drop_connection()
            raise dl._Retry(f"connection dropped after {len(exc.partial)} of {len(exc.partial) + (exc.expected or 0)} "
                            f"bytes of range {start}-{last_byte}") from None
        except (OSError, http.client.HTTPException) as exc:
            self._drop_connection()
            raise dl._Retry(f"connection failed: {exc!r}") from None
        finally:
            self.seconds += time.perf_counter() - t0
        self.bytes_fetched += len(body)
        if headers.get("Connection", "").lower() == "close":
            self._drop_connection()
        match = dl._CONTENT_RANGE.fullmatch((headers.get("Content-Range") or "").strip())
        if not match or match.group(3) == "*":
            raise dl.DownloadError(self.name, f"answered 206 without a usable Content-Range "
                                   f"({headers.get('Content-Range')!r})", RANGE_FIX)
        got_start, got_last, total = int(match.group(1)), int(match.group(2)), int(match.group(3))
        if self.size is not None and total != self.size:
            raise dl.DownloadError(self.name, f"size changed on the server: {self.size} bytes first, then {total}",
                                   "the file changed on the server; delete its byte cache and rerun")
        self.size = total
        if got_start != start or got_last > last_byte or got_last != min(last_byte, total - 1):
            raise dl.DownloadError(self.name, f"asked for bytes {start}-{last_byte}, the server sent "
                                   f"{got_start}-{got_last}/{total}", RANGE_FIX)
        if len(body) != got_last - got_start + 1:
            raise dl._Retry(f"short body: {len(body)} of {got_last - got_start + 1} bytes of {start}-{got_last}")
        return body

    def _status_error(self, status: int, reason: str) -> None:
        if status == 200:
            raise dl.DownloadError(self.name, "the server ignored the HTTP Range request (answered 200 with the "
                                   "whole file), so single frames cannot be read from it", RANGE_FIX)
        if status == 416 and self.size is None:
            raise dl.DownloadError(self.name, "the file is empty (HTTP 416 for its first byte)", "re-check the URL")
        if status >= 500 or status in dl._RETRYABLE_HTTP:
            raise dl._Retry(f"HTTP {status} {reason}")
        raise dl.DownloadError(self.name, f"HTTP {status} {reason}", dl._ACCESS_FIX)

    def summary(self) -> str:
        """One line: requests, bytes fetched vs file size, seconds."""
        share = 100.0 * self.bytes_fetched / self.size if self.size else 0.0
        return (f"{self.name}: {self.requests} range requests, {self.bytes_fetched:,} of {self.size:,} bytes fetched "
                f"({share:.2f} %), {self.seconds:.1f} s")


def range_cache_dir(scene_dir: str | os.PathLike, file_name: str) -> Path:
    """``<scene_dir>/<file_name>.ranges``: the byte cache of one remote file read with :class:`RangeFile`."""
    return Path(scene_dir) / f"{file_name}.ranges"
