"""`jointwsss info`: a human summary of a raw ScanNet scene folder.

Reads only headers, poses and labels (never decodes all frames), so it is quick on real multi-GB scans.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from jointwsss.classes import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES, nyu40_to_class_lut
from jointwsss.io.errors import DataFormatError
from jointwsss.io.layout import file_sizes


def read_scene_meta(path: Path) -> dict[str, str]:
    """Parse ScanNet's ``<scene>.txt`` (``key = value`` lines) into a dict of strings."""
    meta = {}
    for line in path.read_text().splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            meta[key.strip()] = value.strip()
    return meta


def summarize(scene_dir: Path) -> dict:
    """Summary of one scene folder ``scans/<scene>/`` as a JSON-serialisable dict."""
    from jointwsss.io.ply import read_label_ply, read_mesh_ply
    from jointwsss.io.scannet_labels import LabelZip
    from jointwsss.io.sens import SensReader

    scene_dir = Path(scene_dir)
    if not scene_dir.is_dir():
        raise DataFormatError(scene_dir, "is not a folder", "pass a scene folder such as data/raw/scannet/scans/scene0000_00")
    scene = scene_dir.name
    files = file_sizes(scene_dir)
    out: dict = {"scene": scene, "path": str(scene_dir), "files_bytes": files}

    sens_path = scene_dir / f"{scene}.sens"
    if sens_path.exists():
        with SensReader(sens_path) as reader:
            h = reader.header
            poses = reader.camera_to_world_all()
        invalid = np.flatnonzero(~np.isfinite(poses).all(axis=(1, 2)))
        out["sens"] = {
            "sensor": h.sensor_name,
            "version": h.version,
            "frames": h.num_frames,
            "color": {"width": h.color_width, "height": h.color_height, "compression": h.color_compression,
                      "fx": float(h.intrinsic_color[0, 0]), "fy": float(h.intrinsic_color[1, 1])},
            "depth": {"width": h.depth_width, "height": h.depth_height, "compression": h.depth_compression,
                      "fx": float(h.intrinsic_depth[0, 0]), "fy": float(h.intrinsic_depth[1, 1]),
                      "shift": h.depth_shift},
            "invalid_poses": int(invalid.size),
            "invalid_pose_frames": invalid.tolist()[:20],
        }

    mesh_path = scene_dir / f"{scene}_vh_clean_2.ply"
    if mesh_path.exists():
        mesh = read_mesh_ply(mesh_path)
        lo, hi = mesh.xyz.min(axis=0), mesh.xyz.max(axis=0)
        out["mesh"] = {"vertices": int(len(mesh.xyz)), "faces": int(len(mesh.faces)),
                       "extent_m": [round(float(v), 3) for v in hi - lo]}

    labels_path = scene_dir / f"{scene}_vh_clean_2.labels.ply"
    if labels_path.exists():
        _, nyu40 = read_label_ply(labels_path)
        cls = nyu40_to_class_lut()[nyu40]
        counts = np.bincount(cls[cls != IGNORE_INDEX], minlength=NUM_CLASSES)
        out["labels_3d"] = {
            "classes": {CLASS_NAMES[c]: int(counts[c]) for c in np.flatnonzero(counts)},
            "ignored_vertices": int((cls == IGNORE_INDEX).sum()),
        }

    zip_path = scene_dir / f"{scene}_2d-label-filt.zip"
    if zip_path.exists():
        with LabelZip(zip_path) as labels:
            ids = labels.frame_ids()
            first = labels.read_raw(ids[0]) if ids else None
        out["labels_2d"] = {"frames": len(ids),
                            "size": [int(first.shape[1]), int(first.shape[0])] if first is not None else None}
    meta_path = scene_dir / f"{scene}.txt"
    if meta_path.exists():
        meta = read_scene_meta(meta_path)
        out["scene_type"] = meta.get("sceneType")
    return out


def summarize_stores(cache_dir: Path, scene: str) -> dict:
    """Summary of a scene's caches: frames kept/dropped, visible points per view, classes, label agreement."""
    from jointwsss.io.zarr_store import open_store, store_files
    from jointwsss.preprocess.quality import label_agreement

    cache_dir = Path(cache_dir)
    out: dict = {"scene": scene, "cache_dir": str(cache_dir), "stores": {}}
    groups = {}
    for kind in ("points", "frames", "corr"):
        path = cache_dir / kind / f"{scene}.zarr"
        if path.exists():
            groups[kind] = open_store(path, kind)
            files, size = store_files(path)
            out["stores"][kind] = {"path": str(path), "files": files, "bytes": size}
    if "points" in groups:
        p = groups["points"].attrs
        counts = p["class_point_counts"]
        out["points"] = {"points": p["num_points"],
                         "scene_labels": [CLASS_NAMES[c] for c in range(NUM_CLASSES) if p["scene_labels"][c]],
                         "class_point_counts": {CLASS_NAMES[c]: counts[c] for c in range(NUM_CLASSES) if counts[c]}}
    if "frames" in groups:
        f = groups["frames"].attrs
        image_labels = groups["frames"]["image_labels"][...]
        out["frames"] = {"in_stream": f["frames_in_stream"], "skip": f["frame_skip"], "sampled": f["frames_sampled"],
                         "kept": f["frames_kept"], "dropped": f["frames_dropped"], "image_size": f["image_size"],
                         "classes_per_image_mean": float(image_labels.sum(axis=1).mean()) if len(image_labels) else 0.0}
    if "corr" in groups:
        c = groups["corr"].attrs
        per_view = np.asarray(c["pairs_per_view"])
        out["corr"] = {"pairs": c["num_pairs"], "views": c["num_views"],
                       "visible_points_per_view": {"min": int(per_view.min()) if per_view.size else 0,
                                                   "mean": float(per_view.mean()) if per_view.size else 0.0,
                                                   "max": int(per_view.max()) if per_view.size else 0},
                       "views_without_points": c["views_without_points"], "visibility": c["visibility"]}
        if {"points", "frames"} <= set(groups):
            out["label_agreement"] = label_agreement(groups["points"], groups["frames"], groups["corr"])
    return out


