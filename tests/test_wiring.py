"""From an experiment's settings to the loss terms, and the resume hash: the wiring between the config and eq. 12.

The loss values are worked out by hand on a batch small enough to do so (one view, two visible points, two classes);
the resume checks enumerate every setting of a run independently of the code that decides what the hash covers.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from pathlib import Path

import pytest
import torch
from conftest import REPO

from jointwsss.config import load_yaml, validate_config
from jointwsss.experiments import (
    IMAGE_NETWORK_LABELS,
    NON_RESULT_KEYS,
    experiment_settings,
    to3d_labels_of,
)
from jointwsss.losses import total_loss
from jointwsss.runs import rng_state, save_checkpoint
from jointwsss.train import (
    DistInfo,
    Runtime,
    _to_inputs,
    _why_not_resumed,
    checkpoint_payload,
    data_config,
    hashed_settings,
    loss_switches,
    make_optimisation,
    resume,
    settings_changes,
    settings_hash,
)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


R = 1 / math.sqrt(2)


def hand_batch(image_labels=(1.0, 1.0)) -> tuple[dict, dict]:
    """A collated batch and network outputs whose eq. 7 / eq. 11 terms are worked out below.

    One cloud of 3 points, one view that sees points 2 and 0 (in that order) at pixels (u, v) = (0, 0) and (1, 0)
    of a 1 x 2 map of a stride-1 image network; C = 2 classes, D = 2 feature channels.
    At the pixels: 2D CAM logits (2, 0) and (-1, 1), 2D features (1, 0) and (1, 1).
    At the points (2, then 0): 3D CAM logits (0, 0) and (1, -1), 3D features (0, 2) and (3, 0); point 1 (never
    visible) holds values that would change every term.
    """
    cam2d = torch.tensor([[[[2.0, -1.0]], [[0.0, 1.0]]]])           # (V=1, C=2, h=1, w=2)
    feat2d = torch.tensor([[[[1.0, 1.0]], [[0.0, 1.0]]]])           # (V, D=2, h, w)
    cam3d = torch.tensor([[[1.0, 7.0, 0.0], [-1.0, -7.0, 0.0]]])    # (B=1, C, N=3): point 0 (1, -1), point 2 (0, 0)
    feat3d = torch.tensor([[[3.0, 5.0, 0.0], [0.0, -5.0, 2.0]]])    # point 0 (3, 0), point 2 (0, 2)
    batch = {"image_labels": torch.tensor([list(image_labels)]), "scene_labels": torch.tensor([[1.0, 1.0]]),
             "cloud_of_view": torch.tensor([0]), "point_idx": torch.tensor([[2, 0]]),
             "uv": torch.tensor([[[0.0, 0.0], [1.0, 0.0]]]), "mask": torch.tensor([[True, True]])}
    outputs = {"feat2d": feat2d, "cam2d": cam2d, "feat3d": feat3d, "cam3d": cam3d, "stride2d": 1}
    return batch, outputs


# Eq. 7 on the hand batch (labels (1, 1)): pseudo-labels 0 (sigmoid(2) > sigmoid(0)) and 1 (sigmoid(1) >
# sigmoid(-1)); BCE of the 3D logits, mean over the classes: point 2, logits (0, 0) vs (1, 0): log 2; point 0,
# logits (1, -1) vs (0, 1): softplus(1). W^2d over all classes: sigmoid(2), sigmoid(1) (with joint.confidence_score
# logit, the maximum logits: 2, 1).
TO3D_CONFIDENT = (sig(2.0) * math.log(2.0) + sig(1.0) * softplus(1.0)) / 2
TO3D_CONFIDENT_LOGIT = (2.0 * math.log(2.0) + 1.0 * softplus(1.0)) / 2
TO3D_PLAIN = (math.log(2.0) + softplus(1.0)) / 2
# Image labels (0, 1): both pseudo-labels are 1; point 2 vs (0, 1) with logits (0, 0): log 2. W^2d over all classes
# is still sigmoid(2) for the first pixel, over the present ones sigmoid(0) = 0.5.
TO3D_PRESENT_ONLY_ALL = (sig(2.0) * math.log(2.0) + sig(1.0) * softplus(1.0)) / 2
TO3D_PRESENT_ONLY_PRESENT = (0.5 * math.log(2.0) + sig(1.0) * softplus(1.0)) / 2
# Eq. 11: S2d off the diagonal 1/sqrt(2), S3d 0 (orthogonal); W^3d,p = max score of point 2 (0.5) times that of
# point 0 (sigmoid(1)) (maximum logits: 0 and 1); two of the four pairs differ, 1 / N_v^2 = 1/4.
TO2D_CONFIDENT = 2 * 0.5 * sig(1.0) * R / 4
TO2D_CONFIDENT_LOGIT = 2 * 0.0 * 1.0 * R / 4
TO2D_PLAIN = 2 * R / 4


def base_config() -> dict:
    return validate_config(load_yaml(REPO / "config.yaml"))


def joint_experiments(config: dict) -> list[str]:
    """The configured experiments whose eq. 7 (if on) is the method's (image-network labels)."""
    return [name for name, exp in config["experiments"].items() if to3d_labels_of(exp) == IMAGE_NETWORK_LABELS
            and "object_cls" not in exp["losses"]]


