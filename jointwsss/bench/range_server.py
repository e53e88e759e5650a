"""A local HTTP/1.1 file server on 127.0.0.1 with Range support, added latency, a bandwidth cap and faults.

Used by ``jointwsss bench transfer`` and by the tests of :mod:`jointwsss.io.ranged`. It serves the
files under ``root`` at ``http://127.0.0.1:<port>/<relative path>``, keeps connections alive, and
answers ``Range: bytes=a-b`` / ``bytes=a-`` with 206 (one range per request, as the ranged reader sends).

- ``latency_s``: every request waits this long before its answer (one simulated round trip).
- ``bandwidth_bytes_per_s``: bodies are written at most this fast (per connection), None = unlimited.
- ``ignore_range``: answer every GET with 200 and the whole file (a server without Range support).
- ``cut_gets`` / ``error_gets``: 1-based numbers of the GET requests whose body is cut after half
  (the connection closed) or that are answered 503 -- faults that a client must retry.
"""

from __future__ import annotations

import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_RANGE = re.compile(r"bytes=(\d+)-(\d*)")
_WRITE_CHUNK = 64 << 10


class RangeServer:
    """Serve ``root`` on 127.0.0.1 (an ephemeral port) until :meth:`close`; also a context manager."""

    def __init__(self, root: Path, *, latency_s: float = 0.0, bandwidth_bytes_per_s: float | None = None,
                 ignore_range: bool = False):
        self.root = Path(root)
        self.latency_s = latency_s
        self.bandwidth_bytes_per_s = bandwidth_bytes_per_s
        self.ignore_range = ignore_range
        self.cut_gets: set[int] = set()
        self.error_gets: set[int] = set()
        self.gets = 0
        self.bytes_sent = 0
        self.ranges: list[str | None] = []  # the Range header of every GET, in order
        self.paths: list[str] = []  # the path of every GET, in order
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out in separate writes; with Nagle on, each answer would wait for a
            # delayed ACK (~40 ms), which is not what a real server costs
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_GET(self):
                server._serve(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def url(self, relative: str) -> str:
        return self.base_url + relative.lstrip("/")

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        """Answer one GET: 404 outside ``root``, 503 for ``error_gets``, 416 for a range past the end, else
        200 / 206 with the body (half of it, then the connection closed, for ``cut_gets``)."""
        nth = self._record(handler)
        if self.latency_s:
            time.sleep(self.latency_s)
        file = (self.root / handler.path.lstrip("/").split("?")[0]).resolve()
        if not file.is_relative_to(self.root.resolve()) or not file.is_file():
            self._answer(handler, 404, {}, b"")
            return
        if nth in self.error_gets:
            self._answer(handler, 503, {}, b"")
            return
        size = file.stat().st_size
        answer = self._byte_range(handler, size)
        if answer is None:
            self._answer(handler, 416, {"Content-Range": f"bytes */{size}"}, b"")
            return
        start, last, status, headers = answer
        length = last - start + 1
        handler.send_response(status)
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Accept-Ranges", "none" if self.ignore_range else "bytes")
        handler.send_header("Content-Length", str(length))
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        to_send = length // 2 if nth in self.cut_gets else length
        self._send_body(handler, file, start, to_send)
        if to_send < length:
            handler.close_connection = True  # the cut: the client sees a short body

    def _record(self, handler: BaseHTTPRequestHandler) -> int:
        """Count the GET and log its Range header and path; returns its 1-based number."""
        with self._lock:
            self.gets += 1
            self.ranges.append(handler.headers.get("Range"))
            self.paths.append(handler.path)
            return self.gets

    def _byte_range(self, handler: BaseHTTPRequestHandler, size: int) -> tuple[int, int, int, dict] | None:
        """(first byte, last byte, status, extra headers) of the answer to a GET of a ``size``-byte file: 206 for
        a satisfiable Range, 200 for the whole file (no Range, or ``ignore_range``); None: unsatisfiable (416)."""
        match = _RANGE.fullmatch(handler.headers.get("Range", "") or "")
        if not match or self.ignore_range:
            return 0, size - 1, 200, {}
        start = int(match.group(1))
        last = min(int(match.group(2)) if match.group(2) else size - 1, size - 1)
        if start >= size or last < start:
            return None
        return start, last, 206, {"Content-Range": f"bytes {start}-{last}/{size}"}

    def _send_body(self, handler: BaseHTTPRequestHandler, file: Path, start: int, to_send: int) -> None:
        """Write ``to_send`` bytes of ``file`` from byte ``start`` in chunks, at most ``bandwidth_bytes_per_s``
        fast; stops (closing the connection) when the client hangs up."""
        with open(file, "rb") as f:
            f.seek(start)
            t0, sent = time.perf_counter(), 0
            while sent < to_send:
                chunk = f.read(min(_WRITE_CHUNK, to_send - sent))
                if not chunk:
                    break
                try:
                    handler.wfile.write(chunk)
                except OSError:  # the client hung up (e.g. it saw a 200 it did not want)
                    handler.close_connection = True
                    return
                sent += len(chunk)
                with self._lock:
                    self.bytes_sent += len(chunk)
                if self.bandwidth_bytes_per_s:
                    ahead_s = sent / self.bandwidth_bytes_per_s - (time.perf_counter() - t0)
                    if ahead_s > 0:
                        time.sleep(ahead_s)

    @staticmethod
    def _answer(handler: BaseHTTPRequestHandler, status: int, headers: dict, body: bytes) -> None:
        handler.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(body))}.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(body)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> RangeServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
