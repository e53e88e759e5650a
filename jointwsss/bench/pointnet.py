"""`jointwsss bench pointnet`: the pure-PyTorch PointNet++ operators and training steps on one device.

Needs no dataset: the clouds are uniform random points in a 6 x 5 x 3 m box (a room's extent). For each
operator the result holds the time of both implementations the package has and whether they agree:

- neighbour search: on CPU the k-d tree (the CPU default) and the dense search with ``torch.cdist`` and with
  element-wise broadcasting (the GPU's), for the ball query and three-NN, with a check that all give the same
  neighbour indices;
- farthest point sampling: the NumPy loop (CPU default) and the torch loop, and on CUDA the captured CUDA graph,
  with bit-identity checks;
- a PointNet++ training step (forward, backward, Adam) per (width, points) size, with AMP on CUDA; on CPU also
  with the dense search, on CUDA also without the FPS graph, so the gain of each choice stays measurable.

With ``cache_dir`` it also reports the neighbourhoods the network gets on real clouds of a split: per SA layer
the mean distinct points per ball and the share of balls holding only their centre, for WyPR's radii and for
the given ones, and the radii :func:`~jointwsss.models.pointnet2.density_radii` suggests.
"""

from __future__ import annotations

import contextlib
import time

import torch
import torch.nn.functional as F

from jointwsss.models import pointnet2_ops as ops
from jointwsss.models.pointnet2 import PointNet2Seg, density_radii

#: (width, points per cloud) of the training-step timings: the CPU default, and on CUDA also a
#: mid-sized cloud and the paper's 40,000 points with the full (WyPR) widths.
CPU_SIZES = (("small", 4096),)
CUDA_SIZES = (("small", 4096), ("full", 16384), ("full", 40000))
ROOM_EXTENT_M = (6.0, 5.0, 3.0)


def _cloud(batch: int, num_points: int, seed: int, device: torch.device) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, num_points, 3, generator=gen) * torch.tensor(ROOM_EXTENT_M)).to(device)


def _milliseconds(fn, device: torch.device, reps: int) -> float:
    """Mean wall time of ``fn()`` over ``reps`` calls after one warm-up call (CUDA synchronised)."""
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return round((time.perf_counter() - t0) / reps * 1000, 3)


@contextlib.contextmanager
def _search(kind: str):
    """Route ball query, three-NN and FPS through one implementation: ``kdtree`` (CPU only), ``dense_cdist`` or
    ``dense_elementwise`` (restored afterwards)."""
    saved = ops.CPU_NEIGHBOUR_SEARCH, ops._pairwise_distance
    ops.CPU_NEIGHBOUR_SEARCH = "kdtree" if kind == "kdtree" else "dense"
    if kind == "dense_cdist":
        ops._pairwise_distance = ops._cdist_distance
    elif kind == "dense_elementwise":
        ops._pairwise_distance = ops._elementwise_distance
    try:
        yield
    finally:
        ops.CPU_NEIGHBOUR_SEARCH, ops._pairwise_distance = saved


@contextlib.contextmanager
def _cuda_graphs(enabled: bool):
    saved = ops.USE_CUDA_GRAPHS
    ops.USE_CUDA_GRAPHS = enabled
    try:
        yield
    finally:
        ops.USE_CUDA_GRAPHS = saved


def operator_timings(device: torch.device, *, batch: int, num_points: int, num_centres: int, reps: int) -> dict:
    """Milliseconds per call of each operator implementation on ``batch`` clouds of ``num_points``."""
    xyz = _cloud(batch, num_points, 0, device)
    centres = xyz[:, :num_centres].contiguous()
    chunk = centres[:, :128]
    impls = ["dense_cdist", "dense_elementwise"] + (["kdtree"] if device.type == "cpu" else [])
    out: dict = {"batch": batch, "points": num_points, "centres": num_centres,
                 "distance_chunk_ms": {"dense_cdist": _milliseconds(lambda: ops._cdist_distance(chunk, xyz), device, reps),
                                       "dense_elementwise": _milliseconds(
                                           lambda: ops._elementwise_distance(chunk, xyz), device, reps)},
                 "ball_query_ms": {}, "three_nn_ms": {}}
    balls, nearest = {}, {}
    for name in impls:
        with _search(name):
            out["ball_query_ms"][name] = _milliseconds(lambda: ops.ball_query(0.2, 64, xyz, centres), device, reps)
            out["three_nn_ms"][name] = _milliseconds(lambda: ops.three_nn(xyz, centres), device, reps)
            balls[name] = ops.ball_query(0.2, 64, xyz, centres)
            nearest[name] = ops.three_nn(xyz, centres)[1]
    out["same_neighbours"] = all(torch.equal(balls[n], balls[impls[0]]) and torch.equal(nearest[n], nearest[impls[0]])
                                 for n in impls)
    out["search_used"] = "kdtree" if device.type == "cpu" else "dense_elementwise"
    eager = ops._farthest_point_sample_eager
    out["fps_ms"] = {"torch_eager": _milliseconds(lambda: eager(xyz, num_centres), device, reps)}
    if device.type == "cpu":
        numpy_fps = ops._farthest_point_sample_numpy
        out["fps_ms"]["numpy"] = _milliseconds(lambda: numpy_fps(xyz, num_centres), device, reps)
        out["fps_numpy_identical"] = bool(torch.equal(numpy_fps(xyz, num_centres), eager(xyz, num_centres)))
    if device.type == "cuda":
        with _cuda_graphs(True):
            out["fps_ms"]["cuda_graph"] = _milliseconds(lambda: ops.farthest_point_sample(xyz, num_centres), device, reps)
            other = _cloud(batch, num_points, 1, device)  # a replay on new input, not only the captured one
            out["fps_graph_identical"] = bool(torch.equal(ops.farthest_point_sample(other, num_centres),
                                                          eager(other, num_centres)))
    return out


