"""Camera paths through a room (room frame), as a person scanning furniture walks one.

The camera tours the room's objects: every ``FRAMES_PER_VIEW``-th frame is a view aimed at one object from 1.5-3 m
(``VIEW_DISTANCE_M``) -- every object once in a random order, then again, objects of rarer classes (over the themes'
presence) more often, as a scan lingers on what is not everywhere -- chosen among ``VIEW_CANDIDATES`` random eye positions by a small probe cast that rewards
seeing the object whole and large, and seeing other objects with it; the frames between two such views move the eye
and the aim smoothly from one to the next. A share of the views (``FLOOR_VIEW_SHARE``) look steeply down at the
floor and the furniture in the middle of the room, so some views show no wall, and a few (``WALL_VIEW_SHARE``) look
along a wall. The eye stays at 1.2-1.7 m and at least ``CAMERA_WALL_INSET_M`` from every wall, where no object
reaches (layout.py keeps tall objects by the walls), so it is never inside an object.
"""

from __future__ import annotations

import numpy as np

from jointwsss.geometry.camera import look_at
from jointwsss.synth.layout import CAMERA_WALL_INSET_M, FIRST_OBJECT_INDEX, THEME_PRESENCE, SceneLayout, world_bounds
from jointwsss.synth.raycast import SurfaceSet, cast

CAMERA_HEIGHT_RANGE_M = (1.2, 1.7)
VIEW_DISTANCE_M = (1.5, 3.0)
FRAMES_PER_VIEW = 2
VIEW_CANDIDATES = 14
FLOOR_VIEW_SHARE = 0.08
WALL_VIEW_SHARE = 0.05
# A view's score counts the target's share of the image up to this much (a bigger target only hides its context).
TARGET_SHARE_CAP = 0.25
# Wall and floor up to this share of a candidate view cost nothing; beyond it, they cost its score.
STRUCTURE_SHARE_FREE = 0.4
AIM_JITTER_M = 0.12
PROBE_SIZE = (40, 30)  # (width, height) pixels of the probe cast that scores a candidate view


