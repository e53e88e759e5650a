"""ScanNet mesh PLYs: ``<scene>_vh_clean_2.ply`` and ``<scene>_vh_clean_2.labels.ply``.

Both files share one layout (binary little-endian in the release):

    element vertex N: float x, y, z (metres, world frame of the scan's camera poses),
                      uchar red, green, blue, alpha[, ushort label (nyu40 id, labels file only)]
    element face M:   list uchar int vertex_indices (triangles)

Reading accepts any valid PLY encoding (ascii, little- or big-endian); writing is always
``binary_little_endian`` with exactly the property order above, so the files we write are
indistinguishable in layout from the released ones.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import plyfile

from jointwsss.classes import IGNORE_INDEX, nyu40_to_class_lut, palette
from jointwsss.io.atomic import atomic_path
from jointwsss.io.errors import DataFormatError

# Colour of a vertex whose nyu40 id is annotated but not one of the 20 benchmark classes.
OTHER_LABEL_COLOR = (128, 128, 128)
# ScanNet draws unannotated (nyu40 id 0) vertices black.
UNANNOTATED_COLOR = (0, 0, 0)

_COLOR_PROPERTIES = ("red", "green", "blue")
# Real ScanNet files name the face list `vertex_indices`; some other tools write `vertex_index`.
_FACE_LIST_NAMES = ("vertex_indices", "vertex_index")


@dataclass
class ScanNetMesh:
    """Vertices and triangles of one ScanNet mesh.

    xyz:   (N, 3) float32 vertex positions in metres, world frame (same frame as the camera poses).
    rgb:   (N, 3) uint8 vertex colours.
    alpha: (N,) uint8 vertex alpha (255 in every released file).
    faces: (M, 3) int32 vertex indices of the triangles, each in 0..N-1.
    """

    xyz: np.ndarray
    rgb: np.ndarray
    alpha: np.ndarray
    faces: np.ndarray

    @property
    def num_vertices(self) -> int:
        return int(self.xyz.shape[0])


# ----------------------------------------------------------------------------------------- reading


def _read_plydata(path: str | os.PathLike) -> plyfile.PlyData:
    """Parse a PLY file fully into memory, turning every parse failure into a DataFormatError."""
    # Declaring the face list length lets plyfile read binary faces as one fixed-size array instead of
    # a Python loop over ~10^5 rows; it raises on the first face that is not a triangle, and then we
    # fall back to the general reader so the triangle check below can say which face is wrong.
    triangles = {"face": {name: 3 for name in _FACE_LIST_NAMES}}
    try:
        try:
            ply = plyfile.PlyData.read(os.fspath(path), mmap="c", known_list_len=triangles)
        except plyfile.PlyElementParseError as exc:
            if exc.element is None or exc.element.name != "face":
                raise
            ply = plyfile.PlyData.read(os.fspath(path), mmap=False)
        # Copy every element out of the memory map so no mapping of the file outlives this call.
        for element in ply.elements:
            element.data = np.array(element.data)
    except FileNotFoundError as exc:
        raise DataFormatError(path, "file does not exist", "check the path and the download") from exc
    except OSError as exc:
        raise DataFormatError(path, f"cannot be read ({exc})") from exc
    except (plyfile.PlyParseError, ValueError, EOFError) as exc:
        raise DataFormatError(
            path, f"is not a readable PLY file ({exc})", "re-download the file; it may be truncated"
        ) from exc
    return ply


def _element(ply: plyfile.PlyData, path, name: str) -> plyfile.PlyElement:
    for element in ply.elements:
        if element.name == name:
            return element
    found = [e.name for e in ply.elements]
    raise DataFormatError(path, f"has no '{name}' element (elements: {found})")


def _integer_property(data: np.ndarray, path, name: str, max_value: int) -> np.ndarray:
    """Vertex property ``name`` as an integer array, checked to lie in 0..max_value."""
    values = data[name]
    if not np.issubdtype(values.dtype, np.integer):
        raise DataFormatError(path, f"vertex property '{name}' has type {values.dtype}, expected an integer type")
    if values.size and (values.min() < 0 or values.max() > max_value):
        raise DataFormatError(
            path, f"vertex property '{name}' has values {values.min()}..{values.max()} outside 0..{max_value}"
        )
    return values


def _faces(ply: plyfile.PlyData, path, num_vertices: int) -> np.ndarray:
    """(M, 3) int32 triangles; (0, 3) when the file has no face element (a point cloud)."""
    if "face" not in [e.name for e in ply.elements]:
        return np.zeros((0, 3), dtype=np.int32)
    data = ply["face"].data
    names = [n for n in _FACE_LIST_NAMES if n in (data.dtype.names or ())]
    if not names:
        raise DataFormatError(path, f"face element has no 'vertex_indices' list (properties: {data.dtype.names})")
    lists = data[names[0]]
    if lists.dtype == object:
        # General reader (ascii, or a binary file with non-triangles): one array per face.
        lengths = np.fromiter((len(f) for f in lists), dtype=np.int64, count=len(lists))
        bad = np.flatnonzero(lengths != 3)
        if bad.size:
            raise DataFormatError(
                path,
                f"{bad.size} faces are not triangles (face {bad[0]} has {lengths[bad[0]]} vertices)",
                "only triangle meshes are supported",
            )
        faces = np.stack(lists) if len(lists) else np.zeros((0, 3), dtype=np.int64)
    else:
        faces = lists.reshape(-1, 3)
    if not np.issubdtype(faces.dtype, np.integer):
        raise DataFormatError(path, f"face vertex indices have type {faces.dtype}, expected integers")
    out_of_range = (faces < 0) | (faces >= num_vertices)
    if out_of_range.any():
        bad_face = int(np.flatnonzero(out_of_range.any(axis=1))[0])
        raise DataFormatError(
            path,
            f"{int(out_of_range.any(axis=1).sum())} faces index vertices outside 0..{num_vertices - 1} "
            f"(face {bad_face}: {faces[bad_face].tolist()})",
        )
    return faces.astype(np.int32)


def _mesh_from_plydata(ply: plyfile.PlyData, path) -> ScanNetMesh:
    vertex = _element(ply, path, "vertex").data
    present = vertex.dtype.names or ()
    missing = [p for p in ("x", "y", "z", *_COLOR_PROPERTIES) if p not in present]
    if missing:
        raise DataFormatError(
            path, f"vertex element lacks properties {missing} (has {list(present)})",
            "expected a ScanNet _vh_clean_2.ply with x y z red green blue",
        )
    for axis in ("x", "y", "z"):
        if not np.issubdtype(vertex[axis].dtype, np.floating):
            raise DataFormatError(path, f"vertex property '{axis}' has type {vertex[axis].dtype}, expected float")
    xyz = np.stack([vertex["x"], vertex["y"], vertex["z"]], axis=1).astype(np.float32)
    rgb = np.stack([_integer_property(vertex, path, c, 255) for c in _COLOR_PROPERTIES], axis=1).astype(np.uint8)
    if "alpha" in present:
        alpha = _integer_property(vertex, path, "alpha", 255).astype(np.uint8)
    else:
        alpha = np.full(len(vertex), 255, dtype=np.uint8)
    faces = _faces(ply, path, len(vertex))
    return ScanNetMesh(xyz=xyz, rgb=rgb, alpha=alpha, faces=faces)


def read_mesh_ply(path: str | os.PathLike) -> ScanNetMesh:
    """Read a ``_vh_clean_2.ply`` (or any triangle-mesh PLY with x y z red green blue per vertex).

    A missing ``alpha`` property reads as 255; a missing face element reads as (0, 3) faces.
    Raises DataFormatError naming the file for anything else that does not fit.
    """
    return _mesh_from_plydata(_read_plydata(path), path)


def read_label_ply(path: str | os.PathLike) -> tuple[ScanNetMesh, np.ndarray]:
    """Read a ``_vh_clean_2.labels.ply``: the mesh and its (N,) uint16 per-vertex nyu40 ids.

    The ids are returned as stored: real files hold a few values outside the nyu40 range (50, 149),
    so map them with ``jointwsss.classes.nyu40_to_class_lut()``, which sends those to ignore.
    The returned ``rgb`` holds the label visualisation colours, not the scan's colours.
    """
    ply = _read_plydata(path)
    mesh = _mesh_from_plydata(ply, path)
    vertex = ply["vertex"].data
    if "label" not in (vertex.dtype.names or ()):
        raise DataFormatError(
            path, "has no vertex property 'label'", "is this the _vh_clean_2.labels.ply?"
        )
    labels = _integer_property(vertex, path, "label", np.iinfo(np.uint16).max).astype(np.uint16)
    return mesh, labels


def read_scene_ply_pair(
    mesh_path: str | os.PathLike, labels_path: str | os.PathLike
) -> tuple[ScanNetMesh, np.ndarray]:
    """Read a scene's mesh (scan colours) and its labels PLY; (mesh, (N,) uint16 nyu40 ids).

    Both files describe the same vertices in the same order; a different vertex count means they
    belong to different scenes (or one is truncated), and the error names both files.
    """
    mesh = read_mesh_ply(mesh_path)
    labelled, labels = read_label_ply(labels_path)
    if labelled.num_vertices != mesh.num_vertices:
        raise DataFormatError(
            mesh_path,
            f"has {mesh.num_vertices} vertices but {os.fspath(labels_path)} has {labelled.num_vertices}",
            "the mesh and its labels PLY must come from the same scene; re-download both",
        )
    return mesh, labels


# ----------------------------------------------------------------------------------------- writing


def _as_uint8(values, name: str, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(values)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    if arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.integer) or (arr.size and (arr.min() < 0 or arr.max() > 255)):
            raise ValueError(f"{name} must hold integers in 0..255, got dtype {arr.dtype}")
    return arr.astype(np.uint8)


def _vertex_element(xyz, rgb, alpha, label=None) -> plyfile.PlyElement:
    xyz = np.asarray(xyz)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise ValueError(f"xyz must have shape (N, 3), got {xyz.shape}")
    n = xyz.shape[0]
    rgb = _as_uint8(rgb, "rgb", (n, 3))
    alpha = _as_uint8(np.full(n, 255, dtype=np.uint8) if alpha is None else alpha, "alpha", (n,))
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1"),
              ("alpha", "u1")]
    if label is not None:
        fields.append(("label", "<u2"))
    vertex = np.empty(n, dtype=fields)
    for axis, name in enumerate(("x", "y", "z")):
        vertex[name] = xyz[:, axis]
    for channel, name in enumerate(_COLOR_PROPERTIES):
        vertex[name] = rgb[:, channel]
    vertex["alpha"] = alpha
    if label is not None:
        vertex["label"] = label
    return plyfile.PlyElement.describe(vertex, "vertex")


def _face_element(faces, num_vertices: int) -> plyfile.PlyElement:
    faces = np.asarray(faces)
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        raise ValueError(f"faces must be an (M, 3) integer array, got {faces.dtype} {faces.shape}")
    if faces.size and (faces.min() < 0 or faces.max() >= num_vertices):
        raise ValueError(f"faces index vertices outside 0..{num_vertices - 1}")
    face = np.empty(len(faces), dtype=[("vertex_indices", "<i4", (3,))])
    face["vertex_indices"] = faces
    # ScanNet's list layout: uchar count followed by int indices.
    return plyfile.PlyElement.describe(
        face, "face", len_types={"vertex_indices": "u1"}, val_types={"vertex_indices": "i4"}
    )


def _binary_body(element: plyfile.PlyElement) -> bytes:
    """The binary little-endian body of a vertex element or of a triangle ``face`` element.

    plyfile writes list properties one row at a time in Python (~1 s for a 60k-face mesh); every list here has
    3 entries, so a face row is a fixed 13-byte record (uchar 3, three int32) that NumPy packs at once. The bytes
    are plyfile's (tests/test_ply.py compares them).
    """
    if element.name != "face":
        return element.data.astype(element.data.dtype.newbyteorder("<")).tobytes()
    indices = element.data["vertex_indices"]
    record = np.empty(len(indices), dtype=[("count", "u1"), ("vertex_indices", "<i4", (3,))])
    record["count"] = 3
    record["vertex_indices"] = indices
    return record.tobytes()


def _write_plydata(path: str | os.PathLike, elements: list[plyfile.PlyElement]) -> None:
    header = plyfile.PlyData(elements, text=False, byte_order="<").header
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(header.encode("ascii") + b"\n")
        f.writelines(_binary_body(element) for element in elements)


def write_mesh_ply(path: str | os.PathLike, xyz, rgb, faces, alpha=None) -> None:
    """Write a ``_vh_clean_2.ply``-layout mesh atomically (binary little-endian).

    xyz (N, 3) metres (stored float32), rgb (N, 3) uint8, faces (M, 3) vertex indices,
    alpha (N,) uint8 defaulting to 255.
    """
    vertex = _vertex_element(xyz, rgb, alpha)
    _write_plydata(path, [vertex, _face_element(faces, len(vertex.data))])


def label_colors(label_nyu40: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 visualisation colours for (N,) nyu40 ids.

    The 20 benchmark classes get the benchmark palette, 0 (unannotated) black as in ScanNet, and
    every other id (other nyu40 classes, stray values) grey.
    """
    labels = np.asarray(label_nyu40).astype(np.int64)
    class_index = nyu40_to_class_lut()[labels]
    colors = palette()[class_index]
    other = class_index == IGNORE_INDEX
    colors[other] = OTHER_LABEL_COLOR
    colors[other & (labels == 0)] = UNANNOTATED_COLOR
    return colors


def write_label_ply(path: str | os.PathLike, xyz, faces, label_nyu40, rgb=None) -> None:
    """Write a ``_vh_clean_2.labels.ply``-layout mesh atomically (binary little-endian).

    label_nyu40: (N,) nyu40 ids stored as ushort, written as given (no range check beyond 0..65535,
    so invalid ids such as 149 survive like in the real files). rgb defaults to ``label_colors``.
    """
    labels = np.asarray(label_nyu40)
    n = np.asarray(xyz).shape[0]
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"label_nyu40 must be an ({n},) integer array, got {labels.dtype} {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > np.iinfo(np.uint16).max):
        raise ValueError("label_nyu40 must lie in 0..65535")
    labels = labels.astype(np.uint16)
    if rgb is None:
        rgb = label_colors(labels)
    vertex = _vertex_element(xyz, rgb, None, label=labels)
    _write_plydata(path, [vertex, _face_element(faces, n)])
