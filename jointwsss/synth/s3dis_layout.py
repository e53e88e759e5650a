"""Office-building rooms in the style of S3DIS / Stanford 2D-3D-S (layouts only: no sampling, no rendering).

The synthetic ScanNet (:mod:`jointwsss.synth.layout`) furnishes homes: bedrooms, kitchens,
bathrooms, plain white ceilings, wooden furniture, colourful fabrics. These rooms deliberately look
different, so that evaluating a ScanNet-trained model on them is a real domain shift, as in the paper's
Table 4:

- room types of a university building: office, conferenceRoom, hallway, lobby, storage, WC; taller
  (2.8-3.8 m) and, for conference rooms, lobbies and hallways (10-18 m long), larger rooms;
- structure that homes lack: a suspended ceiling of acoustic tiles, beams under it, columns
  (pilasters against the walls, free-standing round or square columns in lobbies);
- greyish / beige walls, carpet or carpet-tile floors (vinyl tiles in hallways and lobbies);
- office furniture: laminate desks on panel sides, swivel chairs on a star base, stackable
  conference chairs, blocky leather lobby sofas, tall metal shelving full of binders, wide doors in
  metal frames, large aluminium windows, whiteboards and pin boards;
- "clutter" (S3DIS's catch-all class): monitors, PC towers, bins, plants, cardboard boxes, filing
  cabinets, printers, heaters, toilet stalls.

Every room holds walls, floor and ceiling; the room types' required classes (``REQUIRED_CLASSES``) put
at least four of the eight classes S3DIS shares with ScanNet in every room except WCs, and an office
plus a conference room already hold all eight. Placement reuses :class:`jointwsss.synth.layout.Placer`
(axis-aligned box collisions; tall things against walls). A layout is deterministic for
(seed, area, room name). Room frame: [0, Lx] x [0, Ly] x [0, H] metres, z up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jointwsss.synth.layout import Placer, scene_rng
from jointwsss.synth.objects import EMBED_M, Part, SceneObject, box, cylinder, floor_box
from jointwsss.synth.raycast import ROOM_FACE_NAMES, SurfaceKind, SurfaceSet, room_surface_set
from jointwsss.synth.texture import Material, MaterialKind, jitter_color, rgb

# Room types in generation order (cycled). An office and a conference room come first, so two rooms
# already hold all eight classes shared with ScanNet; the first six give the default area's mix.
ROOM_TYPE_SEQUENCE = ("office", "conferenceRoom", "hallway", "office", "lobby", "storage",
                      "office", "hallway", "WC", "office", "conferenceRoom", "office")
# S3DIS classes a room of each type must contain (besides ceiling, floor, wall); a layout is retried
# until they are all placed.
REQUIRED_CLASSES = {
    "office": ("door", "window", "table", "chair", "bookcase", "board", "clutter"),
    "conferenceRoom": ("door", "window", "table", "chair", "sofa", "board", "clutter"),
    "hallway": ("door", "beam", "column", "bookcase", "clutter"),
    "lobby": ("door", "window", "sofa", "table", "chair", "column", "clutter"),
    "storage": ("door", "bookcase", "table", "clutter"),
    "WC": ("door", "clutter"),
}
# Room size ranges (metres): (x, y, height); x is the long side.
ROOM_SIZES = {
    "office": ((3.8, 6.0), (3.2, 5.0), (2.8, 3.2)),
    "conferenceRoom": ((6.0, 8.5), (4.6, 6.5), (3.0, 3.4)),
    "hallway": ((10.0, 18.0), (1.9, 2.5), (2.8, 3.1)),
    "lobby": ((7.0, 9.5), (6.0, 8.0), (3.2, 3.8)),
    "storage": ((3.2, 4.8), (2.6, 3.8), (2.8, 3.1)),
    "WC": ((3.5, 5.0), (2.8, 3.8), (2.7, 3.0)),
}
ROOM_FACE_CLASSES = {"floor": "floor", "ceiling": "ceiling"}  # the four walls are "wall"
CLASS_KEY = "s3dis_class"  # SceneObject.meta key holding the object's S3DIS class name
MAX_LAYOUT_ATTEMPTS = 10

# ------------------------------------------------------------------------------------ palettes
WALL_PAINTS = [rgb(196, 190, 178), rgb(181, 178, 170), rgb(205, 197, 180), rgb(172, 170, 163), rgb(189, 183, 168)]
CARPETS = [rgb(96, 102, 114), rgb(112, 104, 96), rgb(80, 90, 95), rgb(124, 118, 108), rgb(72, 74, 84)]
VINYL = [rgb(200, 190, 168), rgb(178, 174, 164), rgb(210, 204, 190)]
CEILING_TILES = [rgb(226, 223, 214), rgb(214, 212, 206)]
DESK_TOPS = [rgb(214, 206, 188), rgb(168, 128, 88), rgb(190, 188, 182), rgb(122, 94, 68)]
VENEERS = [rgb(150, 100, 60), rgb(112, 72, 46), rgb(176, 132, 86)]
DARK_METALS = [rgb(58, 58, 62), rgb(84, 86, 90), rgb(40, 40, 44)]
LIGHT_METALS = [rgb(160, 162, 164), rgb(186, 186, 182), rgb(138, 142, 146)]
CHAIR_FABRICS = [rgb(35, 35, 40), rgb(38, 48, 88), rgb(92, 32, 38), rgb(60, 62, 66), rgb(30, 70, 80)]
SOFA_LEATHERS = [rgb(70, 45, 32), rgb(130, 58, 38), rgb(48, 86, 88), rgb(150, 138, 116), rgb(40, 40, 44)]
DOOR_LEAVES = [rgb(190, 150, 100), rgb(172, 128, 82), rgb(118, 128, 140), rgb(150, 152, 146)]
OVERCAST_SKIES = [rgb(232, 236, 240), rgb(205, 215, 225), rgb(220, 224, 226)]
WINDOW_FRAMES = [rgb(60, 62, 66), rgb(150, 150, 150), rgb(112, 96, 80)]
WHITEBOARD = rgb(238, 238, 234)
CORK = rgb(176, 134, 88)
CARDBOARD = [rgb(166, 124, 82), rgb(150, 112, 74), rgb(186, 150, 108)]
BIN_COLORS = [rgb(40, 70, 140), rgb(70, 70, 74), rgb(40, 110, 60), rgb(150, 150, 150)]
LEAF_GREENS = [rgb(50, 96, 48), rgb(70, 112, 52), rgb(40, 80, 56)]


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**31 - 1))


def _pick(rng: np.random.Generator, palette: list[np.ndarray]) -> np.ndarray:
    return palette[int(rng.integers(len(palette)))]


def _material(rng, kind: MaterialKind, palette, color_b=None, params=(0.0, 0.0, 0.0, 0.0), val=0.08) -> Material:
    a = jitter_color(rng, _pick(rng, palette), val=val)
    b = a * 0.7 if color_b is None else np.asarray(color_b, dtype=np.float64)
    return Material(kind, a, b, np.asarray(params, dtype=np.float64), _seed(rng))


def _object(name: str, s3dis_class: str, parts: list[Part], size: tuple[float, float], **meta) -> SceneObject:
    """A SceneObject carrying its S3DIS class in ``meta[CLASS_KEY]`` (its nyu40 field is unused: 0)."""
    return SceneObject(name, 0, parts, meta={"size": size, CLASS_KEY: s3dis_class, **meta})


# ------------------------------------------------------------------------------------ furniture
# Object frame as in jointwsss.synth.objects: origin on the floor at the footprint centre, +y front,
# back at -y. Builders taking (x, y, z0) put a small object at that spot of a group's shared frame
# (a monitor on a desk, a projector on a table).


def build_desk(rng) -> SceneObject:
    """Office desk: laminate top on two panel sides and a modesty panel (class table)."""
    w, d, h = rng.uniform(1.2, 1.8), rng.uniform(0.65, 0.8), rng.uniform(0.72, 0.76)
    top = _material(rng, MaterialKind.PAINT, DESK_TOPS)
    side = top if rng.random() < 0.5 else _material(rng, MaterialKind.METAL, DARK_METALS)
    th = 0.03
    parts = [floor_box(0, 0, (w, d, th), top, z0=h - th)]
    for sx in (-1, 1):
        parts.append(floor_box(sx * (w / 2 - 0.015), 0, (0.03, d - 0.02, h - th + EMBED_M), side))
    parts.append(floor_box(0, -d / 2 + 0.06, (w - 0.06, 0.02, 0.45), side, z0=h - th - 0.45 + EMBED_M))
    return _object("desk", "table", parts, (w, d), height=h)


def build_conference_table(rng, max_length: float) -> SceneObject:
    """Long veneer table on two pedestals (class table)."""
    length = min(rng.uniform(2.4, 4.0), max_length)
    w, h = rng.uniform(1.0, 1.4), rng.uniform(0.73, 0.77)
    top = _material(rng, MaterialKind.WOOD, VENEERS, params=(rng.uniform(5, 9), 0, 0, 0))
    top.color_b = top.color_a * 0.72
    base = _material(rng, MaterialKind.METAL, DARK_METALS)
    parts = [floor_box(0, 0, (length, w, 0.045), top, z0=h - 0.045)]
    for sx in (-1, 1):
        parts.append(floor_box(sx * length / 4, 0, (0.35, w * 0.5, h - 0.045 + EMBED_M), base))
    return _object("conference table", "table", parts, (length, w), height=h)


def build_round_table(rng) -> SceneObject:
    """Small café / coffee table: round top on a stem (class table)."""
    radius, h = rng.uniform(0.35, 0.5), rng.uniform(0.45, 0.74)
    top = _material(rng, MaterialKind.PAINT, DESK_TOPS)
    metal = _material(rng, MaterialKind.METAL, DARK_METALS)
    parts = [cylinder(0, 0, h - 0.03, h, radius, top), cylinder(0, 0, 0.0, h - 0.03 + EMBED_M, 0.04, metal),
             cylinder(0, 0, 0.0, 0.025, radius * 0.6, metal)]
    return _object("round table", "table", parts, (2 * radius, 2 * radius), height=h)


def build_office_chair(rng) -> SceneObject:
    """Swivel chair: fabric seat and back, gas stem, cross-shaped base with castors (class chair)."""
    fabric = _material(rng, MaterialKind.FABRIC, CHAIR_FABRICS)
    metal = _material(rng, MaterialKind.METAL, DARK_METALS)
    sw, sd, sh = rng.uniform(0.46, 0.52), rng.uniform(0.44, 0.5), rng.uniform(0.44, 0.5)
    back_h = rng.uniform(0.45, 0.65)
    parts = [
        floor_box(0, 0, (sw, sd, 0.08), fabric, z0=sh - 0.08),
        floor_box(0, -sd / 2 - 0.02, (sw * 0.95, 0.07, back_h), fabric, z0=sh + 0.06),
        floor_box(0, -sd / 2 + 0.01, (0.06, 0.06, 0.14), metal, z0=sh - 0.02),
        cylinder(0, 0, 0.1, sh - 0.08 + EMBED_M, 0.025, metal),
        floor_box(0, 0, (0.62, 0.05, 0.04), metal, z0=0.07),
        floor_box(0, 0, (0.05, 0.62, 0.04), metal, z0=0.07),
    ]
    for x, y in ((-0.29, 0), (0.29, 0), (0, -0.29), (0, 0.29)):
        parts.append(cylinder(x, y, 0.0, 0.07 + EMBED_M, 0.03, metal))
    if rng.random() < 0.6:  # armrests
        for sx in (-1, 1):
            parts.append(floor_box(sx * (sw / 2 + 0.03), 0, (0.05, sd * 0.6, 0.04), metal, z0=sh + 0.18))
            parts.append(floor_box(sx * (sw / 2 + 0.03), 0, (0.03, 0.04, 0.2 + EMBED_M), metal, z0=sh - 0.02))
    return _object("office chair", "chair", parts, (0.64, 0.64))


def build_stack_chair(rng) -> SceneObject:
    """Stackable conference chair: plastic shell on four thin metal legs (class chair)."""
    shell = _material(rng, MaterialKind.PAINT, CHAIR_FABRICS + [rgb(170, 60, 40), rgb(200, 160, 60)])
    metal = _material(rng, MaterialKind.METAL, LIGHT_METALS)
    sw, sd, sh = rng.uniform(0.44, 0.5), rng.uniform(0.42, 0.48), rng.uniform(0.44, 0.47)
    parts = [floor_box(0, 0, (sw, sd, 0.03), shell, z0=sh - 0.03),
             floor_box(0, -sd / 2 + 0.02, (sw, 0.03, rng.uniform(0.35, 0.45)), shell, z0=sh + 0.05)]
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append(cylinder(sx * (sw / 2 - 0.03), sy * (sd / 2 - 0.03), 0.0, sh - 0.03 + EMBED_M, 0.012, metal))
        parts.append(floor_box(sx * (sw / 2 - 0.03), -sd / 2 + 0.02, (0.02, 0.02, 0.1 + EMBED_M), metal, z0=sh - EMBED_M))
    return _object("stack chair", "chair", parts, (sw, sd))


def build_lobby_sofa(rng, seats: int) -> SceneObject:
    """Blocky leather sofa on short feet: low back, thick arms (class sofa)."""
    w, d = 0.65 * seats + 0.4 + rng.uniform(0.0, 0.2), rng.uniform(0.8, 0.92)
    leather = _material(rng, MaterialKind.PAINT, SOFA_LEATHERS, val=0.06)
    metal = _material(rng, MaterialKind.METAL, DARK_METALS)
    arm, back, base = rng.uniform(0.18, 0.24), rng.uniform(0.18, 0.24), 0.1
    parts = [
        floor_box(0, 0, (w, d, 0.3), leather, z0=base),
        floor_box(0, -d / 2 + back / 2, (w, back, rng.uniform(0.62, 0.72) - base), leather, z0=base),
        floor_box(-w / 2 + arm / 2, back / 2, (arm, d - back, 0.5), leather, z0=base),
        floor_box(w / 2 - arm / 2, back / 2, (arm, d - back, 0.5), leather, z0=base),
    ]
    seat_w = (w - 2 * arm) / seats
    for k in range(seats):
        x = -w / 2 + arm + seat_w * (k + 0.5)
        parts.append(floor_box(x, back / 2, (seat_w - 0.02, d - back, 0.12 + EMBED_M), leather, z0=base + 0.3 - EMBED_M))
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append(floor_box(sx * (w / 2 - 0.08), sy * (d / 2 - 0.08), (0.05, 0.05, base + EMBED_M), metal))
    return _object("lobby sofa", "sofa", parts, (w, d))


def build_shelving(rng) -> SceneObject:
    """Tall shelving, metal or laminate, full of binders and books (class bookcase)."""
    w, d, h = rng.uniform(0.8, 1.2), rng.uniform(0.32, 0.45), rng.uniform(1.8, 2.25)
    metal = rng.random() < 0.6
    frame = (_material(rng, MaterialKind.METAL, LIGHT_METALS) if metal
             else _material(rng, MaterialKind.PAINT, DESK_TOPS))
    th = 0.025
    inner = w - 2 * th + 0.004
    parts = [floor_box(-w / 2 + th / 2, 0, (th, d, h), frame), floor_box(w / 2 - th / 2, 0, (th, d, h), frame),
             floor_box(0, 0, (inner, d, th), frame, z0=h - th), floor_box(0, 0, (inner, d, 0.06), frame),
             floor_box(0, -d / 2 + 0.005, (inner, 0.01 + EMBED_M, h - 0.06), frame, z0=0.06 - EMBED_M)]
    n_shelves = int(rng.integers(4, 7))
    levels = np.linspace(0.06, h - th, n_shelves + 1)
    gap = frame.color_a * 0.4
    for k in range(n_shelves):
        if k > 0:
            parts.append(floor_box(0, 0, (inner, d - 0.01, th), frame, z0=levels[k] - th / 2))
        if rng.random() < 0.85:
            fill = rng.uniform(0.5, 1.0) * (w - 2 * th - 0.01)
            books = Material(MaterialKind.BOOKS, np.zeros(3), gap, np.array([rng.uniform(0.03, 0.06), 0, 0, 0]),
                             _seed(rng))
            x = -w / 2 + th + 0.005 + fill / 2
            parts.append(floor_box(x, -0.02, (fill, d - 0.08, levels[k + 1] - levels[k] - th - 0.03), books,
                                   z0=levels[k] + th / 2))
    return _object("shelving", "bookcase", parts, (w, d))


# ------------------------------------------------------------------ wall-mounted (frame on the wall plane)


def build_office_door(rng, room_height: float, double: bool) -> SceneObject:
    """Wide door (single or double leaf) in a dark metal frame, with a lever or push bar (class door)."""
    w = rng.uniform(1.6, 1.8) if double else rng.uniform(0.9, 1.0)
    h = min(rng.uniform(2.1, 2.3), room_height - 0.3)
    leaf = _material(rng, MaterialKind.PANEL, DOOR_LEAVES, params=(rng.uniform(0.05, 0.1), -1.0 if double else 0.0,
                                                                   0.0, 0.0), val=0.06)
    leaf.color_b = leaf.color_a * 0.7
    frame = _material(rng, MaterialKind.METAL, DARK_METALS)
    jamb = 0.07
    parts = [
        box((0, 0.01, (h - EMBED_M) / 2), (w, 0.02 + 2 * EMBED_M, h + EMBED_M), leaf),
        box((-w / 2 - jamb / 2, 0.02, (h + jamb - EMBED_M) / 2), (jamb, 0.04 + 2 * EMBED_M, h + jamb + EMBED_M), frame),
        box((w / 2 + jamb / 2, 0.02, (h + jamb - EMBED_M) / 2), (jamb, 0.04 + 2 * EMBED_M, h + jamb + EMBED_M), frame),
        box((0, 0.02, h + jamb / 2), (w, 0.04 + 2 * EMBED_M, jamb), frame),
    ]
    if double:
        parts.append(box((0, 0.05, 1.0), (w * 0.7, 0.04, 0.05), _material(rng, MaterialKind.METAL, LIGHT_METALS)))
    else:
        parts.append(box((w / 2 - 0.12, 0.05, 1.05), (0.14, 0.04, 0.025), _material(rng, MaterialKind.METAL, LIGHT_METALS)))
    return _object("door", "door", parts, (w + 2 * jamb, 0.06))


def build_office_window(rng, room_height: float, max_width: float) -> SceneObject:
    """Large aluminium window with an overcast sky (class window)."""
    w = min(rng.uniform(1.2, 2.6), max_width)
    sill = rng.uniform(0.75, 0.95)
    h = min(rng.uniform(1.3, 1.8), room_height - 0.5 - sill)
    mat = Material(MaterialKind.WINDOW, jitter_color(rng, _pick(rng, OVERCAST_SKIES), val=0.04),
                   _pick(rng, WINDOW_FRAMES), np.array([rng.uniform(0.05, 0.08), 1.0 if w > 1.3 else 0.0, 0, 0]),
                   _seed(rng))
    parts = [box((0, 0.015, sill + h / 2), (w, 0.03 + 2 * EMBED_M, h), mat)]
    return _object("window", "window", parts, (w, 0.04), sill=sill)


def build_board(rng) -> SceneObject:
    """Whiteboard in a thin aluminium edge, or a pin board (class board)."""
    if rng.random() < 0.75:
        w, h = rng.uniform(1.2, 2.4), rng.uniform(0.9, 1.2)
        mat = Material(MaterialKind.PANEL, jitter_color(rng, WHITEBOARD, sat=0.1, val=0.03), np.zeros(3),
                       np.array([0.025, 0, 0, 0]), _seed(rng))
        mat.color_b = mat.color_a * 0.8
    else:
        w, h = rng.uniform(0.8, 1.3), rng.uniform(0.6, 1.0)
        mat = Material(MaterialKind.FABRIC, jitter_color(rng, CORK), seed=_seed(rng))
    bottom = rng.uniform(0.85, 1.0)
    parts = [box((0, 0.01, bottom + h / 2), (w, 0.02 + 2 * EMBED_M, h), mat)]
    return _object("whiteboard" if mat.kind == MaterialKind.PANEL else "pin board", "board", parts, (w, 0.03))


# ----------------------------------------------------------------------------------------- clutter


def build_monitor(rng, x: float, y: float, z0: float) -> SceneObject:
    black = _material(rng, MaterialKind.PAINT, DARK_METALS, val=0.04)
    w = rng.uniform(0.48, 0.6)
    parts = [box((x, y, z0 + 0.13 + 0.17), (w, 0.04, 0.34), black),  # screen
             box((x, y - 0.02, z0 + 0.07), (0.06, 0.04, 0.14 + EMBED_M), black),  # neck
             box((x, y, z0 + 0.008), (0.22, 0.18, 0.016 + 2 * EMBED_M), black)]  # foot
    return _object("monitor", "clutter", parts, (w, 0.2))


def build_paper_stack(rng, x: float, y: float, z0: float) -> SceneObject:
    paper = _material(rng, MaterialKind.PAINT, [rgb(236, 236, 230), rgb(220, 214, 190)], val=0.03)
    h = rng.uniform(0.03, 0.12)
    return _object("papers", "clutter", [box((x, y, z0 + h / 2), (0.3, 0.22, h + 2 * EMBED_M), paper)], (0.3, 0.22))


def build_pc_tower(rng, x: float = 0.0, y: float = 0.0) -> SceneObject:
    case = _material(rng, MaterialKind.PAINT, DARK_METALS + [rgb(200, 200, 196)], val=0.05)
    return _object("pc tower", "clutter", [floor_box(x, y, (0.2, 0.45, 0.42), case)], (0.2, 0.45))


def build_bin(rng) -> SceneObject:
    r, h = rng.uniform(0.13, 0.2), rng.uniform(0.35, 0.6)
    return _object("bin", "clutter", [cylinder(0, 0, 0.0, h, r, _material(rng, MaterialKind.PAINT, BIN_COLORS))],
                   (2 * r, 2 * r))


def build_plant(rng) -> SceneObject:
    r, h = rng.uniform(0.12, 0.2), rng.uniform(0.25, 0.4)
    pot = _material(rng, MaterialKind.PAINT, [rgb(170, 90, 60), rgb(60, 60, 62), rgb(220, 220, 214)])
    leaves = _material(rng, MaterialKind.FABRIC, LEAF_GREENS)
    s = rng.uniform(0.4, 0.6)
    parts = [cylinder(0, 0, 0.0, h, r, pot), box((0, 0, h + s / 2 - EMBED_M), (s, s, s), leaves)]
    return _object("plant", "clutter", parts, (s, s))


def build_boxes(rng) -> SceneObject:
    """A stack of one to three cardboard boxes."""
    parts, z, w, d = [], 0.0, rng.uniform(0.35, 0.6), rng.uniform(0.3, 0.5)
    for _ in range(int(rng.integers(1, 4))):
        h = rng.uniform(0.2, 0.35)
        parts.append(floor_box(rng.uniform(-0.03, 0.03), rng.uniform(-0.03, 0.03), (w, d, h + (EMBED_M if z else 0.0)),
                               _material(rng, MaterialKind.PAINT, CARDBOARD), z0=z - EMBED_M if z else 0.0))
        z += h
        w, d = w * rng.uniform(0.8, 1.0), d * rng.uniform(0.8, 1.0)
    return _object("boxes", "clutter", parts, (0.66, 0.56))


def build_filing_cabinet(rng) -> SceneObject:
    w, d, h = rng.uniform(0.45, 0.9), rng.uniform(0.45, 0.62), rng.uniform(0.7, 1.05)
    body = _material(rng, MaterialKind.PANEL, LIGHT_METALS + [rgb(196, 190, 170)], params=(0.03, 1.0, 0.0, 0.0))
    body.color_b = body.color_a * 0.7
    parts = [floor_box(0, 0, (w, d, h), body)]
    if rng.random() < 0.5:  # a printer on top
        parts.append(floor_box(0, 0, (0.45, 0.4, 0.25 + EMBED_M), _material(rng, MaterialKind.PAINT, LIGHT_METALS),
                               z0=h - EMBED_M))
    return _object("filing cabinet", "clutter", parts, (w, d))


def build_heater(rng, width: float) -> SceneObject:
    mat = Material(MaterialKind.RIBS, jitter_color(rng, rgb(214, 212, 204), val=0.04), params=np.array([0.05, 0, 0, 0]),
                   seed=_seed(rng))
    depth = 0.12 + EMBED_M  # back embedded in the wall, so it can share a window's wall frame
    return _object("heater", "clutter", [floor_box(0, depth / 2 - EMBED_M, (width, depth, 0.5), mat, z0=0.15)],
                   (width, 0.12))


def build_stall(rng) -> SceneObject:
    """WC stall: two partitions and a toilet bowl, against a wall."""
    panel_mat = _material(rng, MaterialKind.PAINT, [rgb(150, 160, 170), rgb(190, 180, 160), rgb(120, 120, 124)])
    ceramic = Material(MaterialKind.CERAMIC, jitter_color(rng, rgb(240, 240, 238), val=0.02), seed=_seed(rng))
    # Shallow stalls: Placer keeps parts taller than LOW_OBJECT_MAX_M within TALL_OBJECT_BAND_M of a wall.
    w, d = rng.uniform(0.9, 1.1), rng.uniform(0.7, 0.8)
    parts = [floor_box(sx * w / 2, 0, (0.03, d, 1.8), panel_mat, z0=0.15) for sx in (-1, 1)]
    parts += [floor_box(0, -d / 2 + 0.1, (0.38, 0.2, 0.4), ceramic, z0=0.35),  # cistern
              cylinder(0, -d / 2 + 0.36, 0.0, 0.4, 0.17, ceramic)]  # bowl
    return _object("stall", "clutter", parts, (w + 0.03, d))


def build_sink_counter(rng) -> SceneObject:
    length = rng.uniform(1.2, 2.0)
    top = Material(MaterialKind.STONE, jitter_color(rng, rgb(150, 148, 140)), rgb(60, 60, 60), seed=_seed(rng))
    ceramic = Material(MaterialKind.CERAMIC, jitter_color(rng, rgb(240, 240, 238), val=0.02), seed=_seed(rng))
    parts = [floor_box(0, 0, (length, 0.55, 0.06), top, z0=0.8),
             floor_box(0, 0, (length - 0.1, 0.5, 0.8 + EMBED_M), _material(rng, MaterialKind.PAINT, WALL_PAINTS))]
    for k in range(max(1, int(length / 0.7))):
        parts.append(floor_box(-length / 2 + 0.45 + 0.7 * k, 0.03, (0.4, 0.35, 0.03 + EMBED_M), ceramic, z0=0.86 - EMBED_M))
    return _object("sink counter", "clutter", parts, (length, 0.55))


# --------------------------------------------------------------------------------------- layouts


@dataclass
class RoomLayout:
    """One room (room frame [0, Lx] x [0, Ly] x [0, H] metres) and its objects (room-frame parts).

    ``name`` is ``<roomType>_<roomNum>``; ``room_materials`` follow ``ROOM_FACE_NAMES`` (floor,
    ceiling, four walls); each object's S3DIS class is ``object.meta[CLASS_KEY]``.
    """

    name: str
    room_type: str
    room_number: int
    size: np.ndarray
    room_materials: list[Material]
    objects: list[SceneObject]

    def object_classes(self) -> list[str]:
        """S3DIS class of every labelled object: the six room faces (floor, ceiling, four walls) first."""
        faces = [ROOM_FACE_CLASSES.get(name, "wall") for name in ROOM_FACE_NAMES]
        return faces + [o.meta[CLASS_KEY] for o in self.objects]

    def surfaces(self) -> SurfaceSet:
        """All surfaces (room frame); ``object_index`` indexes :meth:`object_classes` (each room face is
        its own object: S3DIS annotates every wall separately). ``nyu40`` and ``raw_id`` are unused (0)."""
        faces = [(self.room_materials[f], 0, 0, f) for f in range(len(ROOM_FACE_NAMES))]
        parts = [(p, 0, 0, len(ROOM_FACE_NAMES) + k) for k, o in enumerate(self.objects) for p in o.parts]
        return room_surface_set(self.size, faces, parts)


def room_plan(num_rooms: int) -> list[tuple[str, int]]:
    """(roomType, roomNum) of the area's rooms: types cycle through ROOM_TYPE_SEQUENCE, numbered per type from 1."""
    counts: dict[str, int] = {}
    plan = []
    for k in range(num_rooms):
        room_type = ROOM_TYPE_SEQUENCE[k % len(ROOM_TYPE_SEQUENCE)]
        counts[room_type] = counts.get(room_type, 0) + 1
        plan.append((room_type, counts[room_type]))
    return plan


