"""MXNet NDArray list files (.params): byte layout, exact read-back, every bad input, PSA's ResNet38 names,
the streamed conversion and its use as the image network's start in training."""

from __future__ import annotations

import hashlib
import logging
import struct

import numpy as np
import pytest

from jointwsss.imagenet_weights import (
    IMAGENET_PARAMS_MD5,
    convert_imagenet_params,
    imagenet_params_layout,
    mxnet_to_resnet38_key,
    resnet38_backbone_shapes,
    resnet38_key_to_mxnet,
)
from jointwsss.io.errors import DataFormatError
from jointwsss.io.mxnet_params import iter_arrays, load_ndarray_list, read_array, scan_ndarray_list
from jointwsss.synth.mxnet_params import imagenet_model_a1_items, pattern_array, write_ndarray_list

GOOD_COPY = "github.com/itijyou/ademxapp"


def tiny_arrays() -> list[tuple[str, np.ndarray]]:
    """Hand-made arrays of several dtypes, ranks and byte patterns (negative, large, fractional values)."""
    return [
        ("arg:w_f32", np.array([[1.5, -2.25, 3.0], [0.0, 1e-8, -7.125]], dtype=np.float32)),
        ("arg:w_f64", np.array([np.pi, -1e300, 2.0**-1070], dtype=np.float64)),
        ("arg:w_f16", np.array([[[0.5, -65504.0]], [[6.1e-5, 1.0]]], dtype=np.float16)),
        ("aux:count_i64", np.array([-(2**62), 7, 2**40], dtype=np.int64)),
        ("aux:ids_i32", np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 12),
        ("aux:bytes_u8", np.array([0, 1, 254, 255], dtype=np.uint8)),
        ("aux:mask_bool", np.array([True, False, True], dtype=np.bool_)),
        ("aux:small_i8", np.array([-128, 127], dtype=np.int8)),
        ("aux:u16", np.array([[65535, 1]], dtype=np.uint16)),
        ("arg:4d", np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2) / 3),
    ]


@pytest.mark.parametrize("version", ["legacy", "v1", "v2", "v3"])
def test_tiny_file_round_trips_exactly_in_every_format_version(tmp_path, version):
    path = tmp_path / f"tiny_{version}.params"
    arrays = tiny_arrays()
    size = write_ndarray_list(path, arrays, version=version)
    assert size == path.stat().st_size
    entries = scan_ndarray_list(path)
    assert [e.name for e in entries] == [name for name, _ in arrays]
    assert {e.version for e in entries} == {version}
    loaded = load_ndarray_list(path)
    assert list(loaded) == [name for name, _ in arrays]
    for name, expected in arrays:
        got = loaded[name]
        assert got.dtype == expected.dtype and got.shape == expected.shape, name
        assert got.tobytes() == expected.tobytes(), name  # bit-exact, NaN-safe


def test_writer_lays_out_bytes_as_documented(tmp_path):
    """One float32 (2,) array named 'a', hand-assembled from the layout in jointwsss.io.mxnet_params."""
    values = np.array([1.0, -2.0], dtype=np.float32)
    expected_v2 = (
        (0x112).to_bytes(8, "little") + bytes(8) + (1).to_bytes(8, "little")  # list magic, reserved, 1 array
        + bytes.fromhex("c9fa93f9")  # V2 magic 0xF993FAC9, little-endian
        + (0).to_bytes(4, "little")  # dense storage
        + (1).to_bytes(4, "little") + (2).to_bytes(8, "little")  # ndim 1, int64 dim 2
        + (1).to_bytes(4, "little") + (0).to_bytes(4, "little")  # cpu(0)
        + (0).to_bytes(4, "little")  # float32
        + bytes.fromhex("0000803f") + bytes.fromhex("000000c0")  # 1.0, -2.0
        + (1).to_bytes(8, "little") + (1).to_bytes(8, "little") + b"a"  # 1 name of 1 byte
    )
    write_ndarray_list(tmp_path / "v2.params", [("a", values)], version="v2")
    assert (tmp_path / "v2.params").read_bytes() == expected_v2
    # legacy: no magic; the first uint32 is ndim and dims are uint32
    expected_legacy = expected_v2[:24] + struct.pack("<II", 1, 2) + expected_v2[24 + 20:]
    write_ndarray_list(tmp_path / "legacy.params", [("a", values)], version="legacy")
    assert (tmp_path / "legacy.params").read_bytes() == expected_legacy
    entry = scan_ndarray_list(tmp_path / "legacy.params")[0]
    assert (entry.data_offset, entry.data_bytes, entry.device, entry.dtype_name) == (24 + 8 + 12, 8, "cpu", "float32")


