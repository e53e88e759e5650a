"""Synthetic S3DIS + Stanford 2D-3D-S area, written in the official raw layouts.

Under ``raw_dir`` (every file written atomically by the io writers):

    Stanford3dDataset_v1.2_Aligned_Version/Area_<N>/<room>/<room>.txt and Annotations/<class>_<i>.txt
    2D-3D-Semantics/area_<N>/data/{rgb,depth,semantic,pose}/camera_<32 hex>_<room>_frame_<n>_domain_<modality>.*
    2D-3D-Semantics/assets/semantic_labels.json

Area 5 is split into ``area_5a`` (the first half of the rooms) and ``area_5b`` (the rest) on the
2D-3D-S side, as in the real release; the S3DIS side keeps one ``Area_5`` folder.

The rooms are office-building rooms (:mod:`jointwsss.synth.s3dis_layout`), deliberately unlike the
synthetic ScanNet homes. Both modalities come from the same primitives:

- S3DIS points are sampled uniformly on the visible surfaces at ``points_per_m2`` (not on mesh
  vertices), coloured by the same procedural materials, with 2 mm scanner noise; surfaces hidden
  inside other primitives (wall behind a whiteboard, table top under a monitor) get no points, as in
  the real scans; one annotation file per object (each wall is its own object, as in S3DIS).
- 2D-3D-S frames are ray cast from a few scan locations per room (every location yields several
  frames with the same camera uuid, numbered from 0): camera at 1.2-1.7 m, yaw uniform, pitch
  ~N(0, 15 deg), no roll, field of view sampled per frame in [45, 75] deg skewed towards 75 deg,
  as the 2D-3D-S/Taskonomy generator settings do (FIELD_OF_VIEW_MIN/MAX_RADS = 45/75 deg,
  ``fov = max - |z| (max - min)`` with z a standard normal truncated to |z| <= 1).
  K = [[f, 0, W/2], [0, f, W/2], [0, 0, 1]] with f = (W/2) / tan(fov/2) (pixels), as 2D-3D-S stores
  it (cx = cy = 540 at 1080 px); pixel centres are at integer coordinates. Depth is z-depth (along
  the optical axis) at 1/512 m. A few blobs per frame are "mesh holes": depth 65535, semantic
  #0D0D0D (an index past the end of semantic_labels.json) and black RGB.

Coordinates: every room has an offset in one building frame (rooms side by side along x); S3DIS
points and 2D-3D-S poses share that frame, so a depth pixel back-projected through its pose lands on
the S3DIS points of the object it shows. (In the real release the Aligned S3DIS rooms are rotated
relative to 2D-3D-S's world frame; nothing downstream relies on either.)

Everything is deterministic for (seed, area, room); rooms are independent and can be generated in
parallel (``workers``).
"""

from __future__ import annotations

import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from jointwsss.config import schema_defaults, stage_settings
from jointwsss.geometry.camera import look_at
from jointwsss.io.s3dis import S3DIS_CLASSES, write_room
from jointwsss.io.stanford2d3ds import (
    encode_semantic_png,
    frame_path,
    write_depth_png,
    write_pose,
    write_rgb_png,
    write_semantic_labels,
)
from jointwsss.synth.layout import scene_rng
from jointwsss.synth.mesh import visible_surface_points
from jointwsss.synth.raycast import (
    NUM_ROOM_FACES,
    ROOM_FACE_NORMALS,
    SurfaceKind,
    SurfaceSet,
    cast,
    group_indices,
    points_inside,
    surface_colors,
    surface_normals,
)
from jointwsss.synth.s3dis_layout import RoomLayout, generate_room, room_plan

#: The version of the area's generator. Bump it with any change that changes the area's bytes for the same settings
#: (its rooms share objects, materials and the ray caster with the ScanNet world, so a change there may reach both):
#: rule s3dis_synth carries it in its params, so Snakemake remakes an area an earlier generator wrote.
WORLD_VERSION = "1.0"

S3DIS_DIR = "Stanford3dDataset_v1.2_Aligned_Version"
STANFORD2D3DS_DIR = "2D-3D-Semantics"
LABELS_JSON = "assets/semantic_labels.json"
UNKNOWN_LABEL = "<UNK>_0_<UNK>_0_0"
# Semantic colour of pixels without a label in 2D-3D-S (#0D0D0D): an index past the end of the label list.
UNLABELED_INDEX = 0x0D0D0D