def _room_materials(rng, room_type: str) -> list[Material]:
    wall = _material(rng, MaterialKind.PAINT, WALL_PAINTS, val=0.05)
    if room_type in ("hallway", "lobby", "WC"):
        size = 0.2 if room_type == "WC" else rng.uniform(0.3, 0.45)
        floor = _material(rng, MaterialKind.TILES, VINYL, params=(size, 0, 0, 0))
        floor.color_b = floor.color_a * 0.78
    elif rng.random() < 0.5:  # carpet tiles: seams barely darker than the tiles
        floor = _material(rng, MaterialKind.TILES, CARPETS, params=(0.5, 0, 0, 0))
        floor.color_b = floor.color_a * 0.88
    else:
        floor = _material(rng, MaterialKind.CARPET, CARPETS)
    ceiling = _material(rng, MaterialKind.TILES, CEILING_TILES, params=(0.6, 0, 0, 0), val=0.03)
    ceiling.color_b = ceiling.color_a * 0.82  # the metal grid of a suspended ceiling
    return [floor, ceiling, wall, wall, wall, wall]


def _structure_material(rng, room_materials: list[Material]) -> Material:
    """Beams and columns: painted like the walls, a little lighter or darker."""
    return Material(MaterialKind.PAINT, jitter_color(rng, room_materials[2].color_a, sat=0.1, val=0.1), seed=_seed(rng))


