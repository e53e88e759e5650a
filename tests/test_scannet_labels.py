"""ScanNet label tsv, split lists and _2d-label-filt.zip archives (jointwsss.io.scannet_labels)."""

from __future__ import annotations

import zipfile

import cv2
import numpy as np
import pytest

from jointwsss.io.errors import DataFormatError
from jointwsss.io.scannet_labels import (
    LabelZip,
    extract_label_zip,
    raw_ids_for_nyu40,
    raw_to_class_lut,
    raw_to_nyu40_lut,
    read_label_tsv,
    read_split,
    resource_path,
    split_path,
    write_label_zip,
    write_split,
)

from conftest import SHARED_SCANNET

needs_shared = pytest.mark.skipif(SHARED_SCANNET is None, reason="the shared ScanNet metadata folder is not beside this checkout")


# ----------------------------------------------------------------------------------------- tsv
# Rows looked up by hand in the real scannetv2-labels.combined.tsv (id, raw_category, nyu40id):
#   1 wall 1 | 2 chair 5 | 3 floor 2 | 41 ceiling 22 | 28 lamp 35 | 1184 folded chair 5 |
#   1165 closet wall 1 | 257 trolley 40 | 160 glass 38 | 141 windowsill 38 | 2000 absent


@needs_shared
def test_packaged_tsv_equals_shared_copy():
    packaged = resource_path("scannetv2-labels.combined.tsv").read_bytes()
    with open(f"{SHARED_SCANNET}/scannetv2-labels.combined.tsv", "rb") as handle:
        assert packaged == handle.read()


def test_real_tsv_rows_map_to_hand_checked_ids_and_classes():
    tsv = read_label_tsv()
    nyu40 = raw_to_nyu40_lut()
    classes = raw_to_class_lut()
    assert nyu40.shape == (65536,) and nyu40.dtype == np.uint16
    assert classes.shape == (65536,) and classes.dtype == np.uint8
    expected = {  # raw id: (name, nyu40 id, class index)
        1: ("wall", 1, 0),
        2: ("chair", 5, 4),
        3: ("floor", 2, 1),
        1184: ("folded chair", 5, 4),
        1165: ("closet wall", 1, 0),
        41: ("ceiling", 22, 255),
        28: ("lamp", 35, 255),
        257: ("trolley", 40, 255),
    }
    for raw_id, (name, nyu, cls) in expected.items():
        assert tsv[raw_id] == (name, nyu), raw_id
        assert nyu40[raw_id] == nyu and classes[raw_id] == cls, raw_id
    assert 2000 not in tsv and nyu40[2000] == 0 and classes[2000] == 255
    assert classes[0] == 255 and classes[65535] == 255


def test_duplicate_ids_follow_last_row_like_official_conversion():
    # id 188 appears as 'shower door' (count 19, nyu40 8) then 'shower doors' (count 3, nyu40 38);
    # id 385 as 'cabinet door' (3, nyu40 8) then 'cabinet doors' (3, nyu40 3).
    tsv = read_label_tsv()
    assert tsv[188] == ("shower door", 38)
    assert tsv[385] == ("cabinet door", 3)
    assert raw_to_class_lut()[385] == 2  # cabinet
    assert len(tsv) == 549  # 606 rows, 51 ids repeated


def test_raw_ids_for_nyu40_sorted_by_count():
    by_nyu40 = raw_ids_for_nyu40()
    # chair: 2 'chair'+'stack of chairs' 4646+35, 10 'office chair', ..., 1184 'folded chair' 14+2+1
    assert by_nyu40[5][0] == 2
    assert 1184 in by_nyu40[5]
    assert by_nyu40[1][0] == 1
    assert 1165 in by_nyu40[1]
    nyu40 = raw_to_nyu40_lut()
    assert all(nyu40[r] == nyu for nyu, ids in by_nyu40.items() for r in ids)
    assert sum(len(ids) for ids in by_nyu40.values()) == 549


def test_empty_nyu40id_maps_to_unannotated(tmp_path):
    tsv = tmp_path / "labels.tsv"
    tsv.write_text("id\traw_category\tcategory\tcount\tnyu40id\n"
                   "1\twall\twall\t10\t1\n"
                   "300\tmystery\tmystery\t2\t\n"
                   "301\tsofa\tsofa\t5\t6\n")
    assert read_label_tsv(tsv) == {1: ("wall", 1), 300: ("mystery", 0), 301: ("sofa", 6)}
    assert raw_to_class_lut(tsv)[[1, 300, 301, 2]].tolist() == [0, 255, 5, 255]


def test_bad_tsv_row_names_file_and_line(tmp_path):
    tsv = tmp_path / "labels.tsv"
    tsv.write_text("id\traw_category\tnyu40id\n1\twall\t1\nx7\tchair\t5\n")
    with pytest.raises(DataFormatError, match=r"labels\.tsv: line 3: column 'id'"):
        read_label_tsv(tsv)


# ----------------------------------------------------------------------------------------- splits


def test_packaged_splits_have_official_sizes_and_no_overlap():
    splits = {name: read_split(split_path(name)) for name in ("train", "val", "test")}
    assert {name: len(ids) for name, ids in splits.items()} == {"train": 1201, "val": 312, "test": 100}
    assert not set(splits["train"]) & set(splits["val"])
    assert not set(splits["train"]) & set(splits["test"])
    assert not set(splits["val"]) & set(splits["test"])
    assert splits["val"][0] == "scene0568_00" and splits["val"][-1] == "scene0685_02"


@needs_shared
def test_packaged_splits_equal_the_shared_copies():
    for name in ("train", "val", "test"):
        with open(f"{SHARED_SCANNET}/scannetv2_{name}.txt") as handle:
            assert read_split(split_path(name)) == handle.read().split()