FOV_RANGE_RAD = (math.radians(45.0), math.radians(75.0))
PITCH_SIGMA_RAD = math.radians(15.0)
MAX_PITCH_RAD = math.radians(40.0)
CAMERA_HEIGHT_RANGE_M = (1.2, 1.7)
FRAMES_PER_LOCATION = 4
# Minimum distance (metres) from a scan location to walls and to any primitive.
CAMERA_WALL_MARGIN_M = 0.6
CAMERA_CLEARANCE_M = 0.35
SCANNER_NOISE_M = 0.002
ROOM_GAP_M = 0.3  # wall thickness between neighbouring rooms in the building frame
HOLE_FRACTION_RANGE = (0.003, 0.02)
HOLE_FIELD_CELLS = 5  # a coarse field: a few large holes per frame rather than speckle
# Each frame's yaw is the best of this many candidates, scored on a VIEW_PROBE_PX cast.
VIEW_CANDIDATES = 6
VIEW_PROBE_PX = 24


# The defaults of the config's s3dis.synth section and s3dis.area (the schema, jointwsss/resources/config.schema.yaml,
# is the one place they are written).
_DEFAULTS = {**schema_defaults("s3dis.synth"), "area": schema_defaults("s3dis")["area"]}
#: The keys of the config's s3dis.synth section, the settings `jointwsss synth s3dis --settings` takes.
SETTINGS_KEYS = ("seed", "rooms", "frames_per_room", "image_size", "points_per_m2")


@dataclass(frozen=True)
class SynthS3DISConfig:
    """Size and seed of the synthetic S3DIS / 2D-3D-S area.

    ``area``: area number (1-6); 5 is written as 2D-3D-S area_5a + area_5b and needs >= 2 rooms.
    ``rooms``: rooms in the area (types cycle office, conferenceRoom, hallway, office, lobby, storage, ...).
    ``frames_per_room``: 2D-3D-S perspective frames per room. ``image_size``: square frame side in
    pixels (real: 1080). ``points_per_m2``: S3DIS sampling density (points per square metre of
    visible surface; real scans are far denser). Defaults: the schema's.
    """

    area: int = _DEFAULTS["area"]
    rooms: int = _DEFAULTS["rooms"]
    frames_per_room: int = _DEFAULTS["frames_per_room"]
    image_size: int = _DEFAULTS["image_size"]
    points_per_m2: float = _DEFAULTS["points_per_m2"]
    seed: int = _DEFAULTS["seed"]

    @classmethod
    def from_settings(cls, area: int, settings: dict) -> SynthS3DISConfig:
        """Area ``area`` with keys of the config's s3dis.synth section as JSON (omitted or null: the schema's
        default); ConfigError names every unknown key."""
        example = json.dumps({key: _DEFAULTS[key] for key in SETTINGS_KEYS})
        stage_settings(settings, (), SETTINGS_KEYS, what="synth s3dis settings",
                       fix=f"give keys of the config's s3dis.synth section, e.g. '{example}'")
        return cls(area=area, **{key: value for key, value in settings.items() if value is not None})

    def __post_init__(self) -> None:
        if not 1 <= self.area <= 6:
            raise ValueError(f"area must lie in 1..6 (S3DIS has six areas), got {self.area}")
        min_rooms = 2 if self.area == 5 else 1
        if self.rooms < min_rooms:
            raise ValueError(f"rooms must be >= {min_rooms} for area {self.area} "
                             f"(area 5 is split into area_5a and area_5b), got {self.rooms}")
        if self.frames_per_room < 1:
            raise ValueError(f"frames_per_room must be >= 1, got {self.frames_per_room}")
        if not 16 <= self.image_size <= 4096:
            raise ValueError(f"image_size must lie in 16..4096 pixels, got {self.image_size}")
        if not 1.0 <= self.points_per_m2 <= 100000.0:
            raise ValueError(f"points_per_m2 must lie in 1..100000, got {self.points_per_m2}")


def area_parts(cfg: SynthS3DISConfig) -> list[str]:
    """2D-3D-S folder of each room, in room order: ``area_N``, or area_5a / area_5b for area 5."""
    if cfg.area != 5:
        return [f"area_{cfg.area}"] * cfg.rooms
    first = (cfg.rooms + 1) // 2
    return ["area_5a"] * first + ["area_5b"] * (cfg.rooms - first)


