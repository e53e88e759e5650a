"""Embedded synthetic ScanNet: themed rooms written in the official raw ScanNet v2 layout.

For every scene ``<raw_dir>/scans/<scene>/`` receives, each file written atomically and the
``.sens`` last (so a scene folder whose ``.sens`` exists is complete):

- ``<scene>_vh_clean_2.ply``          mesh, shaded vertex colours (unaligned world frame)
- ``<scene>_vh_clean_2.labels.ply``   the same mesh with nyu40 vertex labels (not for test scenes)
- ``<scene>.txt``                     the scene meta file (``key = value``: axisAlignment, intrinsics, ...)
- ``<scene>_2d-label-filt.zip``        ``label-filt/<frame>.png``, 16-bit raw ScanNet ids (not for test scenes)
- ``<scene>.sens``                    colour (JPEG) + depth (zlib, mm) stream with poses, some all -inf

plus ``<raw_dir>/scannetv2-labels.combined.tsv`` (the real one) and the split lists
``<raw_dir>/scannetv2_{train,val,test}.txt`` (for the non-empty splits). Everything is deterministic for (seed, scene id);
scenes are independent, so they can be generated in parallel.

Images, depth, labels and mesh are all produced from the same primitives (see
:mod:`jointwsss.synth.raycast`), so a mesh vertex projects onto the pixel that shows it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jointwsss.config import schema_defaults, stage_settings
from jointwsss.geometry.camera import intrinsic_matrix, scale_intrinsic
from jointwsss.io.atomic import atomic_path
from jointwsss.io.ply import write_label_ply, write_mesh_ply
from jointwsss.io.scannet_labels import resource_path, write_label_zip, write_split
from jointwsss.io.sens import SensHeader, SensWriter, encode_color, encode_depth
from jointwsss.synth.layout import SCENE_TYPES, SceneLayout, generate_layout, scene_rng
from jointwsss.synth.mesh import SceneMesh, build_mesh
from jointwsss.synth.raycast import NUM_ROOM_FACES, SurfaceSet, points_inside
from jointwsss.synth.render import CameraRig, render_color_and_labels, render_depth
from jointwsss.synth.trajectory import camera_tour

LABEL_TSV_NAME = "scannetv2-labels.combined.tsv"
SENSOR_NAME = "StructureSensor"
DEPTH_SHIFT = 1000.0
FRAME_RATE_HZ = 30.0
# Real ScanNet calibration (colour at 1296x968, depth at 640x480), scaled to the configured sizes.
REAL_COLOR_SIZE, REAL_COLOR_K = (1296, 968), (1170.187988, 1170.187988, 647.75, 483.75)
REAL_DEPTH_SIZE, REAL_DEPTH_K = (640, 480), (577.590698, 577.590698, 318.905426, 242.683609)
#: ScanNet's real sizes (``synth.real_size``), which replace these keys of the synth section: the colour and depth
#: sizes of the calibration above, a stream of ~1,500 frames (ScanNetV2's 1,513 scans hold ~2.5 M frames) and a
#: mesh at the vertex density of ``_vh_clean_2.ply`` (2-3 cm spacing; 100-200k vertices a room here).
REAL_SIZE = {"color_size": REAL_COLOR_SIZE, "depth_size": REAL_DEPTH_SIZE, "frames_per_scene": 1500,
             "mesh_vertex_spacing_m": 0.03}
# Minimum distance (metres) between a camera centre and any primitive.
CAMERA_CLEARANCE_M = 0.05


# The defaults of the config's synth section (the schema, jointwsss/resources/config.schema.yaml, is the one place
# they are written): the pipeline's default dataset.
_DEFAULTS = schema_defaults("synth")
#: Keys of the synth section that shape every scene; the scene counts only decide which scenes exist.
SCENE_KEYS = ("seed", "frames_per_scene", "color_size", "depth_size", "invalid_pose_fraction", "mesh_vertex_spacing_m",
              "jpeg_quality", "real_size", "rendered_frame_step")
#: Scene keys added after datasets were made with the others: passed to a scene's job only where they differ from
#: their default (:func:`scene_settings`), so the jobs of a dataset without them keep their params (no rerun).
LATER_SCENE_KEYS = ("real_size", "rendered_frame_step")
#: The version of the generator's world (docs/world.md has one row per version). Bump it with any change that changes
#: a scene's bytes for the same settings: rule synth_scannet carries it in its params, so Snakemake remakes raw data
#: that an earlier world wrote (its params differ), and every cache and run after it.
WORLD_VERSION = "1.4"
#: Keys that decide which scenes exist (the split lists); num_pretrain_scenes (not in the synth section) is 0 if not given.
COUNT_KEYS = ("num_train_scenes", "num_val_scenes", "num_test_scenes")


@dataclass
class SynthScanNetConfig:
    """Size and seed of the synthetic dataset. Sizes are (width, height) in pixels; defaults: the schema's."""

    seed: int = _DEFAULTS["seed"]
    num_train_scenes: int = _DEFAULTS["num_train_scenes"]
    num_val_scenes: int = _DEFAULTS["num_val_scenes"]
    num_test_scenes: int = _DEFAULTS["num_test_scenes"]  # test scenes get no label files, as in ScanNet
    # Scenes for the image network's pretraining (our stand-in for ImageNet, see README "Pretraining"):
    # labelled like train scenes, numbered after all others, never used for training or evaluation
    # (pretrain.num_scenes of the config where pretrain.image is synthetic).
    num_pretrain_scenes: int = 0
    frames_per_scene: int = _DEFAULTS["frames_per_scene"]
    color_size: tuple[int, int] = tuple(_DEFAULTS["color_size"])  # real: 1296x968
    depth_size: tuple[int, int] = tuple(_DEFAULTS["depth_size"])  # real: 640x480 (a slightly different aspect ratio)
    invalid_pose_fraction: float = _DEFAULTS["invalid_pose_fraction"]
    mesh_vertex_spacing_m: float = _DEFAULTS["mesh_vertex_spacing_m"]
    jpeg_quality: int = _DEFAULTS["jpeg_quality"]
    # ScanNet's real sizes (REAL_SIZE) in place of color_size, depth_size, frames_per_scene, mesh_vertex_spacing_m.
    real_size: bool = _DEFAULTS["real_size"]
    # Render every n-th frame; the frames between repeat the last rendered one (see synthesize_scene).
    rendered_frame_step: int = _DEFAULTS["rendered_frame_step"]

    @classmethod
    def from_settings(cls, settings: dict) -> SynthScanNetConfig:
        """The generator's settings from keys of the config's synth section as JSON (plus ``num_pretrain_scenes``);
        omitted keys take the schema's defaults, ConfigError names every unknown key."""
        example = json.dumps({key: _DEFAULTS[key] for key in SCENE_KEYS})
        stage_settings(settings, (), SCENE_KEYS + COUNT_KEYS + ("num_pretrain_scenes",), what="synth scannet settings",
                       fix=f"give keys of the config's synth section, e.g. '{example}'")
        return cls(**settings)

    def __post_init__(self) -> None:
        if self.real_size:
            for key, value in REAL_SIZE.items():
                setattr(self, key, value)
        self.color_size = tuple(int(v) for v in self.color_size)
        self.depth_size = tuple(int(v) for v in self.depth_size)
        for name in ("num_train_scenes", "num_val_scenes", "num_test_scenes", "num_pretrain_scenes"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.frames_per_scene < 1:
            raise ValueError(f"frames_per_scene must be >= 1, got {self.frames_per_scene}")
        if len(self.color_size) != 2 or len(self.depth_size) != 2 or min(self.color_size + self.depth_size) < 8:
            raise ValueError(f"color_size and depth_size must be (width, height) >= 8 px, got {self.color_size}, {self.depth_size}")
        if not 0.0 <= self.invalid_pose_fraction < 1.0:
            raise ValueError(f"invalid_pose_fraction must lie in [0, 1), got {self.invalid_pose_fraction}")
        if not 0.005 <= self.mesh_vertex_spacing_m <= 0.5:
            raise ValueError(f"mesh_vertex_spacing_m must lie in [0.005, 0.5] metres, got {self.mesh_vertex_spacing_m}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must lie in 1..100, got {self.jpeg_quality}")
        if self.rendered_frame_step < 1:
            raise ValueError(f"rendered_frame_step must be >= 1, got {self.rendered_frame_step}")


def scene_settings(synth: dict, keys: tuple[str, ...]) -> dict:
    """The ``keys`` of a config's synth section as a scene job's settings (``jointwsss synth scannet --settings``),
    without the :data:`LATER_SCENE_KEYS` that hold their default."""
    return {key: synth[key] for key in keys if key not in LATER_SCENE_KEYS or synth[key] != _DEFAULTS[key]}


def scene_ids(cfg: SynthScanNetConfig) -> dict[str, list[str]]:
    """Scene ids per split, numbered consecutively: train first, then val, test and pretrain."""
    out, start = {}, 0
    for split, count in (("train", cfg.num_train_scenes), ("val", cfg.num_val_scenes), ("test", cfg.num_test_scenes),
                         ("pretrain", cfg.num_pretrain_scenes)):
        out[split] = [f"scene{start + k:04d}_00" for k in range(count)]
        start += count
    return out


def scene_file_names(scene_id: str) -> dict[str, str]:
    """File names of a raw ScanNet scene folder, keyed by role."""
    return {
        "sens": f"{scene_id}.sens",
        "meta": f"{scene_id}.txt",
        "mesh": f"{scene_id}_vh_clean_2.ply",
        "labels_mesh": f"{scene_id}_vh_clean_2.labels.ply",
        "label_zip": f"{scene_id}_2d-label-filt.zip",
    }


def camera_rig(cfg: SynthScanNetConfig, rng: np.random.Generator) -> CameraRig:
    """Real ScanNet intrinsics scaled to the configured sizes, jittered a little per scene
    (real scans come from several devices with slightly different calibrations)."""
    fx, fy, cx, cy = REAL_COLOR_K
    f_jit, c_jit = rng.uniform(0.985, 1.015), rng.uniform(-4.0, 4.0, size=2)
    k_color = intrinsic_matrix(fx * f_jit, fy * f_jit, cx + c_jit[0], cy + c_jit[1])
    fx, fy, cx, cy = REAL_DEPTH_K
    f_jit = rng.uniform(0.99, 1.01)
    k_depth = intrinsic_matrix(fx * f_jit, fy * f_jit, cx, cy)
    return CameraRig(
        intrinsic_color=scale_intrinsic(k_color, REAL_COLOR_SIZE, cfg.color_size),
        intrinsic_depth=scale_intrinsic(k_depth, REAL_DEPTH_SIZE, cfg.depth_size),
        color_size=cfg.color_size,
        depth_size=cfg.depth_size,
    )


def world_from_room(room_size: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(4, 4) rigid transform from the room frame to an unaligned world frame (yaw + shift), as
    ScanNet's reconstructions are not axis-aligned; ``axisAlignment`` in the meta file is its inverse."""
    yaw = rng.uniform(0, 2 * np.pi)
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, -s], [s, c]])
    corners = np.array([[0, 0], [room_size[0], 0], [0, room_size[1]], room_size[:2]]) @ rot.T
    shift = -corners.min(axis=0) + rng.uniform(0.0, 0.5, size=2)
    out = np.eye(4)
    out[:2, :2] = rot
    out[:2, 3] = shift
    return out


