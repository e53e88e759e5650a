"""`jointwsss bench transfer`: ``scannet.transfer`` sampled vs whole against a local server with latency and a bandwidth cap.

The stream is the realistic ``.sens`` of :mod:`jointwsss.bench.frame_extraction` (default 1,500 frames,
1296x968 JPEG colour + 640x480 zlib depth), served by :class:`jointwsss.bench.range_server.RangeServer`
on 127.0.0.1, which waits ``latency`` before every answer (one round trip) and caps each
connection's bandwidth. Per latency both paths build the same ``frames`` store at ``skip``:

- ``sampled``: :func:`jointwsss.preprocess.frames.build_frames_store_sampled` (HTTP Range: header,
  frame-header chain, sampled payloads), cold byte cache;
- ``whole``: :func:`jointwsss.io.download.download_file` of the complete ``.sens``, then
  :func:`jointwsss.preprocess.frames.build_frames_store` on the local copy.

Reported: bytes the server sent, requests, wall seconds. From the measured requests and bytes per
frame, an estimate for all of ScanNetV2 at a stated round trip, bandwidth and concurrency.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

SCENE = "scene0000_00"  # a train scene: its .sens is served from v1/scans/ like the real server's
# ScanNetV2 facts (DESIGN.md, the ScanNet README): 1,513 scans, ~2.5 M frames, ~1.2 TB of which ~80 % .sens.
SCANNET_SCANS = 1513
SCANNET_FRAMES = 2_500_000
SCANNET_SENS_BYTES = 0.8 * 1.2e12
# _vh_clean_2.ply + _vh_clean_2.labels.ply + .txt of a scan, downloaded whole in both modes (an assumption).
SMALL_FILES_BYTES_PER_SCAN = 10e6
_FRAMES_KW = dict(image_size=(320, 240), min_pixel_fraction=0.01)


def _estimate(sampled_bytes_per_frame: float, requests_per_frame: float, *, rtt_s: float, bandwidth_bytes_per_s: float,
              concurrency: int) -> dict:
    """Wall hours for all of ScanNetV2: the slower of round trips (per stream) and bytes (shared bandwidth)."""
    frames_per_scan = SCANNET_FRAMES / SCANNET_SCANS
    sampled_bytes = SCANNET_FRAMES * sampled_bytes_per_frame + SCANNET_SCANS * SMALL_FILES_BYTES_PER_SCAN
    latency_s = SCANNET_SCANS * frames_per_scan * requests_per_frame * rtt_s / concurrency
    sampled_s = max(latency_s, sampled_bytes / bandwidth_bytes_per_s)
    whole_bytes = SCANNET_SENS_BYTES + SCANNET_SCANS * (SMALL_FILES_BYTES_PER_SCAN + 2e6)  # + label zips ~2 MB
    whole_s = whole_bytes / bandwidth_bytes_per_s
    return {
        "assumptions": {"scans": SCANNET_SCANS, "frames": SCANNET_FRAMES, "sens_bytes": SCANNET_SENS_BYTES,
                        "small_files_bytes_per_scan": SMALL_FILES_BYTES_PER_SCAN, "round_trip_s": rtt_s,
                        "bandwidth_bytes_per_s": bandwidth_bytes_per_s, "concurrent_scenes": concurrency,
                        "note": "sampled is bound by round trips (one per frame header, per stream, streams in "
                                "parallel) or by bytes over the shared bandwidth, whichever is slower; whole by "
                                "bytes. Label zips of sampled frames are not in the measured stream"},
        "sampled_bytes": round(sampled_bytes), "sampled_hours": round(sampled_s / 3600, 2),
        "whole_bytes": round(whole_bytes), "whole_hours": round(whole_s / 3600, 2),
    }


def bench_transfer(work_dir: Path, *, num_frames: int = 1500, skip: int = 100, latencies_s=(0.002, 0.02),
                   bandwidth_bytes_per_s: float = 100e6, estimate_rtt_s: float = 0.05,
                   estimate_bandwidth_bytes_per_s: float = 12.5e6, estimate_concurrency: int = 8) -> dict:
    """Run sampled and whole at each latency; returns the JSON-serialisable result."""
    from jointwsss.bench.frame_extraction import write_bench_sens
    from jointwsss.bench.range_server import RangeServer
    from jointwsss.io.download import download_file, scene_file_url
    from jointwsss.io.sens import SensReader
    from jointwsss.preprocess.frames import build_frames_store, build_frames_store_sampled

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    sens, reused = write_bench_sens(work_dir / f"frame_extraction_{num_frames}.sens", num_frames)
    root = work_dir / "transfer_server"
    served = root / "v1" / "scans" / SCENE / f"{SCENE}.sens"
    served.parent.mkdir(parents=True, exist_ok=True)
    if served.exists() and not served.samefile(sens):  # a link to another stream (another num_frames)
        served.unlink()
    if not served.exists():
        os.link(sens, served)
    size = sens.stat().st_size
    with SensReader(sens) as reader:
        sampled_ids = range(0, len(reader), skip)
        sampled_payload = sum(reader.frames[i].color_size + reader.frames[i].depth_size for i in sampled_ids)
    runs = []
    for latency in latencies_s:
        row = {"latency_s": latency, "bandwidth_bytes_per_s": bandwidth_bytes_per_s}
        scratch = work_dir / "transfer_scratch"
        shutil.rmtree(scratch, ignore_errors=True)
        scene_dir = scratch / "scans" / SCENE
        with RangeServer(root, latency_s=latency, bandwidth_bytes_per_s=bandwidth_bytes_per_s) as server:
            t0 = time.perf_counter()
            summary = build_frames_store_sampled(scene_dir, scratch / "sampled.zarr", base_url=server.base_url,
                                                 with_labels=False, skip=skip, **_FRAMES_KW)
            row["sampled"] = {"seconds": round(time.perf_counter() - t0, 2), "bytes": server.bytes_sent,
                              "requests": server.gets, "share_of_sens": round(server.bytes_sent / size, 4),
                              "frames_kept": summary["frames_kept"]}
            gets, sent = server.gets, server.bytes_sent
            t0 = time.perf_counter()
            local = scratch / "whole" / "scans" / SCENE / f"{SCENE}.sens"
            download_file(scene_file_url(server.base_url, SCENE, ".sens"), local, chunk_bytes=4 << 20, progress=False)
            build_frames_store(local.parent, scratch / "whole.zarr", skip=skip, **_FRAMES_KW)
            row["whole"] = {"seconds": round(time.perf_counter() - t0, 2), "bytes": server.bytes_sent - sent,
                            "requests": server.gets - gets}
        row["speedup"] = round(row["whole"]["seconds"] / row["sampled"]["seconds"], 2)
        runs.append(row)
        shutil.rmtree(scratch, ignore_errors=True)
    first = runs[0]["sampled"]
    return {
        "stream": {"file": str(sens), "reused": reused, "bytes": size, "frames": num_frames,
                   "color": "1296x968 JPEG", "depth": "640x480 zlib", "skip": skip,
                   "sampled_frames": len(sampled_ids), "sampled_payload_bytes": sampled_payload},
        "runs": runs,
        "scannet_estimate": _estimate(first["bytes"] / num_frames, first["requests"] / num_frames,
                                      rtt_s=estimate_rtt_s, bandwidth_bytes_per_s=estimate_bandwidth_bytes_per_s,
                                      concurrency=estimate_concurrency),
    }


def summary_lines(result: dict) -> list[str]:
    """The log lines of a result of :func:`bench_transfer`: one per latency, then the ScanNetV2 estimate."""
    lines = [f"at {run['latency_s'] * 1000:.0f} ms: sampled {run['sampled']['seconds']:.2f} s, "
             f"{100 * run['sampled']['share_of_sens']:.2f} % of the .sens; whole {run['whole']['seconds']:.2f} s "
             f"({run['speedup']:.1f}x)" for run in result["runs"]]
    est = result["scannet_estimate"]
    return lines + [f"ScanNetV2 estimate sampled {est['sampled_hours']:.1f} h vs whole {est['whole_hours']:.1f} h"]
