"""ScanNet label formats: the category tsv, the split lists and the ``_2d-label-filt.zip`` archives.

Label images in ``<scene>_2d-label-filt.zip`` hold *raw* ScanNet category ids (tsv column ``id``,
values up to ~1357), not nyu40 ids. Every mapping here works on the full uint16 value so an id such
as 257 can never be mistaken for id 1 by an early cast to 8 bits.
"""

from __future__ import annotations

import csv
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable

import cv2
import numpy as np

from jointwsss.classes import nyu40_to_class_lut
from jointwsss.io.atomic import atomic_path
from jointwsss.io.errors import DataFormatError

_RESOURCE_DIR = Path(__file__).resolve().parent.parent / "resources" / "scannet"
LABEL_TSV_NAME = "scannetv2-labels.combined.tsv"
SPLITS = ("train", "val", "test")
NUM_NYU40_IDS = 41  # 0 (unannotated) and 1..40

SCENE_ID_PATTERN = re.compile(r"scene\d{4}_\d{2}")
LABEL_FOLDER = "label-filt"
_FRAME_ENTRY = re.compile(LABEL_FOLDER + r"/(\d+)\.png")
_DRIVE_LETTER = re.compile(r"[A-Za-z]:")


def resource_path(name: str) -> Path:
    """Path of a file packaged in ``jointwsss/resources/scannet/`` (the real ScanNet tsv and split lists)."""
    path = _RESOURCE_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no packaged ScanNet resource named {name!r}")
    return path


# ----------------------------------------------------------------------------------------- tsv


@dataclass(frozen=True)
class _TsvRow:
    line: int
    raw_id: int
    raw_category: str
    count: int
    nyu40: int


def _parse_int(text: str, path, line: int, column: str, empty_value: int | None = None) -> int:
    text = text.strip()
    if text == "" and empty_value is not None:
        return empty_value
    try:
        return int(text)
    except ValueError:
        raise DataFormatError(path, f"line {line}: column '{column}' is {text!r}, expected an integer") from None


def _read_tsv_rows(path) -> list[_TsvRow]:
    try:
        handle = open(path, newline="", encoding="utf-8")
    except OSError as exc:
        raise DataFormatError(path, f"cannot be read ({exc})") from exc
    with handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = [c for c in ("id", "raw_category", "nyu40id") if c not in (reader.fieldnames or [])]
        if missing:
            raise DataFormatError(
                path, f"header lacks columns {missing} (has {reader.fieldnames})",
                "expected scannetv2-labels.combined.tsv",
            )
        rows = []
        for line, record in enumerate(reader, start=2):
            raw_id = _parse_int(record["id"] or "", path, line, "id")
            if not 0 <= raw_id <= np.iinfo(np.uint16).max:
                raise DataFormatError(path, f"line {line}: id {raw_id} outside 0..65535")
            # An empty nyu40id means the category was never mapped: treat it as unannotated (0).
            nyu40 = _parse_int(record["nyu40id"] or "", path, line, "nyu40id", empty_value=0)
            if not 0 <= nyu40 < NUM_NYU40_IDS:
                raise DataFormatError(path, f"line {line}: nyu40id {nyu40} outside 0..{NUM_NYU40_IDS - 1}")
            count = _parse_int(record.get("count") or "", path, line, "count", empty_value=0)
            rows.append(_TsvRow(line, raw_id, record["raw_category"] or "", count, nyu40))
    if not rows:
        raise DataFormatError(path, "has a header but no rows")
    return rows


