"""ResNet38: topology, output stride 8, frozen batch norm, ImageNet weight loading."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from jointwsss.io.errors import DataFormatError
from jointwsss.models.resnet38 import (
    RESNET38_WIDTHS,
    ResNet38,
    load_imagenet_weights,
    warn_no_pretrained,
)


@pytest.fixture(scope="module")
def full_model() -> ResNet38:
    torch.manual_seed(0)
    return ResNet38(num_classes=20, width="full").eval()


def _expected_parameter_count(width: str, num_classes: int = 20) -> int:
    """Hand count from the block structure: bias-free convs, 2 affine params per BN channel."""
    w = RESNET38_WIDTHS[width]

    def basic(cin, mid, out, conv_shortcut):
        return 2 * cin + 9 * cin * mid + 2 * mid + 9 * mid * out + (cin * out if conv_shortcut else 0)

    def bottleneck(cin, out):
        q, h = out // 4, out // 2
        return 2 * cin + cin * q + 2 * q + 9 * q * h + 2 * h + h * out + cin * out

    total = 27 * w.stem
    for cin, width_, blocks in ((w.stem, w.stage2, 3), (w.stage2, w.stage3, 3), (w.stage3, w.stage4, 6)):
        total += basic(cin, width_, width_, True) + (blocks - 1) * basic(width_, width_, width_, False)
    mid5, out5 = w.stage5
    total += basic(w.stage4, mid5, out5, True) + 2 * basic(out5, mid5, out5, False)
    total += bottleneck(out5, w.stage6) + bottleneck(w.stage6, w.stage7)
    return total + 2 * w.stage7 + w.stage7 * num_classes


@pytest.mark.parametrize("size, feature_size", [((64, 48), (8, 6)), ((65, 49), (9, 7))])
def test_small_output_stride_8(size, feature_size):
    torch.manual_seed(0)
    net = ResNet38(width="small").eval()
    with torch.no_grad():
        z, cam = net(torch.randn(2, 3, *size))
    assert net.feature_dim == 512
    assert z.shape == (2, 512, *feature_size)
    assert cam.shape == (2, 20, *feature_size)
    # Z ends in ReLU; A is the bias-free 1x1 head applied to Z.
    assert (z >= 0).all()
    torch.testing.assert_close(cam, torch.einsum("cd,bdhw->bchw", net.cam_head.weight[:, :, 0, 0], z))


def test_full_output_stride_8_and_4096_channels(full_model):
    with torch.no_grad():
        z, cam = full_model(torch.randn(1, 3, 65, 49))
    assert z.shape == (1, 4096, 9, 7) and cam.shape == (1, 20, 9, 7)


def test_parameter_counts(full_model):
    small = ResNet38(width="small")
    assert sum(p.numel() for p in small.parameters()) == _expected_parameter_count("small") == 1_657_384
    assert sum(p.numel() for p in full_model.parameters()) == _expected_parameter_count("full")
    # The wide ResNet-38 backbone has about 104.9 M parameters (+ 81,920 in the 4096 x 20 head).
    assert 104_000_000 < sum(p.numel() for p in full_model.parameters()) - 4096 * 20 < 105_500_000


def test_strides_dilations_and_shortcuts(full_model):
    m = full_model
    assert [blk.conv_branch2a.stride for blk in (m.b2, m.b3, m.b4)] == [(2, 2)] * 3
    assert m.b2_1.conv_branch2a.stride == (1, 1) and m.b5.conv_branch2a.stride == (1, 1)
    assert m.b5.conv_branch2a.dilation == (1, 1) and m.b5.conv_branch2b1.dilation == (2, 2)
    assert m.b5_2.conv_branch2a.dilation == (2, 2)
    assert m.b6.conv_branch2b1.dilation == (4, 4) and m.b7.conv_branch2b1.dilation == (4, 4)
    assert m.b6.conv_branch2a.kernel_size == (1, 1) and m.b6.conv_branch2b1.kernel_size == (3, 3)
    assert m.b6.conv_branch2b2.weight.shape == (2048, 1024, 1, 1)
    assert m.b7.conv_branch2b1.weight.shape == (2048, 1024, 3, 3)
    assert m.b6.dropout_branch2b1.p == 0.3 and m.b7.dropout_branch2b2.p == 0.5
    keys = set(m.state_dict())
    for key in ("conv1a.weight", "b2.conv_branch1.weight", "b5.conv_branch1.weight", "b4_5.bn_branch2b1.running_var",
                "b7.bn_branch2b2.weight", "bn7.running_mean", "cam_head.weight"):
        assert key in keys, key
    # Identity shortcuts where shape is kept.
    assert "b2_1.conv_branch1.weight" not in keys and "b5_1.conv_branch1.weight" not in keys
    assert "cam_head.bias" not in keys


def test_frozen_bn_keeps_running_stats_and_gets_no_grad():
    torch.manual_seed(0)
    net = ResNet38(width="small", freeze_bn=True).train()
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(not bn.training for bn in bns)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
    _, cam = net(torch.randn(2, 3, 32, 32))
    cam.mean().backward()
    opt.step()
    after = net.state_dict()
    for name, module in net.named_modules():
        if isinstance(module, nn.BatchNorm2d):
            assert module.weight.grad is None and module.bias.grad is None, name
            for stat in ("running_mean", "running_var", "weight", "bias"):
                assert torch.equal(before[f"{name}.{stat}"], after[f"{name}.{stat}"]), name
    assert not torch.equal(before["b3.conv_branch2a.weight"], after["b3.conv_branch2a.weight"])
    assert not torch.equal(before["cam_head.weight"], after["cam_head.weight"])


def test_unfrozen_bn_updates_running_stats():
    torch.manual_seed(0)
    net = ResNet38(width="small", freeze_bn=False).train()
    before = net.bn7.running_mean.clone()
    net(torch.randn(2, 3, 32, 32))
    assert not torch.equal(before, net.bn7.running_mean)
    assert net.bn7.weight.requires_grad


def test_freeze_stem():
    net = ResNet38(width="small", freeze_stem=True)
    assert not net.conv1a.weight.requires_grad and not net.b2_2.conv_branch2b1.weight.requires_grad
    assert net.b3.conv_branch2a.weight.requires_grad
    trainable = {id(p) for p in net.parameters() if p.requires_grad}
    assert id(net.bn7.weight) not in trainable and id(net.conv1a.weight) not in trainable


@pytest.mark.parametrize("column", [60, 80])
def test_cam_cells_are_centred_on_every_eighth_pixel(column):
    """``losses.sample_at_pixels`` reads CAM cell j at input pixel 8 j: the receptive field of a cell
    (the input columns its value depends on) is symmetric about 8 j. A wide strip keeps the field of an
    inner cell clear of the image edges."""
    torch.manual_seed(0)
    net = ResNet38(width="small").eval()
    assert net.output_stride == 8
    images = torch.randn(1, 3, 16, 1200, requires_grad=True)
    _, cam = net(images)
    cam[0, :, 1, column].sum().backward()
    columns = (images.grad.abs().sum(dim=(0, 1, 2)) > 0).nonzero().flatten()
    first, last = int(columns.min()), int(columns.max())
    assert 0 < first and last < 1199                        # the whole field is inside the strip
    assert (first + last) / 2 == 8 * column


def _converted_state_dict(net: ResNet38) -> dict[str, torch.Tensor]:
    """What a converted MXNet file looks like: backbone keys, no BN counters, plus the 1000-way fc."""
    state = {
        k: v.clone()
        for k, v in net.state_dict().items()
        if not k.startswith("cam_head.") and not k.endswith("num_batches_tracked")
    }
    state["linear1000.weight"] = torch.randn(1000, net.feature_dim)
    state["linear1000.bias"] = torch.randn(1000)
    return state


def _trained_stats_model() -> ResNet38:
    torch.manual_seed(1)
    net = ResNet38(width="small", freeze_bn=False).train()
    net(torch.randn(2, 3, 32, 32))  # BN running statistics away from their defaults
    return net.eval()


def test_load_imagenet_weights_round_trip(tmp_path):
    source = _trained_stats_model()
    path = tmp_path / "resnet38_imagenet.pth"
    torch.save(_converted_state_dict(source), path)
    torch.manual_seed(2)
    target = ResNet38(width="small").eval()
    head_before = target.cam_head.weight.clone()
    report = load_imagenet_weights(target, path)
    assert report["ignored"] == ["linear1000.bias", "linear1000.weight"]
    assert report["loaded"] == len(_converted_state_dict(source)) - 2
    assert report["path"] == str(path)
    images = torch.randn(2, 3, 40, 56)
    with torch.no_grad():
        assert torch.equal(source.backbone(images), target.backbone(images))
    assert torch.equal(target.cam_head.weight, head_before)


def test_load_accepts_full_state_dict_with_counters(tmp_path):
    source = _trained_stats_model()
    path = tmp_path / "with_counters.pth"
    torch.save({k: v for k, v in source.state_dict().items() if not k.startswith("cam_head.")}, path)
    target = ResNet38(width="small").eval()
    load_imagenet_weights(target, path)
    assert torch.equal(target.b4_2.bn_branch2a.running_var, source.b4_2.bn_branch2a.running_var)


def test_load_reports_missing_misnamed_and_misshapen_keys(tmp_path):
    state = _converted_state_dict(ResNet38(width="small"))
    del state["b4_3.bn_branch2b1.running_var"]
    state["b3.conv_branch_1.weight"] = state.pop("b3.conv_branch1.weight")
    state["b6.conv_branch2a.weight"] = torch.zeros(1, 1, 1, 1)
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(DataFormatError) as err:
        load_imagenet_weights(ResNet38(width="small"), path)
    message = str(err.value)
    assert message.startswith(str(path))
    assert "2 missing backbone keys: b3.conv_branch1.weight, b4_3.bn_branch2b1.running_var" in message
    assert "1 unexpected keys: b3.conv_branch_1.weight" in message
    assert "b6.conv_branch2a.weight: file (1, 1, 1, 1) vs model (64, 128, 1, 1)" in message


def test_load_rejects_small_file_for_full_model(tmp_path, full_model):
    path = tmp_path / "small.pth"
    torch.save(_converted_state_dict(ResNet38(width="small")), path)
    with pytest.raises(DataFormatError, match=r"conv1a.weight: file \(8, 3, 3, 3\) vs model \(64, 3, 3, 3\)"):
        load_imagenet_weights(full_model, path)


def test_load_rejects_unreadable_files(tmp_path):
    net = ResNet38(width="small")
    with pytest.raises(DataFormatError, match=r"absent.pth: image network weights file not found -- .*pretrain_image"):
        load_imagenet_weights(net, tmp_path / "absent.pth")
    not_a_dict = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], not_a_dict)
    with pytest.raises(DataFormatError, match="is not a state dict"):
        load_imagenet_weights(net, not_a_dict)
    garbage = tmp_path / "garbage.params"
    garbage.write_bytes(b"\x12\x01not a torch file")
    with pytest.raises(DataFormatError, match="cannot be read as a PyTorch state dict"):
        load_imagenet_weights(net, garbage)


def test_warn_no_pretrained():
    with pytest.warns(UserWarning, match="trains from scratch"):
        warn_no_pretrained()


def test_invalid_width():
    with pytest.raises(ValueError, match="width"):
        ResNet38(width="medium")