def _add_beams(rng, placer: Placer, size: np.ndarray, count: int, mat: Material) -> None:
    """Beams under the ceiling across the short (y) span, ends and top embedded in walls and ceiling."""
    lx, ly, h = size
    for k in range(count):
        x = lx * (k + 1) / (count + 1) + rng.uniform(-0.3, 0.3)
        depth, width = rng.uniform(0.3, 0.45), rng.uniform(0.25, 0.4)
        part = box((x, ly / 2, h - depth / 2 + EMBED_M / 2), (width, ly + 2 * EMBED_M, depth + EMBED_M), mat)
        placer.commit([_object("beam", "beam", [part], (width, ly))])


def _pilaster(placer: Placer, wall: int, s: float, width: float, depth: float, height: float, mat: Material) -> SceneObject:
    """A column against ``wall`` at distance ``s`` along it, embedded in wall, floor and ceiling."""
    start, along, inward, yaw = placer.wall_frame(wall)
    xy = start + s * along + (depth / 2 - EMBED_M) * inward
    part = box((xy[0], xy[1], height / 2), (width, depth, height + 2 * EMBED_M), mat, yaw=yaw)
    return _object("column", "column", [part], (width, depth))


def _add_pilasters(rng, placer: Placer, size: np.ndarray, count: int, mat: Material, walls=(0, 1, 2, 3)) -> None:
    for _ in range(count):
        for _try in range(10):
            wall = int(rng.choice(walls))
            length = placer.wall_length(wall)
            width, depth = rng.uniform(0.4, 0.6), rng.uniform(0.2, 0.4)
            s = width / 2 if rng.random() < 0.3 else rng.uniform(width, length - width)
            col = _pilaster(placer, wall, s, width, depth, float(size[2]), mat)
            if placer.fits(col, gap=0.2):
                placer.commit([col])
                break