@pytest.mark.parametrize("name", joint_experiments(base_config()))
def test_each_experiments_settings_reach_its_loss_terms(name):
    """confidence on/off and joint.lambda of the config decide the terms of eq. 12 of every Table 2 row."""
    config = base_config()
    config["joint"]["lambda"] = 0.25
    exp = config["experiments"][name]
    batch, outputs = hand_batch()
    terms = total_loss(_to_inputs(batch, outputs, "cpu"), loss_switches(experiment_settings(config, name)))
    assert set(terms) == set(exp["losses"]) | {"total"}
    if "to3d" in exp["losses"]:
        assert terms["to3d"].item() == pytest.approx(TO3D_CONFIDENT if exp["confidence"] else TO3D_PLAIN, rel=1e-6)
    if "to2d" in exp["losses"]:
        expected = 0.25 * (TO2D_CONFIDENT if exp["confidence"] else TO2D_PLAIN)
        assert terms["to2d"].item() == pytest.approx(expected, rel=1e-6)
    assert terms["total"].item() == pytest.approx(sum(v.item() for k, v in terms.items() if k != "total"), rel=1e-6)


def test_the_noconf_rows_differ_from_the_confident_ones_only_in_the_weights():
    config = base_config()
    assert config["experiments"]["to3d_noconf"]["confidence"] is False
    assert config["experiments"]["to2d_noconf"]["confidence"] is False
    batch, outputs = hand_batch()
    plain = total_loss(_to_inputs(batch, outputs, "cpu"), loss_switches(experiment_settings(config, "to3d_noconf")))
    confident = total_loss(_to_inputs(batch, outputs, "cpu"), loss_switches(experiment_settings(config, "to3d")))
    assert plain["to3d"].item() == pytest.approx(TO3D_PLAIN, rel=1e-6)
    assert confident["to3d"].item() == pytest.approx(TO3D_CONFIDENT, rel=1e-6)
    assert plain["cls2d"].item() == confident["cls2d"].item() and plain["cls3d"].item() == confident["cls3d"].item()


@pytest.mark.parametrize("score, to3d, to2d", [("sigmoid", TO3D_CONFIDENT, TO2D_CONFIDENT),
                                               ("logit", TO3D_CONFIDENT_LOGIT, TO2D_CONFIDENT_LOGIT)])
def test_confidence_score_reaches_eq_6_and_eq_10(score, to3d, to2d):
    config = base_config()
    config["joint"]["confidence_score"] = score
    batch, outputs = hand_batch()
    terms = total_loss(_to_inputs(batch, outputs, "cpu"), loss_switches(experiment_settings(config, "joint")))
    # abs: with W = 0 off the diagonal, the diagonal's 1 - 1 in float is what remains
    assert (terms["to3d"].item(), terms["to2d"].item()) == pytest.approx((to3d, to2d), rel=1e-6, abs=1e-7)


