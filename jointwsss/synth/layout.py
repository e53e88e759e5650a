"""Room layouts: a themed room with furniture placed by class-typical rules (no rendering here).

A layout is deterministic for (seed, scene id). Placement rules, which keep the data plausible and
the camera walk collision-free:

- Things that stand against a wall (beds, sofas, bookshelves, cabinets, counters, fridges, desks,
  toilets, bathtubs) touch it; doors reach the floor, windows sit at mid height, pictures at eye
  height, curtains hang beside windows, shower curtains along bathtubs, sinks on counters or on a
  wall at ~0.85 m.
- Nothing taller than ``LOW_OBJECT_MAX_M`` stands farther than ``TALL_OBJECT_BAND_M`` from a wall;
  the camera walks at least ``CAMERA_WALL_INSET_M`` from the walls at heights above
  ``LOW_OBJECT_MAX_M``, so it is never inside an object.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from jointwsss.io.scannet_labels import raw_ids_for_nyu40
from jointwsss.synth import objects as ob
from jointwsss.synth.objects import EMBED_M, Part, SceneObject
from jointwsss.synth.raycast import ROOM_FACE_NAMES, SurfaceKind, SurfaceSet, room_surface_set
from jointwsss.synth.texture import Material, MaterialKind, jitter_color, rgb

LOW_OBJECT_MAX_M = 1.12
# Object indices of a layout's surface set: 0 floor, 1 ceiling, 2 the four walls, then the objects in order.
FIRST_OBJECT_INDEX = 3
TALL_OBJECT_BAND_M = 0.85
CAMERA_WALL_INSET_M = 0.95

THEMES = ("bedroom", "office", "bathroom", "kitchen", "living room", "apartment")
# ScanNet's own sceneType strings for the themes.
SCENE_TYPES = {
    "bedroom": "Bedroom / Hotel",
    "office": "Office",
    "bathroom": "Bathroom",
    "kitchen": "Kitchen",
    "living room": "Living room / Lounge",
    "apartment": "Apartment",
}
# The probability that a room of a theme holds each object class (wall and floor: always). Classes are drawn
# independently, so none comes with another for sure and none is in more than ~75 % of the scenes (over the six
# themes, which cycle over scene numbers): a class that is in every scene could not be told from the rest by scene
# labels, and a pair that always comes together could not be told apart. Every class is in some room of every
# theme run of six scenes on average; each theme's builder places exactly the classes listed for it.
THEME_PRESENCE = {
    "bedroom": {ob.BED: 0.95, ob.CABINET: 0.7, ob.WINDOW: 0.75, ob.DOOR: 0.7, ob.PICTURE: 0.7, ob.CURTAIN: 0.6,
                ob.OTHERFURNITURE: 0.6, ob.CHAIR: 0.65, ob.DESK: 0.5, ob.BOOKSHELF: 0.55, ob.TABLE: 0.35,
                ob.SOFA: 0.3, ob.REFRIGERATOR: 0.2, ob.SINK: 0.15},
    "office": {ob.DESK: 0.95, ob.CHAIR: 0.95, ob.WINDOW: 0.75, ob.BOOKSHELF: 0.75, ob.DOOR: 0.7, ob.CABINET: 0.6,
               ob.OTHERFURNITURE: 0.6, ob.TABLE: 0.5, ob.PICTURE: 0.5, ob.SOFA: 0.4, ob.REFRIGERATOR: 0.35,
               ob.CURTAIN: 0.3, ob.COUNTER: 0.2, ob.SINK: 0.15},
    "bathroom": {ob.TOILET: 0.9, ob.SINK: 0.9, ob.DOOR: 0.7, ob.BATHTUB: 0.9, ob.SHOWER_CURTAIN: 0.95,
                 ob.CABINET: 0.6, ob.COUNTER: 0.5, ob.OTHERFURNITURE: 0.5, ob.WINDOW: 0.45, ob.PICTURE: 0.4,
                 ob.CURTAIN: 0.2, ob.CHAIR: 0.1},
    "kitchen": {ob.CABINET: 0.95, ob.COUNTER: 0.9, ob.REFRIGERATOR: 0.85, ob.SINK: 0.85, ob.DOOR: 0.7,
                ob.TABLE: 0.7, ob.CHAIR: 0.7, ob.WINDOW: 0.65, ob.OTHERFURNITURE: 0.5, ob.PICTURE: 0.35,
                ob.CURTAIN: 0.35, ob.BOOKSHELF: 0.1, ob.DESK: 0.1},
    "living room": {ob.SOFA: 0.9, ob.TABLE: 0.85, ob.WINDOW: 0.8, ob.PICTURE: 0.7, ob.DOOR: 0.7, ob.CHAIR: 0.75,
                    ob.OTHERFURNITURE: 0.6, ob.CURTAIN: 0.6, ob.BOOKSHELF: 0.6, ob.CABINET: 0.4, ob.DESK: 0.3,
                    ob.BED: 0.2},
    # A studio flat scanned in one go (ScanNet's "Apartment" scans span several rooms).
    "apartment": {ob.BED: 0.7, ob.SINK: 0.7, ob.DOOR: 0.7, ob.WINDOW: 0.7, ob.CHAIR: 0.7, ob.CABINET: 0.5,
                  ob.TOILET: 0.8, ob.SOFA: 0.6, ob.REFRIGERATOR: 0.6, ob.SHOWER_CURTAIN: 0.8, ob.PICTURE: 0.5,
                  ob.TABLE: 0.6, ob.OTHERFURNITURE: 0.5, ob.BATHTUB: 0.8, ob.COUNTER: 0.5, ob.CURTAIN: 0.4,
                  ob.DESK: 0.3, ob.BOOKSHELF: 0.3},
}
OTHERFURNITURE_VARIANTS = {
    "bedroom": ("ottoman", "trash can", "radiator"),
    "office": ("trash can", "bench", "radiator"),
    "bathroom": ("trash can", "washing machine"),
    "kitchen": ("trash can", "washing machine", "radiator"),
    "living room": ("ottoman", "tv stand", "radiator", "trash can"),
    "apartment": ("trash can", "washing machine", "ottoman"),
}
# A room holds at least this many object classes (the most probable missing ones are added).
MIN_OBJECT_CLASSES = 6


def scene_rng(seed: int, scene_id: str, stream: str) -> np.random.Generator:
    """Independent generator for one purpose (``stream``) of one scene: depends only on (seed, scene, stream)."""
    return np.random.default_rng(
        np.random.SeedSequence([int(seed), zlib.crc32(scene_id.encode()), zlib.crc32(stream.encode())])
    )


def scene_number(scene_id: str) -> int:
    """``scene0012_00`` -> 12."""
    if not (scene_id.startswith("scene") and len(scene_id) == 12 and scene_id[5:9].isdigit()):
        raise ValueError(f"scene id {scene_id!r} is not of the form sceneNNNN_NN")
    return int(scene_id[5:9])


def theme_for(seed: int, scene_id: str) -> str:
    """Themes cycle over scene numbers, so every run of len(THEMES) consecutive scenes holds every theme."""
    return THEMES[(scene_number(scene_id) + seed) % len(THEMES)]


@lru_cache(maxsize=1)
def _raw_ids() -> dict[int, list[int]]:
    return raw_ids_for_nyu40()


def pick_raw_id(rng: np.random.Generator, nyu40: int, preferred: tuple[int, ...] = ()) -> int:
    """A raw ScanNet category id that the real tsv maps to ``nyu40``.

    From ``preferred`` (variant-specific ids, e.g. 165 'mini fridge') when given; otherwise
    mostly the most frequent id, sometimes one of the next five (which includes ids > 255).
    """
    ids = _raw_ids().get(nyu40, [])
    if not ids:
        raise ValueError(f"the ScanNet label tsv has no raw id for nyu40 id {nyu40}")
    if preferred:
        valid = [r for r in preferred if r in ids]
        if len(valid) != len(preferred):
            raise ValueError(f"raw ids {preferred} do not all map to nyu40 {nyu40} in the ScanNet label tsv")
        return int(valid[0] if rng.random() < 0.6 else valid[int(rng.integers(len(valid)))])
    if len(ids) == 1 or rng.random() < 0.65:
        return int(ids[0])
    return int(ids[1 + int(rng.integers(min(5, len(ids) - 1)))])


@dataclass
class SceneLayout:
    """A room (room frame: [0, Lx] x [0, Ly] x [0, H] metres) and its objects (room frame parts)."""

    scene_id: str
    theme: str
    room_size: np.ndarray
    room_materials: list[Material]
    room_raw_ids: list[int]
    objects: list[SceneObject]

    def object_classes(self) -> set[int]:
        """nyu40 ids of the labelled things in the room (wall and floor included, ceiling not)."""
        return {ob.WALL, ob.FLOOR} | {o.nyu40 for o in self.objects}

    def surfaces(self) -> SurfaceSet:
        # (nyu40, object index) per face: the floor, the ceiling, and the four walls as one wall object
        face = {"floor": (ob.FLOOR, 0), "ceiling": (ob.CEILING, 1)}
        classes = [face.get(name, (ob.WALL, 2)) for name in ROOM_FACE_NAMES]  # 3 = FIRST_OBJECT_INDEX
        faces = [(mat, nyu, raw, obj) for mat, raw, (nyu, obj) in zip(self.room_materials, self.room_raw_ids, classes)]
        parts = [(p, o.nyu40, o.raw_id if p.raw_id is None else p.raw_id, FIRST_OBJECT_INDEX + k)
                 for k, o in enumerate(self.objects) for p in o.parts]
        return room_surface_set(self.room_size, faces, parts)


# ------------------------------------------------------------------------------------ placement


def _transform(obj: SceneObject, xy: np.ndarray, yaw: float) -> SceneObject:
    c, s = np.cos(yaw), np.sin(yaw)
    parts = []
    for p in obj.parts:
        x, y, z = p.center
        center = np.array([xy[0] + c * x - s * y, xy[1] + s * x + c * y, z])
        parts.append(Part(p.kind, center, p.half.copy(), p.material, p.yaw + yaw, p.raw_id))
    meta = dict(obj.meta, xy=np.asarray(xy, float), yaw=yaw)
    return SceneObject(obj.name, obj.nyu40, parts, obj.preferred_raw_ids, obj.raw_id, meta)


def world_bounds(obj: SceneObject) -> tuple[np.ndarray, np.ndarray]:
    """(3,) min and max corner in metres of a placed object's parts (room frame)."""
    lo, hi = [], []
    for p in obj.parts:
        if p.kind == SurfaceKind.CYLINDER:
            ext = p.half
        else:
            c, s = abs(np.cos(p.yaw)), abs(np.sin(p.yaw))
            ext = np.array([c * p.half[0] + s * p.half[1], s * p.half[0] + c * p.half[1], p.half[2]])
        lo.append(p.center - ext)
        hi.append(p.center + ext)
    return np.min(lo, axis=0), np.max(hi, axis=0)


