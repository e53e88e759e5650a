"""MXNet .params (NDArray list) reading, model A1 -> ResNet38 key mapping, conversion and its bad inputs."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from jointwsss.io.errors import DataFormatError
from jointwsss.io.mxnet_params import iter_params, read_params, read_params_index, write_params
from jointwsss.models.resnet38 import ResNet38, load_imagenet_weights, mxnet_name_from_key, psa_key_from_mxnet
from jointwsss.weights import import_mxnet_weights


def _hand_packed_v2(arrays: list[tuple[str, np.ndarray, int]]) -> bytes:
    """The byte layout written out field by field from the module's documentation (not with write_params):
    list magic, reserved, count; per array V2 magic, storage 0, ndim + int64 dims, context, type flag, data;
    the names, each with a uint64 length."""
    out = struct.pack("<QQ", 0x112, 0) + struct.pack("<Q", len(arrays))
    for _, array, flag in arrays:
        out += struct.pack("<I", 0xF993FAC9) + struct.pack("<i", 0)
        out += struct.pack("<I", array.ndim) + b"".join(struct.pack("<q", d) for d in array.shape)
        out += struct.pack("<ii", 1, 0) + struct.pack("<i", flag) + array.tobytes()
    out += struct.pack("<Q", len(arrays))
    for name, _, _ in arrays:
        out += struct.pack("<Q", len(name)) + name.encode()
    return out


TINY = [
    ("arg:w_f32", np.arange(24, dtype="<f4").reshape(2, 3, 4) / 7, 0),
    ("arg:w_f64", np.array([[1.5, -2.25]], dtype="<f8"), 1),
    ("arg:w_f16", np.array([0.5, 1.0, -3.0], dtype="<f2"), 2),
    ("aux:count_u8", np.array([1, 2, 255], dtype="u1"), 3),
    ("aux:idx_i32", np.arange(-3, 3, dtype="<i4").reshape(3, 2), 4),
    ("aux:small_i8", np.array([-128, 127], dtype="i1"), 5),
    ("aux:big_i64", np.array([2**40, -7], dtype="<i8"), 6),
    ("aux:mask", np.array([True, False, True]), 7),
]


def test_reads_a_hand_packed_file_of_every_dtype_exactly(tmp_path):
    path = tmp_path / "tiny.params"
    path.write_bytes(_hand_packed_v2(TINY))
    arrays = read_params(path)
    assert list(arrays) == [name for name, _, _ in TINY]
    for name, expected, _ in TINY:
        got = arrays[name]
        assert got.dtype == expected.dtype.newbyteorder("=") and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)
    index = read_params_index(path)
    assert [e.shape for e in index] == [a.shape for _, a, _ in TINY]
    assert index[0].offset == 8 * 3 + 4 + 4 + 4 + 3 * 8 + 8 + 4  # header, magic, stype, ndim, dims, ctx, flag


@pytest.mark.parametrize("version", ["v2", "v3", "v1", "legacy"])
def test_writer_layouts_round_trip(tmp_path, version):
    path = tmp_path / f"tiny_{version}.params"
    size = write_params(path, ((name, array) for name, array, _ in TINY), version=version)
    assert size == path.stat().st_size
    if version == "v2":
        assert path.read_bytes() == _hand_packed_v2(TINY)  # the writer lays bytes out as MXNet does
    for (entry, got), (name, expected, _) in zip(iter_params(path), TINY):
        assert entry.name == name
        np.testing.assert_array_equal(got, expected)


def test_model_a1_names_map_to_every_resnet38_key_and_back():
    keys = [k for k in ResNet38(width="full").state_dict()
            if not k.startswith("cam_head.") and not k.endswith("num_batches_tracked")]
    assert len(keys) == 191
    assert all(psa_key_from_mxnet(mxnet_name_from_key(k)) == k for k in keys)
    # spot checks against model A1's names as PSA's converter maps them
    assert psa_key_from_mxnet("arg:res4b5_branch2b1_weight") == "b4_5.conv_branch2b1.weight"
    assert psa_key_from_mxnet("aux:bn2a_branch2a_moving_var") == "b2.bn_branch2a.running_var"
    assert psa_key_from_mxnet("arg:bn5b2_branch2a_gamma") == "b5_2.bn_branch2a.weight"
    assert psa_key_from_mxnet("arg:res2a_branch1_weight") == "b2.conv_branch1.weight"
    assert psa_key_from_mxnet("arg:bn7_beta") == "bn7.bias"
    assert psa_key_from_mxnet("arg:linear1000_weight") is None
    with pytest.raises(ValueError, match="not a name of ResNet38"):
        psa_key_from_mxnet("arg:fc8_weight")


def _model_a1(path, *, drop: str | None = None, reshape: str | None = None) -> dict[str, np.ndarray]:
    """A full-size model A1 file with values that identify each array; returns a few arrays to compare."""
    from jointwsss.bench.weights import model_a1_arrays

    kept = {}

    def arrays():
        for name, array in model_a1_arrays(seed=3):
            if name == drop:
                continue
            if name == reshape:
                array = array.reshape(-1)
            if name in ("arg:conv1a_weight", "aux:bn7_moving_var", "arg:res7a_branch2b2_weight"):
                kept[name] = array.copy()
            yield name, array

    write_params(path, arrays())
    return kept


def test_full_model_a1_converts_streamed_and_loads_into_the_full_resnet38(tmp_path):
    src, dst = tmp_path / "a1.params", tmp_path / "a1.pt"
    kept = _model_a1(src)
    assert src.stat().st_size > 400e6  # the genuine file's size class (~416 MB)
    summary = import_mxnet_weights(src, dst)
    assert (summary["arrays_read"], summary["mapped"]) == (193, 191)
    assert summary["ignored"] == ["arg:linear1000_weight", "arg:linear1000_bias"]
    net = ResNet38(width="full")
    report = load_imagenet_weights(net, dst)  # what train does with model.image.weights
    assert report["loaded"] == 191
    state = net.state_dict()
    for name, array in kept.items():
        assert torch.equal(state[psa_key_from_mxnet(name)], torch.from_numpy(array))
    # every tensor equals the file's array
    for entry, array in iter_params(src):
        key = psa_key_from_mxnet(entry.name)
        if key is not None:
            assert torch.equal(state[key], torch.from_numpy(array)), key


def test_bad_copies_are_caught_before_training(tmp_path):
    good = tmp_path / "tiny.params"
    good.write_bytes(_hand_packed_v2(TINY))
    data = good.read_bytes()

    truncated = tmp_path / "truncated.params"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match=r"truncated.params.*is truncated.*ademxapp"):
        read_params_index(truncated)

    wrong_magic = tmp_path / "model.pth"
    wrong_magic.write_bytes(b"PK\x03\x04" + data[4:])
    with pytest.raises(DataFormatError, match=r"model.pth.*not an MXNet NDArray list: magic number"):
        read_params_index(wrong_magic)

    bad_dtype = tmp_path / "dtype.params"
    flag_at = 8 * 3 + 4 + 4 + 4 + 3 * 8 + 8
    bad_dtype.write_bytes(data[:flag_at] + struct.pack("<i", 42) + data[flag_at + 4:])
    with pytest.raises(DataFormatError, match=r"dtype.params.*unknown type flag 42"):
        read_params_index(bad_dtype)

    sparse = tmp_path / "sparse.params"
    stype_at = 8 * 3 + 4
    sparse.write_bytes(data[:stype_at] + struct.pack("<i", 2) + data[stype_at + 4:])
    with pytest.raises(DataFormatError, match=r"sparse.params.*csr storage"):
        read_params_index(sparse)

    trailing = tmp_path / "trailing.params"
    trailing.write_bytes(data + b"\0" * 16)
    with pytest.raises(DataFormatError, match="bytes after the last name"):
        read_params_index(trailing)

    # a file that reads but does not cover ResNet38: nothing is written
    with pytest.raises(DataFormatError, match=r"tiny.params.*does not cover the ResNet38.*191 backbone keys missing"):
        import_mxnet_weights(good, tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()


def test_model_a1_with_a_missing_or_misshapen_array_is_refused(tmp_path):
    src = tmp_path / "a1.params"
    _model_a1(src, drop="aux:bn4b3_branch2a_moving_mean", reshape="arg:res6a_branch2b1_weight")
    with pytest.raises(DataFormatError) as err:
        import_mxnet_weights(src, tmp_path / "a1.pt")
    message = str(err.value)
    assert "1 backbone keys missing (b4_3.bn_branch2a.running_mean)" in message
    assert "arg:res6a_branch2b1_weight -> b6.conv_branch2b1.weight" in message
    assert not (tmp_path / "a1.pt").exists()


def test_weights_import_cli_and_the_pipeline_rule(tmp_path, repo):
    from jointwsss.cli import main
    from jointwsss.experiments import imported_weights_path, pretrained_image_weights

    bad = tmp_path / "bad.params"
    bad.write_bytes(b"\0" * 10)
    assert main(["weights", "import", str(bad), str(tmp_path / "x.pt")]) == 2  # one clear line, no traceback
    config = {"runs_dir": "runs", "model": {"image": {"weights": "weights/ilsvrc-cls_rna-a1_cls1000_ep-0001.params"}}}
    assert pretrained_image_weights(config) == "runs/weights/ilsvrc-cls_rna-a1_cls1000_ep-0001.pt"
    assert imported_weights_path(config).name == "ilsvrc-cls_rna-a1_cls1000_ep-0001.pt"