@pytest.mark.parametrize("over, expected", [("all", TO3D_PRESENT_ONLY_ALL), ("present", TO3D_PRESENT_ONLY_PRESENT)])
def test_confidence_2d_over_reaches_eq_6(over, expected):
    config = base_config()
    config["joint"]["confidence_2d_over"] = over
    batch, outputs = hand_batch(image_labels=(0.0, 1.0))
    terms = total_loss(_to_inputs(batch, outputs, "cpu"), loss_switches(experiment_settings(config, "to3d")))
    assert terms["to3d"].item() == pytest.approx(expected, rel=1e-6)


def test_data_config_takes_the_points_joint_and_augment_settings():
    config = base_config()
    config["points"]["num"] = 1234
    config["joint"].update(views_per_sample=3, max_points_per_view=77)
    config["augment"].update(point_flip=False, point_rotate=True, image_scale_range=[0.5, 0.75],
                             image_crop_size=[40, 30], image_hflip=False, color_jitter=0.125)
    config["seed"] = 9
    settings = experiment_settings(config, "joint")
    cfg = data_config(settings, ["a", "b"], train=True)
    assert (cfg.scenes, cfg.num_points, cfg.views_per_sample, cfg.max_points_per_view, cfg.seed) == (
        ("a", "b"), 1234, 3, 77, 9)
    assert (cfg.point_augment.flip, cfg.point_augment.rotate) == (False, True)
    ia = cfg.image_augment
    assert (ia.scale_range, ia.crop_size, ia.hflip, ia.color_jitter) == ((0.5, 0.75), (40, 30), False, 0.125)
    assert cfg.images is True and cfg.point_labels is False
    frozen = data_config(settings, ["a"], train=False)
    assert frozen.point_augment is None and frozen.image_augment is None
    assert data_config(experiment_settings(config, "cls3d"), ["a"], train=True).images is False


# ----------------------------------------------------------------------------- resume
def _leaves(tree: dict, prefix: tuple = ()):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _leaves(value, prefix + (key,))
        else:
            yield prefix + (key,), value


def _other_value(value):
    """A value of the same kind that differs from ``value``."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value * 2 + 1
    if isinstance(value, str):
        return value + "_other"
    if isinstance(value, list):
        return value + value[:1] if value else [1]
    if value is None:
        return "other"
    raise TypeError(value)


def _with(settings: dict, path: tuple, value) -> dict:
    out = copy.deepcopy(settings)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


def _result_leaves(settings: dict) -> list[tuple]:
    return [path for path, _ in _leaves(settings) if not set(path) & set(NON_RESULT_KEYS)]


@pytest.fixture
def checkpointed(tmp_path):
    """A checkpoint after epoch 0 (1-based epoch 1) of the joint experiment's settings, and what resume needs."""
    config = base_config()
    config["cache_dir"] = str(tmp_path / "cache")
    settings = experiment_settings(config, "joint")
    settings["train"].update(num_workers=0, device="cpu")  # as `jointwsss train` adds them (--num-workers, --device)
    torch.manual_seed(0)
    nets = {"point": torch.nn.Linear(3, 2)}
    opt = make_optimisation(nets, settings["train"], amp=False)
    rt = Runtime(device=torch.device("cpu"), dist=DistInfo(), amp=False)
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, checkpoint_payload(0, settings_hash(settings), settings, nets, opt, [rng_state()], {}))
    return settings, nets, opt, rt, path


def test_every_result_setting_is_in_the_run_settings_that_the_hash_sees(checkpointed):
    settings = checkpointed[0]
    leaves = {".".join(p) for p in _result_leaves(settings)}
    # what the issue found missing once: each of these must be a setting the hash can see
    for needed in ("confidence", "joint.lambda", "joint.confidence_2d_over", "joint.confidence_score",
                   "joint.max_points_per_view",
                   "augment.color_jitter", "augment.image_scale_range", "points.num", "losses", "seed"):
        assert needed in leaves