def test_bfloat16_is_widened_to_float32_exactly(tmp_path):
    floats = np.array([1.0, -3.5, 0.15625, 1e30], dtype=np.float32)
    bits = (floats.view(np.uint32) >> 16).astype(np.uint16)  # these values have zero low halves except 1e30
    path = tmp_path / "bf16.params"
    write_ndarray_list(path, [("arg:x", bits)], version="v2", bfloat16_names=frozenset({"arg:x"}))
    entry = scan_ndarray_list(path)[0]
    assert entry.dtype_name == "bfloat16" and entry.data_bytes == 8
    got = read_array(path, entry)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, (bits.astype(np.uint32) << 16).view(np.float32))
    np.testing.assert_array_equal(got[:3], floats[:3])


def test_unnamed_list_and_empty_arrays(tmp_path):
    path = tmp_path / "unnamed.params"
    arrays = tiny_arrays()[:2]
    write_ndarray_list(path, arrays, version="v1", with_names=False)
    loaded = load_ndarray_list(path)
    assert isinstance(loaded, list) and [a.tobytes() for a in loaded] == [a.tobytes() for _, a in arrays]
    # an empty ("none") array: V2 ndim 0 and nothing else of it, then a float32 scalar-free array
    raw = (struct.pack("<QQQ", 0x112, 0, 2) + struct.pack("<Iii", 0xF993FAC9, 0, 0)
           + struct.pack("<Iii1q", 0xF993FAC9, 0, 1, 1) + struct.pack("<iii", 2, 1, 0) + struct.pack("<f", 4.5)
           + struct.pack("<Q", 0))
    (tmp_path / "none.params").write_bytes(raw)
    first, second = scan_ndarray_list(tmp_path / "none.params")
    assert first.shape is None and second.shape == (1,) and second.device == "gpu" and second.device_id == 1
    assert [a.tolist() for a in load_ndarray_list(tmp_path / "none.params")] == [[], [4.5]]
    # V3 (np shape): ndim 0 is a scalar holding one value
    write_ndarray_list(tmp_path / "scalar.params", [("s", np.array(2.5, dtype=np.float64))], version="v3")
    (entry,) = scan_ndarray_list(tmp_path / "scalar.params")
    assert entry.shape == () and read_array(tmp_path / "scalar.params", entry).item() == 2.5


# ------------------------------------------------------------------------------------------------ bad inputs
@pytest.fixture
def tiny_v2(tmp_path):
    path = tmp_path / "tiny.params"
    write_ndarray_list(path, tiny_arrays(), version="v2")
    return path


def _patched(path, offset: int, fmt: str, value) -> None:
    raw = bytearray(path.read_bytes())
    struct.pack_into(fmt, raw, offset, value)
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("keep", ["header", "array_header", "data", "names"])
def test_truncated_file_names_the_file_and_the_offset(tiny_v2, keep):
    entries = scan_ndarray_list(tiny_v2)
    size = tiny_v2.stat().st_size
    cut = {"header": 20, "array_header": 24 + 10, "data": entries[4].data_offset + 5, "names": size - 3}[keep]
    tiny_v2.write_bytes(tiny_v2.read_bytes()[:cut])
    with pytest.raises(DataFormatError, match=rf"^{tiny_v2}: truncated: .* the file ends at {cut:,} bytes -- "):
        scan_ndarray_list(tiny_v2)


def test_wrong_list_magic(tiny_v2):
    _patched(tiny_v2, 0, "<Q", 0x113)
    with pytest.raises(DataFormatError, match=rf"^{tiny_v2}: wrong magic number 0x113 .*0x112"):
        scan_ndarray_list(tiny_v2)
    (tiny_v2.parent / "torch.params").write_bytes(b"PK\x03\x04" + bytes(60))  # e.g. a PyTorch zip renamed
    with pytest.raises(DataFormatError, match="wrong magic number"):
        scan_ndarray_list(tiny_v2.parent / "torch.params")


