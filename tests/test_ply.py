"""ScanNet mesh / labels PLY reading and writing (jointwsss.io.ply)."""

from __future__ import annotations

import numpy as np
import plyfile
import pytest

from jointwsss.classes import nyu40_to_class_lut
from jointwsss.io.errors import DataFormatError
from jointwsss.io.ply import (
    ScanNetMesh,
    read_label_ply,
    read_mesh_ply,
    read_scene_ply_pair,
    write_label_ply,
    write_mesh_ply,
)


def _random_mesh(rng: np.random.Generator, n: int = 7, m: int = 5):
    xyz = rng.uniform(-3.0, 3.0, size=(n, 3)).astype(np.float32)
    rgb = rng.integers(0, 256, size=(n, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, size=n, dtype=np.uint8)
    faces = rng.integers(0, n, size=(m, 3)).astype(np.int32)
    return xyz, rgb, alpha, faces


def _header_lines(path) -> list[str]:
    raw = path.read_bytes()
    return raw[: raw.index(b"end_header\n")].decode("ascii").splitlines()


def _plyfile_mesh(path, xyz, rgb, faces, labels=None, text=False, byte_order="<", face_counts=None):
    """Write a PLY with plyfile directly, the way ScanNet's files are laid out (independent of our writer)."""
    fields = [("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1"), ("alpha", "u1")]
    if labels is not None:
        fields.append(("label", "u2"))
    vertex = np.zeros(len(xyz), dtype=fields)
    vertex["x"], vertex["y"], vertex["z"] = xyz.T
    vertex["red"], vertex["green"], vertex["blue"] = rgb.T
    vertex["alpha"] = 255
    if labels is not None:
        vertex["label"] = labels
    face = np.empty(len(faces), dtype=[("vertex_indices", object)])
    face["vertex_indices"] = [np.asarray(f, dtype=np.int32) for f in faces]
    elements = [
        plyfile.PlyElement.describe(vertex, "vertex"),
        plyfile.PlyElement.describe(face, "face", len_types={"vertex_indices": "u1"},
                                    val_types={"vertex_indices": "i4"}),
    ]
    plyfile.PlyData(elements, text=text, byte_order=byte_order).write(str(path))


def test_mesh_round_trip_is_exact_and_header_matches_scannet(tmp_path):
    xyz, rgb, alpha, faces = _random_mesh(np.random.default_rng(0))
    path = tmp_path / "scene0000_00_vh_clean_2.ply"
    write_mesh_ply(path, xyz, rgb, faces, alpha=alpha)

    mesh = read_mesh_ply(path)
    assert isinstance(mesh, ScanNetMesh)
    assert mesh.xyz.dtype == np.float32 and np.array_equal(mesh.xyz, xyz)
    assert mesh.rgb.dtype == np.uint8 and np.array_equal(mesh.rgb, rgb)
    assert mesh.alpha.dtype == np.uint8 and np.array_equal(mesh.alpha, alpha)
    assert mesh.faces.dtype == np.int32 and np.array_equal(mesh.faces, faces)

    assert _header_lines(path) == [
        "ply",
        "format binary_little_endian 1.0",
        "element vertex 7",
        "property float x",
        "property float y",
        "property float z",
        "property uchar red",
        "property uchar green",
        "property uchar blue",
        "property uchar alpha",
        "element face 5",
        "property list uchar int vertex_indices",
    ]
    # Body size: 7 vertices x (3*4 + 4) bytes + 5 faces x (1 + 3*4) bytes, nothing else.
    body = path.read_bytes().split(b"end_header\n", 1)[1]
    assert len(body) == 7 * 16 + 5 * 13


def test_written_bytes_are_plyfiles(tmp_path):
    """The writer packs the binary body itself (plyfile writes face lists row by row, slowly); the files must
    still be byte for byte what plyfile writes for ScanNet's layout, for meshes and label meshes."""
    xyz, rgb, _, faces = _random_mesh(np.random.default_rng(3), n=50, m=80)
    labels = np.random.default_rng(4).integers(0, 300, size=50).astype(np.uint16)
    ours, theirs = tmp_path / "ours.ply", tmp_path / "theirs.ply"
    write_mesh_ply(ours, xyz, rgb, faces)
    _plyfile_mesh(theirs, xyz, rgb, faces)
    assert ours.read_bytes() == theirs.read_bytes()
    write_label_ply(ours, xyz, faces, labels, rgb=rgb)
    _plyfile_mesh(theirs, xyz, rgb, faces, labels=labels)
    assert ours.read_bytes() == theirs.read_bytes()
    raw = ours.read_bytes()
    body = raw[raw.index(b"end_header\n") + len(b"end_header\n"):]
    assert len(body) == 50 * 18 + 80 * 13  # xyz f4, rgba u1, label u2 per vertex; count u1 + 3 int32 per face


def test_alpha_defaults_to_255(tmp_path):
    xyz, rgb, _, faces = _random_mesh(np.random.default_rng(1))
    write_mesh_ply(tmp_path / "m.ply", xyz, rgb, faces)
    assert np.array_equal(read_mesh_ply(tmp_path / "m.ply").alpha, np.full(7, 255, np.uint8))


@pytest.mark.parametrize("text,byte_order", [(False, "<"), (True, "="), (False, ">")])
def test_reads_ply_written_independently_with_plyfile(tmp_path, text, byte_order):
    rng = np.random.default_rng(2)
    xyz, rgb, _, faces = _random_mesh(rng)
    labels = np.array([1, 5, 0, 149, 39, 40, 2], dtype=np.uint16)
    path = tmp_path / "labels.ply"
    _plyfile_mesh(path, xyz, rgb, faces, labels=labels, text=text, byte_order=byte_order)

    mesh, read_labels = read_label_ply(path)
    # ascii stores decimal text, so compare with float32 tolerance there; binary must be bit-exact.
    if text:
        np.testing.assert_allclose(mesh.xyz, xyz, rtol=1e-6)
    else:
        assert np.array_equal(mesh.xyz, xyz)
    assert np.array_equal(mesh.rgb, rgb)
    assert np.array_equal(mesh.faces, faces)
    assert read_labels.dtype == np.uint16 and read_labels.tolist() == [1, 5, 0, 149, 39, 40, 2]


def test_label_ply_round_trip_keeps_invalid_ids(tmp_path):
    xyz, _, _, faces = _random_mesh(np.random.default_rng(3))
    labels = np.array([1, 2, 149, 50, 0, 22, 39], dtype=np.uint16)
    path = tmp_path / "scene0000_00_vh_clean_2.labels.ply"
    write_label_ply(path, xyz, faces, labels)

    mesh, read_labels = read_label_ply(path)
    assert read_labels.dtype == np.uint16
    assert read_labels.tolist() == [1, 2, 149, 50, 0, 22, 39]
    assert np.array_equal(mesh.xyz, xyz) and np.array_equal(mesh.faces, faces)
    # wall 0, floor 1, invalid 149 and 50 ignored, unannotated ignored, ceiling (22) ignored,
    # otherfurniture (39) is the last benchmark class.
    assert nyu40_to_class_lut()[read_labels].tolist() == [0, 1, 255, 255, 255, 255, 19]
    # Default colours: benchmark palette (wall, floor, otherfurniture), black for 0, grey otherwise.
    assert mesh.rgb.tolist() == [
        [174, 199, 232], [152, 223, 138], [128, 128, 128], [128, 128, 128],
        [0, 0, 0], [128, 128, 128], [82, 84, 163],
    ]
    assert _header_lines(path)[2:11] == [
        "element vertex 7",
        "property float x", "property float y", "property float z",
        "property uchar red", "property uchar green", "property uchar blue", "property uchar alpha",
        "property ushort label",
    ]


def test_label_ply_without_label_property_names_file_and_property(tmp_path):
    xyz, rgb, _, faces = _random_mesh(np.random.default_rng(4))
    path = tmp_path / "scene0000_00_vh_clean_2.ply"
    write_mesh_ply(path, xyz, rgb, faces)
    with pytest.raises(DataFormatError) as err:
        read_label_ply(path)
    assert str(path) in str(err.value)
    assert "'label'" in str(err.value) and "_vh_clean_2.labels.ply" in str(err.value)


def test_pair_with_different_vertex_counts_names_both_files(tmp_path):
    rng = np.random.default_rng(5)
    xyz, rgb, _, faces = _random_mesh(rng, n=7)
    mesh_path = tmp_path / "scene0001_00_vh_clean_2.ply"
    labels_path = tmp_path / "scene0002_00_vh_clean_2.labels.ply"
    write_mesh_ply(mesh_path, xyz, rgb, faces)
    write_label_ply(labels_path, xyz[:6], faces[faces.max(axis=1) < 6], np.ones(6, np.uint16))
    with pytest.raises(DataFormatError) as err:
        read_scene_ply_pair(mesh_path, labels_path)
    message = str(err.value)
    assert str(mesh_path) in message and str(labels_path) in message
    assert "has 7 vertices" in message and f"{labels_path} has 6" in message


def test_pair_reads_scan_colours_and_labels(tmp_path):
    xyz, rgb, _, faces = _random_mesh(np.random.default_rng(6))
    write_mesh_ply(tmp_path / "m.ply", xyz, rgb, faces)
    write_label_ply(tmp_path / "l.ply", xyz, faces, np.arange(7, dtype=np.uint16))
    mesh, labels = read_scene_ply_pair(tmp_path / "m.ply", tmp_path / "l.ply")
    assert np.array_equal(mesh.rgb, rgb)
    assert labels.tolist() == [0, 1, 2, 3, 4, 5, 6]


def test_not_a_ply_names_file(tmp_path):
    path = tmp_path / "scene0000_00_vh_clean_2.ply"
    path.write_bytes(b"<html>403 Forbidden</html>\n")
    with pytest.raises(DataFormatError) as err:
        read_mesh_ply(path)
    assert str(err.value).startswith(f"{path}: ")
    assert "PLY" in str(err.value)


def test_truncated_ply_names_file(tmp_path):
    xyz, rgb, _, faces = _random_mesh(np.random.default_rng(7))
    path = tmp_path / "m.ply"
    write_mesh_ply(path, xyz, rgb, faces)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DataFormatError, match=str(path)):
        read_mesh_ply(path)