def read_label_tsv(path: str | os.PathLike | None = None) -> dict[int, tuple[str, int]]:
    """raw ScanNet category id -> (raw_category, nyu40 id), from ``scannetv2-labels.combined.tsv``.

    Default: the packaged real tsv. The ``id`` column is not unique: 51 ids appear on several rows
    (plural spellings such as 'chair' / 'stack of chairs'), and three of them disagree on the nyu40 id
    (107 pipe 40 / pipes 38, 188 shower door 8 / shower doors 38, 385 cabinet door 8 / doors 3).
    The nyu40 id follows the official ScanNet conversion of label images, which keys a dict by ``id``
    so the *last* row wins; the name is the raw_category of the row with the largest ``count``
    (the first such row on ties), i.e. the most common name of that id.
    """
    path = resource_path(LABEL_TSV_NAME) if path is None else path
    nyu40_of: dict[int, int] = {}
    name_of: dict[int, tuple[int, str]] = {}
    for row in _read_tsv_rows(path):
        nyu40_of[row.raw_id] = row.nyu40
        if row.raw_id not in name_of or row.count > name_of[row.raw_id][0]:
            name_of[row.raw_id] = (row.count, row.raw_category)
    return {raw_id: (name_of[raw_id][1], nyu40) for raw_id, nyu40 in nyu40_of.items()}


def raw_to_nyu40_lut(tsv_path: str | os.PathLike | None = None) -> np.ndarray:
    """(65536,) uint16 lookup table raw category id -> nyu40 id; ids not in the tsv -> 0 (unannotated)."""
    lut = np.zeros(65536, dtype=np.uint16)
    for raw_id, (_, nyu40) in read_label_tsv(tsv_path).items():
        lut[raw_id] = nyu40
    return lut


def raw_to_class_lut(tsv_path: str | os.PathLike | None = None) -> np.ndarray:
    """(65536,) uint8 lookup table raw category id -> benchmark class index 0..19, everything else 255."""
    return nyu40_to_class_lut()[raw_to_nyu40_lut(tsv_path)]


def raw_ids_for_nyu40(tsv_path: str | os.PathLike | None = None) -> dict[int, list[int]]:
    """nyu40 id -> the raw ids that map to it, most frequent first.

    Frequency is the tsv ``count`` summed over the rows of a raw id (ties: smaller id first), so
    ``raw_ids_for_nyu40()[5][0]`` is the raw id real chair pixels most often carry.
    """
    path = resource_path(LABEL_TSV_NAME) if tsv_path is None else tsv_path
    rows = _read_tsv_rows(path)
    mapping = read_label_tsv(path)
    total_count: dict[int, int] = {}
    for row in rows:
        total_count[row.raw_id] = total_count.get(row.raw_id, 0) + row.count
    by_nyu40: dict[int, list[int]] = {}
    for raw_id in sorted(mapping, key=lambda r: (-total_count[r], r)):
        by_nyu40.setdefault(mapping[raw_id][1], []).append(raw_id)
    return by_nyu40


# ----------------------------------------------------------------------------------------- splits


def read_split(path: str | os.PathLike) -> list[str]:
    """Scene ids of a split list (one ``sceneNNNN_NN`` a line), in file order.

    Blank lines are skipped; anything else that is not a scene id, and repeated ids, raise a
    DataFormatError naming the file and the line number.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFormatError(path, f"cannot be read as a text split list ({exc})") from exc
    scenes: list[str] = []
    first_line: dict[str, int] = {}
    for line_no, line in enumerate(text.splitlines(), start=1):
        scene = line.strip()
        if not scene:
            continue
        if not SCENE_ID_PATTERN.fullmatch(scene):
            raise DataFormatError(path, f"line {line_no}: {scene!r} is not a scene id like scene0000_00")
        if scene in first_line:
            raise DataFormatError(path, f"line {line_no}: {scene} repeats line {first_line[scene]}")
        first_line[scene] = line_no
        scenes.append(scene)
    if not scenes:
        raise DataFormatError(path, "lists no scenes")
    return scenes


def write_split(path: str | os.PathLike, scene_ids: Iterable[str]) -> None:
    """Write a split list atomically, one scene id a line."""
    scenes = list(scene_ids)
    bad = [s for s in scenes if not SCENE_ID_PATTERN.fullmatch(s)]
    if bad:
        raise ValueError(f"not scene ids like scene0000_00: {bad[:5]}")
    if len(set(scenes)) != len(scenes):
        raise ValueError("scene ids repeat")
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{s}\n" for s in scenes), encoding="utf-8")


def split_path(split: str) -> Path:
    """Packaged official ScanNetV2 split list for ``"train"``, ``"val"`` or ``"test"``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return resource_path(f"scannetv2_{split}.txt")