def test_a_resume_is_refused_for_every_result_setting(checkpointed, caplog):
    settings, nets, opt, rt, path = checkpointed
    assert resume(path, settings, nets, opt, rt) == 1       # the same settings continue after epoch 1
    for leaf in _result_leaves(settings):
        changed = _with(settings, leaf, _other_value(_leaves_get(settings, leaf)))
        assert settings_hash(changed) != settings_hash(settings), ".".join(leaf)
        with caplog.at_level("WARNING", logger="jointwsss"):
            caplog.clear()
            assert resume(path, changed, nets, opt, rt) == 0, ".".join(leaf)
        # the warning names the changed setting, one "key: old -> new" after the reason
        assert re.search(rf"(\): |; ){re.escape('.'.join(leaf))}: .+ -> ", caplog.text), caplog.text


def test_a_resume_is_accepted_for_settings_that_cannot_change_a_result(checkpointed):
    settings, nets, opt, rt, path = checkpointed
    for changed in (_with(settings, ("train", "num_workers"), 7), _with(settings, ("train", "device"), "cuda:3"),
                    _with(settings, ("train", "gpus"), 4), _with(settings, ("joint", "device"), "cpu")):
        assert settings_hash(changed) == settings_hash(settings)
        assert resume(path, changed, nets, opt, rt) == 1


def test_the_image_weights_are_hashed_by_content(checkpointed, tmp_path):
    settings = checkpointed[0]
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"first")
    with_weights = _with(settings, ("model", "image", "weights"), str(weights))
    first = settings_hash(with_weights)
    weights.write_bytes(b"second")
    assert settings_hash(with_weights) != first
    # the digest sits under its own key beside the path, as in every checkpoint written so far
    assert hashed_settings(with_weights)["image_weights_sha256"] == hashlib.sha256(b"second").hexdigest()
    assert hashed_settings(with_weights)["model"]["image"]["weights"] == str(weights)


def _leaves_get(tree: dict, path: tuple):
    for key in path:
        tree = tree[key]
    return tree


def test_resume_without_a_checkpoint_starts_at_epoch_0(checkpointed, tmp_path):
    settings, nets, opt, rt, _ = checkpointed
    assert resume(Path(tmp_path / "none.pt"), settings, nets, opt, rt) == 0


def test_the_hash_is_16_hex_digits_of_the_settings_in_any_key_order(checkpointed):
    settings = checkpointed[0]
    reordered = dict(reversed(list(settings.items())))
    reordered["joint"] = dict(reversed(list(settings["joint"].items())))
    assert list(reordered) != list(settings) and settings_hash(reordered) == settings_hash(settings)
    digest = settings_hash(settings)
    assert len(digest) == 16 and int(digest, 16) >= 0
    # a checkpoint written by an earlier version kept this digest: the first 16 hex digits of the SHA-256 of the
    # sorted JSON of the result settings (the non-result keys dropped)
    plain = {k: v for k, v in settings.items()}
    plain["train"] = {k: v for k, v in settings["train"].items() if k not in NON_RESULT_KEYS}
    assert digest == hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest()[:16]


def test_settings_changes_names_each_changed_key_dotted():
    old = {"a": 1, "joint": {"lambda": 1.0, "views": 2}, "gone": True}
    new = {"a": 1, "joint": {"lambda": 0.5, "views": 2}, "added": [1, 2]}
    assert settings_changes(old, new) == ['added: "<absent>" -> [1, 2]', 'gone: true -> "<absent>"',
                                          "joint.lambda: 1.0 -> 0.5"]
    # a section on one side only is one change, not a descent into it
    assert settings_changes({"sub": {"x": 1}}, {}) == ['sub: {"x": 1} -> "<absent>"']
    assert settings_changes({}, {"sub": {"x": 1}}) == ['sub: "<absent>" -> {"x": 1}']


