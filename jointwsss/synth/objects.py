"""Furniture built from oriented boxes and vertical cylinders, with class-typical sizes and materials.

Every builder returns a :class:`SceneObject` in its *object frame*: origin at the centre of the
footprint on the floor (or, for things mounted on a wall, on the wall plane), x along the object's
width, +y towards its front (away from the wall it stands against), z up. Parts that rest on the
floor start ``EMBED_M`` below it and parts against a wall reach ``EMBED_M`` into it, so the mesh
writer can drop the never-visible faces and vertices there (they lie outside the room or inside
another primitive).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from jointwsss.synth.raycast import SurfaceKind
from jointwsss.synth.texture import Material, MaterialKind, jitter_color, rgb

EMBED_M = 0.01

# nyu40 ids of the 20 benchmark classes, plus the ceiling (outside the benchmark: ignored).
WALL, FLOOR, CABINET, BED, CHAIR, SOFA, TABLE, DOOR, WINDOW, BOOKSHELF = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
PICTURE, COUNTER, DESK, CURTAIN, REFRIGERATOR, SHOWER_CURTAIN = 11, 12, 14, 16, 24, 28
TOILET, SINK, BATHTUB, OTHERFURNITURE = 33, 34, 36, 39
CEILING = 22


@dataclass
class Part:
    """One primitive. ``center`` (3,) metres; ``half`` (3,) half extents (cylinder: r, r, half height);
    ``yaw`` radians about z; ``raw_id`` overrides the object's raw ScanNet category id."""

    kind: SurfaceKind
    center: np.ndarray
    half: np.ndarray
    material: Material
    yaw: float = 0.0
    raw_id: int | None = None