def _add_free_columns(rng, placer: Placer, size: np.ndarray, count: int, mat: Material) -> None:
    """Free-standing round or square columns, at least 1.5 m from the walls."""
    for _ in range(count):
        for _try in range(10):
            x, y = rng.uniform(1.5, size[0] - 1.5), rng.uniform(1.5, size[1] - 1.5)
            if rng.random() < 0.5:
                r = rng.uniform(0.22, 0.32)
                part = Part(SurfaceKind.CYLINDER, np.array([x, y, size[2] / 2]), np.array([r, r, size[2] / 2 + EMBED_M]), mat)
            else:
                s = rng.uniform(0.45, 0.6)
                part = box((x, y, size[2] / 2), (s, s, size[2] + 2 * EMBED_M), mat)
            col = _object("column", "column", [part], (0.6, 0.6))
            # The tall-object rule of Placer.fits is for furniture; only test the overlap here.
            if not any(np.all(part.center[:2] - 0.8 < hi[:2]) and np.all(part.center[:2] + 0.8 > lo[:2])
                       for lo, hi, _ in placer.boxes):
                placer.commit([col])
                break


def _add_doors(rng, placer: Placer, count: int, height: float, walls=(0, 1, 2, 3), double_p: float = 0.0) -> None:
    for _ in range(count):
        door = placer.against_wall([build_office_door(rng, height, rng.random() < double_p)], walls=walls, gap=0.15)
        if door:
            placer.block_door_swing(door[0], 1.0)