def _invalid_pose_frames(cfg: SynthScanNetConfig, rng: np.random.Generator) -> np.ndarray:
    """A contiguous run of frames whose pose is stored as all -inf (lost tracking)."""
    n = cfg.frames_per_scene
    count = 0 if cfg.invalid_pose_fraction == 0 else max(1, int(round(cfg.invalid_pose_fraction * n)))
    count = min(count, n)
    start = int(rng.integers(0, n - count + 1))
    return np.arange(start, start + count)


def _check_camera_clearance(surfaces: SurfaceSet, poses: np.ndarray, scene_id: str) -> None:
    eyes = poses[:, :3, 3]
    if np.any(eyes < 0) or np.any(eyes > surfaces.room_size):
        raise RuntimeError(f"{scene_id}: a camera left the room")
    for j in range(NUM_ROOM_FACES, len(surfaces)):
        if points_inside(surfaces, j, eyes, tol=-CAMERA_CLEARANCE_M).any():
            raise RuntimeError(f"{scene_id}: the camera walk passes through surface {j} (an object)")


def _format_matrix(m: np.ndarray) -> str:
    return " ".join(f"{v:.6f}" for v in np.asarray(m, dtype=np.float64).ravel())


def scene_meta_text(layout: SceneLayout, rig: CameraRig, axis_alignment: np.ndarray, num_frames: int) -> str:
    """The ``<scene>.txt`` meta file: ScanNet's keys, ``key = value`` lines, intrinsics at the stored sizes."""
    kc, kd = rig.intrinsic_color, rig.intrinsic_depth
    values = {
        "axisAlignment": _format_matrix(axis_alignment),
        "colorHeight": rig.color_size[1],
        "colorToDepthExtrinsics": _format_matrix(np.eye(4)),
        "colorWidth": rig.color_size[0],
        "depthHeight": rig.depth_size[1],
        "depthWidth": rig.depth_size[0],
        "fx_color": f"{kc[0, 0]:.6f}",
        "fx_depth": f"{kd[0, 0]:.6f}",
        "fy_color": f"{kc[1, 1]:.6f}",
        "fy_depth": f"{kd[1, 1]:.6f}",
        "mx_color": f"{kc[0, 2]:.6f}",
        "mx_depth": f"{kd[0, 2]:.6f}",
        "my_color": f"{kc[1, 2]:.6f}",
        "my_depth": f"{kd[1, 2]:.6f}",
        "numColorFrames": num_frames,
        "numDepthFrames": num_frames,
        "numIMUmeasurements": num_frames,  # one IMU record per frame in the .sens trailer (imu_records)
        "sceneType": SCENE_TYPES[layout.theme],
    }
    return "".join(f"{k} = {v}\n" for k, v in values.items())