def format_store_summary(s: dict) -> str:
    lines = [f"scene {s['scene']}  (caches in {s['cache_dir']})"]
    for kind, st in s["stores"].items():
        lines.append(f"  store       {kind:7s} {st['files']:4d} files {st['bytes'] / 1e6:8.2f} MB  {st['path']}")
    if "points" in s:
        p = s["points"]
        lines.append(f"  points      {p['points']}; scene labels ({len(p['scene_labels'])}): {', '.join(p['scene_labels'])}")
    if "frames" in s:
        f = s["frames"]
        dropped = ", ".join(f"{k} {v}" for k, v in f["dropped"].items()) or "none"
        lines.append(f"  frames      {f['kept']} kept of {f['sampled']} sampled (every {f['skip']}th of {f['in_stream']}); "
                     f"dropped: {dropped}; {f['classes_per_image_mean']:.1f} classes per image")
    if "corr" in s:
        c = s["corr"]
        v = c["visible_points_per_view"]
        lines.append(f"  corr        {c['pairs']} pairs over {c['views']} views; visible points per view "
                     f"min {v['min']} mean {v['mean']:.0f} max {v['max']}; views without points: {len(c['views_without_points'])}")
    if s.get("label_agreement"):
        a = s["label_agreement"]
        rate = "n/a" if a["agreement"] is None else f"{100 * a['agreement']:.2f} %"
        lines.append(f"  agreement   {rate} of {a['labelled_pairs']} labelled pairs (3D label == 2D label at the pixel)")
    return "\n".join(lines)


def format_summary(summary: dict) -> str:
    """The summary as aligned text lines for a terminal."""
    lines = [f"scene {summary['scene']}  ({summary['path']})"]
    if summary.get("scene_type"):
        lines.append(f"  type        {summary['scene_type']}")
    for name, size in summary["files_bytes"].items():
        lines.append(f"  file        {name:40s} {size / 1e6:10.2f} MB")
    if "sens" in summary:
        s = summary["sens"]
        c, d = s["color"], s["depth"]
        lines.append(f"  sensor      {s['sensor']} (.sens v{s['version']}), {s['frames']} frames, "
                     f"{s['invalid_poses']} invalid poses" +
                     (f" (frames {s['invalid_pose_frames']})" if s["invalid_poses"] else ""))
        lines.append(f"  colour      {c['width']}x{c['height']} {c['compression']}, fx {c['fx']:.1f} fy {c['fy']:.1f} px")
        lines.append(f"  depth       {d['width']}x{d['height']} {d['compression']}, fx {d['fx']:.1f} fy {d['fy']:.1f} px, "
                     f"shift {d['shift']:g} (units per metre)")
    if "mesh" in summary:
        m = summary["mesh"]
        lines.append(f"  mesh        {m['vertices']} vertices, {m['faces']} faces, extent {m['extent_m']} m")
    if "labels_3d" in summary:
        l3 = summary["labels_3d"]
        lines.append(f"  3D classes  {len(l3['classes'])}: " +
                     ", ".join(f"{k} {v}" for k, v in l3["classes"].items()) +
                     f"; ignored vertices {l3['ignored_vertices']}")
    if "labels_2d" in summary:
        l2 = summary["labels_2d"]
        lines.append(f"  2D labels   {l2['frames']} label images of {l2['size']}")
    return "\n".join(lines)


def describe(path: Path, scene: str | None = None, *, as_json: bool = False) -> str:
    """What `jointwsss info` prints for ``path``: a scene's caches (a ``<cache>/<kind>/<scene>.zarr`` store, or a cache
    folder with ``scene``) or a raw scene folder (``scans/<scene>/``), as a table or as JSON."""
    path = Path(path)
    if path.suffix == ".zarr":
        summary, fmt = summarize_stores(path.parent.parent, path.stem), format_store_summary
    elif scene:
        summary, fmt = summarize_stores(path, scene), format_store_summary
    else:
        summary, fmt = summarize(path), format_summary
    return json.dumps(summary, indent=2) if as_json else fmt(summary)