def _add_windows(rng, placer: Placer, count: int, size: np.ndarray, walls, heater_p: float = 0.0) -> None:
    for _ in range(count):
        window = build_office_window(rng, float(size[2]), max_width=float(min(size[:2])) - 0.6)
        group = [window]
        if rng.random() < heater_p:
            group.append(build_heater(rng, window.meta["size"][0] * 0.8))
        if not placer.against_wall(group, walls=walls, gap=0.08):
            placer.against_wall([window], walls=walls, gap=0.08)


def _chairs_facing(rng, placer: Placer, table: SceneObject, builder) -> None:
    """Chairs along both long sides of a placed table (and one at each end if there is room)."""
    length, width = table.meta["size"]
    xy, yaw = table.meta["xy"], table.meta["yaw"]
    c, s = np.cos(yaw), np.sin(yaw)
    seats = []
    n_side = max(1, int((length - 0.3) / 0.75))
    for side in (-1, 1):
        for k in range(n_side):
            seats.append(((k + 0.5) * length / n_side - length / 2, side * (width / 2 + 0.25)))
    seats += [(-length / 2 - 0.3, 0.0), (length / 2 + 0.3, 0.0)]
    for lx, ly in seats:
        if rng.random() < 0.15:
            continue  # an empty seat
        pos = xy + np.array([c * lx - s * ly, s * lx + c * ly])
        # side seats face the table's long axis squarely, end seats its centre
        target = xy + np.array([c * lx, s * lx]) if ly != 0.0 else xy
        to_table = target - pos
        chair_yaw = np.arctan2(-to_table[0], to_table[1]) + rng.uniform(-0.2, 0.2)
        placer.at([builder(rng)], pos, chair_yaw, gap=0.01, ignore=(table,))