def test_why_not_resumed_lists_the_changes_or_says_why_it_cannot():
    settings = {"seed": 0, "joint": {"lambda": 1.0}}
    other = {"seed": 1, "joint": {"lambda": 0.5}}
    assert _why_not_resumed({"hashed_settings": settings}, other) == "joint.lambda: 1.0 -> 0.5; seed: 0 -> 1"
    assert _why_not_resumed({}, other) == ("the checkpoint predates the settings it keeps, so what changed is "
                                           "unknown")
    assert _why_not_resumed({"hashed_settings": other}, other) == "the same settings under an older hash"


def test_each_rank_resumes_its_own_rng_state_and_later_ranks_the_last(checkpointed):
    settings, nets, opt, _, path = checkpointed
    states = []
    for seed in (10, 11):
        torch.manual_seed(seed)
        states.append(rng_state())
    draws = []
    for seed in (10, 11):
        torch.manual_seed(seed)
        draws.append(torch.rand(2))
    save_checkpoint(path, checkpoint_payload(0, settings_hash(settings), settings, nets, opt, states, {}))
    for rank, expected in ((0, draws[0]), (1, draws[1]), (3, draws[1])):
        other_rank = Runtime(device=torch.device("cpu"), dist=DistInfo(rank=rank, world_size=4), amp=False)
        assert resume(path, settings, nets, opt, other_rank) == 1
        assert torch.equal(torch.rand(2), expected), rank


def test_the_batchs_ground_truth_reaches_the_inputs_only_when_loaded():
    batch, outputs = hand_batch()
    assert _to_inputs(batch, outputs, "cpu").point_labels is None
    batch["point_labels"] = torch.tensor([[3, 1, 2]])
    assert _to_inputs(batch, outputs, "cpu").point_labels.tolist() == [[3, 1, 2]]
    assert _to_inputs(batch, outputs, "cpu").stride2d == 1


def test_ground_truth_diagnostics_write_their_label_source_and_the_method_does_not():
    config = base_config()
    config["experiments"]["gt_visible"] = {"losses": ["cls3d", "to3d"], "confidence": False,
                                           "to3d_labels": "ground_truth_visible"}
    diagnostic = experiment_settings(config, "gt_visible")
    assert diagnostic["to3d_labels"] == "ground_truth_visible" and diagnostic["split"] == "train"
    assert to3d_labels_of(diagnostic) == "ground_truth_visible"
    assert loss_switches(diagnostic).to3d_labels == "ground_truth_visible"
    method = experiment_settings(config, "to3d")
    assert "to3d_labels" not in method and to3d_labels_of(method) == "image_network" and method["split"] == "train"


def test_an_accepted_resume_restores_the_weights_the_optimiser_and_the_rng(checkpointed):
    settings, nets, opt, rt, path = checkpointed
    saved = {k: v.clone() for k, v in nets["point"].state_dict().items()}
    lr = opt.optimizer.param_groups[0]["lr"]
    torch.manual_seed(0)   # the fixture drew the weights from seed 0 and saved the RNG right after
    torch.nn.Linear(3, 2)
    after_checkpoint = torch.rand(3)
    with torch.no_grad():
        nets["point"].weight.add_(1.0)
    opt.optimizer.param_groups[0]["lr"] = 123.0
    torch.rand(5)
    assert resume(path, settings, nets, opt, rt) == 1
    for key, value in nets["point"].state_dict().items():
        assert torch.equal(value, saved[key]), key
    assert opt.optimizer.param_groups[0]["lr"] == lr
    assert torch.equal(torch.rand(3), after_checkpoint)


def test_experiment_settings_leave_the_config_unchanged():
    config = base_config()
    config["model"]["image"]["weights"] = "imagenet.pt"
    before = copy.deepcopy(config)
    cls3d = experiment_settings(config, "cls3d")               # no image network: its weights are dropped ...
    assert cls3d["model"]["image"]["weights"] is None
    assert config == before                                    # ... in the settings, not in the config
    joint = experiment_settings(config, "joint")
    assert joint["model"]["image"]["weights"] == "imagenet.pt"
    with pytest.raises(ValueError, match="experiment 'nope' is not one of the configured experiments"):
        experiment_settings(config, "nope")