def test_unknown_array_header(tiny_v2):
    _patched(tiny_v2, 24, "<I", 0xF993FACB)
    with pytest.raises(DataFormatError, match=r"array 0: unknown array header 0xF993FACB at offset 24"):
        scan_ndarray_list(tiny_v2)


def test_unknown_dtype(tiny_v2):
    # first array: magic, storage, ndim, 2 int64 dims, context (8 bytes) -> its dtype flag
    _patched(tiny_v2, 24 + 4 + 4 + 4 + 16 + 8, "<i", 13)
    with pytest.raises(DataFormatError, match=r"array 0 has unknown dtype flag 13 \(known: 0 float32, "):
        scan_ndarray_list(tiny_v2)


@pytest.mark.parametrize("storage, problem", [(1, "array 0 has row_sparse storage; only dense arrays are supported"),
                                              (2, "array 0 has csr storage"), (7, "array 0 has unknown storage type 7")])
def test_sparse_or_unknown_storage_type(tiny_v2, storage, problem):
    _patched(tiny_v2, 24 + 4, "<i", storage)
    with pytest.raises(DataFormatError, match=rf"^{tiny_v2}: {problem}"):
        scan_ndarray_list(tiny_v2)


def test_unknown_device(tiny_v2):
    _patched(tiny_v2, 24 + 12 + 16, "<i", 9)  # the first array's context: device type
    with pytest.raises(DataFormatError, match=rf"^{tiny_v2}: array 0: unknown device type 9"):
        scan_ndarray_list(tiny_v2)


def test_names_count_must_be_zero_or_one_per_array(tiny_v2):
    last = scan_ndarray_list(tiny_v2)[-1]
    _patched(tiny_v2, last.data_offset + last.data_bytes, "<Q", 3)
    with pytest.raises(DataFormatError, match=rf"^{tiny_v2}: 3 names for 10 arrays"):
        scan_ndarray_list(tiny_v2)


def test_trailing_bytes(tiny_v2):
    tiny_v2.write_bytes(tiny_v2.read_bytes() + b"\0")
    with pytest.raises(DataFormatError, match="1 unexpected bytes after the names list"):
        scan_ndarray_list(tiny_v2)


# ------------------------------------------------------------------------------------- PSA's ResNet38 names
def test_psa_names_map_to_resnet38_keys_by_hand():
    assert mxnet_to_resnet38_key("arg:conv1a_weight") == "conv1a.weight"
    assert mxnet_to_resnet38_key("arg:res2a_branch1_weight") == "b2.conv_branch1.weight"
    assert mxnet_to_resnet38_key("arg:res2a_branch2a_weight") == "b2.conv_branch2a.weight"
    assert mxnet_to_resnet38_key("arg:bn2a_branch2a_gamma") == "b2.bn_branch2a.weight"
    assert mxnet_to_resnet38_key("arg:bn3b2_branch2b1_beta") == "b3_2.bn_branch2b1.bias"
    assert mxnet_to_resnet38_key("aux:bn4b5_branch2b1_moving_var") == "b4_5.bn_branch2b1.running_var"
    assert mxnet_to_resnet38_key("aux:bn6a_branch2b2_moving_mean") == "b6.bn_branch2b2.running_mean"
    assert mxnet_to_resnet38_key("arg:res7a_branch2b2_weight") == "b7.conv_branch2b2.weight"
    assert mxnet_to_resnet38_key("arg:bn7_gamma") == "bn7.weight"
    assert mxnet_to_resnet38_key("aux:bn7_moving_mean") == "bn7.running_mean"
    assert mxnet_to_resnet38_key("arg:linear1000_weight") is None
    assert mxnet_to_resnet38_key("arg:linear1000_bias") is None
    for wrong in ("arg:fc8_weight", "arg:res2a_branch2a_gamma", "arg:bn2a_branch2a_weight", "arg:res8a_branch1_weight"):
        with pytest.raises(KeyError):
            mxnet_to_resnet38_key(wrong)