def _scatter_clutter(rng, placer: Placer, count: int, builders) -> None:
    for _ in range(count):
        thing = builders[int(rng.integers(len(builders)))](rng)
        if rng.random() < 0.6:
            placer.against_wall([thing], gap=0.05)
        else:
            placer.free([thing], margin=0.5)


def _office(rng, placer: Placer, size: np.ndarray, mat: Material) -> None:
    h = float(size[2])
    if rng.random() < 0.5:
        _add_beams(rng, placer, size, 1, mat)
    _add_pilasters(rng, placer, size, int(rng.integers(0, 2)), mat)
    _add_doors(rng, placer, 1, h, walls=(0, 3))
    _add_windows(rng, placer, int(rng.integers(1, 3)), size, walls=(2,), heater_p=0.5)
    for _ in range(int(rng.integers(1, 3))):
        desk = build_desk(rng)
        dh = desk.meta["height"]
        group = [desk, build_monitor(rng, rng.uniform(-0.3, 0.3), -0.1, dh)]
        if rng.random() < 0.6:
            group.append(build_paper_stack(rng, desk.meta["size"][0] / 2 - 0.25, 0.1, dh))
        if rng.random() < 0.6:
            group.append(build_pc_tower(rng, -desk.meta["size"][0] / 2 + 0.2, 0.0))
        placed = placer.against_wall(group)
        if placed:
            d = placed[0]
            start, along, inward, yaw = placer.wall_frame(d.meta["wall"])
            xy = d.meta["xy"] + inward * (d.meta["size"][1] / 2 + 0.2)
            placer.at([build_office_chair(rng)], xy, yaw + np.pi + rng.uniform(-0.5, 0.5), gap=0.01, ignore=tuple(placed))
    for _ in range(int(rng.integers(1, 4))):
        placer.against_wall([build_shelving(rng)])
    placer.against_wall([build_board(rng)], gap=0.1)
    if rng.random() < 0.3:
        placer.against_wall([build_lobby_sofa(rng, 2)])
    if rng.random() < 0.5:
        placer.free([build_office_chair(rng)], margin=0.6)
    _scatter_clutter(rng, placer, int(rng.integers(2, 5)), [build_bin, build_plant, build_boxes, build_filing_cabinet])


