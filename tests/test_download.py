"""Resumable ScanNet downloads against a real HTTP server on 127.0.0.1 laid out like the ScanNet server."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from jointwsss.io import download as dl
from jointwsss.io.download import (
    SCENE_SUFFIXES,
    TEST_SCENE_SUFFIXES,
    DownloadError,
    download_file,
    download_label_tsv,
    download_scene,
    label_tsv_url,
    scene_file_url,
)
from jointwsss.io.errors import DataFormatError

RESOURCE_TSV = Path(dl.__file__).resolve().parents[1] / "resources" / "scannet" / "scannetv2-labels.combined.tsv"
TRAIN_SCENE = "scene0000_00"  # first scene of the official train split
TEST_SCENE = "scene0707_00"  # first scene of the official hidden-test split
CHUNK = 16 * 1024  # bytes per read: files of ~200 KB take about a dozen chunks
FAST = dict(chunk_bytes=CHUNK, progress=False, timeout_s=5.0)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class ScanNetLikeServer:
    """Serves ``root`` over HTTP with Range support; ``mode`` picks a misbehaviour per test.

    Modes: ``normal`` (206 + Content-Range, 416 past the end), ``cut_first_get`` (the first GET of
    each file announces the full length but sends half and closes), ``ignore_range`` (always 200),
    ``overclaim`` (always 200 announcing 1000 bytes more than it sends, then closes),
    ``grows_after_cut`` (like ``cut_first_get``, but later requests see the file 10 bytes longer),
    ``misplaced_first_get`` (the first GET of each file answers 206 with a range starting at byte 1).
    Every request is recorded as ``(method, path, {lower-cased header: value})``.
    """

    def __init__(self, root: Path):
        self.root = root
        self.mode = "normal"
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._gets_per_path: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_HEAD(self):
                server._serve(self, head=True)

            def do_GET(self):
                server._serve(self, head=False)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/scannet/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def gets(self, path_end: str = "") -> list[dict[str, str]]:
        return [h for m, p, h in self.requests if m == "GET" and p.endswith(path_end)]

    def _serve(self, handler: BaseHTTPRequestHandler, head: bool) -> None:
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self._lock:
            self.requests.append(("HEAD" if head else "GET", handler.path, headers))
            nth_get = self._gets_per_path.get(handler.path, 0) + (0 if head else 1)
            self._gets_per_path[handler.path] = nth_get
        rel = handler.path.removeprefix("/scannet/")
        file = self.root / rel
        if not handler.path.startswith("/scannet/") or not file.is_file():
            handler.send_error(404)
            return
        data = file.read_bytes()
        if self.mode == "grows_after_cut" and nth_get > 1:
            data += b"0123456789"
        size = len(data)
        handler.close_connection = True

        if self.mode == "overclaim":
            self._send(handler, 200, {"Content-Length": str(size + 1000)}, b"" if head else data)
            return
        if self.mode == "misplaced_first_get" and not head and nth_get == 1:
            self._send(handler, 206, {"Content-Length": str(size - 1), "Content-Range": f"bytes 1-{size - 1}/{size}"},
                       data[1:])
            return
        if self.mode in ("cut_first_get", "grows_after_cut") and not head and nth_get == 1:
            self._send(handler, 200, {"Content-Length": str(size)}, data[: size // 2])
            return
        match = re.fullmatch(r"bytes=(\d+)-", headers.get("range", ""))
        if match and self.mode != "ignore_range":
            start = int(match.group(1))
            if start >= size:
                self._send(handler, 416, {"Content-Range": f"bytes */{size}", "Content-Length": "0"}, b"")
                return
            body = data[start:]
            self._send(handler, 206, {"Content-Length": str(len(body)),
                                      "Content-Range": f"bytes {start}-{size - 1}/{size}"}, b"" if head else body)
            return
        self._send(handler, 200, {"Content-Length": str(size)}, b"" if head else data)

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/octet-stream")
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(body)
        handler.wfile.flush()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _no_proxy_no_backoff(monkeypatch):
    # urllib would send 127.0.0.1 through a proxy configured in the environment.
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(dl, "RETRY_BACKOFF_S", 0.01)


@pytest.fixture
def server(tmp_path):
    """A ScanNet-like server root with one train/val scene, one test scene and the label tsv."""
    root = tmp_path / "server"
    rng = np.random.default_rng(7)
    for scene, suffixes in ((TRAIN_SCENE, SCENE_SUFFIXES), (TEST_SCENE, TEST_SCENE_SUFFIXES)):
        for i, suffix in enumerate(suffixes):
            release = "v1" if suffix == ".sens" and scene == TRAIN_SCENE else "v2"
            path = root / release / "scans" / scene / f"{scene}{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(rng.bytes(150_000 + 10_007 * i))  # sizes not multiples of the chunk size
    (root / "v2" / "tasks").mkdir(parents=True)
    shutil.copyfile(RESOURCE_TSV, root / "v2" / "tasks" / "scannetv2-labels.combined.tsv")
    srv = ScanNetLikeServer(root)
    yield srv
    srv.close()


def served(server: ScanNetLikeServer, scene: str, suffix: str) -> Path:
    release = "v1" if suffix == ".sens" and scene == TRAIN_SCENE else "v2"
    return server.root / release / "scans" / scene / f"{scene}{suffix}"


# --- URLs and validation ---------------------------------------------------------------------------

def test_urls_follow_the_official_layout():
    for base in ("https://host.example/scannet/", "https://host.example/scannet", " https://host.example/scannet// "):
        assert scene_file_url(base, "scene0011_01", "_vh_clean_2.ply") == \
            "https://host.example/scannet/v2/scans/scene0011_01/scene0011_01_vh_clean_2.ply"
        assert label_tsv_url(base) == "https://host.example/scannet/v2/tasks/scannetv2-labels.combined.tsv"
    # train/val scenes take .sens from the v1 release, hidden-test scenes from v2
    assert scene_file_url("http://h/s/", "scene0011_01", ".sens") == \
        "http://h/s/v1/scans/scene0011_01/scene0011_01.sens"
    assert scene_file_url("http://h/s/", TEST_SCENE, ".sens") == f"http://h/s/v2/scans/{TEST_SCENE}/{TEST_SCENE}.sens"
    assert SCENE_SUFFIXES == (".sens", ".txt", "_vh_clean_2.ply", "_vh_clean_2.labels.ply", "_2d-label-filt.zip")
    assert TEST_SCENE_SUFFIXES == (".sens", ".txt", "_vh_clean_2.ply")


@pytest.mark.parametrize("base", [None, "", "   ", "ftp://host/scannet/", "host/scannet", "http://"])
def test_bad_base_url_names_the_config_key(base):
    with pytest.raises(DataFormatError, match=r"scannet\.base_url"):
        scene_file_url(base, TRAIN_SCENE, ".txt")
    with pytest.raises(DownloadError, match=r"scannet\.base_url"):
        label_tsv_url(base)


@pytest.mark.parametrize("scene", ["scene0000", "scene000_00", "Scene0000_00", "scene0000_00/../x", "../etc"])
def test_bad_scene_id_is_rejected(scene, tmp_path):
    with pytest.raises(DownloadError, match="sceneNNNN_NN"):
        scene_file_url("http://h/", scene, ".txt")
    with pytest.raises(DownloadError, match="sceneNNNN_NN"):
        download_scene("http://h/", scene, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_label_suffix_of_a_test_scene_is_rejected():
    with pytest.raises(DownloadError, match="_vh_clean_2.labels.ply"):
        scene_file_url("http://h/", TEST_SCENE, "_vh_clean_2.labels.ply")
    with pytest.raises(DownloadError, match="_vh_clean_3.ply"):
        scene_file_url("http://h/", TRAIN_SCENE, "_vh_clean_3.ply")


# --- downloads against the local server ------------------------------------------------------------

def test_full_scene_download(server, tmp_path):
    raw = tmp_path / "raw"
    paths = download_scene(server.base_url, TRAIN_SCENE, raw, **FAST)
    scene_dir = raw / "scans" / TRAIN_SCENE
    assert paths == [scene_dir / f"{TRAIN_SCENE}{s}" for s in SCENE_SUFFIXES]
    for suffix, path in zip(SCENE_SUFFIXES, paths):
        assert sha256(path) == sha256(served(server, TRAIN_SCENE, suffix))
    assert sorted(p.name for p in scene_dir.iterdir()) == sorted(f"{TRAIN_SCENE}{s}" for s in SCENE_SUFFIXES)
    assert [p for p in raw.rglob("*.part")] == []
    assert server.gets(f"/v1/scans/{TRAIN_SCENE}/{TRAIN_SCENE}.sens") != []
    assert len(server.gets()) == len(SCENE_SUFFIXES)
    assert all("range" not in h for h in server.gets())


def test_test_scene_skips_label_files(server, tmp_path):
    paths = download_scene(server.base_url, TEST_SCENE, tmp_path, **FAST)
    assert [p.name for p in paths] == [f"{TEST_SCENE}{s}" for s in TEST_SCENE_SUFFIXES]
    for suffix, path in zip(TEST_SCENE_SUFFIXES, paths):
        assert sha256(path) == sha256(served(server, TEST_SCENE, suffix))
    assert [p for _, p, _ in server.requests] == [f"/scannet/v2/scans/{TEST_SCENE}/{TEST_SCENE}{s}"
                                                  for s in TEST_SCENE_SUFFIXES]


def test_cut_transfer_fails_leaving_part_then_resumes_with_range(server, tmp_path):
    server.mode = "cut_first_get"
    suffix = "_vh_clean_2.ply"
    source = served(server, TRAIN_SCENE, suffix)
    half = source.stat().st_size // 2
    url = scene_file_url(server.base_url, TRAIN_SCENE, suffix)
    dest = tmp_path / "scans" / TRAIN_SCENE / source.name
    part = dest.with_name(dest.name + ".part")

    with pytest.raises(DownloadError, match="rerun to resume") as err:
        download_file(url, dest, max_retries=0, **FAST)
    assert url in str(err.value) and str(dest) in str(err.value)
    assert not dest.exists()
    assert part.stat().st_size == half
    assert part.read_bytes() == source.read_bytes()[:half]

    assert download_file(url, dest, max_retries=0, **FAST) == dest
    gets = server.gets(source.name)
    assert len(gets) == 2
    assert "range" not in gets[0]
    assert gets[1]["range"] == f"bytes={half}-"
    assert sha256(dest) == sha256(source)
    assert not part.exists()


def test_misplaced_range_on_a_fresh_download_is_retried(server, tmp_path):
    """A 206 whose Content-Range does not start at byte 0 of a download without a .part yet: retried from zero."""
    server.mode = "misplaced_first_get"
    source = served(server, TRAIN_SCENE, ".txt")
    dest = tmp_path / source.name
    download_file(scene_file_url(server.base_url, TRAIN_SCENE, ".txt"), dest, max_retries=1, **FAST)
    assert len(server.gets(source.name)) == 2
    assert sha256(dest) == sha256(source)


def test_cut_transfer_resumes_within_one_call(server, tmp_path):
    server.mode = "cut_first_get"
    source = served(server, TRAIN_SCENE, ".sens")
    dest = tmp_path / source.name
    download_file(scene_file_url(server.base_url, TRAIN_SCENE, ".sens"), dest, max_retries=2, **FAST)
    assert [h.get("range") for h in server.gets(source.name)] == [None, f"bytes={source.stat().st_size // 2}-"]
    assert sha256(dest) == sha256(source)
    assert not dest.with_name(dest.name + ".part").exists()


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    server.mode = "ignore_range"
    source = served(server, TRAIN_SCENE, "_2d-label-filt.zip")
    dest = tmp_path / source.name
    part = dest.with_name(dest.name + ".part")
    part.write_bytes(b"\xff" * 12345)  # stale bytes that must not end up in the result
    download_file(scene_file_url(server.base_url, TRAIN_SCENE, "_2d-label-filt.zip"), dest, **FAST)
    assert server.gets(source.name)[0]["range"] == "bytes=12345-"
    assert sha256(dest) == sha256(source)
    assert not part.exists()


def test_complete_part_answered_with_416_is_finished_without_body(server, tmp_path):
    source = served(server, TRAIN_SCENE, ".txt")
    dest = tmp_path / source.name
    dest.with_name(dest.name + ".part").write_bytes(source.read_bytes())
    download_file(scene_file_url(server.base_url, TRAIN_SCENE, ".txt"), dest, **FAST)
    assert [h.get("range") for h in server.gets(source.name)] == [f"bytes={source.stat().st_size}-"]
    assert sha256(dest) == sha256(source)


def test_404_names_url_and_config_key_and_writes_nothing(server, tmp_path):
    url = server.base_url + "v2/scans/scene0999_00/scene0999_00.txt"
    dest = tmp_path / "scans" / "scene0999_00" / "scene0999_00.txt"
    with pytest.raises(DownloadError) as err:
        download_file(url, dest, **FAST)
    message = str(err.value)
    assert url in message and str(dest) in message and "404" in message
    assert "scannet.base_url" in message and "terms" in message
    assert not dest.exists()
    assert not dest.with_name(dest.name + ".part").exists()
    assert len(server.gets()) == 1  # a 404 is not retried


def test_server_claiming_more_bytes_than_it_sends_fails(server, tmp_path):
    server.mode = "overclaim"
    source = served(server, TRAIN_SCENE, ".txt")
    dest = tmp_path / source.name
    url = scene_file_url(server.base_url, TRAIN_SCENE, ".txt")
    with pytest.raises(DownloadError, match=f"after 3 attempt.*{source.stat().st_size} of "
                                            f"{source.stat().st_size + 1000} bytes") as err:
        download_file(url, dest, max_retries=2, **FAST)
    assert url in str(err.value)
    assert not dest.exists()
    assert len(server.gets()) == 3


def test_file_changing_size_during_a_resume_fails_and_drops_the_part(server, tmp_path):
    server.mode = "grows_after_cut"
    source = served(server, TRAIN_SCENE, ".txt")
    size = source.stat().st_size
    dest = tmp_path / source.name
    with pytest.raises(DownloadError, match=f"size mismatch.*first reported {size} bytes, then {size + 10}"):
        download_file(scene_file_url(server.base_url, TRAIN_SCENE, ".txt"), dest, max_retries=3, **FAST)
    assert [h.get("range") for h in server.gets(source.name)] == [None, f"bytes={size // 2}-"]
    assert not dest.exists()
    assert not dest.with_name(dest.name + ".part").exists()


def test_complete_file_is_not_fetched_again(server, tmp_path):
    url = scene_file_url(server.base_url, TRAIN_SCENE, "_vh_clean_2.labels.ply")
    dest = tmp_path / "labels.ply"
    download_file(url, dest, **FAST)
    mtime = dest.stat().st_mtime_ns
    assert download_file(url, dest, **FAST) == dest
    assert len(server.gets()) == 1
    assert [m for m, _, _ in server.requests] == ["GET", "HEAD"]
    assert dest.stat().st_mtime_ns == mtime


def test_existing_file_of_wrong_size_is_replaced(server, tmp_path):
    source = served(server, TRAIN_SCENE, "_vh_clean_2.labels.ply")
    dest = tmp_path / source.name
    dest.write_bytes(b"truncated")
    download_file(scene_file_url(server.base_url, TRAIN_SCENE, "_vh_clean_2.labels.ply"), dest, **FAST)
    assert sha256(dest) == sha256(source)


def test_label_tsv_download(server, tmp_path):
    path = download_label_tsv(server.base_url, tmp_path / "raw", **FAST)
    assert path == tmp_path / "raw" / "scannetv2-labels.combined.tsv"
    assert path.read_bytes() == RESOURCE_TSV.read_bytes()
    assert server.requests[0][1] == "/scannet/v2/tasks/scannetv2-labels.combined.tsv"


def test_progress_without_a_terminal_logs_lines(server, tmp_path, caplog):
    url = scene_file_url(server.base_url, TRAIN_SCENE, ".txt")
    with caplog.at_level(logging.INFO, logger="jointwsss.io.download"):
        download_file(url, tmp_path / "x.txt", chunk_bytes=CHUNK, progress=True)
    size = served(server, TRAIN_SCENE, ".txt").stat().st_size
    assert url in caplog.text
    assert f"downloaded {tmp_path / 'x.txt'} ({size} bytes in" in caplog.text


def test_unreachable_server_exhausts_retries(tmp_path):
    with socket.socket() as probe:  # a port that was just free, so connecting to it is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/scannet/v2/x.txt"
    dest = tmp_path / "f.txt"
    with pytest.raises(DownloadError, match="after 2 attempt") as err:
        download_file(url, dest, max_retries=1, **FAST)
    assert url in str(err.value)
    assert not dest.exists() and not os.path.exists(str(dest) + ".part")