def imu_records(poses_world: np.ndarray) -> list[dict]:
    """One IMU record per frame, as an iPad's motion sensors would report it along the camera path
    ``poses_world`` (F, 4, 4) camera_to_world: the rotation rate (rad/s, from successive poses at FRAME_RATE_HZ), the
    acceleration and gravity in the device frame (units of g: at rest the accelerometer reads gravity), a
    magnetic field (microtesla, a fixed field of the world in the device frame), the attitude (roll, pitch, yaw in
    radians of the camera axes) and the frames' timestamps (microseconds)."""
    records = []
    field_world = np.array([20.0, 0.0, -40.0])
    for k, pose in enumerate(poses_world):
        rot = pose[:3, :3]
        nxt = poses_world[min(k + 1, len(poses_world) - 1)][:3, :3]
        delta = rot.T @ nxt  # rotation from this frame to the next, in the device frame
        angle = np.arccos(np.clip((np.trace(delta) - 1.0) / 2.0, -1.0, 1.0))
        axis = np.array([delta[2, 1] - delta[1, 2], delta[0, 2] - delta[2, 0], delta[1, 0] - delta[0, 1]])
        norm = np.linalg.norm(axis)
        rate = axis / norm * angle * FRAME_RATE_HZ if norm > 1e-12 else np.zeros(3)
        gravity = rot.T @ np.array([0.0, 0.0, -1.0])
        roll, pitch, yaw = (np.arctan2(rot[2, 1], rot[2, 2]), np.arcsin(np.clip(-rot[2, 0], -1.0, 1.0)),
                            np.arctan2(rot[1, 0], rot[0, 0]))
        records.append({"rotation_rate": rate, "acceleration": gravity, "magnetic_field": rot.T @ field_world,
                        "attitude": np.array([roll, pitch, yaw]), "gravity": gravity,
                        "timestamp": int(round(k * 1e6 / FRAME_RATE_HZ))})
    return records