def test_missing_colour_property_is_reported(tmp_path):
    vertex = np.zeros(3, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    path = tmp_path / "points.ply"
    plyfile.PlyData([plyfile.PlyElement.describe(vertex, "vertex")]).write(str(path))
    with pytest.raises(DataFormatError) as err:
        read_mesh_ply(path)
    assert str(path) in str(err.value) and "['red', 'green', 'blue']" in str(err.value)


def test_out_of_range_face_index_is_reported(tmp_path):
    xyz, rgb, _, _ = _random_mesh(np.random.default_rng(8))
    path = tmp_path / "m.ply"
    _plyfile_mesh(path, xyz, rgb, [[0, 1, 2], [4, 5, 7]])
    with pytest.raises(DataFormatError) as err:
        read_mesh_ply(path)
    assert str(path) in str(err.value) and "face 1: [4, 5, 7]" in str(err.value)


def test_non_triangle_face_is_reported(tmp_path):
    xyz, rgb, _, _ = _random_mesh(np.random.default_rng(9))
    path = tmp_path / "m.ply"
    _plyfile_mesh(path, xyz, rgb, [[0, 1, 2], [0, 2, 3], [3, 4, 5, 6]])
    with pytest.raises(DataFormatError) as err:
        read_mesh_ply(path)
    assert str(path) in str(err.value) and "face 2 has 4 vertices" in str(err.value)


def test_failed_write_keeps_previous_file(tmp_path):
    xyz, rgb, _, faces = _random_mesh(np.random.default_rng(10))
    path = tmp_path / "m.ply"
    write_mesh_ply(path, xyz, rgb, faces)
    before = path.read_bytes()
    with pytest.raises(ValueError):
        write_mesh_ply(path, xyz, rgb, np.array([[0, 1, 99]]))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.ply"]