def room_offsets(layouts: list[RoomLayout]) -> list[np.ndarray]:
    """(3,) building-frame offset (metres) of each room: rooms side by side along x."""
    offsets, x = [], 0.0
    for layout in layouts:
        offsets.append(np.array([x, 0.0, 0.0]))
        x += float(layout.size[0]) + ROOM_GAP_M
    return offsets


def semantic_labels(area: int, layouts: list[RoomLayout]) -> tuple[list[str], list[np.ndarray]]:
    """The area's ``semantic_labels.json`` list and, per room, (K,) int64 label index of each object.

    Strings are ``<class>_<instance>_<roomType>_<roomNum>_<area>`` with instances counted per class
    over the whole area (as in the release: ``bookcase_100_office_24_5``), ``<UNK>_0_<UNK>_0_0``
    first, the rest in string order (as in the release's file).
    """
    counters: dict[str, int] = {}
    names_per_room = []
    for layout in layouts:
        names = []
        for cls in layout.object_classes():
            counters[cls] = counters.get(cls, 0) + 1
            names.append(f"{cls}_{counters[cls]}_{layout.room_type}_{layout.room_number}_{area}")
        names_per_room.append(names)
    labels = [UNKNOWN_LABEL] + sorted(n for names in names_per_room for n in names)
    if len(labels) >= UNLABELED_INDEX:
        raise ValueError(f"{len(labels)} labels would collide with the unlabelled colour #0D0D0D")
    position = {name: i for i, name in enumerate(labels)}
    return labels, [np.array([position[n] for n in names], dtype=np.int64) for names in names_per_room]


# ---------------------------------------------------------------------------------- S3DIS points


