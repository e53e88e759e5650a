"""The `jointwsss` command line. Every Snakemake rule calls one of these subcommands.

This module only parses arguments and wires them to the package: each command's work, and the summary lines it
logs, come from the module that does the work. Options that stand for a config setting take the schema's default.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from jointwsss.config import schema_choices, schema_default
from jointwsss.io.layout import index_path

log = logging.getLogger("jointwsss")

DEVICES = schema_choices("train.device")


def _size(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive number of pixels, got {text}")
    return value


def _write_json(path: Path, payload: dict) -> None:
    from jointwsss.io.atomic import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2) + "\n")


def _log_lines(command: str, lines: list[str]) -> None:
    for line in lines:
        log.info("%s: %s", command, line)


# --------------------------------------------------------------------------- synth
def _add_synth(sub) -> None:
    p = sub.add_parser("synth", help="write a synthetic dataset in the real on-disk formats")
    kinds = p.add_subparsers(dest="kind", required=True)
    s = kinds.add_parser("scannet", help="synthetic ScanNet in the official raw layout")
    s.add_argument("--out", type=Path, required=True, help="raw ScanNet folder to write (scans/<scene>/...)")
    s.add_argument("--scene", action="append", default=None,
                   help="write only this scene (repeatable); default: metadata and every scene")
    s.add_argument("--meta-only", action="store_true", help="write only the label tsv and the split lists")
    s.add_argument("--test", action="store_true", help="the --scene is a test scene: no label files")
    s.add_argument("--settings", default="{}",
                   help="settings of the config's synth section as JSON (the Snakefile passes them), or @file.json; "
                        "omitted keys take the schema's defaults, so the pipeline's default dataset is the default")
    s.add_argument("--real-size", action="store_true",
                   help="ScanNet's real sizes: colour, depth, frames per stream, mesh density (synth.real_size)")
    s.add_argument("--rendered-frame-step", type=int, default=None, metavar="N",
                   help="render every N-th frame, the others repeat it (synth.rendered_frame_step; e.g. 100 for "
                        "frames.skip 100)")
    s.set_defaults(func=_run_synth_scannet)
    d = kinds.add_parser("s3dis", help="synthetic S3DIS rooms + Stanford 2D-3D-S frames of one area (official layouts)")
    d.add_argument("--out", type=Path, required=True,
                   help="raw folder to write (Stanford3dDataset_v1.2_Aligned_Version/, 2D-3D-Semantics/)")
    d.add_argument("--area", type=int, default=schema_default("s3dis.area"), help="the area to write (s3dis.area)")
    d.add_argument("--settings", default="{}",
                   help="settings of the config's s3dis.synth section as JSON (the Snakefile passes them), or "
                        "@file.json: seed, rooms, frames_per_room, image_size, points_per_m2; omitted: the schema's")
    d.add_argument("--workers", type=int, default=1)
    d.add_argument("--summary", type=Path, default=None, help="also write the generator's summary (JSON) here")
    d.set_defaults(func=_run_synth_s3dis)


def _run_synth_s3dis(args) -> int:
    from jointwsss.synth.s3dis import SynthS3DISConfig, synthesize_s3dis

    cfg = SynthS3DISConfig.from_settings(args.area, _read_settings(args.settings))
    t0 = time.perf_counter()
    summary = synthesize_s3dis(args.out, cfg, workers=args.workers)
    log.info("synth s3dis: area %d written to %s in %.1f s", cfg.area, args.out, time.perf_counter() - t0)
    if args.summary is not None:
        _write_json(args.summary, json.loads(json.dumps(summary, default=str)))
    return 0


def _run_synth_scannet(args) -> int:
    from jointwsss.synth.scannet import SynthScanNetConfig, scene_ids, synthesize_scannet, synthesize_scene, write_metadata

    settings = _read_settings(args.settings)
    if args.real_size:
        settings["real_size"] = True
    if args.rendered_frame_step is not None:
        settings["rendered_frame_step"] = args.rendered_frame_step
    cfg = SynthScanNetConfig.from_settings(settings)
    if args.meta_only:
        write_metadata(args.out, cfg)
        log.info("synth scannet: wrote label tsv and split lists to %s", args.out)
        return 0
    if not args.scene:
        synthesize_scannet(args.out, cfg)
        n = sum(len(v) for v in scene_ids(cfg).values())
        log.info("synth scannet: wrote %d scenes to %s", n, args.out)
        return 0
    for scene in args.scene:
        t0 = time.perf_counter()
        summary = synthesize_scene(scene, args.out / "scans" / scene, cfg, with_labels=not args.test)
        log.info("synth scannet: %s done in %.1f s: %s", scene, time.perf_counter() - t0,
                 json.dumps(summary, default=str))
    return 0


# --------------------------------------------------------------------------- download
def _add_download(sub) -> None:
    p = sub.add_parser("download", help="fetch real ScanNet files (resumable) from scannet.base_url")
    kinds = p.add_subparsers(dest="kind", required=True)
    base = argparse.ArgumentParser(add_help=False)
    base.add_argument("--raw-dir", type=Path, required=True)
    base.add_argument("--base-url", default=os.environ.get("JOINTWSSS_SCANNET_BASE_URL", ""),
                      help="ScanNet download URL (default: $JOINTWSSS_SCANNET_BASE_URL, set by the Snakefile "
                           "from scannet.base_url)")
    s = kinds.add_parser("scene", parents=[base], help="all files of one scene")
    s.add_argument("--scene", required=True)
    s.add_argument("--test", action=argparse.BooleanOptionalAction, default=None,
                   help="a test scene: no label files exist (default: whether the scene is in the official test list)")
    s.add_argument("--transfer", choices=("sampled", "whole"), default="whole",
                   help="sampled: skip the .sens and label zip (the frames stage reads them with HTTP Range)")
    s.set_defaults(func=_run_download_scene)
    t = kinds.add_parser("tsv", parents=[base], help="scannetv2-labels.combined.tsv")
    t.set_defaults(func=_run_download_tsv)
    sp = kinds.add_parser("splits", help="write the official split lists shipped with jointwsss")
    sp.add_argument("--raw-dir", type=Path, required=True)
    sp.set_defaults(func=_run_write_splits)


def _run_download_scene(args) -> int:
    from jointwsss.io.download import download_scene, scene_suffixes
    from jointwsss.io.scannet_labels import read_split, split_path

    test = args.scene in read_split(split_path("test")) if args.test is None else args.test
    suffixes = scene_suffixes(test, args.transfer)
    paths = download_scene(args.base_url, args.scene, args.raw_dir, suffixes=suffixes)
    log.info("download: %s: %d files, %.1f MB", args.scene, len(paths),
             sum(p.stat().st_size for p in paths) / 1e6)
    return 0


def _run_download_tsv(args) -> int:
    from jointwsss.io.download import download_label_tsv

    path = download_label_tsv(args.base_url, args.raw_dir)
    log.info("download: %s", path)
    return 0


def _run_write_splits(args) -> int:
    from jointwsss.io.scannet_labels import read_split, split_path, write_split

    for split in ("train", "val", "test"):
        write_split(args.raw_dir / f"scannetv2_{split}.txt", read_split(split_path(split)))
    log.info("splits: wrote the official train/val/test lists to %s", args.raw_dir)
    return 0


# --------------------------------------------------------------------------- preprocess
def _add_preprocess(sub) -> None:
    p = sub.add_parser("preprocess", help="build the per-scene caches (Zarr v3 stores) and split indexes")
    kinds = p.add_subparsers(dest="kind", required=True)
    pts = kinds.add_parser("points", help="points/{scene}.zarr: mesh vertices, colours, labels, scene labels")
    pts.add_argument("--scene-dir", type=Path, required=True, help="raw scene folder scans/<scene>/")
    pts.add_argument("--out", type=Path, required=True)
    pts.add_argument("--min-points", type=int, required=True)
    pts.set_defaults(func=_run_points)
    fr = kinds.add_parser("frames", help="frames/{scene}.zarr: sampled RGB-D frames, 2D labels, image labels")
    fr.add_argument("--scene-dir", type=Path, required=True)
    fr.add_argument("--out", type=Path, required=True)
    fr.add_argument("--skip", type=int, required=True)
    fr.add_argument("--image-size", type=_size, nargs=2, required=True, metavar=("W", "H"))
    fr.add_argument("--min-pixel-fraction", type=float, required=True)
    fr.add_argument("--label-tsv", type=Path, default=None)
    fr.add_argument("--transfer", choices=("local", "sampled"), default="local",
                    help="sampled: read the .sens and label zip from the ScanNet server with HTTP Range requests")
    fr.add_argument("--test", action="store_true", help="with --transfer sampled: a hidden-test scene (no label zip)")
    fr.add_argument("--base-url", default=os.environ.get("JOINTWSSS_SCANNET_BASE_URL", ""),
                    help="with --transfer sampled: ScanNet download URL (default: $JOINTWSSS_SCANNET_BASE_URL)")
    fr.set_defaults(func=_run_frames)
    co = kinds.add_parser("corr", help="corr/{scene}.zarr: visible points per view (CSR)")
    co.add_argument("--points", type=Path, required=True)
    co.add_argument("--frames", type=Path, required=True)
    co.add_argument("--out", type=Path, required=True)
    co.add_argument("--depth-tolerance", type=float, required=True)
    co.add_argument("--depth-tolerance-mode", choices=("relative", "absolute"), required=True)
    co.set_defaults(func=_run_corr)
    ix = kinds.add_parser("index", help="index/{split}.json: scenes, frame and pair counts, class statistics")
    ix.add_argument("--split", required=True)
    ix.add_argument("--cache-dir", type=Path, required=True)
    ix.add_argument("--out", type=Path, required=True)
    ix.add_argument("--scenes", nargs="*", default=[])
    ix.set_defaults(func=_run_index)
    s3 = argparse.ArgumentParser(add_help=False)
    s3.add_argument("--raw-dir", type=Path, required=True,
                    help="folder holding Stanford3dDataset_v1.2_Aligned_Version/ and 2D-3D-Semantics/")
    s3.add_argument("--area", type=int, required=True)
    s3.add_argument("--out", type=Path, required=True)
    sr = kinds.add_parser("s3dis-rooms", parents=[s3], help="JSON listing of an S3DIS area's rooms and their 2D frames")
    sr.set_defaults(func=_run_s3dis_rooms)
    sp = kinds.add_parser("s3dis-points", parents=[s3], help="points/<room>.zarr of one S3DIS room (ScanNet classes)")
    sp.add_argument("--room", required=True)
    sp.add_argument("--min-points", type=int, required=True)
    sp.set_defaults(func=_run_s3dis_points)
    sf = kinds.add_parser("s3dis-frames", parents=[s3], help="frames/<room>.zarr of one room's 2D-3D-S frames")
    sf.add_argument("--room", required=True)
    sf.add_argument("--image-size", type=_size, nargs=2, required=True, metavar=("W", "H"))
    sf.add_argument("--min-pixel-fraction", type=float, required=True)
    sf.add_argument("--max-frames", type=int, default=None, help="keep at most this many frames, evenly spread")
    sf.set_defaults(func=_run_s3dis_frames)


def _single_threaded() -> None:
    # Snakemake runs one job per core: libraries must not spawn a thread per core each.
    import cv2

    cv2.setNumThreads(1)


def _network_threads(threads: int | None) -> None:
    """Limit a job that runs the networks to the cores it was given (None: torch's choice)."""
    _single_threaded()
    if threads:
        import torch

        # A job must not use more cores than it was given: an inference next to a training run on the
        # same cores slows the training down by half through oversubscription.
        torch.set_num_threads(threads)


def _run_points(args) -> int:
    from jointwsss.preprocess.points import build_points_store

    _single_threaded()
    build_points_store(args.scene_dir, args.out, min_points=args.min_points)
    return 0


def _run_frames(args) -> int:
    from jointwsss.preprocess.frames import build_frames_store, build_frames_store_sampled

    _single_threaded()
    kw = dict(skip=args.skip, image_size=tuple(args.image_size), min_pixel_fraction=args.min_pixel_fraction,
              label_tsv=args.label_tsv)
    if args.transfer == "sampled":
        build_frames_store_sampled(args.scene_dir, args.out, base_url=args.base_url, with_labels=not args.test, **kw)
    else:
        build_frames_store(args.scene_dir, args.out, **kw)
    return 0


def _run_corr(args) -> int:
    from jointwsss.preprocess.correspondences import VisibilityParams, build_corr_store

    _single_threaded()
    build_corr_store(args.points, args.frames, args.out,
                     visibility=VisibilityParams(args.depth_tolerance, args.depth_tolerance_mode))
    return 0


def _run_s3dis_rooms(args) -> int:
    from jointwsss.preprocess.s3dis import write_area_listing

    listing = write_area_listing(args.raw_dir, args.area, args.out)
    log.info("s3dis area %d: %d rooms, %d 2D-3D-S frames", args.area, len(listing["rooms"]),
             sum(listing["frames_per_room"].values()))
    return 0


def _run_s3dis_points(args) -> int:
    from jointwsss.preprocess.s3dis import build_s3dis_points_store

    build_s3dis_points_store(args.raw_dir, args.area, args.room, args.out, min_points=args.min_points)
    return 0


def _run_s3dis_frames(args) -> int:
    from jointwsss.preprocess.s3dis import build_s3dis_frames_store

    _single_threaded()
    build_s3dis_frames_store(args.raw_dir, args.area, args.room, args.out, image_size=tuple(args.image_size),
                             min_pixel_fraction=args.min_pixel_fraction, max_frames=args.max_frames)
    return 0


def _run_index(args) -> int:
    from jointwsss.preprocess.index import build_index

    build_index(args.split, args.scenes, args.cache_dir, args.out)
    return 0


# --------------------------------------------------------------------------- train
def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train one experiment (both classifiers, the paper's joint loss)")
    p.add_argument("--run-dir", type=Path, required=True, help="runs/<experiment>/")
    p.add_argument("--settings", required=True,
                   help="the experiment's resolved settings as JSON (written by the Snakefile), or @file.json")
    p.add_argument("--num-workers", type=int, default=None, help="DataLoader workers (overrides the settings)")
    p.add_argument("--device", choices=DEVICES, default=None, help="where to train (overrides the settings)")
    p.add_argument("--stop-after-epoch", type=int, default=None, help="end after this epoch (keeps the checkpoint)")
    p.set_defaults(func=_run_train)


def _read_settings(text: str) -> dict:
    """A stage's settings: JSON given on the command line, or ``@file.json``; ConfigError if not valid JSON."""
    from jointwsss.config import ConfigError

    source = "--settings"
    if text.startswith("@"):
        source = text[1:]
        text = Path(source).read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}: not valid JSON ({exc})") from exc


def _load_settings(text: str) -> dict:
    """Training settings (``--settings``), checked for completeness."""
    from jointwsss.experiments import check_settings

    return check_settings(_read_settings(text))


def _run_train(args) -> int:
    from jointwsss.train import train

    settings = _load_settings(args.settings)
    train_cfg = settings.setdefault("train", {})
    train_cfg["num_workers"] = args.num_workers if args.num_workers is not None else train_cfg.get("num_workers", 0)
    train_cfg["device"] = args.device or train_cfg.get("device", "auto")
    train(settings, args.run_dir, stop_after_epoch=args.stop_after_epoch)
    return 0


# --------------------------------------------------------------------------- infer / evaluate
def _class_mask(names: list[str] | None):
    """(20,) bool of the named classes, or None."""
    if names is None:
        return None
    import numpy as np

    from jointwsss.classes import CLASS_NAMES

    return np.array([name in names for name in CLASS_NAMES], dtype=bool)


def _add_eval(sub) -> None:
    from jointwsss.classes import CLASS_NAMES

    p = sub.add_parser("infer", help="predict every vertex and every kept frame of a split (HDF5)")
    p.add_argument("--model", type=Path, required=True, help="runs/<experiment>/model.pt")
    p.add_argument("--cache-dir", type=Path, required=True)
    p.add_argument("--split", required=True)
    p.add_argument("--mode", choices=("pseudo_label", "inference"), required=True,
                   help="pseudo_label: CAM restricted to the known labels (paper's train columns); inference: plain")
    p.add_argument("--out", type=Path, required=True, help="predictions/<split>.h5")
    p.add_argument("--passes-3d", type=int, default=schema_default("eval.passes_3d"),
                   help="random vertex partitions averaged in 3D (eval.passes_3d)")
    p.add_argument("--batch-3d", type=int, default=4)
    p.add_argument("--seed", type=int, default=schema_default("seed"))
    p.add_argument("--device", choices=DEVICES, default=schema_default("train.device"))
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for the networks (the cores Snakemake gave the job; default: torch's choice)")
    p.add_argument("--restrict-to", nargs="+", choices=CLASS_NAMES, default=None, metavar="CLASS",
                   help="argmax only over these classes (cross-dataset evaluation on shared classes)")
    p.add_argument("--all-scenes", action="store_true",
                   help="every scene of the index, also those without frames (3D still evaluates them)")
    p.set_defaults(func=_run_infer)
    e = sub.add_parser("evaluate", help="mIoU (official ScanNet semantics) of predictions; writes metrics.json")
    e.add_argument("--experiment", required=True)
    e.add_argument("--cache-dir", type=Path, required=True)
    e.add_argument("--predictions", type=Path, nargs="+", required=True, help="predictions/<split>.h5 files")
    e.add_argument("--out", type=Path, required=True)
    e.add_argument("--dataset", default="scannet", help="the dataset name written into the JSON")
    e.add_argument("--classes", nargs="+", choices=CLASS_NAMES, default=None, metavar="CLASS",
                   help="evaluate only these classes (others: ground truth ignored, predictions a miss)")
    e.set_defaults(func=_run_evaluate)
    d = sub.add_parser("diagnose", help="what the joint losses can transfer: view coverage, 2D teacher vs ground truth "
                                        "at the visible points, 3D on seen/unseen vertices, feature correlations")
    d.add_argument("--model", type=Path, required=True, help="runs/<experiment>/model.pt")
    d.add_argument("--cache-dir", type=Path, required=True)
    d.add_argument("--split", required=True)
    d.add_argument("--predictions", type=Path, default=None,
                   help="the run's predictions/<split>.h5: adds 3D mIoU on seen vs unseen vertices")
    d.add_argument("--out", type=Path, required=True, help="diagnose/<split>.json")
    d.add_argument("--feature-points", type=int, default=256, help="visible points per view in the feature pairs")
    d.add_argument("--seed", type=int, default=schema_default("seed"))
    d.add_argument("--device", choices=DEVICES, default=schema_default("train.device"))
    d.add_argument("--threads", type=int, default=None, help="CPU threads for the networks")
    d.set_defaults(func=_run_diagnose)


def _run_infer(args) -> int:
    from jointwsss.data.dataset import scenes_from_index
    from jointwsss.evaluate import infer_split

    _network_threads(args.threads)
    scenes = scenes_from_index(index_path(args.cache_dir, args.split), usable_only=not args.all_scenes)
    infer_split(args.model, args.cache_dir, scenes, args.split, args.mode, args.out, passes_3d=args.passes_3d,
                batch_3d=args.batch_3d, seed=args.seed, device=args.device, restrict_to=_class_mask(args.restrict_to))
    return 0


def _run_evaluate(args) -> int:
    from jointwsss.evaluate import evaluate_experiment, summary_lines

    metrics = evaluate_experiment(args.experiment, args.predictions, args.cache_dir, dataset=args.dataset,
                                  classes=args.classes)
    _write_json(args.out, metrics)
    _log_lines("evaluate", summary_lines(metrics))
    return 0


def _run_diagnose(args) -> int:
    from jointwsss.data.dataset import scenes_from_index
    from jointwsss.diagnose import diagnose_split, summary_lines

    _network_threads(args.threads)
    scenes = scenes_from_index(index_path(args.cache_dir, args.split))
    result = diagnose_split(args.model, args.cache_dir, scenes, args.split, predictions=args.predictions,
                            feature_points_per_view=args.feature_points, seed=args.seed, device=args.device)
    _write_json(args.out, result)
    for line in summary_lines(result):
        log.info("%s", line)
    return 0


def _table_arguments() -> argparse.ArgumentParser:
    """Arguments every paper-table command takes (Table 2 and Table 4)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--runs-dir", type=Path, required=True)
    common.add_argument("--experiments", required=True, help="the config's experiments mapping as JSON")
    common.add_argument("--out-md", type=Path, required=True)
    common.add_argument("--out-json", type=Path, required=True)
    return common


def _add_ablation(sub) -> None:
    p = sub.add_parser("ablation", parents=[_table_arguments()],
                       help="the paper's Table 2 from every experiment's metrics.json")
    p.set_defaults(func=_run_ablation)


def _run_ablation(args) -> int:
    from jointwsss.ablation import TABLE2, summary_lines, write_table

    table = write_table(args.runs_dir, json.loads(args.experiments), args.out_md, args.out_json, TABLE2)
    _log_lines("ablation", summary_lines(table, TABLE2))
    return 0


def _add_s3dis_table(sub) -> None:
    p = sub.add_parser("s3dis-table", parents=[_table_arguments()],
                       help="the paper's Table 4 from every experiment's s3dis_metrics.json")
    p.add_argument("--area", type=int, required=True)
    p.set_defaults(func=_run_s3dis_table)


def _run_s3dis_table(args) -> int:
    from jointwsss.ablation import summary_lines, table4_spec, write_table
    from jointwsss.preprocess.s3dis import SHARED_CLASS_NAMES

    spec = table4_spec(args.area, SHARED_CLASS_NAMES)
    table = write_table(args.runs_dir, json.loads(args.experiments), args.out_md, args.out_json, spec)
    _log_lines("table 4", summary_lines(table, spec))
    return 0


def _add_export(sub) -> None:
    from jointwsss.classes import CLASS_NAMES

    p = sub.add_parser("export", help="benchmark submission, coloured PLYs, overlay PNGs, curves, legend, tables")
    k = p.add_subparsers(dest="kind", required=True)
    s = k.add_parser("submission", help="<out>/<scene>.txt: one nyu40 id per vertex (ScanNet 3D benchmark format)")
    s.add_argument("--predictions", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--cache-dir", type=Path, default=None, help="also evaluate the written files and log the mIoU")
    s.set_defaults(func=_run_export_submission)
    m = k.add_parser("ply", help="<out>/<scene>_pred.ply [and <scene>_cam_<class>.ply] in the ScanNet palette")
    m.add_argument("--predictions", type=Path, required=True)
    m.add_argument("--scans-dir", type=Path, required=True, help="the raw scans/ folder (meshes)")
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--cam-class", choices=CLASS_NAMES, default=None, help="also colour this class's 3D CAM score")
    m.set_defaults(func=_run_export_ply)
    o = k.add_parser("overlays", help="<out>/<scene>_<frame_id>.png: image | ground truth | prediction | confidence")
    o.add_argument("--predictions", type=Path, required=True)
    o.add_argument("--cache-dir", type=Path, required=True)
    o.add_argument("--out", type=Path, required=True)
    o.add_argument("--model", type=Path, default=None,
                   help="runs/<exp>/model.pt: adds the image network's max class score (eq. 6's W) as a 4th column")
    o.add_argument("--max-frames-per-scene", type=int, default=2)
    o.set_defaults(func=_run_export_overlays)
    c = k.add_parser("curves", help="loss terms and learning rates vs epoch (PNG)")
    c.add_argument("--metrics", type=Path, required=True, help="runs/<exp>/metrics.jsonl")
    c.add_argument("--out", type=Path, required=True)
    c.set_defaults(func=_run_export_curves)
    g = k.add_parser("legend", help="the 20-class palette (PNG)")
    g.add_argument("--out", type=Path, required=True)
    g.set_defaults(func=_run_export_legend)
    t = k.add_parser("table", help="per-class table (TSV) of a metrics.json or of a diagnosis")
    source = t.add_mutually_exclusive_group(required=True)
    source.add_argument("--metrics", type=Path, help="runs/<exp>/eval/metrics.json: IoU per class, split, domain")
    source.add_argument("--diagnose", type=Path, help="runs/<exp>/diagnose/<split>.json: coverage, teacher, 3D")
    t.add_argument("--out", type=Path, required=True)
    t.set_defaults(func=_run_export_table)
    v = k.add_parser("viewer", help="<out>/<scene>.html + index.html: offline interactive 3D viewers of a split's scenes")
    v.add_argument("--predictions", type=Path, required=True, help="runs/<exp>/eval/predictions/<split>.h5")
    v.add_argument("--cache-dir", type=Path, required=True)
    v.add_argument("--scans-dir", type=Path, required=True, help="the raw scans/ folder (meshes)")
    v.add_argument("--out", type=Path, required=True)
    v.add_argument("--model", type=Path, default=None,
                   help="runs/<exp>/model.pt: adds the image network's max class score as the frames' 2D CAM column")
    v.add_argument("--max-vertices", type=int, default=None, help="decimate larger meshes (vertex clustering)")
    v.add_argument("--max-frames", type=int, default=None, help="cameras drawn per scene, evenly spread")
    v.set_defaults(func=_run_export_viewer)
    j = k.add_parser("job-costs", help="per-rule time and peak memory of the jobs, from Snakemake's benchmark records")
    j.add_argument("--benchmarks", type=Path, required=True, help="<logs_dir>/benchmarks/ (<rule>/<wildcards>.tsv)")
    j.add_argument("--out-tsv", type=Path, required=True)
    j.add_argument("--out-json", type=Path, required=True)
    j.set_defaults(func=_run_export_job_costs)


def _run_export_submission(args) -> int:
    from jointwsss.export.submission import evaluate_submission, write_submission

    paths = write_submission(args.predictions, args.out)
    log.info("export submission: %d scene files in %s", len(paths), args.out)
    if args.cache_dir is not None:
        from jointwsss.data.dataset import scenes_from_index

        scenes = scenes_from_index(index_path(args.cache_dir, args.predictions.stem))
        report = evaluate_submission(args.out, args.cache_dir, scenes)
        log.info("export submission: re-read files give 3D mIoU %.1f %% over %d classes",
                 100 * report["miou"], report["classes_in_mean"])
    return 0


def _run_export_ply(args) -> int:
    from jointwsss.classes import CLASS_INDEX
    from jointwsss.export.meshes import write_scene_plys

    cam = CLASS_INDEX[args.cam_class] if args.cam_class else None
    paths = write_scene_plys(args.predictions, args.scans_dir, args.out, cam_class=cam)
    log.info("export ply: %d files in %s", len(paths), args.out)
    return 0


def _run_export_overlays(args) -> int:
    from jointwsss.evaluate import confidence_cam
    from jointwsss.export.overlays import write_overlays

    cam = confidence_cam(args.model)
    paths = write_overlays(args.predictions, args.cache_dir, args.out, max_frames_per_scene=args.max_frames_per_scene,
                           cam=cam)
    log.info("export overlays: %d PNGs in %s", len(paths), args.out)
    return 0


def _run_export_viewer(args) -> int:
    from jointwsss.evaluate import confidence_cam
    from jointwsss.export.viewer import MAX_FRAMES, MAX_VERTICES, write_viewers

    _single_threaded()
    paths = write_viewers(args.predictions, args.cache_dir, args.scans_dir, args.out, cam=confidence_cam(args.model),
                          max_vertices=args.max_vertices or MAX_VERTICES, max_frames=args.max_frames or MAX_FRAMES,
                          progress=lambda line: log.info("export viewer: %s", line))
    log.info("export viewer: %d scene pages and %s", len(paths) - 1, paths[-1])
    return 0


def _run_export_job_costs(args) -> int:
    from jointwsss.export.job_costs import summary_lines, write_job_costs

    _log_lines("export job-costs", summary_lines(write_job_costs(args.benchmarks, args.out_tsv, args.out_json)))
    return 0


def _run_export_curves(args) -> int:
    from jointwsss.export.figures import plot_training_curves

    plot_training_curves(args.metrics, args.out)
    return 0


def _run_export_legend(args) -> int:
    from jointwsss.export.figures import write_palette_legend

    write_palette_legend(args.out)
    return 0


def _run_export_table(args) -> int:
    from jointwsss.export.tables import write_diagnosis_table, write_metrics_table

    if args.metrics is not None:
        write_metrics_table(args.metrics, args.out)
    else:
        write_diagnosis_table(args.diagnose, args.out)
    log.info("export table: %s", args.out)
    return 0


# --------------------------------------------------------------------------- weights
def _add_weights(sub) -> None:
    p = sub.add_parser("weights", help="initial network weights")
    kinds = p.add_subparsers(dest="kind", required=True)
    im = kinds.add_parser("import", help="convert PSA's MXNet ImageNet file (ilsvrc-cls_rna-a1_cls1000_ep-0001.params) "
                                         "to a ResNet38 state dict, without mxnet")
    im.add_argument("src", type=Path, help="the MXNet .params file (ademxapp's ILSVRC 'Model A1')")
    im.add_argument("dst", type=Path, help="the PyTorch state dict to write (.pt), for model.image.weights")
    im.add_argument("--require-genuine", action="store_true",
                    help="fail unless the md5 is the genuine file's (by default a mismatch is only reported)")
    im.set_defaults(func=_run_weights_import)


def _run_weights_import(args) -> int:
    from jointwsss.imagenet_weights import convert_imagenet_params, summary_lines

    summary = convert_imagenet_params(args.src, args.dst, require_genuine=args.require_genuine)
    for line in summary_lines(summary):
        log.info("weights import: %s", line)
    return 0


# --------------------------------------------------------------------------- info
def _add_info(sub) -> None:
    p = sub.add_parser("info", help="summarise a raw ScanNet scene folder or a scene's caches")
    p.add_argument("path", type=Path,
                   help="a raw scene folder (scans/<scene>/), a store (<cache>/corr/<scene>.zarr), "
                        "or a cache folder with --scene")
    p.add_argument("--scene", help="with a cache folder: the scene to summarise")
    p.add_argument("--world", metavar="SPLIT", help="with a cache folder: the world statistics of a split (views, "
                                                     "regions, coverage, classes, appearance probe)")
    p.add_argument("--probe", nargs=2, metavar=("REFERENCE", "QUERY"), default=("train", "val"),
                   help="with --world: the appearance probe classifies QUERY's patches by REFERENCE's (default: "
                        "train val)")
    p.add_argument("--min-pixel-fraction", type=float, default=schema_default("labels.min_pixel_fraction"),
                   help="with --world: a region counts from this share of the image (labels.min_pixel_fraction)")
    p.add_argument("--out", type=Path, default=None, help="with --world: write the JSON here (and the table beside it)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_run_info)


def _run_info(args) -> int:
    if args.world:
        from jointwsss.world import format_world, world_statistics, write_world_statistics

        stats = world_statistics(args.path, args.world, probe=tuple(args.probe),
                                 min_pixel_fraction=args.min_pixel_fraction)
        if args.out is not None:
            write_world_statistics(stats, args.out, args.out.with_suffix(".txt"))
        print(json.dumps(stats, indent=2) if args.json else format_world(stats))
        return 0
    from jointwsss.info import describe

    print(describe(args.path, args.scene, as_json=args.json))
    return 0


# --------------------------------------------------------------------------- bench
def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks; each writes a JSON result")
    kinds = p.add_subparsers(dest="kind", required=True)
    m = kinds.add_parser("sens-memory", help="peak RSS while reading 10 frames spread over a >= 1 GB .sens")
    m.add_argument("--work-dir", type=Path, default=Path("bench/work"),
                   help="where the large .sens is written (kept for reuse)")
    m.add_argument("--out", type=Path, default=Path("bench/sens_memory.json"))
    m.add_argument("--target-bytes", type=int, default=1_100_000_000)
    m.add_argument("--num-reads", type=int, default=10)
    m.set_defaults(func=_run_bench_sens_memory)
    pm = kinds.add_parser("params-memory", help="peak RSS while converting a full-size synthetic MXNet ImageNet file")
    pm.add_argument("--work-dir", type=Path, default=Path("bench/work"),
                    help="where the ~437 MB synthetic .params is written (kept for reuse)")
    pm.add_argument("--out", type=Path, default=Path("bench/params_memory.json"))
    pm.set_defaults(func=_run_bench_params_memory)
    pair = kinds.add_parser("pair-memory", help="peak RSS of the N_v x N_v loss terms (eq. 7-11) at the paper's "
                                                "sizes, each case in a fresh process")
    pair.add_argument("--out", type=Path, default=Path("bench/pair_memory.json"))
    pair.set_defaults(func=_run_bench_pair_memory)
    pre = kinds.add_parser("preprocess", help="frame extraction vs naive readers, correspondences/s, ScanNet estimate")
    pre.add_argument("--work-dir", type=Path, default=Path("bench/work"))
    pre.add_argument("--out", type=Path, default=Path("bench/preprocess.json"))
    pre.add_argument("--num-frames", type=int, default=2000)
    pre.set_defaults(func=_run_bench_preprocess)
    tf = kinds.add_parser("transfer", help="scannet.transfer sampled vs whole: bytes and wall time against a local "
                                           "server with latency and a bandwidth cap; ScanNetV2 estimate")
    tf.add_argument("--work-dir", type=Path, default=Path("bench/work"))
    tf.add_argument("--out", type=Path, default=Path("bench/transfer.json"))
    tf.add_argument("--num-frames", type=int, default=1500)
    tf.add_argument("--skip", type=int, default=100)
    tf.add_argument("--latencies-ms", type=float, nargs="+", default=[2.0, 20.0], help="round trip added per request")
    tf.add_argument("--bandwidth-mb-s", type=float, default=100.0, help="cap per connection, MB/s")
    tf.set_defaults(func=_run_bench_transfer)
    tr = kinds.add_parser("train", help="samples/s of the DataLoader alone and of full training steps")
    tr.add_argument("--settings", required=True, help="experiment settings JSON (or @file), as `jointwsss train` takes")
    tr.add_argument("--out", type=Path, default=Path("bench/train.json"))
    tr.add_argument("--batch-size", type=int, default=8)
    tr.add_argument("--num-workers", type=int, default=1)
    tr.add_argument("--batches", type=int, default=10)
    tr.set_defaults(func=_run_bench_train)
    pn = kinds.add_parser("pointnet", help="PointNet++ operators (both implementations) and training steps, no data needed")
    pn.add_argument("--device", choices=DEVICES, default=schema_default("train.device"))
    pn.add_argument("--out", type=Path, default=Path("bench/pointnet.json"))
    pn.add_argument("--batch-size", type=int, default=8)
    pn.add_argument("--reps", type=int, default=3)
    pn.add_argument("--sizes", nargs="+", metavar="WIDTH:POINTS", default=None,
                    help="training-step sizes, e.g. small:4096 full:40000 (default: small:4096 on CPU; "
                         "also full:16384 and full:40000 on CUDA)")
    pn.add_argument("--cache-dir", type=Path, default=None,
                    help="also report the neighbours per ball on real clouds of this cache's --split (and suggest radii)")
    pn.add_argument("--split", default="train")
    pn.add_argument("--scenes", type=int, default=8, help="clouds (one per scene) for the neighbourhood report")
    pn.add_argument("--points", type=int, default=4096, help="points per cloud for the neighbourhood report")
    pn.add_argument("--width", choices=("small", "full"), default="small")
    pn.add_argument("--radii", type=float, nargs=4, default=None, metavar="M", help="the configured radii, in metres")
    pn.set_defaults(func=_run_bench_pointnet)
    co = kinds.add_parser("cost", help="the rehearsal's cost report and the real job's projected hours (rule rehearsal_cost)")
    co.add_argument("--workdir", type=Path, required=True, help="the rehearsal's folder (its data/, runs/, logs/)")
    co.add_argument("--configfile", type=Path, nargs="+", required=True,
                    help="the rehearsal's config files, merged in order (config.yaml paper.yaml rehearsal.yaml)")
    co.add_argument("--schedule-configfile", type=Path, nargs="+", required=True,
                    help="the real job's config files (config.yaml paper.yaml): its epochs, batch size and GPUs")
    co.add_argument("--run-benchmark", type=Path, default=None, help="the benchmark record of the whole rehearsal")
    co.add_argument("--cores", type=int, required=True, help="cores of this machine the projection divides by")
    co.add_argument("--out-json", type=Path, required=True)
    co.add_argument("--out-md", type=Path, required=True)
    co.set_defaults(func=_run_bench_cost)
    mu = kinds.add_parser("mutation", help="mutation scores of the paper's path: mutmut's mutants of each module "
                                           "against its fast tests, on a snapshot of a commit (docs/mutation.md)")
    mu.add_argument("--repo", type=Path, default=Path("."), help="the git checkout to snapshot")
    mu.add_argument("--rev", default="HEAD", help="the commit whose code and tests are mutated and run")
    mu.add_argument("--modules", nargs="+", default=None, help="keys of jointwsss.bench.mutation.TARGETS (default: all)")
    mu.add_argument("--limit", type=int, default=None, help="at most this many mutants per module (a smoke run)")
    mu.add_argument("--earlier", type=Path, default=None,
                    help="the JSON of a run on an older commit: the mutants it killed are not run again")
    mu.add_argument("--work-dir", type=Path, default=None, help="where the snapshot goes (default: the temp folder)")
    mu.add_argument("--out", type=Path, default=Path("bench/mutation.json"))
    mu.add_argument("--table", type=Path, default=None, help="also write the Markdown table here")
    mu.set_defaults(func=_run_bench_mutation)


def _bench_result(name: str, args, result: dict, summary_lines) -> int:
    """Write a benchmark's result to ``args.out`` and log its summary lines."""
    _write_json(args.out, result)
    _log_lines(f"bench {name}", [*summary_lines(result), f"JSON in {args.out}"])
    return 0


def _run_bench_cost(args) -> int:
    from jointwsss.bench.cost import rehearsal_cost, summary_lines, write_cost_report

    report = rehearsal_cost(args.configfile, args.schedule_configfile, args.workdir, cores=args.cores,
                            run_benchmark=args.run_benchmark)
    write_cost_report(report, args.out_json, args.out_md)
    _log_lines("bench cost", [*summary_lines(report), f"JSON in {args.out_json}, Markdown in {args.out_md}"])
    return 0


def _run_bench_mutation(args) -> int:
    from jointwsss.bench.mutation import TARGETS, run_mutation, summary_lines, table_lines

    def progress(module, done, total, mutant):
        log.info("mutation %s %d/%d: %s line %d %s", module, done, total, mutant["outcome"], mutant["line"],
                 mutant["mutated"])

    earlier = json.loads(args.earlier.read_text()) if args.earlier else None
    result = run_mutation(args.repo, args.rev, args.modules or list(TARGETS), work_dir=args.work_dir,
                          limit=args.limit, earlier=earlier, progress=progress)
    if args.table is not None:
        args.table.parent.mkdir(parents=True, exist_ok=True)
        args.table.write_text("\n".join(table_lines(result)) + "\n")
    return _bench_result("mutation", args, result, summary_lines)


def _run_bench_pair_memory(args) -> int:
    from jointwsss.bench.pair_memory import bench_pair_memory, summary_lines

    return _bench_result("pair-memory", args, bench_pair_memory(), summary_lines)


def _run_bench_sens_memory(args) -> int:
    from jointwsss.bench.sens_memory import bench_sens_memory, summary_lines

    result = bench_sens_memory(args.work_dir, target_bytes=args.target_bytes, num_reads=args.num_reads)
    return _bench_result("sens-memory", args, result, summary_lines)


def _run_bench_params_memory(args) -> int:
    from jointwsss.bench.params_memory import bench_params_memory, summary_lines

    return _bench_result("params-memory", args, bench_params_memory(args.work_dir), summary_lines)


def _run_bench_preprocess(args) -> int:
    from jointwsss.bench.preprocess import bench_preprocess, summary_lines

    return _bench_result("preprocess", args, bench_preprocess(args.work_dir, num_frames=args.num_frames), summary_lines)


def _run_bench_transfer(args) -> int:
    from jointwsss.bench.transfer import bench_transfer, summary_lines

    result = bench_transfer(args.work_dir, num_frames=args.num_frames, skip=args.skip,
                            latencies_s=[ms / 1000 for ms in args.latencies_ms],
                            bandwidth_bytes_per_s=args.bandwidth_mb_s * 1e6)
    return _bench_result("transfer", args, result, summary_lines)


def _run_bench_train(args) -> int:
    from jointwsss.bench.train import bench_train, summary_lines

    result = bench_train(_load_settings(args.settings), batch_size=args.batch_size, num_workers=args.num_workers,
                         batches=args.batches)
    return _bench_result("train", args, result, summary_lines)


def _parse_sizes(values: list[str] | None) -> list[tuple[str, int]] | None:
    if values is None:
        return None
    sizes = []
    for value in values:
        width, _, points = value.partition(":")
        if width not in ("small", "full") or not points.isdigit() or int(points) < 1:
            raise SystemExit(f"jointwsss bench pointnet: --sizes {value!r} is not WIDTH:POINTS "
                             "(WIDTH small or full, POINTS a positive integer), e.g. full:40000")
        sizes.append((width, int(points)))
    return sizes


def _run_bench_pointnet(args) -> int:
    from jointwsss.bench.pointnet import bench_pointnet, summary_lines
    from jointwsss.runs import pick_device

    clouds = None
    if args.cache_dir is not None:
        from jointwsss.data.dataset import cloud_samples

        clouds = cloud_samples(args.cache_dir, args.split, num_clouds=args.scenes, num_points=args.points)
    result = bench_pointnet(pick_device(args.device), batch=args.batch_size, sizes=_parse_sizes(args.sizes),
                            reps=args.reps, clouds=clouds, width=args.width, radii=args.radii)
    return _bench_result("pointnet", args, result, summary_lines)


# --------------------------------------------------------------------------- config
def _add_config(sub) -> None:
    p = sub.add_parser("config", help="the configuration: resolved, or every key's default and meaning")
    kinds = p.add_subparsers(dest="kind", required=True)
    s = kinds.add_parser("show", help="the configuration of config files merged in order (as Snakemake merges "
                                      "--configfile files over config.yaml), defaults filled in, checked (YAML)")
    s.add_argument("files", type=Path, nargs="+", metavar="CONFIG", help="config.yaml, then your own files")
    s.set_defaults(func=_run_config_show)
    r = kinds.add_parser("reference", help="every key of the schema with its default and meaning (Markdown: the "
                                           "page docs/configuration.md)")
    r.set_defaults(func=_run_config_reference)


def _run_config_show(args) -> int:
    import yaml

    from jointwsss.config import check_config, resolve_config

    config = resolve_config(*args.files)
    for warning in check_config(config):
        log.warning("%s", warning)
    print(yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=120), end="")
    if config["synth"]["real_size"]:
        from jointwsss.synth.scannet import REAL_SIZE

        replaced = ", ".join(f"{key} {value}" for key, value in REAL_SIZE.items())
        print(f"# synth.real_size: the generator uses {replaced} in place of the values above "
              "(jointwsss.synth.scannet.REAL_SIZE)")
    return 0


def _run_config_reference(args) -> int:
    from jointwsss.config import reference_markdown

    print(reference_markdown(), end="")
    return 0


# --------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jointwsss", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_synth(sub)
    _add_download(sub)
    _add_preprocess(sub)
    _add_train(sub)
    _add_eval(sub)
    _add_ablation(sub)
    _add_s3dis_table(sub)
    _add_export(sub)
    _add_weights(sub)
    _add_info(sub)
    _add_bench(sub)
    _add_config(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    from jointwsss.config import ConfigError
    from jointwsss.io.errors import DataFormatError

    try:
        return args.func(args)
    except (DataFormatError, ConfigError) as exc:
        # A bad input file: one clear line, no traceback.
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