# ----------------------------------------------------------------------------------------- label zips


def _unsafe_entry_reason(name: str) -> str | None:
    """Why a zip entry name could write outside the extraction folder (zip-slip), or None if safe."""
    if "\\" in name:
        return "contains a backslash"
    if name.startswith("/"):
        return "is an absolute path"
    if _DRIVE_LETTER.match(name):
        return "starts with a drive letter"
    if ".." in name.split("/"):
        return "has a '..' component"
    if "\x00" in name:
        return "contains a NUL byte"
    return None


def _check_entry_names(path, names: list[str]) -> None:
    for name in names:
        reason = _unsafe_entry_reason(name)
        if reason:
            raise DataFormatError(
                path, f"entry {name!r} {reason} and could escape the extraction folder",
                "refusing to read this archive; re-download it",
            )


def _open_zip(path) -> zipfile.ZipFile:
    name = getattr(path, "name", "<stream>") if hasattr(path, "read") else path  # a Path has .name too
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError as exc:
        raise DataFormatError(name, "file does not exist", "check the path and the download") from exc
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataFormatError(name, f"is not a readable zip archive ({exc})", "re-download it") from exc
    try:
        _check_entry_names(name, archive.namelist())
    except DataFormatError:
        archive.close()
        raise
    return archive


class LabelZip:
    """Read frames from a ScanNet ``<scene>_2d-label-filt.zip`` (entries ``label-filt/<frame>.png``).

    Use as a context manager. All entry names are checked on open; an archive with a name that
    could escape an extraction folder is rejected as a whole. Entries that are not frame PNGs
    (for example the folder entry ``label-filt/``) are ignored.
    """

    def __init__(self, path: str | os.PathLike | BinaryIO):
        # ``path`` may be an open seekable binary file (e.g. jointwsss.io.ranged.RangeFile over HTTP):
        # zipfile then reads only the central directory and the entries asked for.
        self.path = Path(path) if not hasattr(path, "read") else getattr(path, "name", "<stream>")
        self._zip = _open_zip(path if hasattr(path, "read") else self.path)
        self._entries: dict[int, str] = {}
        for name in self._zip.namelist():
            match = _FRAME_ENTRY.fullmatch(name)
            if not match:
                continue
            frame_id = int(match.group(1))
            if frame_id in self._entries:
                self._zip.close()
                raise DataFormatError(
                    self.path, f"entries {self._entries[frame_id]!r} and {name!r} are both frame {frame_id}"
                )
            self._entries[frame_id] = name

    def __enter__(self) -> "LabelZip":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()

    def frame_ids(self) -> list[int]:
        """Sorted frame indices that have a label image."""
        return sorted(self._entries)

    def read_raw(self, frame_id: int) -> np.ndarray:
        """(H, W) uint16 raw ScanNet category ids of one frame."""
        if frame_id not in self._entries:
            ids = self.frame_ids()
            present = f"{len(ids)} frames, {ids[0]}..{ids[-1]}" if ids else "no frames"
            raise DataFormatError(self.path, f"has no entry {LABEL_FOLDER}/{frame_id}.png ({present})")
        entry = self._entries[frame_id]
        try:
            data = self._zip.read(entry)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise DataFormatError(self.path, f"entry {entry!r} cannot be read ({exc})", "re-download it") from exc
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise DataFormatError(self.path, f"entry {entry!r} is not a decodable PNG")
        if image.dtype != np.uint16 or image.ndim != 2:
            channels = 1 if image.ndim == 2 else image.shape[2]
            raise DataFormatError(
                self.path,
                f"entry {entry!r} is {image.dtype} with {channels} channel(s), expected 16-bit single channel",
                "label-filt images hold raw category ids as 16-bit greyscale PNGs",
            )
        return image

    def read_classes(
        self, frame_id: int, raw_to_class: np.ndarray, size: tuple[int, int] | None = None
    ) -> np.ndarray:
        """(H, W) uint8 benchmark class index (255 = ignore) of one frame.

        raw_to_class: (65536,) uint8 table from ``raw_to_class_lut()``, applied to the full uint16
        ids. size: optional (width, height) in pixels; resizing is nearest neighbour (pixel-centre
        aligned), so no value appears that was not in the label image.
        """
        if raw_to_class.shape != (65536,) or raw_to_class.dtype != np.uint8:
            raise ValueError("raw_to_class must be a (65536,) uint8 table, see raw_to_class_lut()")
        classes = raw_to_class[self.read_raw(frame_id)]
        if size is not None and (classes.shape[1], classes.shape[0]) != tuple(size):
            classes = cv2.resize(classes, tuple(int(s) for s in size), interpolation=cv2.INTER_NEAREST_EXACT)
        return classes