def test_every_full_resnet38_key_round_trips_through_its_mxnet_name():
    shapes = resnet38_backbone_shapes("full")
    assert len(shapes) == 191  # conv1a + 17 blocks (2 BN-conv pairs, 3 in b6/b7, 6 shortcut convs) + bn7, BN x4
    names = [resnet38_key_to_mxnet(k) for k in shapes]
    assert len(set(names)) == len(names)
    assert all(mxnet_to_resnet38_key(n) == k for n, k in zip(names, shapes))
    assert sum(n.startswith("aux:") for n in names) == 2 * sum(k.endswith("running_mean") for k in shapes)
    layout = dict(imagenet_params_layout("full"))
    assert layout["arg:linear1000_weight"] == (1000, 4096) and layout["arg:res7a_branch2b1_weight"] == (2048, 1024, 3, 3)
    assert layout["arg:conv1a_weight"] == (64, 3, 3, 3) and layout["aux:bn7_moving_var"] == (4096,)


def _small_layout_file(path, drop=(), rename=None):
    rename = rename or {}
    items = [(rename.get(name, name), np.zeros(shape, np.float16)) for name, shape in imagenet_params_layout("small")
             if name not in drop]
    write_ndarray_list(path, items, version="v2")
    return path


def test_names_or_shapes_not_covering_resnet38_are_listed_before_anything_is_written(tmp_path):
    dst = tmp_path / "out.pt"
    src = _small_layout_file(tmp_path / "small.params")  # every shape is 1/8 of the full widths
    with pytest.raises(DataFormatError, match=rf"^{src}: does not hold the ResNet38 'model A1' weights \(191 shape "
                                              r"mismatches: arg:conv1a_weight: file \(8, 3, 3, 3\) vs ResNet38 "
                                              rf"\(64, 3, 3, 3\).* -- download .*{GOOD_COPY}"):
        convert_imagenet_params(src, dst)
    src = _small_layout_file(tmp_path / "missing.params", drop={"arg:bn7_gamma", "aux:bn3b1_branch2a_moving_var"},
                             rename={"arg:res2a_branch1_weight": "arg:fc8_weight"})
    with pytest.raises(DataFormatError) as info:
        convert_imagenet_params(src, dst)
    message = str(info.value)
    assert ("3 of 191 ResNet38 arrays missing: arg:res2a_branch1_weight, aux:bn3b1_branch2a_moving_var, "
            "arg:bn7_gamma |") in message, message
    assert "1 names that are not ResNet38 'model A1' names: arg:fc8_weight" in message
    unnamed = tmp_path / "unnamed.params"
    write_ndarray_list(unnamed, [("x", np.zeros(3, np.float32))], with_names=False)
    with pytest.raises(DataFormatError, match="its 1 arrays have no names"):
        convert_imagenet_params(unnamed, dst)
    assert not dst.exists() and list(tmp_path.glob(".out.pt*")) == []