@dataclass
class SceneObject:
    """A labelled composite object. ``preferred_raw_ids``: raw ScanNet ids fitting this variant
    (checked against the real tsv when the id is picked); empty = any id of the class."""

    name: str
    nyu40: int
    parts: list[Part]
    preferred_raw_ids: tuple[int, ...] = ()
    raw_id: int = 0
    meta: dict = field(default_factory=dict)

    def local_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(3,) min and max corner over all parts (ignores part yaw beyond the bounding radius)."""
        lo, hi = [], []
        for p in self.parts:
            ext = p.half.copy()
            if p.kind == SurfaceKind.BOX and p.yaw != 0.0:
                c, s = abs(np.cos(p.yaw)), abs(np.sin(p.yaw))
                ext[:2] = [c * p.half[0] + s * p.half[1], s * p.half[0] + c * p.half[1]]
            lo.append(p.center - ext)
            hi.append(p.center + ext)
        return np.min(lo, axis=0), np.max(hi, axis=0)


def box(center, size, material: Material, yaw: float = 0.0, raw_id: int | None = None) -> Part:
    """Box part: ``center`` (3,), full ``size`` (3,) metres."""
    return Part(SurfaceKind.BOX, np.asarray(center, float), np.asarray(size, float) / 2.0, material, yaw, raw_id)


def floor_box(x, y, size, material: Material, z0: float = 0.0, raw_id: int | None = None) -> Part:
    """Box whose bottom is at ``z0`` (``z0 = 0``: resting on the floor, embedded EMBED_M into it)."""
    sx, sy, sz = size
    bottom = z0 - EMBED_M if z0 == 0.0 else z0
    top = z0 + sz
    return box((x, y, (bottom + top) / 2.0), (sx, sy, top - bottom), material, raw_id=raw_id)


def cylinder(x, y, z0, z1, radius, material: Material, raw_id: int | None = None) -> Part:
    """Vertical cylinder from height ``z0`` to ``z1`` (``z0 = 0``: embedded into the floor)."""
    bottom = z0 - EMBED_M if z0 == 0.0 else z0
    return Part(SurfaceKind.CYLINDER, np.array([x, y, (bottom + z1) / 2.0]),
                np.array([radius, radius, (z1 - bottom) / 2.0]), material)


# ------------------------------------------------------------------------------------ materials

# Class-typical appearance. Each class draws from its own material families, with per-object jitter, so that
# appearance says something about class without deciding it: the real confusions are kept on purpose -- cabinets and
# doors share their panels, tables and desks their tops, toilets, sinks and bathtubs white ceramic -- and the rest
# made rare. Wooden furniture is warm and mid-dark; wooden floors (layout.py) are pale and grey, so the two stay
# apart. Colours are RGB in [0, 1].
WOODS = [rgb(150, 95, 55), rgb(112, 72, 46), rgb(172, 126, 78), rgb(88, 56, 38)]           # cherry, walnut, oak, dark
# tables' and desks' own woods (table / desk tops are the real confusion; beds, shelves and doors keep WOODS)
TABLE_WOODS = [rgb(210, 156, 84), rgb(122, 50, 38)]                                          # honey, mahogany
FLOOR_WOODS = [rgb(206, 196, 176), rgb(168, 163, 152), rgb(188, 174, 146)]                  # pale ash, grey oak, light oak
# tinted and a little darker than the white panels of doors and cabinets
WALL_PAINTS = [rgb(222, 214, 198), rgb(202, 210, 220), rgb(210, 220, 202), rgb(224, 206, 194), rgb(198, 198, 194),
               rgb(214, 202, 212)]
PANEL_PAINTS = [rgb(240, 238, 230), rgb(228, 222, 205)]                                     # white, cream: doors, cabinets
KITCHEN_PAINTS = [rgb(112, 134, 158), rgb(132, 156, 122), rgb(60, 64, 72)]                  # cabinets only
DOOR_PAINTS = [rgb(84, 52, 36), rgb(58, 66, 92)]                                           # doors only
DESK_LAMINATES = [rgb(236, 236, 232), rgb(226, 230, 222)]                                   # white laminates: desks
CHAIR_FABRICS = [rgb(36, 36, 40), rgb(48, 58, 96), rgb(96, 34, 40)]                         # office chairs
CHAIR_PAINTS = [rgb(190, 44, 40), rgb(36, 128, 140), rgb(206, 160, 40), rgb(30, 30, 32)]    # plastic / painted chairs
ARMCHAIR_FABRICS = [rgb(150, 60, 40), rgb(40, 100, 96), rgb(176, 150, 60)]
SOFA_FABRICS = [rgb(128, 130, 136), rgb(44, 60, 112), rgb(108, 120, 70), rgb(140, 100, 120)]  # grey, navy, olive, mauve
BEDDING = [rgb(244, 244, 240), rgb(236, 232, 222)]
BLANKETS = [rgb(70, 110, 170), rgb(200, 92, 112), rgb(226, 168, 84), rgb(96, 168, 176)]      # denim, rose, mustard, teal
CURTAIN_FABRICS = [rgb(222, 204, 152), rgb(170, 150, 192), rgb(172, 192, 160), rgb(150, 40, 64)]  # cream, lilac, sage, wine
FRIDGE_FINISHES = [rgb(192, 194, 198), rgb(240, 240, 238), rgb(52, 52, 56)]                # steel, white, black
FRIDGE_FINISH_SHARES = [0.45, 0.3, 0.25]
WHITES = [rgb(242, 242, 240), rgb(232, 236, 240), rgb(236, 232, 226)]
BATH_ACRYLICS = [rgb(246, 248, 250), rgb(240, 232, 212)]                                   # bright white, almond
METALS = [rgb(70, 70, 75), rgb(150, 150, 156), rgb(190, 192, 196)]
SKIES = [rgb(150, 190, 235), rgb(170, 205, 235), rgb(185, 210, 228), rgb(140, 180, 220)]
FRAME_COLORS = [rgb(245, 245, 245), rgb(120, 80, 50), rgb(60, 60, 62), rgb(190, 160, 90)]
SHOWER_STRIPES = [rgb(40, 110, 180), rgb(196, 60, 92), rgb(52, 156, 138)]                  # shower curtains' stripes
PASTELS = [rgb(190, 220, 240), rgb(240, 200, 210), rgb(210, 235, 210), rgb(245, 230, 180)]
OTHER_PAINTS = [rgb(240, 240, 236), rgb(60, 60, 64), rgb(150, 150, 155), rgb(200, 190, 170), rgb(120, 140, 160)]
OTHER_FABRICS = [rgb(150, 40, 40), rgb(60, 80, 140), rgb(90, 120, 90), rgb(180, 170, 150), rgb(120, 120, 125)]
COUNTER_STONES = [rgb(70, 70, 74), rgb(196, 184, 164), rgb(40, 40, 44), rgb(150, 120, 100)]  # granite, travertine, ...
COUNTER_PAINTS = [rgb(168, 92, 62), rgb(48, 88, 66), rgb(184, 146, 70)]                    # terracotta, forest, ochre
TOILET_SEAT_WOOD, TOILET_SEAT_BLACK = rgb(150, 105, 62), rgb(34, 34, 36)
TRASH_PLASTICS = [rgb(104, 166, 56), rgb(40, 84, 168), rgb(214, 214, 208)]                 # lime, cobalt, grey-white
LEATHERS = [rgb(150, 98, 58), rgb(92, 40, 34), rgb(214, 198, 170)]                         # tan, oxblood, cream
MEDIA_PAINTS = [rgb(30, 30, 34), rgb(70, 70, 76)]                                           # black, graphite: tv stands


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**31 - 1))


def _pick(rng: np.random.Generator, palette) -> np.ndarray:
    return palette[int(rng.integers(len(palette)))]


def wood(rng, base=None) -> Material:
    a = jitter_color(rng, _pick(rng, WOODS) if base is None else base)
    return Material(MaterialKind.WOOD, a, a * rng.uniform(0.62, 0.8), np.array([rng.uniform(6, 14), 0, 0, 0]), _seed(rng))


def paint(rng, palette=OTHER_PAINTS, base=None) -> Material:
    a = jitter_color(rng, _pick(rng, palette) if base is None else base, val=0.08)
    return Material(MaterialKind.PAINT, a, seed=_seed(rng))


def fabric(rng, palette=OTHER_FABRICS, base=None) -> Material:
    a = jitter_color(rng, _pick(rng, palette) if base is None else base)
    return Material(MaterialKind.FABRIC, a, seed=_seed(rng))


def ceramic(rng) -> Material:
    return Material(MaterialKind.CERAMIC, jitter_color(rng, _pick(rng, WHITES), hue=0.01, sat=0.1, val=0.03),
                    seed=_seed(rng))


def metal(rng, base=None) -> Material:
    return Material(MaterialKind.METAL, jitter_color(rng, _pick(rng, METALS) if base is None else base, val=0.08),
                    seed=_seed(rng))


def panel(rng, *, wooden: bool, base=None, inset=0.06, split=0.0, split_t=0.0, palette=PANEL_PAINTS) -> Material:
    """Door / cabinet / appliance front. split > 0: horizontal groove at local height split_t;
    split < 0: vertical groove in the middle (double doors). Painted panels from ``palette``."""
    if wooden:
        a = jitter_color(rng, _pick(rng, WOODS) if base is None else base)
    else:
        a = jitter_color(rng, _pick(rng, palette) if base is None else base, val=0.06)
    return Material(MaterialKind.PANEL, a, a * 0.7, np.array([inset, split, split_t, 1.0 if wooden else 0.0]), _seed(rng))


def table_top(rng) -> Material:
    """Tables: mostly a table wood (shared with desks), now and then a laminate (desks' own, mostly)."""
    return wood(rng, _pick(rng, TABLE_WOODS)) if rng.random() < 0.9 else paint(rng, DESK_LAMINATES)


def desk_top(rng) -> Material:
    """Desks: a table wood (shared with tables), or a white laminate."""
    return wood(rng, _pick(rng, TABLE_WOODS)) if rng.random() < 0.45 else paint(rng, DESK_LAMINATES)


def cabinet_front(rng, **kw) -> Material:
    """Cabinets: white or cream panels and wooden ones (both shared with doors), or a kitchen colour of their own."""
    u = rng.random()
    if u < 0.25:
        return panel(rng, wooden=False, **kw)
    if u < 0.55:
        return panel(rng, wooden=True, **kw)
    return panel(rng, wooden=False, palette=KITCHEN_PAINTS, **kw)


def door_leaf(rng, **kw) -> Material:
    """Doors: white or cream panels and wooden ones (both shared with cabinets), or a dark paint of their own."""
    u = rng.random()
    if u < 0.2:
        return panel(rng, wooden=False, **kw)
    if u < 0.6:
        return panel(rng, wooden=True, **kw)
    return panel(rng, wooden=False, palette=DOOR_PAINTS, **kw)


# ------------------------------------------------------------------------------------- builders


def build_table(rng, variant: str) -> SceneObject:
    if variant == "round":
        radius, height = rng.uniform(0.4, 0.6), rng.uniform(0.72, 0.77)
        mat = table_top(rng)
        parts = [
            cylinder(0, 0, height - 0.04, height, radius, mat),
            cylinder(0, 0, 0.0, height - 0.04 + EMBED_M, rng.uniform(0.04, 0.06), metal(rng) if rng.random() < 0.5 else mat),
            cylinder(0, 0, 0.0, 0.03, radius * 0.55, mat),
        ]
        return SceneObject("round table", TABLE, parts, (108, 4), meta={"size": (2 * radius, 2 * radius)})
    sizes = {
        "dining": ((1.0, 1.8), (0.7, 1.0), (0.72, 0.78), (4, 45)),
        "coffee": ((0.8, 1.3), (0.45, 0.7), (0.38, 0.48), (24,)),
        "side": ((0.4, 0.6), (0.4, 0.6), (0.5, 0.65), (44, 222)),
    }
    (w0, w1), (d0, d1), (h0, h1), raw = sizes[variant]
    w, d, h = rng.uniform(w0, w1), rng.uniform(d0, d1), rng.uniform(h0, h1)
    th = rng.uniform(0.03, 0.05)
    top_mat = table_top(rng)
    leg_mat = top_mat if rng.random() < 0.6 else metal(rng)
    leg = rng.uniform(0.04, 0.07)
    parts = [floor_box(0, 0, (w, d, th), top_mat, z0=h - th)]
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append(floor_box(sx * (w / 2 - 0.04 - leg / 2), sy * (d / 2 - 0.04 - leg / 2),
                                   (leg, leg, h - th + EMBED_M), leg_mat))
    return SceneObject(f"{variant} table", TABLE, parts, raw, meta={"size": (w, d)})


def build_desk(rng) -> SceneObject:
    w, d, h = rng.uniform(1.0, 1.6), rng.uniform(0.55, 0.8), rng.uniform(0.72, 0.77)
    th = 0.03
    top_mat = desk_top(rng)
    wooden = top_mat.kind == MaterialKind.WOOD
    parts = [floor_box(0, 0, (w, d, th), top_mat, z0=h - th)]
    ped_w = rng.uniform(0.35, 0.45)
    side = rng.choice([-1, 1])
    parts.append(floor_box(side * (w / 2 - ped_w / 2 - 0.01), 0, (ped_w, d - 0.04, h - th + EMBED_M),
                           panel(rng, wooden=wooden, base=top_mat.color_a, inset=0.04, split=1.0,
                                 split_t=rng.uniform(-0.1, 0.15))))
    parts.append(floor_box(-side * (w / 2 - 0.03), 0, (0.03, d - 0.04, h - th + EMBED_M), top_mat))
    parts.append(floor_box(0, -d / 2 + 0.03, (w - 0.1, 0.02, h * 0.5 + EMBED_M), top_mat, z0=h * 0.5 - th))
    return SceneObject("desk", DESK, parts, (9,), meta={"size": (w, d)})


def build_chair(rng, variant: str) -> SceneObject:
    if variant == "office":
        sw, sd, sh = rng.uniform(0.46, 0.52), rng.uniform(0.44, 0.5), rng.uniform(0.44, 0.5)
        seat = fabric(rng, CHAIR_FABRICS)
        frame = metal(rng)
        parts = [
            cylinder(0, 0, 0.0, 0.06, rng.uniform(0.27, 0.32), frame),
            cylinder(0, 0, 0.06, sh - 0.06, 0.03, frame),
            floor_box(0, 0, (sw, sd, 0.07), seat, z0=sh - 0.07),
            floor_box(0, -sd / 2 + 0.05, (0.05, 0.03, 0.12), frame, z0=sh),
            floor_box(0, -sd / 2 + 0.03, (sw * 0.9, 0.06, rng.uniform(0.35, 0.45)), seat, z0=sh + 0.1),
        ]
        return SceneObject("office chair", CHAIR, parts, (10, 2), meta={"size": (0.6, 0.6)})
    if variant == "arm":
        w, d = rng.uniform(0.7, 0.85), rng.uniform(0.7, 0.85)
        mat = fabric(rng, ARMCHAIR_FABRICS)
        bt, at = rng.uniform(0.15, 0.2), rng.uniform(0.1, 0.15)
        parts = [
            floor_box(0, 0, (w, d, 0.42), mat),
            floor_box(0, -d / 2 + bt / 2, (w, bt, rng.uniform(0.8, 0.95)), mat),
            floor_box(-w / 2 + at / 2, bt / 2, (at, d - bt, 0.6), mat),
            floor_box(w / 2 - at / 2, bt / 2, (at, d - bt, 0.6), mat),
        ]
        return SceneObject("armchair", CHAIR, parts, (23, 74), meta={"size": (w, d)})
    sw, sd, sh = rng.uniform(0.4, 0.48), rng.uniform(0.4, 0.48), rng.uniform(0.43, 0.48)
    # dining chairs: dark wood, or painted / plastic in a colour of their own; seats of the frame or a chair fabric
    frame = wood(rng, WOODS[3]) if rng.random() < 0.25 else paint(rng, CHAIR_PAINTS)
    seat = fabric(rng, CHAIR_FABRICS + ARMCHAIR_FABRICS) if rng.random() < 0.4 else frame
    leg = 0.035
    parts = [floor_box(0, 0, (sw, sd, 0.04), seat, z0=sh - 0.04)]
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append(floor_box(sx * (sw / 2 - leg / 2), sy * (sd / 2 - leg / 2), (leg, leg, sh - 0.04 + EMBED_M), frame))
    parts.append(floor_box(0, -sd / 2 + 0.015, (sw, 0.03, rng.uniform(0.35, 0.5)), frame, z0=sh - 0.01))
    return SceneObject("chair", CHAIR, parts, (2,), meta={"size": (sw, sd)})


def build_sofa(rng) -> SceneObject:
    w, d = rng.uniform(1.5, 2.4), rng.uniform(0.8, 1.0)
    mat = fabric(rng, SOFA_FABRICS)
    cushion = Material(mat.kind, mat.color_a * rng.uniform(0.9, 1.05), seed=_seed(rng))
    bt, at = rng.uniform(0.15, 0.25), rng.uniform(0.12, 0.22)
    base_h = rng.uniform(0.3, 0.36)
    parts = [
        floor_box(0, 0, (w, d, base_h), mat),
        floor_box(0, bt / 2, (w - 2 * at, d - bt, 0.1), cushion, z0=base_h - EMBED_M),
        floor_box(0, -d / 2 + bt / 2, (w, bt, rng.uniform(0.75, 0.9)), mat),
        floor_box(-w / 2 + at / 2, bt / 2, (at, d - bt, rng.uniform(0.55, 0.65)), mat),
        floor_box(w / 2 - at / 2, bt / 2, (at, d - bt, rng.uniform(0.55, 0.65)), mat),
    ]
    return SceneObject("sofa", SOFA, parts, (6, 1313), meta={"size": (w, d)})


def build_bed(rng) -> SceneObject:
    w, length = rng.uniform(0.95, 1.8), rng.uniform(1.95, 2.15)
    frame = wood(rng) if rng.random() < 0.7 else paint(rng, PANEL_PAINTS)
    bedding = fabric(rng, BEDDING)
    # quilted blankets: checks of a blanket colour and a pale or a second colour (beds apart from flat fabrics)
    tone = jitter_color(rng, _pick(rng, BLANKETS))
    second = jitter_color(rng, _pick(rng, BEDDING + BLANKETS))
    blanket = Material(MaterialKind.QUILT, tone, second, np.array([rng.uniform(0.12, 0.25), 0, 0, 0]), _seed(rng))
    fh, mh = rng.uniform(0.22, 0.3), rng.uniform(0.18, 0.25)
    head = 0.45  # metres of sheet at the head: the pillows' strip
    parts = [
        floor_box(0, 0, (w, length, fh), frame),
        # the sheet shows at the head, under the pillows; the blanket covers the rest of the mattress and drapes
        # over its sides and foot, as a duvet does
        floor_box(0, -length / 2 + 0.03 + head / 2, (w - 0.04, head, mh + EMBED_M), bedding, z0=fh - EMBED_M,
                  raw_id=1191),
        floor_box(0, -length / 2 + 0.03, (w + 0.04, 0.06, rng.uniform(0.9, 1.1)), frame),
        floor_box(0, (head + 0.03) / 2, (w + 0.02, length - 0.03 - head, mh + 0.03 + EMBED_M), blanket,
                  z0=fh - EMBED_M),
    ]
    n_pillows = 1 if w < 1.3 else 2
    for k in range(n_pillows):
        x = 0.0 if n_pillows == 1 else (k - 0.5) * w * 0.5
        parts.append(floor_box(x, -length / 2 + 0.3, (min(0.55, w * 0.45 if n_pillows == 2 else 0.55), 0.34, 0.12 + EMBED_M),
                               fabric(rng, WHITES), z0=fh + mh - EMBED_M))
    return SceneObject("bed", BED, parts, (11,), meta={"size": (w, length)})


def build_cabinet(rng, variant: str) -> SceneObject:
    dims = {
        "low": ((0.5, 1.2), (0.4, 0.55), (0.6, 0.95), (7, 75)),
        "tall": ((0.8, 1.2), (0.5, 0.6), (1.7, 2.1), (7,)),
        "nightstand": ((0.4, 0.5), (0.38, 0.45), (0.5, 0.6), (7,)),
        "kitchen wall": ((0.6, 1.2), (0.32, 0.36), (0.6, 0.75), (29,)),
        "vanity": ((0.6, 0.9), (0.45, 0.52), (0.78, 0.82), (1164, 1173)),
    }
    (w0, w1), (d0, d1), (h0, h1), raw = dims[variant]
    w, d, h = rng.uniform(w0, w1), rng.uniform(d0, d1), rng.uniform(h0, h1)
    double = w > 0.75
    body = cabinet_front(rng, inset=rng.uniform(0.03, 0.07), split=-1.0 if double else 0.0)
    z0 = rng.uniform(1.42, 1.5) if variant == "kitchen wall" else 0.0
    parts = [floor_box(0, 0, (w, d, h), body, z0=z0)]
    handle = metal(rng)
    hz = z0 + (h * 0.8 if variant != "kitchen wall" else h * 0.2)
    for x in ((-0.05, 0.05) if double else (w / 2 - 0.08,)):
        parts.append(box((x, d / 2 + 0.015, hz), (0.02, 0.03, 0.12), handle))
    return SceneObject(f"{variant} cabinet", CABINET, parts, raw, meta={"size": (w, d)})


def build_bookshelf(rng) -> SceneObject:
    w, d, h = rng.uniform(0.6, 1.2), rng.uniform(0.28, 0.4), rng.uniform(0.9, 2.0)
    th = rng.uniform(0.02, 0.03)
    frame = wood(rng) if rng.random() < 0.7 else paint(rng, PANEL_PAINTS)
    parts = [
        floor_box(-w / 2 + th / 2, 0, (th, d, h), frame),
        floor_box(w / 2 - th / 2, 0, (th, d, h), frame),
        floor_box(0, 0, (w - 2 * th + 0.004, d, th), frame, z0=h - th),
        floor_box(0, 0, (w - 2 * th + 0.004, d, 0.08), frame),
        floor_box(0, -d / 2 + 0.005, (w - 2 * th + 0.004, 0.01 + EMBED_M, h - 0.08), frame, z0=0.08 - EMBED_M),
    ]
    n_shelves = max(2, int(round((h - 0.1) / rng.uniform(0.3, 0.38))))
    levels = np.linspace(0.08, h - th, n_shelves + 1)
    back_gap = jitter_color(rng, frame.color_a * 0.45)
    for k in range(n_shelves):
        z_lo, z_hi = levels[k], levels[k + 1]
        if k > 0:
            parts.append(floor_box(0, 0, (w - 2 * th + 0.004, d - 0.01, th), frame, z0=z_lo - th / 2))
        books_h = z_hi - z_lo - th - 0.02
        books = Material(MaterialKind.BOOKS, np.zeros(3), back_gap, np.array([rng.uniform(0.025, 0.045), 0, 0, 0]),
                         _seed(rng))
        parts.append(floor_box(0, -0.02, (w - 2 * th - 0.01, d - 0.07, books_h), books, z0=z_lo + th / 2))
    return SceneObject("bookshelf", BOOKSHELF, parts, (18,), meta={"size": (w, d)})


def build_refrigerator(rng, mini: bool) -> SceneObject:
    if mini:
        w, d, h = rng.uniform(0.45, 0.55), rng.uniform(0.45, 0.55), rng.uniform(0.8, 0.9)
    else:
        w, d, h = rng.uniform(0.6, 0.85), rng.uniform(0.6, 0.75), rng.uniform(1.6, 1.9)
    base = FRIDGE_FINISHES[int(rng.choice(3, p=FRIDGE_FINISH_SHARES))]
    split_t = -h / 2 + h * rng.uniform(0.55, 0.7) if not mini else 0.0
    body = panel(rng, wooden=False, base=base, inset=0.015, split=0.0 if mini else 1.0, split_t=split_t)
    if base is FRIDGE_FINISHES[0]:  # brushed steel
        body = Material(MaterialKind.METAL, body.color_a, body.color_b, body.params, body.seed)
    handle = metal(rng)
    parts = [floor_box(0, 0, (w, d, h), body)]
    parts.append(box((w / 2 - 0.07, d / 2 + 0.02, h * 0.75 if not mini else h * 0.7), (0.025, 0.04, 0.3 if not mini else 0.15), handle))
    if not mini:
        parts.append(box((w / 2 - 0.07, d / 2 + 0.02, h * 0.35), (0.025, 0.04, 0.35), handle))
    return SceneObject("mini fridge" if mini else "refrigerator", REFRIGERATOR, parts, (165,) if mini else (27,),
                       meta={"size": (w, d)})


def counter_front(rng, top: Material) -> Material:
    """Counters: mostly fronts of their own -- clad in the top's stone, a little darker, or painted with a drawer row
    below the top -- and now and then a cabinet's front (the real confusion)."""
    u = rng.random()
    if u < 0.15:
        return cabinet_front(rng, inset=0.05, split=-1.0)
    if u < 0.6:
        return Material(MaterialKind.STONE, top.color_a * rng.uniform(0.8, 0.92), top.color_b, seed=_seed(rng))
    return panel(rng, wooden=False, palette=COUNTER_PAINTS, inset=0.05, split=1.0, split_t=rng.uniform(0.2, 0.28))


def build_counter(rng, bathroom: bool) -> SceneObject:
    length = rng.uniform(1.0, 1.6) if bathroom else rng.uniform(1.4, 2.6)
    d, h = rng.uniform(0.5, 0.58) if bathroom else rng.uniform(0.58, 0.65), rng.uniform(0.86, 0.92)
    top = Material(MaterialKind.STONE, jitter_color(rng, _pick(rng, COUNTER_STONES), val=0.05),
                   _pick(rng, [rgb(30, 30, 30), rgb(245, 245, 245), rgb(120, 110, 100)]), seed=_seed(rng))
    top_t = rng.uniform(0.04, 0.06)
    parts = [
        floor_box(0, -0.015, (length, d - 0.03, h - top_t + EMBED_M), counter_front(rng, top)),
        floor_box(0, 0, (length, d, top_t), top, z0=h - top_t),
    ]
    raw = (1156, 35) if bathroom else (159, 35)
    return SceneObject("counter", COUNTER, parts, raw, meta={"size": (length, d), "height": h})


def build_sink(rng, mode: str, height: float = 0.85) -> SceneObject:
    """``mode``: "counter" (basin set into a counter top at ``height``), "pedestal" or "wall"."""
    w, d = rng.uniform(0.45, 0.65), rng.uniform(0.38, 0.46)
    # counter basins mostly steel, wall and pedestal basins mostly white ceramic (which toilets and tubs share)
    basin_mat = ceramic(rng) if rng.random() < (0.35 if mode == "counter" else 0.7) else metal(rng, METALS[2])
    steel = metal(rng, METALS[2])
    parts = []
    if mode == "counter":
        parts.append(floor_box(0, 0.02, (w, d, 0.16), basin_mat, z0=height - 0.14))
        y_back = 0.02 - d / 2 - 0.05
        parts.append(cylinder(0, y_back + 0.04, height, height + 0.22, 0.018, steel))
        parts.append(box((0, y_back + 0.1, height + 0.21), (0.03, 0.14, 0.025), steel))
    else:
        parts.append(floor_box(0, 0, (w, d, 0.18), basin_mat, z0=height - 0.18))
        parts.append(cylinder(0, -d / 2 + 0.05, height, height + 0.18, 0.016, steel))
        parts.append(box((0, -d / 2 + 0.11, height + 0.17), (0.025, 0.12, 0.022), steel))
        if mode == "pedestal":
            parts.append(cylinder(0, -0.03, 0.0, height - 0.18 + EMBED_M, rng.uniform(0.07, 0.1), basin_mat))
    return SceneObject("sink", SINK, parts, (14,), meta={"size": (w, d)})


def toilet_seat(rng) -> Material:
    """Toilet seats: white like the bowl, wooden, or black."""
    u = rng.random()
    if u < 0.4:
        return ceramic(rng)
    return wood(rng, TOILET_SEAT_WOOD) if u < 0.75 else paint(rng, base=TOILET_SEAT_BLACK)


def build_toilet(rng) -> SceneObject:
    tw, td = rng.uniform(0.38, 0.46), rng.uniform(0.17, 0.22)
    r = rng.uniform(0.17, 0.2)
    mat = ceramic(rng)
    y_tank = -0.35
    y_bowl = y_tank + td / 2 + r - 0.04
    parts = [
        floor_box(0, y_tank, (tw, td, rng.uniform(0.38, 0.44)), mat, z0=0.38),
        cylinder(0, y_bowl, 0.12, 0.39, r, mat),
        cylinder(0, y_bowl - 0.03, 0.0, 0.12 + EMBED_M, r * 0.6, mat),
        cylinder(0, y_bowl, 0.39, 0.42, r + 0.01, toilet_seat(rng)),
    ]
    return SceneObject("toilet", TOILET, parts, (17,), meta={"size": (tw, 0.7)})


def build_bathtub(rng) -> SceneObject:
    w, d, h = rng.uniform(1.4, 1.75), rng.uniform(0.7, 0.8), rng.uniform(0.5, 0.6)
    mat = ceramic(rng) if rng.random() < 0.25 else Material(
        MaterialKind.CERAMIC, jitter_color(rng, _pick(rng, BATH_ACRYLICS), hue=0.01, sat=0.1, val=0.03), seed=_seed(rng))
    inner = Material(MaterialKind.CERAMIC, mat.color_a * np.array([0.86, 0.9, 0.94]), seed=_seed(rng))
    parts = [
        floor_box(0, 0, (w, d, h), mat),
        floor_box(0, 0, (w - 0.16, d - 0.16, 0.006 + EMBED_M), inner, z0=h - EMBED_M),
    ]
    return SceneObject("bathtub", BATHTUB, parts, (42,), meta={"size": (w, d), "height": h})


def build_shower_curtain(rng, tub_width: float, tub_depth: float) -> SceneObject:
    """In the bathtub's frame: hangs along the tub's open long side, partly drawn."""
    frac = rng.uniform(0.4, 0.9)
    cw = tub_width * frac
    x = (-tub_width / 2 + cw / 2) if rng.random() < 0.5 else (tub_width / 2 - cw / 2)
    z0, z1 = rng.uniform(0.3, 0.5), rng.uniform(1.85, 2.0)
    mat = Material(MaterialKind.SHOWER_CURTAIN, jitter_color(rng, _pick(rng, PASTELS), val=0.05),
                   jitter_color(rng, _pick(rng, SHOWER_STRIPES)),
                   np.array([rng.uniform(0.1, 0.16), rng.uniform(0.06, 0.15), 0, 0]), _seed(rng))
    y = tub_depth / 2 - 0.05
    parts = [
        floor_box(x, y, (cw, 0.02, z1 - z0), mat, z0=z0),
        floor_box(0, y, (tub_width, 0.025, 0.025), metal(rng, METALS[2]), z0=z1),
    ]
    return SceneObject("shower curtain", SHOWER_CURTAIN, parts, (55,), meta={"size": (tub_width, 0.05)})


def build_shower_stall_curtain(rng) -> SceneObject:
    """A shower stall's curtain without a bathtub: a curtain on an L-shaped rail that runs out of the wall (object
    frame: the rail starts on the wall plane y = 0, the curtain hangs along x at the stall's front)."""
    w, d = rng.uniform(0.8, 1.0), rng.uniform(0.7, 0.8)
    frac = rng.uniform(0.5, 0.9)
    cw = w * frac
    x = (-w / 2 + cw / 2) if rng.random() < 0.5 else (w / 2 - cw / 2)
    z0, z1 = rng.uniform(0.05, 0.2), rng.uniform(1.85, 2.0)
    mat = Material(MaterialKind.SHOWER_CURTAIN, jitter_color(rng, _pick(rng, PASTELS), val=0.05),
                   jitter_color(rng, _pick(rng, SHOWER_STRIPES)),
                   np.array([rng.uniform(0.1, 0.16), rng.uniform(0.06, 0.15), 0, 0]), _seed(rng))
    rail = metal(rng, METALS[2])
    parts = [
        floor_box(x, d - 0.02, (cw, 0.02, z1 - z0), mat, z0=z0),
        floor_box(0, d - 0.02, (w, 0.025, 0.025), rail, z0=z1),
        floor_box(-w / 2, d / 2 - 0.01 - EMBED_M / 2, (0.025, d - 0.02 + EMBED_M, 0.025), rail, z0=z1),
    ]
    return SceneObject("shower curtain", SHOWER_CURTAIN, parts, (55,), meta={"size": (w, d)})


# Wall-mounted objects: object frame on the wall plane (y = 0), heights absolute.


def build_window(rng, room_height: float) -> SceneObject:
    w = rng.uniform(0.8, 1.8)
    sill = rng.uniform(0.8, 1.0)
    h = min(rng.uniform(1.0, 1.45), room_height - 0.3 - sill)
    mat = Material(MaterialKind.WINDOW, jitter_color(rng, _pick(rng, SKIES), val=0.05), _pick(rng, FRAME_COLORS),
                   np.array([rng.uniform(0.04, 0.07), 1.0 if w > 1.1 else 0.0, 0, 0]), _seed(rng))
    parts = [box((0, 0.01, sill + h / 2), (w, 0.02 + 2 * EMBED_M, h), mat)]
    return SceneObject("window", WINDOW, parts, (16,), meta={"size": (w, h), "sill": sill})


def build_curtain(rng, width: float, z0: float, z1: float, offset: float) -> SceneObject:
    """One panel, centred at x = 0, hanging ``offset`` metres in front of the wall."""
    mat = Material(MaterialKind.CURTAIN, jitter_color(rng, _pick(rng, CURTAIN_FABRICS)),
                   params=np.array([rng.uniform(0.08, 0.15), 0, 0, 0]), seed=_seed(rng))
    parts = [box((0, offset, (z0 + z1) / 2), (width, 0.05, z1 - z0), mat)]
    return SceneObject("curtain", CURTAIN, parts, (21,), meta={"size": (width, 0.05)})


def build_picture(rng) -> SceneObject:
    w, h = rng.uniform(0.3, 1.0), rng.uniform(0.3, 0.8)
    th = rng.uniform(0.02, 0.035)
    zc = max(rng.uniform(1.35, 1.7), 1.05 + h / 2)
    art = jitter_color(rng, rgb(*rng.integers(60, 220, size=3)), hue=0.5, sat=0.3)
    mat = Material(MaterialKind.PICTURE, art, _pick(rng, FRAME_COLORS), np.array([rng.uniform(0.02, 0.05), 0, 0, 0]),
                   _seed(rng))
    parts = [box((0, (th - EMBED_M) / 2, zc), (w, th + EMBED_M, h), mat)]
    return SceneObject("picture", PICTURE, parts, (15, 1188, 1218), meta={"size": (w, th)})


def build_door(rng, room_height: float) -> SceneObject:
    w = rng.uniform(0.8, 0.95)
    h = min(rng.uniform(2.0, 2.1), room_height - 0.25)
    leaf = door_leaf(rng, inset=rng.uniform(0.08, 0.14))
    wooden = bool(leaf.params[3])
    frame_mat = paint(rng, WHITES) if not wooden or rng.random() < 0.5 else wood(rng, leaf.color_a)
    jamb = 0.06
    parts = [
        box((0, 0.01, (h - EMBED_M) / 2), (w, 0.02 + 2 * EMBED_M, h + EMBED_M), leaf),
        box((-w / 2 - jamb / 2, 0.015, (h + jamb) / 2 - EMBED_M / 2), (jamb, 0.03 + 2 * EMBED_M, h + jamb + EMBED_M), frame_mat, raw_id=161),
        box((w / 2 + jamb / 2, 0.015, (h + jamb) / 2 - EMBED_M / 2), (jamb, 0.03 + 2 * EMBED_M, h + jamb + EMBED_M), frame_mat, raw_id=161),
        box((0, 0.015, h + jamb / 2), (w, 0.03 + 2 * EMBED_M, jamb), frame_mat, raw_id=161),
        box((w / 2 - 0.1, 0.05, 1.0), (0.12, 0.04, 0.025), metal(rng)),
    ]
    return SceneObject("door", DOOR, parts, (5, 276), meta={"size": (w + 2 * jamb, 0.05)})


def build_otherfurniture(rng, variant: str) -> SceneObject:
    if variant == "trash can":
        r, h = rng.uniform(0.12, 0.2), rng.uniform(0.3, 0.6)
        mat = metal(rng) if rng.random() < 0.4 else paint(rng, TRASH_PLASTICS)
        return SceneObject(variant, OTHERFURNITURE, [cylinder(0, 0, 0.0, h, r, mat)], (56, 1169, 97),
                           meta={"size": (2 * r, 2 * r)})
    if variant == "radiator":
        w, h = rng.uniform(0.6, 1.2), rng.uniform(0.45, 0.6)
        mat = Material(MaterialKind.RIBS, jitter_color(rng, _pick(rng, WHITES), val=0.04), params=np.array([0.06, 0, 0, 0]),
                       seed=_seed(rng))
        return SceneObject(variant, OTHERFURNITURE, [floor_box(0, 0, (w, 0.1 + EMBED_M, h), mat, z0=0.12)], (96,),
                           meta={"size": (w, 0.1)})
    if variant == "ottoman":
        s = rng.uniform(0.4, 0.6)
        return SceneObject(variant, OTHERFURNITURE, [floor_box(0, 0, (s, s, rng.uniform(0.35, 0.45)), fabric(rng, LEATHERS))], (67,),
                           meta={"size": (s, s)})
    if variant == "bench":
        w = rng.uniform(1.0, 1.5)
        mat = wood(rng)
        # a slatted seat, where table tops are whole
        slats = Material(MaterialKind.RIBS, mat.color_a, params=np.array([rng.uniform(0.07, 0.1), 0, 0, 0]), seed=_seed(rng))
        parts = [floor_box(0, 0, (w, 0.36, 0.04), slats, z0=0.42),
                 floor_box(-w / 2 + 0.05, 0, (0.04, 0.34, 0.42 + EMBED_M), mat),
                 floor_box(w / 2 - 0.05, 0, (0.04, 0.34, 0.42 + EMBED_M), mat)]
        return SceneObject(variant, OTHERFURNITURE, parts, (68,), meta={"size": (w, 0.36)})
    if variant == "tv stand":
        w, d = rng.uniform(1.0, 1.6), rng.uniform(0.38, 0.45)
        body = panel(rng, wooden=rng.random() < 0.3, inset=0.04, split=-1.0, palette=MEDIA_PAINTS)
        return SceneObject(variant, OTHERFURNITURE, [floor_box(0, 0, (w, d, rng.uniform(0.45, 0.55)), body)], (51,),
                           meta={"size": (w, d)})
    if variant == "washing machine":
        mat = ceramic(rng)
        porthole = metal(rng, METALS[0])  # the front door's dark glass, and the control strip above it
        parts = [floor_box(0, 0, (0.6, 0.6, 0.85), mat), box((0, 0.305, 0.42), (0.36, 0.02, 0.36), porthole),
                 box((0, 0.305, 0.77), (0.54, 0.02, 0.08), metal(rng, METALS[1]))]
        return SceneObject(variant, OTHERFURNITURE, parts, (70,),
                           meta={"size": (0.6, 0.6)})
    raise ValueError(f"unknown otherfurniture variant {variant!r}")
