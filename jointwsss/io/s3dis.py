"""S3DIS point clouds: ``Stanford3dDataset_v1.2_Aligned_Version/Area_N/<room>/``.

Layout of one room folder (text, one point per line, whitespace-separated):

    <room>.txt                     x y z r g b   (metres, 8-bit colours) -- every point of the room
    Annotations/<class>_<i>.txt    x y z r g b   -- the points of one object (instance i of <class>)

The room's labelled cloud is the union of its annotation files (every S3DIS toolkit builds it
this way; ``<room>.txt`` carries no labels). The release has a few corrupted lines, e.g. a control
character in place of a space at line 180389 of ``Area_5/hallway_6/Annotations/ceiling_1.txt`` and
``103.0\\x100000`` in ``Area_5/office_19``; readers skip such lines with one warning per file
instead of failing on a 9-million-point room.
"""

from __future__ import annotations

import io
import logging
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from jointwsss.classes import IGNORE_INDEX
from jointwsss.io.atomic import atomic_path
from jointwsss.io.errors import DataFormatError

logger = logging.getLogger(__name__)

# Index in this tuple = S3DIS class id (the standard 13-class protocol).
S3DIS_CLASSES: tuple[str, ...] = (
    "ceiling", "floor", "wall", "beam", "column", "window", "door",
    "table", "chair", "sofa", "bookcase", "board", "clutter",
)
_CLASS_ID = {name: i for i, name in enumerate(S3DIS_CLASSES)}

# Some rooms have annotation files named ``stairs_<i>.txt``; the 13-class protocol (and the
# reference toolkits, e.g. PointNet's indoor3d_util) counts them as clutter, so we do the same.
CLASS_ALIASES: dict[str, str] = {"stairs": "clutter"}

_FIELDS_PER_LINE = 6
# How many malformed line numbers a warning lists before summarising with the count.
_LINES_IN_WARNING = 5
_ANNOTATION_NAME = re.compile(r"^(?P<cls>.+)_(?P<num>\d+)$")


def class_id_for_name(name: str) -> int:
    """S3DIS class id of a class name (after :data:`CLASS_ALIASES`); IGNORE_INDEX (255) if unknown."""
    name = CLASS_ALIASES.get(name, name)
    return _CLASS_ID.get(name, IGNORE_INDEX)


def _line_count(text: str) -> int:
    """Lines in ``text``; a final newline does not start another line."""
    if not text:
        return 0
    return text.count("\n") + (0 if text.endswith("\n") else 1)


def _parse_line_by_line(text: str) -> tuple[np.ndarray, list[int]]:
    """Slow path: parse each line on its own; return the (M, 6) float64 rows and bad 1-based line numbers."""
    rows: list[list[float]] = []
    malformed: list[int] = []
    # split("\n") rather than splitlines(): the latter also breaks at \x0b, \x1c-\x1e and \x85,
    # which would shift the reported line numbers away from what an editor shows.
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if len(fields) != _FIELDS_PER_LINE:
            malformed.append(number)
            continue
        try:
            rows.append([float(f) for f in fields])
        except ValueError:
            malformed.append(number)
    return np.asarray(rows, dtype=np.float64).reshape(-1, _FIELDS_PER_LINE), malformed


