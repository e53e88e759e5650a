"""The 20 ScanNet benchmark classes: one table, used everywhere (labels, losses, metrics, colours).

Index ``i`` in 0..19 is the class index used in every store, tensor and metric; ``255`` is ignore.
The nyu40 ids and the palette are those of the official ScanNet benchmark.
"""

from __future__ import annotations

import numpy as np

IGNORE_INDEX = 255

# (nyu40 id, name, RGB colour of the ScanNet benchmark palette)
BENCHMARK_CLASSES: tuple[tuple[int, str, tuple[int, int, int]], ...] = (
    (1, "wall", (174, 199, 232)),
    (2, "floor", (152, 223, 138)),
    (3, "cabinet", (31, 119, 180)),
    (4, "bed", (255, 187, 120)),
    (5, "chair", (188, 189, 34)),
    (6, "sofa", (140, 86, 75)),
    (7, "table", (255, 152, 150)),
    (8, "door", (214, 39, 40)),
    (9, "window", (197, 176, 213)),
    (10, "bookshelf", (148, 103, 189)),
    (11, "picture", (196, 156, 148)),
    (12, "counter", (23, 190, 207)),
    (14, "desk", (247, 182, 210)),
    (16, "curtain", (219, 219, 141)),
    (24, "refrigerator", (255, 127, 14)),
    (28, "shower curtain", (158, 218, 229)),
    (33, "toilet", (44, 160, 44)),
    (34, "sink", (112, 128, 144)),
    (36, "bathtub", (227, 119, 194)),
    (39, "otherfurniture", (82, 84, 163)),
)

NUM_CLASSES = len(BENCHMARK_CLASSES)
CLASS_NAMES: tuple[str, ...] = tuple(name for _, name, _ in BENCHMARK_CLASSES)
NYU40_IDS: tuple[int, ...] = tuple(nyu for nyu, _, _ in BENCHMARK_CLASSES)
CLASS_INDEX: dict[str, int] = {name: i for i, name in enumerate(CLASS_NAMES)}

# Colour of the ignore label in pictures (ScanNet draws unannotated vertices black).
IGNORE_COLOR = (0, 0, 0)


def palette() -> np.ndarray:
    """(256, 3) uint8 colour for every class index; index 255 (ignore) and unused entries are black."""
    pal = np.zeros((256, 3), dtype=np.uint8)
    for i, (_, _, rgb) in enumerate(BENCHMARK_CLASSES):
        pal[i] = rgb
    pal[IGNORE_INDEX] = IGNORE_COLOR
    return pal


def nyu40_to_class_lut() -> np.ndarray:
    """(65536,) uint8 lookup table nyu40 id -> class index 0..19, everything else -> 255.

    65536 entries so any uint16 value (real label PLYs hold stray ids such as 50 or 149) maps
    to ignore instead of indexing out of bounds.
    """
    lut = np.full(65536, IGNORE_INDEX, dtype=np.uint8)
    for i, nyu in enumerate(NYU40_IDS):
        lut[nyu] = i
    return lut


def class_to_nyu40() -> np.ndarray:
    """(256,) uint16: class index -> nyu40 id; 255 (ignore) -> 0 (nyu40 'unannotated')."""
    out = np.zeros(256, dtype=np.uint16)
    out[:NUM_CLASSES] = NYU40_IDS
    return out