class Placer:
    """Rejection-sampling placement with axis-aligned bounding-box collision tests."""

    def __init__(self, room_size: np.ndarray, rng: np.random.Generator):
        self.room = np.asarray(room_size, dtype=np.float64)
        self.rng = rng
        # (min, max, owner): owner is the placed object, or None for a keep-free region.
        self.boxes: list[tuple[np.ndarray, np.ndarray, SceneObject | None]] = []
        self.placed: list[SceneObject] = []

    # walls: 0 y=0, 1 x=Lx, 2 y=Ly, 3 x=0; local +x runs along the wall, +y into the room.
    def wall_frame(self, wall: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        lx, ly = self.room[:2]
        start = [np.array([0.0, 0.0]), np.array([lx, 0.0]), np.array([lx, ly]), np.array([0.0, ly])][wall]
        yaw = wall * np.pi / 2.0
        along = np.array([np.cos(yaw), np.sin(yaw)])
        inward = np.array([-np.sin(yaw), np.cos(yaw)])
        return start, along, inward, yaw

    def wall_length(self, wall: int) -> float:
        return float(self.room[0] if wall % 2 == 0 else self.room[1])

    def fits(self, obj: SceneObject, gap: float = 0.03, ignore: tuple[SceneObject, ...] = ()) -> bool:
        """Inside the room, tall parts near a wall, and no overlap (closer than ``gap``) with others."""
        lo, hi = world_bounds(obj)
        if np.any(lo < -0.03) or np.any(hi > self.room + 0.03):
            return False
        lx, ly = self.room[:2]
        for part in obj.parts:
            plo, phi = world_bounds(SceneObject(obj.name, obj.nyu40, [part]))
            if phi[2] > LOW_OBJECT_MAX_M and not (
                phi[1] <= TALL_OBJECT_BAND_M or plo[1] >= ly - TALL_OBJECT_BAND_M
                or phi[0] <= TALL_OBJECT_BAND_M or plo[0] >= lx - TALL_OBJECT_BAND_M
            ):
                return False
        for blo, bhi, owner in self.boxes:
            if owner is not None and any(owner is o for o in ignore):
                continue
            if np.all(lo < bhi + gap) and np.all(hi > blo - gap):
                return False
        return True

    def commit(self, group: list[SceneObject]) -> list[SceneObject]:
        for o in group:
            lo, hi = world_bounds(o)
            self.boxes.append((lo, hi, o))
            self.placed.append(o)
        return group

    def block(self, lo, hi) -> None:
        """Keep a region free (e.g. where a door swings)."""
        self.boxes.append((np.asarray(lo, float), np.asarray(hi, float), None))

    def block_door_swing(self, door: SceneObject, depth_m: float) -> None:
        """Keep the floor in front of a placed door free, ``depth_m`` metres into the room and 2 m high."""
        start, along, inward, _ = self.wall_frame(door.meta["wall"])
        w = door.meta["size"][0]
        a = start + (door.meta["s"] - w / 2) * along
        b = start + (door.meta["s"] + w / 2) * along + depth_m * inward
        self.block(np.r_[np.minimum(a, b), 0.0], np.r_[np.maximum(a, b), 2.0])

    def _try(self, group: list[SceneObject], xy: np.ndarray, yaw: float, gap: float,
             ignore: tuple[SceneObject, ...] = ()) -> list[SceneObject] | None:
        placed = [_transform(o, xy, yaw) for o in group]
        if all(self.fits(o, gap, ignore) for o in placed):
            return self.commit(placed)
        return None

    def against_wall(self, group: list[SceneObject], *, walls=(0, 1, 2, 3), corner: bool = False,
                     tries: int = 40, gap: float = 0.03) -> list[SceneObject] | None:
        """Place a group (shared object frame) with its back (local min y) on a wall."""
        lo = np.min([o.local_bounds()[0] for o in group], axis=0)
        hi = np.max([o.local_bounds()[1] for o in group], axis=0)
        lengths = np.array([self.wall_length(w) for w in walls])
        for _ in range(tries):
            wall = int(walls[self.rng.choice(len(walls), p=lengths / lengths.sum())])
            length = self.wall_length(wall)
            s_min, s_max = -lo[0] + 0.02, length - hi[0] - 0.02
            if s_max < s_min:
                continue
            if corner:
                s = s_min if self.rng.random() < 0.5 else s_max
            else:
                s = self.rng.uniform(s_min, s_max)
            start, along, inward, yaw = self.wall_frame(wall)
            xy = start + s * along + (-lo[1] - EMBED_M) * inward
            result = self._try(group, xy, yaw, gap)
            if result is not None:
                for o in result:
                    o.meta.update(wall=wall, s=s)
                return result
        return None

    def free(self, group: list[SceneObject], *, tries: int = 40, gap: float = 0.05,
             margin: float = 0.3) -> list[SceneObject] | None:
        """Place a group anywhere on the floor, roughly axis-aligned, away from the walls."""
        for _ in range(tries):
            yaw = self.rng.integers(4) * np.pi / 2 + self.rng.uniform(-0.2, 0.2)
            xy = np.array([self.rng.uniform(margin, self.room[0] - margin), self.rng.uniform(margin, self.room[1] - margin)])
            result = self._try(group, xy, yaw, gap)
            if result is not None:
                return result
        return None

    def at(self, group: list[SceneObject], xy: np.ndarray, yaw: float, gap: float = 0.03,
           ignore: tuple[SceneObject, ...] = ()) -> list[SceneObject] | None:
        """Place a group at a given pose; ``ignore``: placed objects it may overlap (a chair's table)."""
        return self._try(group, np.asarray(xy, float), yaw, gap, ignore)


def _offset(obj: SceneObject, dx: float = 0.0, dy: float = 0.0, yaw: float = 0.0) -> SceneObject:
    """The object moved by (dx, dy) and turned by ``yaw`` inside its own frame."""
    return _transform(obj, np.array([dx, dy]), yaw)


# ------------------------------------------------------------------------------- room builders


def _chairs_around(rng, placer: Placer, table: SceneObject, count: int, variant: str) -> list[SceneObject]:
    """Chairs facing a placed table, skipping seats that collide."""
    w, d = table.meta["size"]
    xy, yaw = table.meta["xy"], table.meta["yaw"]
    seats = [(0.0, -1.0), (0.0, 1.0), (-1.0, 0.0), (1.0, 0.0)]
    if w > 1.3:
        seats = [(-0.25, -1.0), (0.25, -1.0), (-0.25, 1.0), (0.25, 1.0), (-1.0, 0.0), (1.0, 0.0)]
    order = rng.permutation(len(seats))
    out = []
    for k in order:
        if len(out) >= count:
            break
        chair = ob.build_chair(rng, variant)
        cw, cd = chair.meta["size"]
        fx, fy = seats[k]
        local = np.array([fx * w if fy != 0 else fx * (w / 2 + cd / 2 - 0.05),
                          fy * (d / 2 + cd / 2 - 0.1) if fy != 0 else 0.0])
        c, s = np.cos(yaw), np.sin(yaw)
        pos = xy + np.array([c * local[0] - s * local[1], s * local[0] + c * local[1]])
        to_table = xy - pos
        chair_yaw = np.arctan2(-to_table[0], to_table[1]) + rng.uniform(-0.25, 0.25)
        placed = placer.at([chair], pos, chair_yaw, gap=0.01, ignore=(table,))
        if placed:
            out += placed
    return out


@dataclass
class _Room:
    """What the room builders share: the generator, the placer, the room height (metres) and the nyu40
    ids of the classes to place (each builder step places its class only if the room wants it)."""

    rng: np.random.Generator
    placer: Placer
    height: float
    want: frozenset[int]

    def count(self, lo: int, hi: int) -> int:
        """A random count in ``lo..hi`` (both included)."""
        return int(self.rng.integers(lo, hi + 1))

    def has_placed(self, nyu40: int) -> bool:
        """Whether an object of class ``nyu40`` stands in the room already."""
        return any(o.nyu40 == nyu40 for o in self.placer.placed)


def _add_doors(room: _Room) -> None:
    """One door, sometimes two, each keeping the floor 0.9 m in front of it free."""
    if ob.DOOR not in room.want:
        return
    for _ in range(1 if room.rng.random() < 0.8 else 2):
        door = room.placer.against_wall([ob.build_door(room.rng, room.height)], gap=0.1)
        if door:
            room.placer.block_door_swing(door[0], 0.9)


def _curtains_beside(room: _Room, window: SceneObject) -> list[SceneObject]:
    """One or two curtains hanging beside ``window``, in the window's frame."""
    rng = room.rng
    ww, wh = window.meta["size"]
    top = min(window.meta["sill"] + wh + 0.15, room.height - 0.05)
    bottom = 0.05 if rng.random() < 0.6 else window.meta["sill"] - 0.2
    pw = rng.uniform(0.3, 0.55)
    sides = (-1, 1) if rng.random() < 0.7 else (rng.choice([-1, 1]),)
    return [_offset(ob.build_curtain(rng, pw, bottom, top, rng.uniform(0.07, 0.12)), dx=side * (ww / 2 + pw / 2 - 0.12))
            for side in sides]


def _add_windows(room: _Room) -> None:
    """One or two windows, mostly with curtains beside them (the window alone where the group does not fit)."""
    if ob.WINDOW not in room.want:
        return
    for _ in range(room.count(1, 2)):
        window = ob.build_window(room.rng, room.height)
        group = [window]
        if ob.CURTAIN in room.want and room.rng.random() < 0.85:
            group += _curtains_beside(room, window)
        if not room.placer.against_wall(group, gap=0.05):
            room.placer.against_wall([window], gap=0.05)


def _add_lone_curtain(room: _Room) -> None:
    """A floor-to-ceiling curtain on a wall when no window brought one."""
    if ob.CURTAIN in room.want and not room.has_placed(ob.CURTAIN):
        rng = room.rng
        room.placer.against_wall([ob.build_curtain(rng, rng.uniform(0.8, 1.6), 0.05, room.height - 0.1, 0.08)])


def _add_bathtub(room: _Room) -> None:
    """A bathtub in a corner, mostly with a shower curtain along it when one is wanted; a wanted shower curtain
    without a tub (or, now and then, beside one) hangs in a shower stall of its own, in another corner."""
    rng = room.rng
    stall = ob.SHOWER_CURTAIN in room.want
    if ob.BATHTUB in room.want:
        tub = ob.build_bathtub(rng)
        group = [tub]
        if stall and rng.random() < 0.8:
            group.append(ob.build_shower_curtain(rng, *tub.meta["size"]))
            stall = False
        room.placer.against_wall(group, corner=True)
    if stall:
        room.placer.against_wall([ob.build_shower_stall_curtain(rng)], corner=True)


def _wall_cabinets_above(rng: np.random.Generator, counter: SceneObject) -> list[SceneObject]:
    """A run of wall cabinets above ``counter``, backs flush with the counter's back (counter's frame)."""
    length, depth = counter.meta["size"]
    cabinets = []
    x = -length / 2
    while True:
        cab = ob.build_cabinet(rng, "kitchen wall")
        cw, cd = cab.meta["size"]
        if x + cw > length / 2:
            break
        cabinets.append(_offset(cab, dx=x + cw / 2, dy=-depth / 2 + cd / 2))
        x += cw
    return cabinets


def _add_counter(room: _Room, *, bathroom: bool, wall_cabinets: bool) -> None:
    """A counter (a bathroom one if ``bathroom``) against a wall, with a sink in it and, if ``wall_cabinets``,
    cabinets above it."""
    if ob.COUNTER not in room.want:
        return
    rng = room.rng
    counter = ob.build_counter(rng, bathroom)
    group = [counter]
    if ob.SINK in room.want:
        length = counter.meta["size"][0]
        sink = ob.build_sink(rng, "counter", counter.meta["height"])
        group.append(_offset(sink, dx=rng.uniform(-length / 2 + 0.4, length / 2 - 0.4)))
    if wall_cabinets and ob.CABINET in room.want:
        group += _wall_cabinets_above(rng, counter)
    room.placer.against_wall(group, corner=rng.random() < 0.5)


def _add_nightstands(room: _Room, bed: SceneObject) -> None:
    """Mostly a nightstand on each side of a placed ``bed``, against the bed's wall."""
    placer = room.placer
    for side in (-1, 1):
        if room.rng.random() < 0.7:
            ns = ob.build_cabinet(room.rng, "nightstand")
            start, along, inward, yaw = placer.wall_frame(bed.meta["wall"])
            s = bed.meta["s"] + side * (bed.meta["size"][0] / 2 + ns.meta["size"][0] / 2 + 0.06)
            lo = ns.local_bounds()[0]
            placer.at([ns], start + s * along + (-lo[1] - EMBED_M) * inward, yaw)


def _add_bed(room: _Room, *, nightstands: bool) -> None:
    """A bed against a wall; with ``nightstands`` (and cabinets wanted) nightstands beside it."""
    if ob.BED not in room.want:
        return
    placed = room.placer.against_wall([ob.build_bed(room.rng)])
    if placed and nightstands and ob.CABINET in room.want:
        _add_nightstands(room, placed[0])


def _add_coffee_table(room: _Room, sofa: SceneObject) -> None:
    """A coffee table 0.4 m in front of a placed ``sofa``."""
    ct = ob.build_table(room.rng, "coffee")
    start, along, inward, yaw = room.placer.wall_frame(sofa.meta["wall"])
    depth = sofa.meta["size"][1]
    xy = start + sofa.meta["s"] * along + (depth + 0.4 + ct.meta["size"][1] / 2) * inward
    room.placer.at([ct], xy, yaw + room.rng.uniform(-0.1, 0.1))


def _add_sofa(room: _Room) -> None:
    """A sofa against a wall, mostly with a coffee table in front of it (if tables are wanted); a third of the
    time the sofa stands in the middle of the room instead, facing its coffee table, as in a living area."""
    if ob.SOFA not in room.want:
        return
    rng = room.rng
    sofa = ob.build_sofa(rng)
    if rng.random() < 0.35:
        group = [sofa]
        if ob.TABLE in room.want:
            table = ob.build_table(rng, "coffee")
            group.append(_offset(table, dy=sofa.meta["size"][1] / 2 + 0.4 + table.meta["size"][1] / 2))
        if room.placer.free(group, margin=1.0):
            return
    placed = room.placer.against_wall([sofa])
    if placed and ob.TABLE in room.want and rng.random() < 0.8:
        _add_coffee_table(room, placed[0])


def _add_refrigerator(room: _Room, *, always_mini: bool) -> None:
    """A refrigerator against a wall, half the time in a corner; a mini fridge if ``always_mini``, else rarely."""
    if ob.REFRIGERATOR not in room.want:
        return
    rng = room.rng
    mini = always_mini or rng.random() < 0.15
    room.placer.against_wall([ob.build_refrigerator(rng, mini)], corner=rng.random() < 0.5)


def _add_bookshelves(room: _Room) -> None:
    """One or two bookshelves against the walls."""
    if ob.BOOKSHELF not in room.want:
        return
    for _ in range(room.count(1, 2)):
        room.placer.against_wall([ob.build_bookshelf(room.rng)])


def _add_cabinets(room: _Room, variants: tuple[str, ...]) -> None:
    """One or two cabinets against the walls, each of a variant drawn from ``variants``."""
    if ob.CABINET not in room.want:
        return
    for _ in range(room.count(1, 2)):
        variant = str(room.rng.choice(variants))
        room.placer.against_wall([ob.build_cabinet(room.rng, variant)])


def _add_desk_chair(room: _Room, desk: SceneObject, *, office_chair: bool) -> None:
    """A chair facing a placed ``desk``: an office chair if ``office_chair``, else an office or a dining one."""
    rng = room.rng
    _, _, inward, yaw = room.placer.wall_frame(desk.meta["wall"])
    chair = ob.build_chair(rng, "office" if office_chair or rng.random() < 0.5 else "dining")
    xy = desk.meta["xy"] + inward * (desk.meta["size"][1] / 2 + 0.12)
    room.placer.at([chair], xy, yaw + np.pi + rng.uniform(-0.4, 0.4), gap=0.01, ignore=(desk,))


def _add_desks(room: _Room, *, several: bool, office_chairs: bool) -> None:
    """A desk (one or two if ``several``) against a wall, each with a chair at it if chairs are wanted."""
    if ob.DESK not in room.want:
        return
    for _ in range(room.count(1, 2) if several else 1):
        placed = room.placer.against_wall([ob.build_desk(room.rng)])
        if placed and ob.CHAIR in room.want:
            _add_desk_chair(room, placed[0], office_chair=office_chairs)


def _add_toilet(room: _Room) -> None:
    """A toilet against a wall."""
    if ob.TOILET in room.want:
        room.placer.against_wall([ob.build_toilet(room.rng)])


def _add_sink(room: _Room, *, vanity: bool) -> None:
    """A sink on a wall or a pedestal, unless a counter holds one; with ``vanity`` sometimes in a vanity cabinet."""
    if ob.SINK not in room.want or room.has_placed(ob.SINK):
        return
    rng = room.rng
    if vanity and rng.random() < 0.4:
        cabinet = ob.build_cabinet(rng, "vanity")
        h = cabinet.parts[0].center[2] + cabinet.parts[0].half[2]
        room.placer.against_wall([cabinet, _offset(ob.build_sink(rng, "counter", h), dy=-0.02)])
    else:
        room.placer.against_wall([ob.build_sink(rng, "pedestal" if rng.random() < 0.5 else "wall")])


def _add_tables(room: _Room, *, variant: str = "dining", optional: bool = False) -> None:
    """A free-standing table (none or one if ``optional``), round or of ``variant``, with dining chairs
    around it if chairs are wanted; a side table against a wall if the room has no table at all."""
    if ob.TABLE not in room.want:
        return
    rng = room.rng
    for _ in range(room.count(0, 1) if optional else 1):
        table = room.placer.free([ob.build_table(rng, "round" if rng.random() < 0.25 else variant)])
        if table and ob.CHAIR in room.want:
            _chairs_around(rng, room.placer, table[0], room.count(2, 4), "dining")
    if not room.has_placed(ob.TABLE):
        room.placer.against_wall([ob.build_table(rng, "side")])


def _add_chairs(room: _Room, *, armchairs: bool) -> None:
    """Loose chairs on the floor (one to three, or up to two more where chairs stand already); with
    ``armchairs`` half of them armchairs, else dining chairs."""
    if ob.CHAIR not in room.want:
        return
    rng = room.rng
    for _ in range(room.count(0, 2) if room.has_placed(ob.CHAIR) else room.count(1, 3)):
        chair = ob.build_chair(rng, "arm" if armchairs and rng.random() < 0.5 else "dining")
        room.placer.free([_offset(chair, yaw=rng.uniform(-0.6, 0.6))], margin=0.5)


def _add_otherfurniture(room: _Room, variants: tuple[str, ...]) -> None:
    """One to three things of ``variants``; radiators, tv stands, washing machines and benches against a wall,
    others (ottomans, trash cans) against a wall or free on the floor."""
    if ob.OTHERFURNITURE not in room.want:
        return
    rng = room.rng
    for _ in range(room.count(1, 3)):
        variant = str(rng.choice(variants))
        thing = ob.build_otherfurniture(rng, variant)
        if variant in ("radiator", "tv stand", "washing machine", "bench") or rng.random() < 0.5:
            room.placer.against_wall([thing])
        else:
            room.placer.free([thing])


def _add_pictures(room: _Room) -> None:
    """One to three pictures on the walls."""
    if ob.PICTURE not in room.want:
        return
    for _ in range(room.count(1, 3)):
        room.placer.against_wall([ob.build_picture(room.rng)], gap=0.1)


def _bedroom(room: _Room) -> None:
    """A bed with nightstands, tall and low cabinets; maybe a sofa with a coffee table, a mini fridge, one or two
    bookshelves, a desk with a chair, a sink, a table with chairs and armchairs or dining chairs."""
    _add_bed(room, nightstands=True)
    _add_sofa(room)
    _add_refrigerator(room, always_mini=True)
    _add_bookshelves(room)
    _add_cabinets(room, ("tall", "low"))
    _add_desks(room, several=False, office_chairs=False)
    _add_sink(room, vanity=False)
    _add_tables(room)
    _add_chairs(room, armchairs=True)


def _office(room: _Room) -> None:
    """One or two desks with office chairs, one or two bookshelves, more chairs; maybe a counter with a sink, a
    sofa with a coffee table, a mini fridge, cabinets, a sink and a table with chairs."""
    _add_counter(room, bathroom=False, wall_cabinets=False)
    _add_sofa(room)
    _add_refrigerator(room, always_mini=True)
    _add_bookshelves(room)
    _add_cabinets(room, ("low", "tall"))
    _add_desks(room, several=True, office_chairs=True)
    _add_sink(room, vanity=False)
    _add_tables(room)
    _add_chairs(room, armchairs=False)


def _bathroom(room: _Room) -> None:
    """A bathtub with a shower curtain, a toilet, a sink (in the counter, a vanity, on a pedestal or on the wall);
    maybe a counter, vanity and low cabinets and a chair."""
    _add_bathtub(room)
    _add_counter(room, bathroom=True, wall_cabinets=False)
    _add_cabinets(room, ("vanity", "low"))
    _add_toilet(room)
    _add_sink(room, vanity=True)
    _add_chairs(room, armchairs=False)


def _kitchen(room: _Room) -> None:
    """A counter with a sink and wall cabinets above it, low and tall cabinets, a refrigerator; maybe bookshelves,
    a desk with a chair, a table with dining chairs and more chairs."""
    _add_counter(room, bathroom=False, wall_cabinets=True)
    _add_refrigerator(room, always_mini=False)
    _add_bookshelves(room)
    _add_cabinets(room, ("low", "tall"))
    _add_desks(room, several=False, office_chairs=False)
    _add_sink(room, vanity=False)
    _add_tables(room)
    _add_chairs(room, armchairs=False)


def _living_room(room: _Room) -> None:
    """A sofa, mostly with a coffee table, and maybe a free round or side table (a side table against a wall if
    the room has no table); maybe a bed, bookshelves, cabinets, a desk with a chair, armchairs or dining chairs."""
    _add_bed(room, nightstands=False)
    _add_sofa(room)
    _add_bookshelves(room)
    _add_cabinets(room, ("low", "tall"))
    _add_desks(room, several=False, office_chairs=False)
    _add_tables(room, variant="side", optional=True)
    _add_chairs(room, armchairs=True)


def _apartment(room: _Room) -> None:
    """A studio flat: maybe a bathtub or a shower, a bed, a toilet, a sink, a counter, a sofa with a coffee table,
    a refrigerator, bookshelves, cabinets, a desk with a chair, a table with chairs and more chairs."""
    _add_bathtub(room)
    _add_counter(room, bathroom=False, wall_cabinets=False)
    _add_bed(room, nightstands=False)
    _add_sofa(room)
    _add_refrigerator(room, always_mini=False)
    _add_bookshelves(room)
    _add_cabinets(room, ("low", "tall"))
    _add_desks(room, several=False, office_chairs=False)
    _add_toilet(room)
    _add_sink(room, vanity=False)
    _add_tables(room)
    _add_chairs(room, armchairs=False)


# The theme-specific furniture of each theme, placed between the openings and the finishing touches.
_FURNISHERS = {"bedroom": _bedroom, "office": _office, "bathroom": _bathroom, "kitchen": _kitchen,
               "living room": _living_room, "apartment": _apartment}


def _build_room(rng: np.random.Generator, theme: str, room_size: np.ndarray, classes: list[int]) -> list[SceneObject]:
    """Place objects of ``classes`` (nyu40 ids of ``theme``'s classes in THEME_PRESENCE) into the room.

    Every room starts with doors and windows (they need free wall, doors free floor in front of them) and
    curtains, gets its theme's furniture (``_FURNISHERS``) and ends with other furniture and pictures; a
    step places nothing for a class not in ``classes``. Returns the placed objects in placement order.
    """
    foreign = set(classes) - set(THEME_PRESENCE[theme])
    if foreign:
        raise ValueError(f"nyu40 ids {sorted(foreign)} are not classes of a {theme} (THEME_PRESENCE)")
    room = _Room(rng, Placer(room_size, rng), float(room_size[2]), frozenset(classes))
    _add_doors(room)
    _add_windows(room)
    _add_lone_curtain(room)
    _FURNISHERS[theme](room)
    _add_otherfurniture(room, OTHERFURNITURE_VARIANTS[theme])
    _add_pictures(room)
    return room.placer.placed


def _room_materials(rng: np.random.Generator, theme: str) -> list[Material]:
    wall = Material(MaterialKind.PAINT, jitter_color(rng, ob.WALL_PAINTS[int(rng.integers(len(ob.WALL_PAINTS)))], val=0.05),
                    seed=int(rng.integers(2**31 - 1)))
    walls = [wall] * 4
    if rng.random() < 0.25:  # an accent wall
        k = int(rng.integers(4))
        walls[k] = Material(MaterialKind.PAINT, jitter_color(rng, ob.WALL_PAINTS[int(rng.integers(len(ob.WALL_PAINTS)))]),
                            seed=int(rng.integers(2**31 - 1)))
    floor_kinds = {"bathroom": ("tiles",), "kitchen": ("tiles", "planks"), "office": ("carpet", "tiles", "planks")}
    kind = str(rng.choice(floor_kinds.get(theme, ("planks", "carpet", "planks"))))
    seed = int(rng.integers(2**31 - 1))
    if kind == "tiles":
        base = jitter_color(rng, [rgb(228, 228, 222), rgb(196, 190, 178), rgb(150, 150, 156), rgb(210, 200, 185)][int(rng.integers(4))])
        floor = Material(MaterialKind.TILES, base, base * 0.65, np.array([rng.uniform(0.3, 0.6), 0, 0, 0]), seed)
    elif kind == "planks":
        base = jitter_color(rng, ob.FLOOR_WOODS[int(rng.integers(len(ob.FLOOR_WOODS)))])
        floor = Material(MaterialKind.PLANKS, base, base * 0.75, np.array([rng.uniform(0.12, 0.2), rng.uniform(1.0, 1.8), 0, 0]), seed)
    else:
        base = jitter_color(rng, [rgb(120, 116, 110), rgb(92, 100, 118), rgb(140, 132, 118), rgb(78, 80, 86)][int(rng.integers(4))])
        floor = Material(MaterialKind.CARPET, base, seed=seed)
    ceiling = Material(MaterialKind.PAINT, jitter_color(rng, rgb(245, 245, 243), val=0.03), seed=int(rng.integers(2**31 - 1)))
    # Order of ROOM_FACE_NAMES: floor, ceiling, wall_y0, wall_xmax, wall_ymax, wall_x0.
    return [floor, ceiling] + walls


def _choose_classes(rng: np.random.Generator, theme: str) -> list[int]:
    """The object classes of one room: each of the theme's drawn with its probability (THEME_PRESENCE), topped up
    to MIN_OBJECT_CLASSES with the most probable ones missing."""
    presence = THEME_PRESENCE[theme]
    chosen = [c for c, p in presence.items() if rng.random() < p]
    for c in sorted(presence, key=lambda c: -presence[c]):
        if len(chosen) >= MIN_OBJECT_CLASSES:
            break
        if c not in chosen:
            chosen.append(c)
    return chosen


def generate_layout(seed: int, scene_id: str) -> SceneLayout:
    """The room and furniture of one scene; deterministic for (seed, scene_id)."""
    rng = scene_rng(seed, scene_id, "layout")
    theme = theme_for(seed, scene_id)
    best: list[SceneObject] | None = None
    best_missing = None
    for _attempt in range(8):
        if theme == "bathroom":
            room = np.array([rng.uniform(4.0, 5.5), rng.uniform(3.5, 4.5), rng.uniform(2.6, 3.0)])
        elif theme == "apartment":
            room = np.array([rng.uniform(5.5, 8.0), rng.uniform(4.5, 7.0), rng.uniform(2.6, 3.0)])
        else:
            room = np.array([rng.uniform(4.0, 8.0), rng.uniform(3.5, 7.0), rng.uniform(2.6, 3.0)])
        classes = _choose_classes(rng, theme)
        placed = _build_room(rng, theme, room, classes)
        missing = len(set(classes) - {o.nyu40 for o in placed})
        if best is None or missing < best_missing:
            best, best_missing, best_room = placed, missing, room
        if not missing:
            break
    objects = best
    for o in objects:
        o.raw_id = pick_raw_id(rng, o.nyu40, o.preferred_raw_ids)
    bathroom = theme == "bathroom"
    room_raw = [
        pick_raw_id(rng, ob.FLOOR, (3, 417) if bathroom else ()),
        pick_raw_id(rng, ob.CEILING),
    ] + [pick_raw_id(rng, ob.WALL, (1, 128, 1243) if bathroom else ())] * 4
    return SceneLayout(scene_id, theme, best_room, _room_materials(rng, theme), room_raw, objects)
