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
# Classes every room of a theme gets, and optional ones with their weights. Together the "must"
# lists cover all 18 object classes, so with themes cycling over scene numbers every class occurs
# in every run of len(THEMES) consecutive scenes.
THEME_CLASSES = {
    "bedroom": ([ob.BED, ob.DOOR, ob.WINDOW, ob.CURTAIN, ob.CABINET, ob.PICTURE],
                {ob.DESK: 0.6, ob.CHAIR: 0.6, ob.BOOKSHELF: 0.4, ob.OTHERFURNITURE: 0.6, ob.TABLE: 0.3,
                 ob.SOFA: 0.25, ob.REFRIGERATOR: 0.1, ob.SINK: 0.1}),
    "office": ([ob.DESK, ob.CHAIR, ob.BOOKSHELF, ob.DOOR, ob.OTHERFURNITURE, ob.WINDOW],
               {ob.CABINET: 0.7, ob.TABLE: 0.5, ob.PICTURE: 0.5, ob.SOFA: 0.3, ob.REFRIGERATOR: 0.3,
                ob.CURTAIN: 0.3, ob.COUNTER: 0.15, ob.SINK: 0.1}),
    "bathroom": ([ob.TOILET, ob.SINK, ob.BATHTUB, ob.SHOWER_CURTAIN, ob.DOOR],
                 {ob.CABINET: 0.6, ob.COUNTER: 0.5, ob.PICTURE: 0.5, ob.WINDOW: 0.5, ob.CURTAIN: 0.3,
                  ob.OTHERFURNITURE: 0.6, ob.CHAIR: 0.15}),
    "kitchen": ([ob.COUNTER, ob.CABINET, ob.REFRIGERATOR, ob.SINK, ob.DOOR, ob.WINDOW],
                {ob.TABLE: 0.7, ob.CHAIR: 0.7, ob.OTHERFURNITURE: 0.5, ob.PICTURE: 0.4, ob.CURTAIN: 0.4,
                 ob.BOOKSHELF: 0.1, ob.DESK: 0.1}),
    "living room": ([ob.SOFA, ob.TABLE, ob.PICTURE, ob.DOOR, ob.WINDOW, ob.OTHERFURNITURE],
                    {ob.CHAIR: 0.7, ob.BOOKSHELF: 0.6, ob.CURTAIN: 0.6, ob.CABINET: 0.5, ob.DESK: 0.2,
                     ob.BED: 0.1}),
    # A studio flat scanned in one go (ScanNet's "Apartment" scans span several rooms).
    "apartment": ([ob.BED, ob.TOILET, ob.BATHTUB, ob.SHOWER_CURTAIN, ob.SINK, ob.DOOR],
                  {ob.SOFA: 0.5, ob.REFRIGERATOR: 0.5, ob.COUNTER: 0.4, ob.WINDOW: 0.6, ob.CURTAIN: 0.4,
                   ob.PICTURE: 0.4, ob.TABLE: 0.4, ob.CHAIR: 0.4, ob.CABINET: 0.4, ob.OTHERFURNITURE: 0.4}),
}
OTHERFURNITURE_VARIANTS = {
    "bedroom": ("ottoman", "trash can", "radiator"),
    "office": ("trash can", "bench", "radiator"),
    "bathroom": ("trash can", "washing machine"),
    "kitchen": ("trash can", "washing machine", "radiator"),
    "living room": ("ottoman", "tv stand", "radiator", "trash can"),
    "apartment": ("trash can", "washing machine", "ottoman"),
}
MIN_OBJECT_CLASSES, MAX_OBJECT_CLASSES = 7, 12


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
        classes = [face.get(name, (ob.WALL, 2)) for name in ROOM_FACE_NAMES]
        faces = [(mat, nyu, raw, obj) for mat, raw, (nyu, obj) in zip(self.room_materials, self.room_raw_ids, classes)]
        parts = [(p, o.nyu40, o.raw_id if p.raw_id is None else p.raw_id, 3 + k)
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


def _world_bounds(obj: SceneObject) -> tuple[np.ndarray, np.ndarray]:
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
        lo, hi = _world_bounds(obj)
        if np.any(lo < -0.03) or np.any(hi > self.room + 0.03):
            return False
        lx, ly = self.room[:2]
        for part in obj.parts:
            plo, phi = _world_bounds(SceneObject(obj.name, obj.nyu40, [part]))
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
            lo, hi = _world_bounds(o)
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


def _build_room(rng: np.random.Generator, theme: str, room_size: np.ndarray, classes: list[int]) -> list[SceneObject]:
    """Place objects of ``classes`` (nyu40 ids, in placement order) into the room."""
    placer = Placer(room_size, rng)
    height = float(room_size[2])
    want = set(classes)

    def n(lo, hi):
        return int(rng.integers(lo, hi + 1))

    # Doors first (they need free wall and floor in front of them).
    if ob.DOOR in want:
        for _ in range(1 if rng.random() < 0.8 else 2):
            door = placer.against_wall([ob.build_door(rng, height)], gap=0.1)
            if door:
                placer.block_door_swing(door[0], 0.9)
    # Windows, with curtains beside them.
    if ob.WINDOW in want:
        for _ in range(n(1, 2)):
            window = ob.build_window(rng, height)
            group = [window]
            if ob.CURTAIN in want and rng.random() < 0.85:
                ww, wh = window.meta["size"]
                top = min(window.meta["sill"] + wh + 0.15, height - 0.05)
                bottom = 0.05 if rng.random() < 0.6 else window.meta["sill"] - 0.2
                pw = rng.uniform(0.3, 0.55)
                for side in ((-1, 1) if rng.random() < 0.7 else (rng.choice([-1, 1]),)):
                    curtain = ob.build_curtain(rng, pw, bottom, top, rng.uniform(0.07, 0.12))
                    group.append(_offset(curtain, dx=side * (ww / 2 + pw / 2 - 0.12)))
            if not placer.against_wall(group, gap=0.05):
                placer.against_wall([window], gap=0.05)
    if ob.CURTAIN in want and not any(o.nyu40 == ob.CURTAIN for o in placer.placed):
        placer.against_wall([ob.build_curtain(rng, rng.uniform(0.8, 1.6), 0.05, height - 0.1, 0.08)])
    if ob.BATHTUB in want:
        tub = ob.build_bathtub(rng)
        group = [tub]
        if ob.SHOWER_CURTAIN in want:
            group.append(ob.build_shower_curtain(rng, *tub.meta["size"]))
        placer.against_wall(group, corner=True)
    counters = []
    if ob.COUNTER in want:
        bath = theme == "bathroom"
        counter = ob.build_counter(rng, bath)
        group = [counter]
        if ob.SINK in want:
            length = counter.meta["size"][0]
            sink = ob.build_sink(rng, "counter", counter.meta["height"])
            group.append(_offset(sink, dx=rng.uniform(-length / 2 + 0.4, length / 2 - 0.4)))
        if theme == "kitchen" and ob.CABINET in want:
            # A run of wall cabinets above the counter, backs flush with the counter's back.
            length, depth = counter.meta["size"]
            x = -length / 2
            while True:
                cab = ob.build_cabinet(rng, "kitchen wall")
                cw, cd = cab.meta["size"]
                if x + cw > length / 2:
                    break
                group.append(_offset(cab, dx=x + cw / 2, dy=-depth / 2 + cd / 2))
                x += cw
        counters = placer.against_wall(group, corner=rng.random() < 0.5) or []
    if ob.BED in want:
        bed = ob.build_bed(rng)
        placed = placer.against_wall([bed])
        if placed and theme == "bedroom" and ob.CABINET in want:
            b = placed[0]
            for side in (-1, 1):
                if rng.random() < 0.7:
                    ns = ob.build_cabinet(rng, "nightstand")
                    start, along, inward, yaw = placer.wall_frame(b.meta["wall"])
                    s = b.meta["s"] + side * (b.meta["size"][0] / 2 + ns.meta["size"][0] / 2 + 0.06)
                    lo = ns.local_bounds()[0]
                    placer.at([ns], start + s * along + (-lo[1] - EMBED_M) * inward, yaw)
    if ob.SOFA in want:
        sofa = placer.against_wall([ob.build_sofa(rng)])
        if sofa and ob.TABLE in want and rng.random() < 0.8:
            s_obj = sofa[0]
            ct = ob.build_table(rng, "coffee")
            start, along, inward, yaw = placer.wall_frame(s_obj.meta["wall"])
            depth = s_obj.meta["size"][1]
            xy = start + s_obj.meta["s"] * along + (depth + 0.4 + ct.meta["size"][1] / 2) * inward
            placer.at([ct], xy, yaw + rng.uniform(-0.1, 0.1))
    if ob.REFRIGERATOR in want:
        mini = theme in ("office", "bedroom") or rng.random() < 0.15
        placer.against_wall([ob.build_refrigerator(rng, mini)], corner=rng.random() < 0.5)
    if ob.BOOKSHELF in want:
        for _ in range(n(1, 2)):
            placer.against_wall([ob.build_bookshelf(rng)])
    if ob.CABINET in want:
        variants = {"kitchen": ("low", "tall"), "bathroom": ("vanity", "low"), "bedroom": ("tall", "low")}
        for _ in range(n(1, 2)):
            variant = str(rng.choice(variants.get(theme, ("low", "tall"))))
            placer.against_wall([ob.build_cabinet(rng, variant)])
    if ob.DESK in want:
        for _ in range(n(1, 2) if theme == "office" else 1):
            desk = ob.build_desk(rng)
            placed = placer.against_wall([desk])
            if placed and ob.CHAIR in want:
                d = placed[0]
                start, along, inward, yaw = placer.wall_frame(d.meta["wall"])
                chair = ob.build_chair(rng, "office" if theme == "office" or rng.random() < 0.5 else "dining")
                xy = d.meta["xy"] + inward * (d.meta["size"][1] / 2 + 0.12)
                placer.at([chair], xy, yaw + np.pi + rng.uniform(-0.4, 0.4), gap=0.01, ignore=(d,))
    if ob.TOILET in want:
        placer.against_wall([ob.build_toilet(rng)])
    if ob.SINK in want and not any(o.nyu40 == ob.SINK for o in counters):
        if theme == "bathroom" and rng.random() < 0.4:
            vanity = ob.build_cabinet(rng, "vanity")
            h = vanity.parts[0].center[2] + vanity.parts[0].half[2]
            placer.against_wall([vanity, _offset(ob.build_sink(rng, "counter", h), dy=-0.02)])
        else:
            placer.against_wall([ob.build_sink(rng, "pedestal" if rng.random() < 0.5 else "wall")])
    if ob.TABLE in want:
        for _ in range(1 if theme != "living room" else n(0, 1)):
            variant = "round" if rng.random() < 0.25 else ("dining" if theme != "living room" else "side")
            table = placer.free([ob.build_table(rng, variant)])
            if table and ob.CHAIR in want:
                _chairs_around(rng, placer, table[0], n(2, 4), "dining")
        if not any(o.nyu40 == ob.TABLE for o in placer.placed):
            placer.against_wall([ob.build_table(rng, "side")])
    if ob.CHAIR in want:
        for _ in range(n(0, 2) if any(o.nyu40 == ob.CHAIR for o in placer.placed) else n(1, 2)):
            variant = "arm" if theme in ("living room", "bedroom") and rng.random() < 0.5 else "dining"
            chair = ob.build_chair(rng, variant)
            placer.free([_offset(chair, yaw=rng.uniform(-0.6, 0.6))], margin=0.5)
    if ob.OTHERFURNITURE in want:
        for _ in range(n(1, 3)):
            variant = str(rng.choice(OTHERFURNITURE_VARIANTS[theme]))
            thing = ob.build_otherfurniture(rng, variant)
            if variant in ("radiator", "tv stand", "washing machine", "bench") or rng.random() < 0.5:
                placer.against_wall([thing])
            else:
                placer.free([thing])
    if ob.PICTURE in want:
        for _ in range(n(1, 3)):
            placer.against_wall([ob.build_picture(rng)], gap=0.1)
    return placer.placed


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
        base = jitter_color(rng, ob.WOODS[int(rng.integers(len(ob.WOODS)))])
        floor = Material(MaterialKind.PLANKS, base, base * 0.75, np.array([rng.uniform(0.12, 0.2), rng.uniform(1.0, 1.8), 0, 0]), seed)
    else:
        base = jitter_color(rng, [rgb(120, 110, 100), rgb(90, 100, 120), rgb(150, 140, 120), rgb(110, 60, 60)][int(rng.integers(4))])
        floor = Material(MaterialKind.CARPET, base, seed=seed)
    ceiling = Material(MaterialKind.PAINT, jitter_color(rng, rgb(245, 245, 243), val=0.03), seed=int(rng.integers(2**31 - 1)))
    # Order of ROOM_FACE_NAMES: floor, ceiling, wall_y0, wall_xmax, wall_ymax, wall_x0.
    return [floor, ceiling] + walls


def _choose_classes(rng: np.random.Generator, theme: str) -> list[int]:
    must, optional = THEME_CLASSES[theme]
    target = int(rng.integers(MIN_OBJECT_CLASSES, MAX_OBJECT_CLASSES + 1))
    names = list(optional)
    weights = np.array([optional[c] for c in names])
    extra = []
    while len(must) + len(extra) < target and names:
        k = rng.choice(len(names), p=weights / weights.sum())
        extra.append(names.pop(k))
        weights = np.delete(weights, k)
    return list(must) + extra


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
        missing = set(classes) - {o.nyu40 for o in placed}
        must_missing = missing & set(THEME_CLASSES[theme][0])
        if best is None or len(must_missing) < best_missing:
            best, best_missing, best_room = placed, len(must_missing), room
        if not must_missing:
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