def test_split_round_trip(tmp_path):
    write_split(tmp_path / "mini.txt", ["scene0000_00", "scene0707_01"])
    assert (tmp_path / "mini.txt").read_text() == "scene0000_00\nscene0707_01\n"
    assert read_split(tmp_path / "mini.txt") == ["scene0000_00", "scene0707_01"]


def test_malformed_split_line_names_file_and_line(tmp_path):
    path = tmp_path / "scannetv2_train.txt"
    path.write_text("scene0000_00\nscene0000_01\nscene12_0\n")
    with pytest.raises(DataFormatError) as err:
        read_split(path)
    assert str(err.value).startswith(f"{path}: line 3: 'scene12_0'")


# ----------------------------------------------------------------------------------------- label zips
# raw ids -> classes by hand: 1 wall 0, 3 floor 1, 1184 folded chair 4, 1165 closet wall 0,
# 257 trolley 255, 0 unannotated 255. A cast to 8 bits first would read 1184 as 160 (glass -> 255),
# 1165 as 141 (windowsill -> 255) and 257 as 1 (wall -> 0): every one of those differs.
RAW_FRAME = np.array([[1, 3, 1184], [1165, 257, 0]], dtype=np.uint16)
CLASS_FRAME = [[0, 1, 4], [0, 255, 255]]


def test_label_zip_round_trip_keeps_16_bit_ids(tmp_path):
    other = np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000
    path = tmp_path / "scene0000_00_2d-label-filt.zip"
    write_label_zip(path, [(100, RAW_FRAME), (0, other)])

    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["label-filt/0.png", "label-filt/100.png"]
        png = archive.read("label-filt/100.png")
    assert png[24] == 16 and png[25] == 0  # IHDR: bit depth 16, colour type greyscale

    with LabelZip(path) as labels:
        assert labels.frame_ids() == [0, 100]
        raw = labels.read_raw(100)
        assert raw.dtype == np.uint16 and np.array_equal(raw, RAW_FRAME)
        assert np.array_equal(labels.read_raw(0), other)
        classes = labels.read_classes(100, raw_to_class_lut())
        assert classes.dtype == np.uint8 and classes.tolist() == CLASS_FRAME


def test_read_classes_nearest_neighbour_resize(tmp_path):
    path = tmp_path / "l.zip"
    write_label_zip(path, [(0, RAW_FRAME)])
    with LabelZip(path) as labels:
        big = labels.read_classes(0, raw_to_class_lut(), size=(6, 4))
        small = labels.read_classes(0, raw_to_class_lut(), size=(5, 3))
    # Exact 2x upsampling repeats every pixel into a 2x2 block.
    assert big.shape == (4, 6)
    assert np.array_equal(big, np.kron(np.array(CLASS_FRAME, np.uint8), np.ones((2, 2), np.uint8)))
    assert small.shape == (3, 5)
    assert set(np.unique(small)) <= {0, 1, 4, 255}


def test_read_raw_rejects_8_bit_png_naming_entry(tmp_path):
    path = tmp_path / "scene0000_00_2d-label-filt.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("label-filt/5.png", cv2.imencode(".png", np.zeros((2, 2), np.uint8))[1].tobytes())
    with LabelZip(path) as labels, pytest.raises(DataFormatError) as err:
        labels.read_raw(5)
    assert str(path) in str(err.value) and "label-filt/5.png" in str(err.value) and "16-bit" in str(err.value)


def test_missing_frame_names_file_and_frame(tmp_path):
    path = tmp_path / "l.zip"
    write_label_zip(path, [(0, RAW_FRAME)])
    with LabelZip(path) as labels, pytest.raises(DataFormatError, match=r"l\.zip: has no entry label-filt/7\.png"):
        labels.read_raw(7)


@pytest.mark.parametrize("evil", ["label-filt/../../evil.png", "/tmp/evil.png", "C:/evil.png",
                                  "label-filt\\..\\evil.png"])
def test_zip_slip_is_rejected_and_nothing_extracted(tmp_path, evil):
    path = tmp_path / "scene0000_00_2d-label-filt.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("label-filt/0.png", cv2.imencode(".png", RAW_FRAME)[1].tobytes())
        archive.writestr(evil, b"payload")
    with pytest.raises(DataFormatError) as err:
        LabelZip(path)
    assert str(path) in str(err.value) and repr(evil) in str(err.value)

    dest = tmp_path / "out" / "labels"
    with pytest.raises(DataFormatError) as err:
        extract_label_zip(path, dest)
    assert str(path) in str(err.value) and repr(evil) in str(err.value)
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_extract_label_zip_writes_every_frame(tmp_path):
    path = tmp_path / "l.zip"
    write_label_zip(path, [(3, RAW_FRAME), (10, RAW_FRAME + 1)])
    written = extract_label_zip(path, tmp_path / "out")
    assert sorted(written) == [tmp_path / "out" / "label-filt" / "10.png", tmp_path / "out" / "label-filt" / "3.png"]
    decoded = cv2.imread(str(tmp_path / "out" / "label-filt" / "10.png"), cv2.IMREAD_UNCHANGED)
    assert decoded.dtype == np.uint16 and np.array_equal(decoded, RAW_FRAME + 1)


def test_not_a_zip_names_file(tmp_path):
    path = tmp_path / "scene0000_00_2d-label-filt.zip"
    path.write_bytes(b"not a zip at all")
    with pytest.raises(DataFormatError, match="scene0000_00_2d-label-filt.zip: is not a readable zip"):
        LabelZip(path)