def test_conversion_errors_name_where_to_get_a_good_copy(tmp_path):
    src = _small_layout_file(tmp_path / "cut.params")
    src.write_bytes(src.read_bytes()[: src.stat().st_size // 3])
    with pytest.raises(DataFormatError, match=rf"^{src}: truncated: .* -- download .*md5 {IMAGENET_PARAMS_MD5}"):
        convert_imagenet_params(src, tmp_path / "out.pt")
    with pytest.raises(DataFormatError, match=r"absent.params: file not found -- give the path of "
                                              r"ilsvrc-cls_rna-a1_cls1000_ep-0001.params"):
        convert_imagenet_params(tmp_path / "absent.params", tmp_path / "out.pt")


# ------------------------------------------------------------------------------- full-size file, streamed
@pytest.fixture(scope="module")
def full_params(tmp_path_factory):
    """A full-width 'model A1' file with PSA's names in the genuine file's legacy layout (~437 MB, float32),
    every array its own pattern (``pattern_array(shape, seed=its index)``)."""
    path = tmp_path_factory.mktemp("imagenet") / "ilsvrc-cls_rna-a1_cls1000_ep-0001.params"
    items = imagenet_model_a1_items("full")
    write_ndarray_list(path, items, version="legacy")
    yield path, {name: seed for seed, (name, _) in enumerate(items)}
    path.unlink()


def test_full_file_reads_back_exactly(full_params):
    path, seeds = full_params
    entries = scan_ndarray_list(path)
    assert len(entries) == 193 and {e.version for e in entries} == {"legacy"}
    layout = dict(imagenet_params_layout("full"))
    for entry, values in iter_arrays(path, entries):
        assert values.shape == layout[entry.name]
        np.testing.assert_array_equal(values, pattern_array(entry.shape, seeds[entry.name]), err_msg=entry.name)


def test_cli_import_writes_the_state_dict_and_a_summary(full_params, tmp_path, caplog):
    import torch

    from jointwsss.cli import main

    path, seeds = full_params
    dst = tmp_path / "weights" / "imagenet.pt"
    with caplog.at_level(logging.INFO):
        assert main(["weights", "import", str(path), str(dst)]) == 0
    log_text = caplog.text
    assert f"read 193 arrays ({path.stat().st_size / 1e6:.1f} MB, legacy format, float32)" in log_text
    assert "mapped 191 to ResNet38 keys, ignored 2 (arg:linear1000_weight, arg:linear1000_bias)" in log_text
    assert f"not the genuine {IMAGENET_PARAMS_MD5}" in log_text
    state = torch.load(dst, weights_only=True)
    assert list(state) == list(resnet38_backbone_shapes("full"))
    for key, tensor in state.items():
        name = resnet38_key_to_mxnet(key)
        assert tensor.dtype == torch.float32
        np.testing.assert_array_equal(tensor.numpy(), pattern_array(tuple(tensor.shape), seeds[name]), err_msg=key)
    # not the genuine bytes: --require-genuine refuses, and the earlier output stays as it was
    before = hashlib.md5(dst.read_bytes()).hexdigest()
    assert main(["weights", "import", str(path), str(dst), "--require-genuine"]) == 2
    assert f"is not the genuine file's {IMAGENET_PARAMS_MD5}" in caplog.text
    assert hashlib.md5(dst.read_bytes()).hexdigest() == before


def test_width_full_training_starts_from_the_converted_weights(full_params, tmp_path):
    """The pipeline's path: model.image.weights names the .params; experiments point at its conversion in the
    cache; build_networks loads it. Every backbone tensor equals the file's array."""
    import torch

    from conftest import REPO
    from jointwsss.cli import main
    from jointwsss.config import load_yaml, validate_config
    from jointwsss.experiments import experiment_settings
    from jointwsss.networks import build_networks

    path, _ = full_params
    config = validate_config(load_yaml(REPO / "config.yaml"))
    config.update(cache_dir=str(tmp_path / "cache"), runs_dir=str(tmp_path / "runs"))
    config["model"]["image"].update(width="full", weights=str(path))
    settings = experiment_settings(config, "joint")
    converted = tmp_path / "cache" / "weights" / "ilsvrc-cls_rna-a1_cls1000_ep-0001.pt"
    assert settings["model"]["image"]["weights"] == str(converted)
    assert main(["weights", "import", str(path), str(converted)]) == 0  # what rule import_imagenet_weights runs

    torch.manual_seed(0)
    image_net, _ = build_networks(settings)
    state = image_net.state_dict()
    entries = {e.name: e for e in scan_ndarray_list(path)}
    with open(path, "rb") as file:
        for key in resnet38_backbone_shapes("full"):
            values = read_array(path, entries[resnet38_key_to_mxnet(key)], file)
            assert torch.equal(state[key], torch.from_numpy(values)), key
    assert state["cam_head.weight"].shape == (20, 4096, 1, 1)  # the head is new, not the ImageNet classifier


def test_loading_an_unconverted_params_file_says_how_to_convert_it(tmp_path):
    from jointwsss.models.resnet38 import ResNet38, load_imagenet_weights

    src = _small_layout_file(tmp_path / "small.params")
    with pytest.raises(DataFormatError, match=rf"^{src}: cannot be read as a PyTorch state dict: it is an MXNet "
                                              r"\.params file -- convert it first with `jointwsss weights import"):
        load_imagenet_weights(ResNet38(width="small"), src)