def read_points_txt(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Read an S3DIS ``x y z r g b`` text file.

    Returns ``(xyz, rgb, malformed_lines)``: xyz (N, 3) float32 metres, rgb (N, 3) uint8, and the
    1-based numbers of skipped lines (wrong field count, non-numeric token, blank line, non-finite
    coordinate or colour outside 0..255). Skipped lines produce ONE warning naming the file.

    Raises DataFormatError when the file is missing, empty, or has no valid line at all.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataFormatError(path, f"cannot read S3DIS point file ({exc.strerror or exc})",
                              "check the S3DIS download/extraction") from exc
    # latin-1 maps every byte to a character, so a stray control byte becomes a bad token, not a crash.
    text = raw.decode("latin-1")
    n_lines = _line_count(text)
    if n_lines == 0 or not text.strip():
        raise DataFormatError(path, "empty S3DIS point file", "re-extract the S3DIS archive")

    data = None
    try:
        # Fast path for the (vast majority of) clean files. loadtxt silently skips blank lines,
        # so its row count is compared with the line count to notice them.
        data = np.loadtxt(io.StringIO(text), dtype=np.float64, comments=None, ndmin=2)
        if data.shape != (n_lines, _FIELDS_PER_LINE):
            data = None
    except ValueError:
        data = None
    malformed: list[int] = []
    if data is None:
        data, malformed = _parse_line_by_line(text)

    finite = np.isfinite(data).all(axis=1)
    colour_ok = ((data[:, 3:6] >= 0) & (data[:, 3:6] <= 255)).all(axis=1)
    bad_values = ~(finite & colour_ok)
    if bad_values.any():
        # Map row indices back to line numbers (rows are the non-malformed lines, in order).
        good_lines = np.setdiff1d(np.arange(1, n_lines + 1), np.asarray(malformed, dtype=np.int64))
        malformed = sorted(malformed + good_lines[bad_values].tolist())
        data = data[~bad_values]

    if malformed:
        shown = ", ".join(str(n) for n in malformed[:_LINES_IN_WARNING])
        more = " ..." if len(malformed) > _LINES_IN_WARNING else ""
        logger.warning("%s: skipped %d malformed line(s) (expected %d numbers 'x y z r g b'); line(s) %s%s",
                       path, len(malformed), _FIELDS_PER_LINE, shown, more)
    if len(data) == 0:
        raise DataFormatError(path, f"no valid 'x y z r g b' line among {n_lines} line(s)",
                              "re-extract the S3DIS archive")
    xyz = data[:, 0:3].astype(np.float32)
    rgb = np.rint(data[:, 3:6]).astype(np.uint8)
    return xyz, rgb, malformed


def _annotation_sort_key(path: Path) -> tuple[str, int, str]:
    """Sort ``chair_2`` before ``chair_10`` so instance ids follow the release's numbering."""
    match = _ANNOTATION_NAME.match(path.stem)
    if match:
        return match["cls"], int(match["num"]), path.name
    return path.stem, -1, path.name


def annotation_class_name(path: str | os.PathLike) -> str:
    """Class name of an annotation file ``<class>_<i>.txt`` (the part before the first '_')."""
    return Path(path).stem.split("_", 1)[0]


def read_room(room_dir: str | os.PathLike) -> dict:
    """Read one S3DIS room from its ``Annotations/`` folder.

    Returns a dict:
      xyz       (N, 3) float32 metres
      rgb       (N, 3) uint8
      label     (N,) uint8 S3DIS class id (index into S3DIS_CLASSES; 255 for an unknown class name)
      instance  (N,) int32 object index, 0..K-1, in annotation-file order (class, then number)
      malformed dict[str, list[int]]: annotation file path -> skipped 1-based line numbers
    Unknown class names and aliased ones (``stairs`` -> clutter) are reported in one warning.
    """
    room_dir = Path(room_dir)
    ann_dir = room_dir / "Annotations"
    if not ann_dir.is_dir():
        raise DataFormatError(ann_dir, "S3DIS room has no Annotations folder",
                              "use Stanford3dDataset_v1.2_Aligned_Version, whose rooms carry Annotations/")
    files = sorted(ann_dir.glob("*.txt"), key=_annotation_sort_key)
    if not files:
        raise DataFormatError(ann_dir, "S3DIS room has no Annotations/<class>_<i>.txt files",
                              "re-extract the S3DIS archive")

    xyz_parts, rgb_parts, label_parts, inst_parts = [], [], [], []
    malformed: dict[str, list[int]] = {}
    unknown: dict[str, int] = {}
    aliased: dict[str, int] = {}
    for instance, path in enumerate(files):
        name = annotation_class_name(path)
        class_id = class_id_for_name(name)
        if class_id == IGNORE_INDEX:
            unknown[name] = unknown.get(name, 0) + 1
        elif name in CLASS_ALIASES:
            aliased[name] = aliased.get(name, 0) + 1
        xyz, rgb, bad = read_points_txt(path)
        if bad:
            malformed[str(path)] = bad
        xyz_parts.append(xyz)
        rgb_parts.append(rgb)
        label_parts.append(np.full(len(xyz), class_id, dtype=np.uint8))
        inst_parts.append(np.full(len(xyz), instance, dtype=np.int32))

    if unknown or aliased:
        logger.warning("%s: %d annotation file(s) with unknown class names %s labelled %d (ignore); "
                       "%d aliased %s", ann_dir, sum(unknown.values()), unknown, IGNORE_INDEX,
                       sum(aliased.values()), {k: CLASS_ALIASES[k] for k in aliased})
    return {
        "xyz": np.concatenate(xyz_parts),
        "rgb": np.concatenate(rgb_parts),
        "label": np.concatenate(label_parts),
        "instance": np.concatenate(inst_parts),
        "malformed": malformed,
    }


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_rooms(area_dir: str | os.PathLike) -> list[Path]:
    """Room folders of an area (those with an ``Annotations/`` folder), in natural order (office_2 < office_10)."""
    area_dir = Path(area_dir)
    if not area_dir.is_dir():
        raise DataFormatError(area_dir, "S3DIS area folder not found",
                              "point the config at Stanford3dDataset_v1.2_Aligned_Version/Area_N")
    rooms = [p for p in area_dir.iterdir() if p.is_dir() and (p / "Annotations").is_dir()]
    return sorted(rooms, key=lambda p: _natural_key(p.name))


def _write_points_txt(path: Path, xyz: np.ndarray, rgb: np.ndarray) -> None:
    """Write ``x y z r g b`` lines like the release: 3-decimal metres, integer colours."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="ascii", newline="\n") as f:
            for (x, y, z), (r, g, b) in zip(xyz.tolist(), rgb.tolist()):
                f.write(f"{x:.3f} {y:.3f} {z:.3f} {r} {g} {b}\n")


def write_room(room_dir: str | os.PathLike,
               objects: Sequence[tuple[str, np.ndarray, np.ndarray]]) -> None:
    """Write a room in the release's text format (for tests and synthetic data).

    objects: sequence of ``(class_name, xyz (M, 3) metres, rgb (M, 3) 0..255 integers)``.
    Writes ``Annotations/<class>_<i>.txt`` (i counts from 1 per class, as in the release) and
    ``<room>.txt`` (all objects, in order). Every file is written atomically.
    """
    room_dir = Path(room_dir)
    counters: dict[str, int] = {}
    all_xyz, all_rgb = [], []
    for class_name, xyz, rgb in objects:
        xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
        rgb = np.asarray(rgb).reshape(-1, 3)
        if len(xyz) != len(rgb):
            raise ValueError(f"{class_name}: {len(xyz)} points but {len(rgb)} colours")
        if rgb.size and (rgb.min() < 0 or rgb.max() > 255):
            raise ValueError(f"{class_name}: colours must lie in 0..255")
        rgb = rgb.astype(np.int64)
        counters[class_name] = counters.get(class_name, 0) + 1
        _write_points_txt(room_dir / "Annotations" / f"{class_name}_{counters[class_name]}.txt", xyz, rgb)
        all_xyz.append(xyz)
        all_rgb.append(rgb)
    if not all_xyz:
        raise ValueError(f"{room_dir}: a room needs at least one object")
    _write_points_txt(room_dir / f"{room_dir.name}.txt", np.concatenate(all_xyz), np.concatenate(all_rgb))