def sample_surface(surfaces: SurfaceSet, i: int, points_per_m2: float,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Uniform random points on surface ``i`` (room faces: the inside face only).

    Returns ``xyz`` (N, 3) float64 room-frame metres and outward ``normals`` (N, 3) (room faces:
    inward); N is Poisson with mean area * ``points_per_m2`` per face.
    """
    half, kind = surfaces.half[i], surfaces.kind[i]
    local_pts, local_nrm = [], []
    if kind == SurfaceKind.CYLINDER:
        radius, half_height = half[0], half[2]
        n = rng.poisson(2 * np.pi * radius * 2 * half_height * points_per_m2)
        theta, z = rng.uniform(0, 2 * np.pi, n), rng.uniform(-half_height, half_height, n)
        local_pts.append(np.stack([radius * np.cos(theta), radius * np.sin(theta), z], axis=1))
        local_nrm.append(np.stack([np.cos(theta), np.sin(theta), np.zeros(n)], axis=1))
        for sign in (-1.0, 1.0):
            n = rng.poisson(np.pi * radius**2 * points_per_m2)
            rho, theta = radius * np.sqrt(rng.random(n)), rng.uniform(0, 2 * np.pi, n)
            local_pts.append(np.stack([rho * np.cos(theta), rho * np.sin(theta), np.full(n, sign * half_height)], 1))
            local_nrm.append(np.tile([0.0, 0.0, sign], (n, 1)))
    else:
        for axis in range(3):
            for sign in (-1.0, 1.0):
                normal = np.zeros(3)
                normal[axis] = sign
                if kind == SurfaceKind.ROOM_FACE:
                    # The room face at local +-half[axis] is seen from inside, along -normal.
                    if not np.allclose(-normal, ROOM_FACE_NORMALS[i]):
                        continue
                    normal = -normal
                u_axis, v_axis = [a for a in range(3) if a != axis]
                n = rng.poisson(4.0 * half[u_axis] * half[v_axis] * points_per_m2)
                p = np.empty((n, 3))
                p[:, axis] = sign * half[axis]
                p[:, u_axis] = rng.uniform(-half[u_axis], half[u_axis], n)
                p[:, v_axis] = rng.uniform(-half[v_axis], half[v_axis], n)
                local_pts.append(p)
                local_nrm.append(np.tile(normal, (n, 1)))
    p, nrm = np.concatenate(local_pts), np.concatenate(local_nrm)
    return surfaces.center[i] + surfaces.vector_to_room(i, p), surfaces.vector_to_room(i, nrm)


def room_tint(rng: np.random.Generator) -> np.ndarray:
    """(3,) per-room RGB gain: warm fluorescent light, shared by the room's points and frames."""
    return np.array([1.0 + rng.uniform(-0.02, 0.05), 1.0, 1.0 - rng.uniform(0.0, 0.08)])


def sample_room_points(layout: RoomLayout, points_per_m2: float, tint: np.ndarray, rng: np.random.Generator):
    """The room's S3DIS cloud (room frame): ``xyz`` (N, 3) float64 metres (with scanner noise), ``rgb``
    (N, 3) uint8 and ``object_index`` (N,) int32 into ``layout.object_classes()``."""
    surfaces = layout.surfaces()
    xyz, normals, surface = [], [], []
    for i in range(len(surfaces)):
        p, n = sample_surface(surfaces, i, points_per_m2, rng)
        xyz.append(p)
        normals.append(n)
        surface.append(np.full(len(p), i, dtype=np.int32))
    xyz, normals, surface = np.concatenate(xyz), np.concatenate(normals), np.concatenate(surface)
    keep = visible_surface_points(surfaces, xyz, surface)
    xyz, normals, surface = xyz[keep], normals[keep], surface[keep]
    colour = surface_colors(surfaces, surface, xyz, normals) * tint * 255.0
    colour += rng.normal(0.0, 2.0, size=colour.shape)
    rgb = np.clip(np.rint(colour), 0, 255).astype(np.uint8)
    noisy = xyz + normals * rng.normal(0.0, SCANNER_NOISE_M, size=(len(xyz), 1))
    return noisy, rgb, surfaces.object_index[surface]


# ------------------------------------------------------------------------------ 2D-3D-S frames


def sample_fov(rng: np.random.Generator) -> float:
    """Field of view (radians) as the 2D-3D-S generator samples it: in [45, 75] deg, skewed to 75."""
    z = 2.0
    while abs(z) > 1.0:
        z = rng.normal()
    lo, hi = FOV_RANGE_RAD
    return hi - abs(z) * (hi - lo)


def intrinsic_for_fov(fov_rad: float, image_size: int) -> np.ndarray:
    """(3, 3) float64 K of a square image: f = (W/2) / tan(fov/2) pixels, principal point (W/2, W/2)."""
    f = (image_size / 2.0) / math.tan(fov_rad / 2.0)
    return np.array([[f, 0.0, image_size / 2.0], [0.0, f, image_size / 2.0], [0.0, 0.0, 1.0]])


def scan_locations(surfaces: SurfaceSet, count: int, rng: np.random.Generator) -> np.ndarray:
    """(count, 3) room-frame camera centres (metres): CAMERA_WALL_MARGIN_M from the walls, at
    CAMERA_HEIGHT_RANGE_M, clear of every primitive (the clearance shrinks if a room is too crowded)."""
    size = surfaces.room_size
    margin = np.minimum(CAMERA_WALL_MARGIN_M, size[:2] / 2 - 0.05)
    out = []
    for _ in range(count):
        eye = None
        for clearance in (CAMERA_CLEARANCE_M, 0.2, 0.05):
            for _try in range(200):
                cand = np.array([rng.uniform(margin[0], size[0] - margin[0]), rng.uniform(margin[1], size[1] - margin[1]),
                                 rng.uniform(*CAMERA_HEIGHT_RANGE_M)])
                if not any(points_inside(surfaces, j, cand[None], tol=-clearance)[0]
                           for j in range(NUM_ROOM_FACES, len(surfaces))):
                    eye = cand
                    break
            if eye is not None:
                break
        if eye is None:
            raise RuntimeError("no free camera position in the room (every candidate is inside furniture)")
        out.append(eye)
    return np.array(out)


def camera_pose(eye: np.ndarray, yaw: float, pitch: float) -> np.ndarray:
    """(4, 4) camera_to_world of a level camera (no roll) at ``eye`` turned ``yaw`` about z, tilted ``pitch`` up."""
    forward = np.array([math.cos(yaw) * math.cos(pitch), math.sin(yaw) * math.cos(pitch), math.sin(pitch)])
    return look_at(eye, eye + forward)


def choose_yaw(surfaces: SurfaceSet, eye: np.ndarray, pitch: float, K: np.ndarray, image_size: int,
               rng: np.random.Generator) -> float:
    """Yaw (radians) of a frame that looks at content: the best of VIEW_CANDIDATES random yaws, scored
    by a tiny ray cast as (objects other than walls, floor and ceiling in view) + median depth in metres.
    A real scan's frames cover all directions; this only keeps short synthetic sets from being mostly bare wall."""
    scale = VIEW_PROBE_PX / image_size
    k_probe = np.array([[K[0, 0] * scale, 0.0, K[0, 2] * scale], [0.0, K[1, 1] * scale, K[1, 2] * scale], [0, 0, 1.0]])
    best_yaw, best_score = 0.0, -np.inf
    for yaw in rng.uniform(0.0, 2 * np.pi, VIEW_CANDIDATES):
        depth, surface, _ = cast(surfaces, k_probe, camera_pose(eye, yaw, pitch), VIEW_PROBE_PX, VIEW_PROBE_PX)
        objects = np.unique(surfaces.object_index[surface])
        score = np.count_nonzero(objects >= NUM_ROOM_FACES) + float(np.median(depth))
        if score > best_score:
            best_yaw, best_score = float(yaw), score
    return best_yaw


def render_frame(surfaces: SurfaceSet, object_label: np.ndarray, K: np.ndarray, pose: np.ndarray, image_size: int,
                 tint: np.ndarray, rng: np.random.Generator):
    """Ray cast one frame (room-frame pose).

    Returns ``rgb`` (H, W, 3) uint8, ``depth`` (H, W) float64 z-depth metres (NaN in holes),
    ``label`` (H, W) int64 index into semantic_labels.json (UNLABELED_INDEX in holes) and
    ``surface`` (H, W) int32 surface hit by each pixel's ray.
    """
    depth, surface, dirs = cast(surfaces, K, pose, image_size, image_size)
    points = pose[:3, 3] + depth.reshape(-1, 1) * dirs.reshape(-1, 3)
    ids = surface.ravel()
    normals = np.empty_like(points)
    for i, idx in group_indices(ids):
        normals[idx] = surface_normals(surfaces, i, points[idx])
    colour = surface_colors(surfaces, ids, points, normals).reshape(image_size, image_size, 3)
    colour = colour * tint * rng.uniform(0.92, 1.06) * 255.0 + rng.normal(0.0, 1.0, size=colour.shape)
    # The release's images are rendered from a textured mesh: slightly soft.
    colour = cv2.GaussianBlur(colour.astype(np.float32), (3, 3), 0.6)
    rgb = np.clip(np.rint(colour), 0, 255).astype(np.uint8)
    label = object_label[surfaces.object_index[surface]]

    # Mesh holes: a coarse random field, smoothly upsampled, its lowest few percent.
    coarse = rng.random((HOLE_FIELD_CELLS, HOLE_FIELD_CELLS)).astype(np.float32)
    field = cv2.resize(coarse, (image_size, image_size), interpolation=cv2.INTER_CUBIC)
    holes = field < np.quantile(field, rng.uniform(*HOLE_FRACTION_RANGE))
    depth = np.where(holes, np.nan, depth)
    label = np.where(holes, UNLABELED_INDEX, label)
    rgb[holes] = 0
    return rgb, depth, label, surface


def frame_names(room: str, num_frames: int, rng: np.random.Generator) -> list[tuple[int, str]]:
    """(scan location, frame name) per frame: ``camera_<32 hex>_<room>_frame_<n>``, FRAMES_PER_LOCATION
    frames per location, numbered from 0 per location."""
    locations = max(1, math.ceil(num_frames / FRAMES_PER_LOCATION))
    uuids = [rng.bytes(16).hex() for _ in range(locations)]
    out, count = [], [0] * locations
    for k in range(num_frames):
        loc = k % locations
        out.append((loc, f"camera_{uuids[loc]}_{room}_frame_{count[loc]}"))
        count[loc] += 1
    return out


# ------------------------------------------------------------------------------------------ rooms


@dataclass(frozen=True)
class RoomJob:
    """Everything one worker needs to write one room."""

    raw_dir: str
    cfg: SynthS3DISConfig
    layout: RoomLayout
    part: str
    offset: np.ndarray
    object_label: np.ndarray


def synthesize_room(job: RoomJob) -> dict:
    """Write one room's S3DIS folder and its 2D-3D-S frames; return a JSON-able summary."""
    t0 = time.perf_counter()
    cfg, layout = job.cfg, job.layout
    key = f"Area_{cfg.area}/{layout.name}"
    raw_dir = Path(job.raw_dir)
    surfaces = layout.surfaces()
    classes = layout.object_classes()
    tint = room_tint(scene_rng(cfg.seed, key, "tint"))

    xyz, rgb, obj = sample_room_points(layout, cfg.points_per_m2, tint, scene_rng(cfg.seed, key, "points"))
    xyz = xyz + job.offset
    objects = [(classes[k], xyz[obj == k], rgb[obj == k]) for k in range(len(classes)) if np.any(obj == k)]
    write_room(raw_dir / S3DIS_DIR / f"Area_{cfg.area}" / layout.name, objects)
    class_points = {c: 0 for c in S3DIS_CLASSES}
    for cls, pts, _ in objects:
        class_points[cls] += len(pts)

    rng = scene_rng(cfg.seed, key, "frames")
    names = frame_names(layout.name, cfg.frames_per_room, rng)
    eyes = scan_locations(surfaces, max(loc for loc, _ in names) + 1, rng)
    to_building = np.eye(4)
    to_building[:3, 3] = job.offset
    data_dir = raw_dir / STANFORD2D3DS_DIR / job.part / "data"
    for loc, frame in names:
        K = intrinsic_for_fov(sample_fov(rng), cfg.image_size)
        pitch = float(np.clip(rng.normal(0.0, PITCH_SIGMA_RAD), -MAX_PITCH_RAD, MAX_PITCH_RAD))
        pose = camera_pose(eyes[loc], choose_yaw(surfaces, eyes[loc], pitch, K, cfg.image_size, rng), pitch)
        image, depth, label, _ = render_frame(surfaces, job.object_label, K, pose, cfg.image_size, tint, rng)
        write_rgb_png(frame_path(data_dir, frame, "rgb"), image)
        write_depth_png(frame_path(data_dir, frame, "depth"), depth)
        encode_semantic_png(frame_path(data_dir, frame, "semantic"), label)
        write_pose(frame_path(data_dir, frame, "pose"), K, np.linalg.inv(to_building @ pose)[:3])
    return {
        "room": layout.name,
        "room_type": layout.room_type,
        "part": job.part,
        "size_m": [round(float(v), 3) for v in layout.size],
        "offset_m": [round(float(v), 3) for v in job.offset],
        "num_points": int(len(xyz)),
        "num_objects": len(objects),
        "class_points": class_points,
        "num_frames": len(names),
        "seconds": round(time.perf_counter() - t0, 3),
    }


def synthesize_s3dis(raw_dir: Path, cfg: SynthS3DISConfig, *, workers: int = 1) -> dict:
    """Write a synthetic S3DIS area and its 2D-3D-S frames under ``raw_dir`` (see the module docstring).

    ``workers`` > 1 generates rooms in parallel processes. Returns a JSON-able summary: ``area``, ``world_version``,
    ``rooms`` (per-room summaries), ``points_per_room``, ``total_points``, ``frames_per_part``,
    ``class_points`` (all 13 S3DIS classes), ``num_labels`` and ``seconds``.
    """
    t0 = time.perf_counter()
    raw_dir = Path(raw_dir)
    layouts = [generate_room(cfg.seed, cfg.area, t, n) for t, n in room_plan(cfg.rooms)]
    labels, object_labels = semantic_labels(cfg.area, layouts)
    write_semantic_labels(raw_dir / STANFORD2D3DS_DIR / LABELS_JSON, labels)
    jobs = [RoomJob(os.fspath(raw_dir), cfg, layout, part, offset, label)
            for layout, part, offset, label in zip(layouts, area_parts(cfg), room_offsets(layouts), object_labels)]
    if workers <= 1 or len(jobs) <= 1:
        rooms = [synthesize_room(job) for job in jobs]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            rooms = list(pool.map(synthesize_room, jobs))
    frames_per_part: dict[str, int] = {}
    class_points = {c: 0 for c in S3DIS_CLASSES}
    for room in rooms:
        frames_per_part[room["part"]] = frames_per_part.get(room["part"], 0) + room["num_frames"]
        for cls, n in room["class_points"].items():
            class_points[cls] += n
    return {
        "area": cfg.area,
        "world_version": WORLD_VERSION,
        "seed": cfg.seed,
        "rooms": rooms,
        "points_per_room": {room["room"]: room["num_points"] for room in rooms},
        "total_points": sum(room["num_points"] for room in rooms),
        "frames_per_part": frames_per_part,
        "class_points": class_points,
        "num_labels": len(labels),
        "seconds": round(time.perf_counter() - t0, 3),
    }