def _encode_label_png(frame_id: int, raw_ids) -> bytes:
    image = np.asarray(raw_ids)
    if image.ndim != 2 or not np.issubdtype(image.dtype, np.integer):
        raise ValueError(f"frame {frame_id}: label image must be a 2-D integer array, got {image.dtype} {image.shape}")
    if image.size and (image.min() < 0 or image.max() > np.iinfo(np.uint16).max):
        raise ValueError(f"frame {frame_id}: raw ids must lie in 0..65535")
    ok, encoded = cv2.imencode(".png", image.astype(np.uint16))
    if not ok:
        raise ValueError(f"frame {frame_id}: PNG encoding failed")
    return encoded.tobytes()


def write_label_zip(path: str | os.PathLike, frames: Iterable[tuple[int, np.ndarray]]) -> None:
    """Write a ``_2d-label-filt.zip`` atomically: entries ``label-filt/<frame>.png``, 16-bit greyscale.

    frames: (frame index, (H, W) raw ScanNet category ids in 0..65535) pairs.
    """
    written: set[int] = set()
    with atomic_path(path) as tmp:
        # PNG data is already compressed; storing it keeps reads cheap.
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            for frame_id, raw_ids in frames:
                frame_id = int(frame_id)
                if frame_id < 0 or frame_id in written:
                    raise ValueError(f"frame index {frame_id} is negative or repeated")
                written.add(frame_id)
                # A fixed timestamp keeps the archive byte-identical across runs (deterministic datasets).
                entry = zipfile.ZipInfo(f"{LABEL_FOLDER}/{frame_id}.png", date_time=(1980, 1, 1, 0, 0, 0))
                archive.writestr(entry, _encode_label_png(frame_id, raw_ids))


def extract_label_zip(path: str | os.PathLike, dest_dir: str | os.PathLike) -> list[Path]:
    """Extract every file entry of a label zip under ``dest_dir``; returns the written paths.

    All entry names are checked (zip-slip) and all entry data CRC-checked before anything is
    written, so a bad archive leaves ``dest_dir`` untouched. Each file is written atomically.
    """
    dest = Path(dest_dir)
    with _open_zip(path) as archive:
        try:
            corrupt = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise DataFormatError(path, f"cannot be read ({exc})", "re-download it") from exc
        if corrupt is not None:
            raise DataFormatError(path, f"entry {corrupt!r} is corrupt (CRC mismatch)", "re-download it")
        root = dest.resolve()
        members = [info for info in archive.infolist() if not info.is_dir()]
        for info in members:
            # Second line of defence: the resolved target must stay inside dest (e.g. symlinked folders).
            if not (dest / info.filename).resolve().is_relative_to(root):
                raise DataFormatError(path, f"entry {info.filename!r} resolves outside {dest}")
        written = []
        for info in members:
            target = dest / info.filename
            with atomic_path(target) as tmp:
                tmp.write_bytes(archive.read(info))
            written.append(target)
    return written