def camera_tour(layout: SceneLayout, surfaces: SurfaceSet, intrinsic_color: np.ndarray, color_size: tuple[int, int],
                num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """(F, 4, 4) float64 camera_to_world poses (room frame) of the tour described in the module docstring.

    ``intrinsic_color`` (4, 4) pixels at ``color_size`` (W, H): the probe cast scales it to ``PROBE_SIZE``.
    """
    scale = np.diag([PROBE_SIZE[0] / color_size[0], PROBE_SIZE[1] / color_size[1], 1.0, 1.0])
    probe_k = scale @ np.asarray(intrinsic_color, np.float64)
    num_views = max(1, -(-num_frames // FRAMES_PER_VIEW) + 1)
    kinds = rng.choice(["object", "floor", "wall"], size=num_views,
                       p=[1.0 - FLOOR_VIEW_SHARE - WALL_VIEW_SHARE, FLOOR_VIEW_SHARE, WALL_VIEW_SHARE])
    objects = _object_targets(layout)
    order = list(rng.permutation(len(objects))) if objects else []
    again = np.array([_rarity(o.nyu40) for o in layout.objects])
    eyes, aims = [], []
    for kind in kinds:
        if kind == "object" and objects:
            k = order.pop() if order else int(rng.choice(len(objects), p=again / again.sum()))
            centre, object_index = objects[k]
            eye, aim = _best_object_view(layout, surfaces, probe_k, centre, object_index, rng)
        elif kind == "floor":
            eye, aim = _floor_view(layout, rng)
        else:
            eye, aim = _wall_view(layout, rng)
        eyes.append(eye)
        aims.append(aim)
    return _interpolate(np.asarray(eyes), np.asarray(aims), num_frames, rng)


def _rarity(nyu40: int) -> float:
    """1 / the mean presence of a class over the themes (THEME_PRESENCE): how much more often than a common class a
    tour returns to an object of it."""
    presence = np.mean([probs.get(nyu40, 0.0) for probs in THEME_PRESENCE.values()])
    return 1.0 / max(presence, 0.05)


def _object_targets(layout: SceneLayout) -> list[tuple[np.ndarray, int]]:
    """(centre of the object's bounding box in metres, its object index in the surface set) of every object."""
    targets = []
    for k, obj in enumerate(layout.objects):
        lo, hi = world_bounds(obj)
        targets.append(((lo + hi) / 2.0, FIRST_OBJECT_INDEX + k))
    return targets


def _eye_region(layout: SceneLayout) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) corners (x, y) of the floor region the eye may stand over (the middle point of a narrow room)."""
    size = np.asarray(layout.room_size[:2], np.float64)
    lo, hi = np.full(2, CAMERA_WALL_INSET_M), size - CAMERA_WALL_INSET_M
    narrow = hi < lo
    mid = size / 2.0
    return np.where(narrow, mid, lo), np.where(narrow, mid, hi)


def _random_eye_height(rng: np.random.Generator) -> float:
    return float(rng.uniform(*CAMERA_HEIGHT_RANGE_M))


def _best_object_view(layout, surfaces, probe_k, centre, object_index, rng) -> tuple[np.ndarray, np.ndarray]:
    """The best of VIEW_CANDIDATES eyes at VIEW_DISTANCE_M from ``centre`` (clamped into the eye region), aimed at
    it with a small jitter, by :func:`_view_score` on a probe cast."""
    lo, hi = _eye_region(layout)
    best, best_score = None, -np.inf
    for _ in range(VIEW_CANDIDATES):
        angle = rng.uniform(0.0, 2.0 * np.pi)
        distance = rng.uniform(*VIEW_DISTANCE_M)
        xy = np.clip(centre[:2] + distance * np.array([np.cos(angle), np.sin(angle)]), lo, hi)
        eye = np.array([xy[0], xy[1], _random_eye_height(rng)])
        aim = centre + rng.normal(0.0, AIM_JITTER_M, size=3)
        if np.linalg.norm((aim - eye)[:2]) < 0.3:  # straight down: no upright image
            continue
        score = _view_score(cast(surfaces, probe_k, look_at(eye, aim), *PROBE_SIZE)[1], surfaces, object_index)
        if score > best_score:
            best, best_score = (eye, aim), score
    if best is None:
        eye = np.array([*((lo + hi) / 2.0), _random_eye_height(rng)])
        best = (eye, centre + np.array([0.5, 0.0, 0.0]) if np.allclose(centre[:2], eye[:2]) else centre)
    return best


def _view_score(surface: np.ndarray, surfaces: SurfaceSet, object_index: int) -> float:
    """How well a probe cast's surface indices (H, W) frame object ``object_index``: its share of the image (up to
    TARGET_SHARE_CAP), halved when it touches the border (cut by the frame), plus some for every other object seen
    (>= 2 % of the image), minus what wall and floor take beyond STRUCTURE_SHARE_FREE of the image."""
    owner = surfaces.object_index[surface]
    target = owner == object_index
    share = float(target.mean())
    on_border = target[0].any() or target[-1].any() or target[:, 0].any() or target[:, -1].any()
    others = np.unique(owner[(owner >= FIRST_OBJECT_INDEX) & ~target], return_counts=True)[1]
    structure = float(np.isin(surfaces.nyu40[surface], (1, 2)).mean())
    return min(share, TARGET_SHARE_CAP) * (0.5 if on_border else 1.0) \
        + 0.1 * int((others >= 0.02 * owner.size).sum()) - 0.8 * max(0.0, structure - STRUCTURE_SHARE_FREE)


def _floor_view(layout: SceneLayout, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Steeply down (40-60 degrees below the horizon) at the floor and what stands in the middle of the room."""
    lo, hi = _eye_region(layout)
    eye = np.array([*rng.uniform(lo, hi), _random_eye_height(rng)])
    heading = rng.uniform(0.0, 2.0 * np.pi)
    run = eye[2] / np.tan(rng.uniform(np.radians(40), np.radians(60)))
    return eye, np.array([eye[0] + run * np.cos(heading), eye[1] + run * np.sin(heading), 0.0])


def _wall_view(layout: SceneLayout, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Across the room at a point of a wall, 0.8-1.8 m high."""
    lo, hi = _eye_region(layout)
    eye = np.array([*rng.uniform(lo, hi), _random_eye_height(rng)])
    lx, ly = layout.room_size[:2]
    wall = int(rng.integers(4))
    t = rng.uniform(0.15, 0.85)
    point = [(t * lx, 0.0), (lx, t * ly), (t * lx, ly), (0.0, t * ly)][wall]
    return eye, np.array([point[0], point[1], rng.uniform(0.8, 1.8)])


def _interpolate(eyes: np.ndarray, aims: np.ndarray, num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """Poses of ``num_frames`` frames: frame k * FRAMES_PER_VIEW is view k, the frames between move eye and aim
    smoothly (cosine ease) from one view to the next; a slight roll that varies slowly."""
    poses = np.empty((num_frames, 4, 4))
    roll_phase, roll_rate = rng.uniform(0, 2 * np.pi), rng.uniform(0.05, 0.2)
    for f in range(num_frames):
        k, r = divmod(f, FRAMES_PER_VIEW)
        w = 0.5 - 0.5 * np.cos(np.pi * r / FRAMES_PER_VIEW)
        j = min(k + 1, len(eyes) - 1)
        eye = (1 - w) * eyes[k] + w * eyes[j]
        aim = (1 - w) * aims[k] + w * aims[j]
        if np.linalg.norm((aim - eye)[:2]) < 0.3:
            aim = aims[k] if np.linalg.norm((aims[k] - eye)[:2]) >= 0.3 else aim + np.array([0.5, 0.0, 0.0])
        pose = look_at(eye, aim)
        roll = 0.03 * np.sin(roll_phase + roll_rate * f)
        cr, sr = np.cos(roll), np.sin(roll)
        pose[:3, :3] = pose[:3, :3] @ np.array([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]])
        poses[f] = pose
    return poses
