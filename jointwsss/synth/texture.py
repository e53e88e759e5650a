"""Procedural materials: colour as a function of the 3D surface point, plus Lambertian shading.

Both the renderer (for every pixel's hit point) and the mesh writer (for every vertex) call
:func:`shade`, so a mesh vertex and the pixel that sees it get the same colour up to JPEG and
sensor noise. Everything is view-independent for that reason (no specular highlights).

Patterns are evaluated in the primitive's local frame (so wood grain follows the object), from
``face`` coordinates ``(s, t)`` on the face the point lies on and the distance to that face's
border (window frames, picture frames, door panels).
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

# Fixed light direction (mostly from above, as from ceiling lights), room frame.
LIGHT_DIRECTION = np.array([0.4, 0.25, 0.88]) / np.linalg.norm([0.4, 0.25, 0.88])
# Shading factor range: a surface facing away from the light still gets AMBIENT.
AMBIENT = 0.6


class MaterialKind(IntEnum):
    PAINT = 0
    WOOD = 1
    FABRIC = 2
    CERAMIC = 3
    METAL = 4
    WINDOW = 5
    PICTURE = 6
    BOOKS = 7
    TILES = 8
    PLANKS = 9
    CARPET = 10
    STONE = 11
    CURTAIN = 12
    SHOWER_CURTAIN = 13
    PANEL = 14
    RIBS = 15
    QUILT = 16


@dataclass
class Material:
    """One primitive's appearance.

    ``color_a`` / ``color_b``: (3,) RGB in [0, 1] (main and secondary colour; what "secondary"
    means depends on the kind: dark grain, frame, grout, book gaps). ``params``: (4,) pattern
    parameters in metres or as flags, per kind. ``seed``: noise seed of this primitive.
    """

    kind: MaterialKind
    color_a: np.ndarray
    color_b: np.ndarray = field(default_factory=lambda: np.zeros(3))
    params: np.ndarray = field(default_factory=lambda: np.zeros(4))
    seed: int = 0


def rgb(*values: float) -> np.ndarray:
    """(3,) float RGB in [0, 1] from 0..255 values."""
    return np.asarray(values, dtype=np.float64) / 255.0


def jitter_color(rng: np.random.Generator, color: np.ndarray, hue: float = 0.03, sat: float = 0.2,
                 val: float = 0.12) -> np.ndarray:
    """Per-object random hue / saturation / brightness jitter of a (3,) RGB colour in [0, 1]."""
    h, s, v = colorsys.rgb_to_hsv(*np.clip(color, 0.0, 1.0))
    h = (h + rng.uniform(-hue, hue)) % 1.0
    s = float(np.clip(s * rng.uniform(1.0 - sat, 1.0 + sat), 0.0, 1.0))
    v = float(np.clip(v * rng.uniform(1.0 - val, 1.0 + val * 0.5), 0.0, 1.0))
    return np.array(colorsys.hsv_to_rgb(h, s, v))


# ------------------------------------------------------------------------------------------ noise

_M1, _M2, _M3 = np.uint32(0x8DA6B343), np.uint32(0xD8163841), np.uint32(0xCB1AB31F)
_MIX1, _MIX2 = np.uint32(0x7FEB352D), np.uint32(0x846CA68B)


def hash_uniform(seed: int, *coords: np.ndarray) -> np.ndarray:
    """Deterministic pseudo-random float64 in [0, 1) per element of the integer lattice ``coords``."""
    h = np.full(np.shape(coords[0]), np.uint32(seed & 0xFFFFFFFF), dtype=np.uint32)
    for c, m in zip(coords, (_M1, _M2, _M3)):
        h ^= np.asarray(c).astype(np.int64).astype(np.uint32) * m
        h ^= h >> np.uint32(16)
        h *= _MIX1
    h ^= h >> np.uint32(15)
    h *= _MIX2
    h ^= h >> np.uint32(16)
    return h.astype(np.float64) / 4294967296.0


def value_noise(p: np.ndarray, seed: int) -> np.ndarray:
    """Smooth 3D value noise in [0, 1] at points p (N, 3) (lattice spacing 1)."""
    f = np.floor(p)
    w = p - f
    w = w * w * (3.0 - 2.0 * w)
    i = f.astype(np.int64)
    out = np.zeros(len(p))
    for dx in (0, 1):
        wx = w[:, 0] if dx else 1.0 - w[:, 0]
        for dy in (0, 1):
            wy = w[:, 1] if dy else 1.0 - w[:, 1]
            for dz in (0, 1):
                wz = w[:, 2] if dz else 1.0 - w[:, 2]
                out += wx * wy * wz * hash_uniform(seed, i[:, 0] + dx, i[:, 1] + dy, i[:, 2] + dz)
    return out


def fbm(p: np.ndarray, seed: int, octaves: int = 2) -> np.ndarray:
    """Two-octave fractal noise in [0, 1] at points p (N, 3)."""
    total, amp, norm = np.zeros(len(p)), 1.0, 0.0
    for o in range(octaves):
        total += amp * value_noise(p * (2.0**o), seed + 7919 * o)
        norm += amp
        amp *= 0.5
    return total / norm


# -------------------------------------------------------------------------------------- patterns

# Spine colours of books on shelves (RGB in [0, 1]).
BOOK_COLORS = np.array(
    [(150, 40, 40), (40, 70, 130), (40, 110, 60), (200, 170, 60), (230, 225, 210), (60, 60, 60),
     (120, 60, 110), (200, 110, 40), (90, 140, 170), (170, 150, 120)], dtype=np.float64) / 255.0


@dataclass
class FacePoints:
    """Points on one primitive's surface, in the primitive's local frame.

    ``p`` (N, 3) local metres; ``s``, ``t`` (N,) in-face coordinates (t vertical on vertical
    faces); ``border`` (N,) metres to the face border; ``axis`` (N,) 0/1/2 = face normal axis
    (2 for horizontal faces; cylinder sides count as axis 0); ``half_t`` (N,) half extent of the face along t.
    """

    p: np.ndarray
    s: np.ndarray
    t: np.ndarray
    border: np.ndarray
    axis: np.ndarray
    half_t: np.ndarray


def _mix(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    return a[None, :] * (1.0 - w[:, None]) + b[None, :] * w[:, None]


def _wood(fp: FacePoints, mat: Material, freq: float) -> np.ndarray:
    p = fp.p
    warp = fbm(p * np.array([0.8, 5.0, 5.0]), mat.seed)
    ring = np.cos(2 * np.pi * (freq * (p[:, 1] + 0.6 * p[:, 2]) + 1.2 * warp))
    w = (0.5 + 0.5 * ring) ** 2
    fine = value_noise(p * 40.0, mat.seed + 3) - 0.5
    return _mix(mat.color_a, mat.color_b, w) * (1.0 + 0.06 * fine)[:, None]


def _paint_color(fp: FacePoints, mat: Material) -> np.ndarray:
    """Paint: ``color_a`` with faint large-scale blotches."""
    return mat.color_a[None, :] * (1.0 + 0.05 * (fbm(fp.p * 1.5, mat.seed) - 0.5))[:, None]


def _wood_color(fp: FacePoints, mat: Material) -> np.ndarray:
    """Wood: grain rings at ``params[0]`` per metre (10 if not set) between ``color_a`` and ``color_b``."""
    prm = mat.params
    return _wood(fp, mat, prm[0] if prm[0] > 0 else 10.0)


def _fabric_color(fp: FacePoints, mat: Material) -> np.ndarray:
    """Fabric and carpet: ``color_a`` with fine fibre noise (finer for carpet)."""
    scale = 14.0 if mat.kind == MaterialKind.FABRIC else 22.0
    return mat.color_a[None, :] * (0.88 + 0.24 * fbm(fp.p * scale, mat.seed))[:, None]


def _ceramic_color(fp: FacePoints, mat: Material) -> np.ndarray:
    """Ceramic: very smooth ``color_a`` (:func:`shade` brightens its upward faces for a glossy look)."""
    return mat.color_a[None, :] * (0.97 + 0.03 * value_noise(fp.p * 3.0, mat.seed))[:, None]


def _metal_color(fp: FacePoints, mat: Material) -> np.ndarray:
    """Brushed metal: ``color_a`` with noise that changes fast across and slowly along the vertical."""
    streak = value_noise(fp.p * np.array([30.0, 30.0, 2.0]), mat.seed)
    return mat.color_a[None, :] * (0.9 + 0.12 * streak)[:, None]


def _window_color(fp: FacePoints, mat: Material) -> np.ndarray:
    """Window: a cloudy sky of ``color_a`` (lighter towards the bottom) on the front pane, a frame of
    ``color_b`` ``params[0]`` metres wide, a vertical mullion in the middle if ``params[1] > 0.5``."""
    p, a, b, prm = fp.p, mat.color_a, mat.color_b, mat.params
    frame_w = prm[0]
    is_pane = (fp.axis == 1) & (fp.border > frame_w)
    if prm[1] > 0.5:  # a vertical mullion in the middle
        is_pane &= np.abs(fp.s) > 0.5 * frame_w
    height = (fp.t / np.maximum(fp.half_t, 1e-6) + 1.0) * 0.5  # 0 at the bottom, 1 at the top
    sky = _mix(a, np.array([0.93, 0.95, 0.98]), 0.55 * (1.0 - height))
    clouds = fbm(p * np.array([2.0, 2.0, 5.0]), mat.seed)
    sky = sky + 0.12 * np.clip(clouds - 0.5, 0.0, None)[:, None]
    return np.where(is_pane[:, None], sky, b[None, :])


def _picture_color(fp: FacePoints, mat: Material) -> np.ndarray:
    """Picture: abstract art around ``color_a`` on the front face inside a frame of ``color_b``
    ``params[0]`` metres wide."""
    p, a, b, prm = fp.p, mat.color_a, mat.color_b, mat.params
    inner = (fp.axis == 1) & (fp.border > prm[0])
    # broad colour fields plus brush-scale detail (~6 cm): a painting or a poster is busy at every scale, which
    # sets it apart from the flat paints and fabrics of furniture
    art = np.stack([fbm(p * 3.5, mat.seed + c * 101) + 0.8 * (value_noise(p * 16.0, mat.seed + c * 7) - 0.5)
                    for c in range(3)], axis=1)
    art = np.clip(a[None, :] + 1.5 * (art - 0.5), 0.0, 1.0)
    return np.where(inner[:, None], art, b[None, :])


def _books_color(fp: FacePoints, mat: Material) -> np.ndarray:
    """Books: spines ``params[0]`` metres wide along local x in BOOK_COLORS, of random heights, with
    ``color_b`` (the shelf's shadow) above them."""
    p, b, prm = fp.p, mat.color_b, mat.params
    width = prm[0]
    book = np.floor((p[:, 0] + 10.0) / width)
    pick = np.minimum((hash_uniform(mat.seed, book) * len(BOOK_COLORS)).astype(np.int64), len(BOOK_COLORS) - 1)
    cols = BOOK_COLORS[pick] * (0.75 + 0.35 * hash_uniform(mat.seed + 2, book))[:, None]
    top = 0.65 + 0.35 * hash_uniform(mat.seed + 3, book)
    height = (p[:, 2] + fp.half_t) / np.maximum(2.0 * fp.half_t, 1e-6)
    return np.where((height < top)[:, None], cols, b[None, :])


def _tiles_color(fp: FacePoints, mat: Material) -> np.ndarray:
    """Tiles: square tiles of side ``params[0]`` metres, each a shade of ``color_a``, in 8 mm ``color_b`` grout."""
    a, b, prm = mat.color_a, mat.color_b, mat.params
    size, grout = prm[0], 0.008
    i, j = np.floor(fp.s / size), np.floor(fp.t / size)
    di = np.minimum(fp.s / size - i, i + 1 - fp.s / size) * size
    dj = np.minimum(fp.t / size - j, j + 1 - fp.t / size) * size
    tile = a[None, :] * (0.94 + 0.12 * hash_uniform(mat.seed, i, j))[:, None]
    return np.where((np.minimum(di, dj) < grout)[:, None], b[None, :], tile)


def _planks_color(fp: FacePoints, mat: Material) -> np.ndarray:
    """Planks: wood grain in rows ``params[0]`` metres wide of planks ``params[1]`` metres long, staggered,
    each plank of its own tone."""
    prm = mat.params
    width, length = prm[0], prm[1]
    row = np.floor(fp.t / width)
    shift = hash_uniform(mat.seed, row) * length
    col = np.floor((fp.s + shift) / length)
    tone = 0.85 + 0.3 * hash_uniform(mat.seed + 5, row, col)
    grain = _wood(fp, mat, 25.0)
    return grain * tone[:, None]


def _stone_color(fp: FacePoints, mat: Material) -> np.ndarray:
    """Stone: mottled ``color_a`` with specks of ``color_b``."""
    p, a, b = fp.p, mat.color_a, mat.color_b
    base = a[None, :] * (0.85 + 0.3 * fbm(p * 6.0, mat.seed))[:, None]
    speck = value_noise(p * 45.0, mat.seed + 9) > 0.78
    return np.where(speck[:, None], b[None, :], base)


def _curtain_color(fp: FacePoints, mat: Material) -> np.ndarray:
    """Curtain: ``color_a`` shaded by folds ``params[0]`` metres apart; a shower curtain also has stripes of
    ``color_b`` ``params[1]`` metres apart."""
    prm = mat.params
    fold = 0.8 + 0.2 * (0.5 + 0.5 * np.sin(2 * np.pi * fp.s / prm[0]))
    base = mat.color_a[None, :] * (0.94 + 0.1 * value_noise(fp.p * 10.0, mat.seed))[:, None]
    if mat.kind == MaterialKind.SHOWER_CURTAIN:
        stripes = np.sin(2 * np.pi * fp.s / prm[1]) > 0.0
        base = np.where(stripes[:, None], mat.color_b[None, :], base)
    return base * fold[:, None]


def _panel_color(fp: FacePoints, mat: Material) -> np.ndarray:
    """Door / cabinet / appliance front: wood (``params[3] > 0.5``) or paint of ``color_a``, with a groove
    ``params[0]`` metres inside the front's border around an inset panel, and a split: horizontal at local
    height ``params[2]`` metres if ``params[1] > 0`` (fridge freezer door), vertical in the middle if
    ``params[1] < 0`` (double doors)."""
    p, a, prm = fp.p, mat.color_a, mat.params
    inset, groove = prm[0], 0.015
    front = fp.axis == 1
    body = _wood(fp, mat, 9.0) if prm[3] > 0.5 else a[None, :] * (
        1.0 + 0.04 * (value_noise(p * 2.0, mat.seed) - 0.5))[:, None]
    line = front & (np.abs(fp.border - inset) < groove)
    if prm[1] > 0:  # horizontal split (fridge freezer door) at local height prm[2]
        line |= front & (np.abs(fp.t - prm[2]) < groove)
    if prm[1] < 0:  # vertical split (double doors) in the middle
        line |= front & (np.abs(fp.s) < groove)
    return np.where(line[:, None], body * 0.6, body)


def _quilt_color(fp: FacePoints, mat: Material) -> np.ndarray:
    """Quilt (blankets): squares ``params[0]`` metres wide alternating ``color_a`` and ``color_b`` over the face,
    with the fibre noise of fabric."""
    size = mat.params[0]
    check = ((np.floor(fp.s / size) + np.floor(fp.t / size)) % 2) > 0.5
    fibre = 0.9 + 0.2 * fbm(fp.p * 14.0, mat.seed)
    return np.where(check[:, None], mat.color_b[None, :], mat.color_a[None, :]) * fibre[:, None]


def _ribs_color(fp: FacePoints, mat: Material) -> np.ndarray:
    """Ribs (radiator and heater fins): ``color_a``, darker every ``params[0]`` metres along the face (s)."""
    ribs = 0.75 + 0.25 * (0.5 + 0.5 * np.cos(2 * np.pi * fp.s / mat.params[0]))
    return mat.color_a[None, :] * ribs[:, None]


# The colour function of each material kind: (face points, material) -> (N, 3) unshaded RGB in [0, 1].
_MATERIAL_COLORS = {
    MaterialKind.PAINT: _paint_color,
    MaterialKind.WOOD: _wood_color,
    MaterialKind.FABRIC: _fabric_color,
    MaterialKind.CARPET: _fabric_color,
    MaterialKind.CERAMIC: _ceramic_color,
    MaterialKind.METAL: _metal_color,
    MaterialKind.WINDOW: _window_color,
    MaterialKind.PICTURE: _picture_color,
    MaterialKind.BOOKS: _books_color,
    MaterialKind.TILES: _tiles_color,
    MaterialKind.PLANKS: _planks_color,
    MaterialKind.STONE: _stone_color,
    MaterialKind.CURTAIN: _curtain_color,
    MaterialKind.SHOWER_CURTAIN: _curtain_color,
    MaterialKind.PANEL: _panel_color,
    MaterialKind.RIBS: _ribs_color,
    MaterialKind.QUILT: _quilt_color,
}


def material_color(fp: FacePoints, mat: Material) -> np.ndarray:
    """(N, 3) unshaded RGB in [0, 1] of ``mat`` at the face points ``fp``."""
    color = _MATERIAL_COLORS.get(mat.kind)
    if color is None:
        raise ValueError(f"unknown material kind {mat.kind}")
    return color(fp, mat)


def lambert(normals_world: np.ndarray) -> np.ndarray:
    """(N,) shading factor in [AMBIENT, 1] for unit normals (N, 3) (half-Lambert, never black)."""
    return AMBIENT + (1.0 - AMBIENT) * (0.5 + 0.5 * (normals_world @ LIGHT_DIRECTION))


def shade(fp: FacePoints, mat: Material, normals_world: np.ndarray) -> np.ndarray:
    """(N, 3) shaded RGB in [0, 1]: ``material_color * lambert``; CERAMIC is a little brighter on top faces."""
    color = material_color(fp, mat) * lambert(normals_world)[:, None]
    if mat.kind == MaterialKind.CERAMIC:
        color = color + 0.06 * np.clip(normals_world[:, 2], 0.0, 1.0)[:, None]
    return np.clip(color, 0.0, 1.0)