def _transform_points(m: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    return xyz @ m[:3, :3].T + m[:3, 3]


def rendered_frame(frame: int, step: int) -> int:
    """The rendered frame whose payload, pose and label frame ``frame`` repeats: the last multiple of ``step``."""
    return frame - frame % step


def synthesize_scene(scene_id: str, scene_dir: Path, cfg: SynthScanNetConfig, *, with_labels: bool = True) -> dict:
    """Write one scene's raw files into ``scene_dir``; returns a summary (sizes, classes, timing).

    Only the frames at multiples of ``cfg.rendered_frame_step`` are rendered (the frames a ``frames.skip`` of that
    step, or a multiple of it, reads). Every other frame repeats the last rendered one as a camera that holds still:
    the same compressed colour and depth bytes, its pose (or -inf where tracking is lost) and its label image. So the
    ``.sens`` holds ``frames_per_scene`` frames of the real byte size at a fraction of the rendering, and every frame
    is consistent in itself; the IMU records follow the held camera."""
    t0 = time.perf_counter()
    scene_dir = Path(scene_dir)
    scene_dir.mkdir(parents=True, exist_ok=True)
    names = scene_file_names(scene_id)
    layout = generate_layout(cfg.seed, scene_id)
    surfaces = layout.surfaces()
    rng = scene_rng(cfg.seed, scene_id, "capture")
    rig = camera_rig(cfg, rng)
    poses_room = camera_tour(layout, surfaces, rig.intrinsic_color, rig.color_size, cfg.frames_per_scene, rng)
    _check_camera_clearance(surfaces, poses_room, scene_id)
    held = [rendered_frame(k, cfg.rendered_frame_step) for k in range(cfg.frames_per_scene)]
    poses_room = poses_room[held]  # the camera holds still between rendered frames
    to_world = world_from_room(layout.room_size, rng)
    invalid = set(_invalid_pose_frames(cfg, rng).tolist())

    mesh: SceneMesh = build_mesh(surfaces, cfg.mesh_vertex_spacing_m)
    xyz_world = _transform_points(to_world, mesh.xyz).astype(np.float32)
    vertex_nyu40 = surfaces.nyu40[mesh.surface]
    write_mesh_ply(scene_dir / names["mesh"], xyz_world, mesh.rgb, mesh.faces)
    if with_labels:
        write_label_ply(scene_dir / names["labels_mesh"], xyz_world, mesh.faces, vertex_nyu40)
    with atomic_path(scene_dir / names["meta"]) as tmp:
        tmp.write_text(scene_meta_text(layout, rig, np.linalg.inv(to_world), cfg.frames_per_scene))

    header = SensHeader(
        sensor_name=SENSOR_NAME,
        intrinsic_color=rig.intrinsic_color,
        extrinsic_color=np.eye(4),
        intrinsic_depth=rig.intrinsic_depth,
        extrinsic_depth=np.eye(4),
        color_compression="jpeg",
        depth_compression="zlib_ushort",
        color_width=cfg.color_size[0],
        color_height=cfg.color_size[1],
        depth_width=cfg.depth_size[0],
        depth_height=cfg.depth_size[1],
        depth_shift=DEPTH_SHIFT,
    )
    label_images = []
    classes_per_frame = []
    with SensWriter(scene_dir / names["sens"], header) as writer:
        for record in imu_records(np.einsum("ij,fjk->fik", to_world, poses_room)):
            writer.add_imu(**record)
        for k, pose in enumerate(poses_room):
            if held[k] == k:
                # A generator per frame, so a rendered frame's noise does not depend on which frames were rendered
                # before it: every rendered_frame_step renders the same bytes for the frames it renders.
                frame_rng = scene_rng(cfg.seed, scene_id, f"frame {k}")
                color, labels = render_color_and_labels(surfaces, rig, pose, frame_rng)
                depth = render_depth(surfaces, rig, pose, frame_rng, DEPTH_SHIFT)
                color_bytes = encode_color(color, "jpeg", cfg.jpeg_quality)
                depth_bytes = encode_depth(depth, header.depth_compression)
                seen = np.unique(labels)
                num_classes = len(set(surfaces.nyu40[np.isin(surfaces.raw_id, seen[seen > 0])].tolist()) - {22})
            stored_pose = np.full((4, 4), -np.inf) if k in invalid else to_world @ pose
            timestamp = int(round(k * 1e6 / FRAME_RATE_HZ))
            writer.add_frame(stored_pose, color_bytes=color_bytes, depth_bytes=depth_bytes,
                             timestamp_color=timestamp, timestamp_depth=timestamp)
            if with_labels:
                label_images.append(labels)
            classes_per_frame.append(num_classes)
        if with_labels:
            # Written before the .sens is moved into place, so the .sens stays the last file.
            write_label_zip(scene_dir / names["label_zip"], enumerate(label_images))
    return {
        "scene_id": scene_id,
        "world_version": WORLD_VERSION,
        "theme": layout.theme,
        "room_size_m": [round(float(v), 3) for v in layout.room_size],
        "num_vertices": int(len(mesh.xyz)),
        "num_faces": int(len(mesh.faces)),
        "num_frames": cfg.frames_per_scene,
        "num_rendered_frames": len(set(held)),
        "color_size": list(cfg.color_size),
        "depth_size": list(cfg.depth_size),
        "invalid_pose_frames": sorted(invalid),
        "classes_nyu40": sorted(int(c) for c in np.unique(vertex_nyu40) if c != 22),
        "mean_classes_per_frame": float(np.mean(classes_per_frame)),
        "seconds": time.perf_counter() - t0,
    }


def write_metadata(raw_dir: Path, cfg: SynthScanNetConfig) -> None:
    """Copy the real label tsv into ``raw_dir`` and write the split lists.

    A split with no scenes gets no list (split-list readers reject empty lists).
    """
    raw_dir = Path(raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(raw_dir / LABEL_TSV_NAME) as tmp:
        shutil.copyfile(resource_path(LABEL_TSV_NAME), tmp)
    for split, ids in scene_ids(cfg).items():
        if ids:
            write_split(raw_dir / f"scannetv2_{split}.txt", ids)


def _synthesize_one(args) -> dict:
    scene_id, raw_dir, cfg, with_labels = args
    return synthesize_scene(scene_id, Path(raw_dir) / "scans" / scene_id, cfg, with_labels=with_labels)


def synthesize_scannet(raw_dir: Path, cfg: SynthScanNetConfig, *, workers: int = 1) -> list[dict]:
    """Metadata plus every scene (test scenes without labels); ``workers`` > 1 uses processes.
    Returns the per-scene summaries in split order."""
    write_metadata(raw_dir, cfg)
    jobs = [(sid, os.fspath(raw_dir), cfg, split != "test") for split, ids in scene_ids(cfg).items() for sid in ids]
    if workers <= 1 or len(jobs) <= 1:
        return [_synthesize_one(job) for job in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_synthesize_one, jobs))