def _conference_room(rng, placer: Placer, size: np.ndarray, mat: Material) -> None:
    h = float(size[2])
    _add_beams(rng, placer, size, int(rng.integers(1, 3)), mat)
    _add_pilasters(rng, placer, size, int(rng.integers(0, 3)), mat)
    _add_doors(rng, placer, int(rng.integers(1, 3)), h, walls=(0, 1, 3), double_p=0.3)
    _add_windows(rng, placer, int(rng.integers(1, 3)), size, walls=(2,), heater_p=0.3)
    for _ in range(int(rng.integers(1, 3))):
        placer.against_wall([build_board(rng)], walls=(1, 3), gap=0.1)
    table = build_conference_table(rng, max_length=float(size[0]) - 2.6)
    th = table.meta["height"]
    group = [table, build_paper_stack(rng, rng.uniform(-0.5, 0.5), rng.uniform(-0.2, 0.2), th)]
    if rng.random() < 0.7:
        group.append(build_monitor(rng, 0.0, 0.0, th))  # a projector-sized screen in the middle
    placed = placer.at(group, size[:2] / 2 + rng.uniform(-0.2, 0.2, size=2), rng.uniform(-0.05, 0.05))
    if placed:
        _chairs_facing(rng, placer, placed[0], build_stack_chair if rng.random() < 0.6 else build_office_chair)
    placer.against_wall([build_lobby_sofa(rng, int(rng.integers(2, 4)))], walls=(0, 1, 3))
    if rng.random() < 0.6:
        placer.against_wall([build_shelving(rng)])
    _scatter_clutter(rng, placer, int(rng.integers(1, 4)), [build_bin, build_plant, build_filing_cabinet])