def step_timing(device: torch.device, *, width: str, num_points: int, batch: int, reps: int,
                cuda_graphs: bool = True, search: str | None = None) -> dict:
    """One PointNet++ training step (scene-label BCE on the max-pooled CAM, Adam), AMP on CUDA.

    ``search`` forces a neighbour-search implementation (see ``_search``); None = the device's default."""
    amp = device.type == "cuda"
    torch.manual_seed(0)
    net = PointNet2Seg(width=width).to(device).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    xyz = _cloud(batch, num_points, 2, device)
    features = torch.rand(batch, net.in_channels, num_points, device=device)
    labels = (torch.rand(batch, 20, device=device) > 0.7).float()

    def step():
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            _, cam = net(xyz, features)
        loss = F.binary_cross_entropy_with_logits(cam.float().amax(dim=-1), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with _cuda_graphs(cuda_graphs), (_search(search) if search else contextlib.nullcontext()):
        ms = _milliseconds(step, device, reps)
    result = {"width": width, "points": num_points, "batch": batch, "amp": amp, "ms_per_step": ms,
              "samples_per_second": round(batch * 1000 / ms, 2),
              "search": search or ("kdtree" if device.type == "cpu" else "dense_elementwise")}
    if device.type == "cuda":
        result["fps_cuda_graph"] = cuda_graphs
        result["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return result


def neighbourhood_report(clouds: torch.Tensor, width: str, radii: list[float] | None) -> dict:
    """Distinct points per ball on real clouds ``(B, N, 3)``: WyPR's radii, the given ones, and the suggestion."""
    report = {"clouds": int(clouds.shape[0]), "points": int(clouds.shape[1]), "width": width,
              "wypr": PointNet2Seg(width=width).neighbourhood_sizes(clouds),
              "suggested_radii": density_radii(clouds, width)}
    if radii:
        report["configured"] = PointNet2Seg(width=width, radii=radii).neighbourhood_sizes(clouds)
    return report


def bench_pointnet(device: torch.device, *, batch: int = 8, sizes=None, reps: int = 3,
                   op_points: int | None = None, clouds: torch.Tensor | None = None, width: str = "small",
                   radii: list[float] | None = None) -> dict:
    """Operator and training-step timings; ``sizes`` = [(width, points), ...] (default per device). With real
    ``clouds`` (B, N, 3) also the neighbours per ball of ``width`` and ``radii`` (:func:`neighbourhood_report`)."""
    if sizes is None:
        sizes = CUDA_SIZES if device.type == "cuda" else CPU_SIZES
    if op_points is None:
        op_points = 16384 if device.type == "cuda" else 4096
    result = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "threads": torch.get_num_threads(),
              "operators": operator_timings(device, batch=batch, num_points=op_points,
                                            num_centres=max(1, op_points // 8), reps=reps),
              "steps": []}
    for width, num_points in sizes:
        result["steps"].append(step_timing(device, width=width, num_points=num_points, batch=batch, reps=reps))
        if device.type == "cuda":
            result["steps"].append(step_timing(device, width=width, num_points=num_points, batch=batch, reps=reps,
                                               cuda_graphs=False))
        else:
            result["steps"].append(step_timing(device, width=width, num_points=num_points, batch=batch, reps=reps,
                                               search="dense_cdist"))
    if clouds is not None:
        result["neighbourhoods"] = neighbourhood_report(clouds, width, radii)
    return result


def summary_lines(result: dict) -> list[str]:
    """The log lines of a result of :func:`bench_pointnet`: operators and steps, then the neighbourhoods if measured."""
    ops = result["operators"]
    steps = ", ".join(f"{s['width']}/{s['points']}/{s['search']}: {s['ms_per_step']} ms" for s in result["steps"])
    lines = [f"on {result['device']}: ball query {ops['ball_query_ms']} ms (same neighbours: {ops['same_neighbours']}), "
             f"FPS {ops['fps_ms']} ms; steps {steps}"]
    nb = result.get("neighbourhoods")
    if nb is None:
        return lines
    lines += [f"{name} radii {[layer['radius'] for layer in nb[name]]} m -> distinct points per ball "
              f"{[layer['mean_distinct'] for layer in nb[name]]} (of nsample {[layer['nsample'] for layer in nb[name]]})"
              for name in ("wypr", "configured") if name in nb]
    return lines + [f"suggested radii for {nb['points']} points ({nb['width']}): {nb['suggested_radii']} m"]