def _hallway(rng, placer: Placer, size: np.ndarray, mat: Material) -> None:
    h = float(size[2])
    n_beams = max(1, int(size[0] / rng.uniform(3.0, 4.5)))
    _add_beams(rng, placer, size, n_beams, mat)
    _add_pilasters(rng, placer, size, int(rng.integers(2, 5)), mat, walls=(0, 2))
    _add_doors(rng, placer, int(rng.integers(3, 7)), h, walls=(0, 2))
    if rng.random() < 0.6:
        _add_doors(rng, placer, 1, h, walls=(1, 3), double_p=0.7)
    if rng.random() < 0.6:
        _add_windows(rng, placer, 1, size, walls=(1, 3))
    for _ in range(int(rng.integers(1, 3))):
        placer.against_wall([build_shelving(rng)], walls=(0, 2))
    if rng.random() < 0.5:
        placer.against_wall([build_board(rng)], walls=(0, 2), gap=0.1)
    for _ in range(int(rng.integers(2, 5))):
        placer.against_wall([[build_bin, build_boxes, build_filing_cabinet][int(rng.integers(3))](rng)], walls=(0, 2))


def _lobby(rng, placer: Placer, size: np.ndarray, mat: Material) -> None:
    h = float(size[2])
    _add_free_columns(rng, placer, size, int(rng.integers(1, 3)), mat)
    _add_pilasters(rng, placer, size, int(rng.integers(0, 3)), mat)
    _add_doors(rng, placer, 2, h, double_p=0.6)
    _add_windows(rng, placer, int(rng.integers(1, 4)), size, walls=(1, 2))
    for _ in range(int(rng.integers(2, 4))):
        sofa = placer.against_wall([build_lobby_sofa(rng, int(rng.integers(2, 4)))])
        if sofa and rng.random() < 0.8:
            o = sofa[0]
            start, along, inward, yaw = placer.wall_frame(o.meta["wall"])
            table = build_round_table(rng)
            xy = start + o.meta["s"] * along + (o.meta["size"][1] + 0.35 + table.meta["size"][1] / 2) * inward
            placer.at([table], xy, yaw)
    for _ in range(int(rng.integers(1, 3))):
        table = placer.free([build_round_table(rng)], margin=1.0)
        if table:
            for k in range(int(rng.integers(1, 4))):
                angle = 2 * np.pi * k / 3 + rng.uniform(-0.3, 0.3)
                r = table[0].meta["size"][0] / 2 + 0.3
                pos = table[0].meta["xy"] + r * np.array([np.cos(angle), np.sin(angle)])
                placer.at([build_stack_chair(rng)], pos, angle + np.pi / 2, gap=0.01, ignore=tuple(table))
    if rng.random() < 0.5:
        placer.against_wall([build_board(rng)], gap=0.1)
    _scatter_clutter(rng, placer, int(rng.integers(2, 5)), [build_plant, build_bin, build_plant])


def _storage(rng, placer: Placer, size: np.ndarray, mat: Material) -> None:
    _add_doors(rng, placer, 1, float(size[2]))
    for _ in range(int(rng.integers(2, 5))):
        placer.against_wall([build_shelving(rng)])
    placer.against_wall([build_desk(rng)])
    if rng.random() < 0.4:
        placer.free([build_office_chair(rng)], margin=0.6)
    _scatter_clutter(rng, placer, int(rng.integers(3, 8)), [build_boxes, build_boxes, build_filing_cabinet])


def _wc(rng, placer: Placer, size: np.ndarray, mat: Material) -> None:
    _add_doors(rng, placer, 1, float(size[2]), walls=(0,))
    for _ in range(int(rng.integers(2, 4))):
        placer.against_wall([build_stall(rng)], walls=(2,), gap=0.0)
    placer.against_wall([build_sink_counter(rng)], walls=(1, 3))
    if rng.random() < 0.4:
        _add_windows(rng, placer, 1, size, walls=(1, 3))
    _scatter_clutter(rng, placer, 1, [build_bin])


_FURNISHERS = {"office": _office, "conferenceRoom": _conference_room, "hallway": _hallway, "lobby": _lobby,
               "storage": _storage, "WC": _wc}


def generate_room(seed: int, area: int, room_type: str, room_number: int) -> RoomLayout:
    """The room ``<room_type>_<room_number>`` of ``Area_<area>``; deterministic for (seed, area, name).

    Layouts are retried (up to MAX_LAYOUT_ATTEMPTS) until every class of REQUIRED_CLASSES[room_type]
    is placed; the attempt missing the fewest is kept otherwise.
    """
    if room_type not in _FURNISHERS:
        raise ValueError(f"unknown room type {room_type!r}; expected one of {sorted(_FURNISHERS)}")
    name = f"{room_type}_{room_number}"
    rng = scene_rng(seed, f"Area_{area}/{name}", "layout")
    required = set(REQUIRED_CLASSES[room_type])
    best = None
    for _attempt in range(MAX_LAYOUT_ATTEMPTS):
        size = np.array([rng.uniform(*r) for r in ROOM_SIZES[room_type]])
        materials = _room_materials(rng, room_type)
        placer = Placer(size, rng)
        _FURNISHERS[room_type](rng, placer, size, _structure_material(rng, materials))
        missing = len(required - {o.meta[CLASS_KEY] for o in placer.placed})
        if best is None or missing < best[0]:
            best = (missing, RoomLayout(name, room_type, room_number, size, materials, list(placer.placed)))
        if missing == 0:
            break
    return best[1]
