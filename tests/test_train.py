"""The trainer: reproducible CPU runs, exact resume, non-finite loss handling, two-process gloo DDP."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import jointwsss.train as train_module
from jointwsss.runs import CHECKPOINT, FINAL_MODEL, load_checkpoint
from jointwsss.train import NonFiniteLossError, train

from conftest import run_cmd, tiny_settings


def _metrics(run_dir: Path) -> list[dict]:
    """The epochs of a run's metrics.jsonl."""
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def weights(run_dir: Path) -> dict:
    return load_checkpoint(run_dir / FINAL_MODEL)["models"]


def assert_same_weights(a: dict, b: dict):
    assert a.keys() == b.keys()
    for net in a:
        for key in a[net]:
            assert torch.equal(a[net][key], b[net][key]), f"{net}.{key} differs"


def test_fixed_seed_gives_identical_cpu_runs_and_the_loss_falls(tiny_cache, tmp_path):
    settings = tiny_settings(tiny_cache, epochs=3, milestones=[3])
    train(settings, tmp_path / "a")
    train(settings, tmp_path / "b")
    assert_same_weights(weights(tmp_path / "a"), weights(tmp_path / "b"))
    lines = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2, 3]
    assert lines[-1]["loss"]["total"] < lines[0]["loss"]["total"]
    assert set(lines[0]["loss"]) == {"cls2d", "cls3d", "to3d", "to2d", "total"}
    assert (tmp_path / "a" / "tb").is_dir() and any((tmp_path / "a" / "tb").iterdir())
    assert json.loads((tmp_path / "a" / "config.json").read_text()) == settings


def test_resume_after_epoch_1_gives_the_same_final_weights(tiny_cache, tmp_path):
    settings = tiny_settings(tiny_cache)
    train(settings, tmp_path / "full")
    stopped = train(settings, tmp_path / "resumed", stop_after_epoch=1)
    assert stopped["epoch"] == 1
    assert not (tmp_path / "resumed" / FINAL_MODEL).exists()
    assert load_checkpoint(tmp_path / "resumed" / CHECKPOINT)["epoch"] == 0
    train(settings, tmp_path / "resumed")
    assert_same_weights(weights(tmp_path / "full"), weights(tmp_path / "resumed"))


def _train_cli(settings_file: Path, run_dir: Path, *args: str):
    return run_cmd(["jointwsss", "train", "--run-dir", str(run_dir), "--settings", f"@{settings_file}", *args],
                   timeout=600)


def test_resume_with_other_workers_and_device_continues_and_ends_as_the_uncut_run(tiny_cache, tmp_path):
    """The rule derives --num-workers from --cores: a run cut after epoch 1 and rerun with other workers (and
    persistent DataLoader workers) and another device string continues at epoch 2 and ends with the weights of the
    uncut run. Three epochs, so an epoch after the first resumed one counts too."""
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(json.dumps(tiny_settings(tiny_cache, epochs=3, milestones=[2])))
    _train_cli(settings_file, tmp_path / "uncut", "--num-workers", "0", "--device", "cpu")
    _train_cli(settings_file, tmp_path / "cut", "--num-workers", "0", "--device", "cpu", "--stop-after-epoch", "1")
    proc = _train_cli(settings_file, tmp_path / "cut", "--num-workers", "2", "--device", "auto")
    assert "resuming after epoch 1" in proc.stderr and "starting from scratch" not in proc.stderr, proc.stderr
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3]
    assert_same_weights(weights(tmp_path / "uncut"), weights(tmp_path / "cut"))


def test_the_workers_do_not_change_the_weights(tiny_cache, tmp_path):
    """Every DataLoader draws its workers' base seed from a generator of its own, so the torch RNG that drives
    dropout is the same with 0 workers (a new iterator per epoch) and with persistent workers (one iterator)."""
    base = tiny_settings(tiny_cache, epochs=2, milestones=[2])
    train(base, tmp_path / "w0")
    train({**base, "train": {**base["train"], "num_workers": 2}}, tmp_path / "w2")
    assert_same_weights(weights(tmp_path / "w0"), weights(tmp_path / "w2"))


def test_result_settings_ignore_the_non_result_keys_wherever_they_sit():
    from jointwsss.experiments import NON_RESULT_KEYS, result_settings
    from jointwsss.train import settings_hash

    settings = {"experiment": "joint", "train": {"lr": 0.003, "num_workers": 1, "device": "cpu", "gpus": 0},
                "device": "cuda", "model": {"image": {"weights": None}}}
    assert NON_RESULT_KEYS == ("num_workers", "device", "gpus")
    assert result_settings(settings) == {"experiment": "joint", "train": {"lr": 0.003},
                                         "model": {"image": {"weights": None}}}
    other = {**settings, "train": {**settings["train"], "num_workers": 7, "device": "auto"}}
    assert settings_hash(other) == settings_hash(settings)
    assert settings_hash({**settings, "train": {**settings["train"], "lr": 0.001}}) != settings_hash(settings)


def test_checkpoint_of_other_settings_is_not_resumed_and_the_log_says_why(tiny_cache, tmp_path, caplog):
    train(tiny_settings(tiny_cache), tmp_path / "run", stop_after_epoch=1)
    other = tiny_settings(tiny_cache, lr=0.001)
    with caplog.at_level("WARNING", logger="jointwsss"):
        last = train(other, tmp_path / "run")
    assert last["epoch"] == 2
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 1, 2]   # the second run started again at epoch 1
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert "belongs to other settings" in warning and "train.lr: 0.003 -> 0.001; starting from scratch" in warning


def test_non_finite_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(tiny_cache, tmp_path, monkeypatch):
    settings = tiny_settings(tiny_cache, epochs=3)
    run = tmp_path / "run"
    train(settings, run, stop_after_epoch=1)
    good = (run / CHECKPOINT).read_bytes()
    real_total_loss = train_module.total_loss

    def poisoned(x, sw):
        terms = real_total_loss(x, sw)
        terms["to3d"] = terms["to3d"] * float("nan")
        terms["total"] = sum(v for k, v in terms.items() if k != "total")
        return terms

    monkeypatch.setattr(train_module, "total_loss", poisoned)
    with pytest.raises(NonFiniteLossError) as exc:
        train(settings, run)
    msg = str(exc.value)
    assert "epoch 2, step 1" in msg and "to3d=nan" in msg and str(run / CHECKPOINT) in msg
    assert (run / CHECKPOINT).read_bytes() == good
    assert not (run / FINAL_MODEL).exists()


@pytest.mark.parametrize("experiment, nets", [("cls2d", {"image"}), ("cls3d", {"point"}), ("pcam_like", {"image", "point"})])
def test_experiments_train_only_the_networks_they_need(tiny_cache, tmp_path, experiment, nets):
    settings = tiny_settings(tiny_cache, experiment, epochs=1, milestones=[1])
    train(settings, tmp_path / experiment)
    assert set(weights(tmp_path / experiment)) == nets


@pytest.mark.slow
def test_two_process_gloo_ddp(tiny_cache, tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(__import__("sys").executable).parent))
    settings = tiny_settings(tiny_cache, epochs=2, batch_size=4)
    (tmp_path / "settings.json").write_text(json.dumps(settings))
    proc = run_cmd([torchrun, "--standalone", "--nproc-per-node", "2", "--no-python", "jointwsss", "train",
                    "--run-dir", str(tmp_path / "ddp"), "--settings", f"@{tmp_path / 'settings.json'}",
                    "--num-workers", "0", "--device", "cpu"], timeout=600)
    out = proc.stdout + proc.stderr
    assert "ranks in sync" in out, out
    final = load_checkpoint(tmp_path / "ddp" / FINAL_MODEL)
    assert set(final["models"]) == {"image", "point"}
    lines = [json.loads(x) for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2]      # written once (rank 0), not once per rank


def test_incomplete_settings_are_a_clear_error(tmp_path):
    proc = run_cmd(["jointwsss", "train", "--run-dir", str(tmp_path), "--settings", '{"experiment": "joint"}'],
                   check=False)
    assert proc.returncode == 2
    assert "training settings lack losses, confidence, cache_dir" in proc.stderr and "train.amp" in proc.stderr


def test_pretraining_settings_need_their_tasks_keys(repo):
    from jointwsss.config import ConfigError, load_yaml, validate_config
    from jointwsss.experiments import check_settings, pretrain_settings

    config = validate_config(load_yaml(repo / "config.yaml"))
    frames = pretrain_settings(config, ["scene0000_00"])
    crops = pretrain_settings({**config, "pretrain": {**config["pretrain"], "task": "crops"}}, ["scene0000_00"])
    assert check_settings(frames) is frames and check_settings(crops) is crops
    del frames["pixel_loss"], crops["crops"]
    with pytest.raises(ConfigError, match=r"training settings lack pixel_loss --"):
        check_settings(frames)
    with pytest.raises(ConfigError, match=r"training settings lack crops --"):
        check_settings(crops)


def test_pretrained_image_network_starts_every_image_experiment(tiny_cache, tmp_path):
    """pretrain.image: synthetic -- the pretraining's backbone (not its CAM head) initialises the experiments; both
    pretraining tasks (labelled frames, object crops) train."""
    from jointwsss.config import load_yaml, validate_config
    from jointwsss.experiments import experiment_settings, pretrain_settings
    from jointwsss.networks import build_networks
    from jointwsss.train import settings_hash

    from conftest import REPO

    config = validate_config(load_yaml(REPO / "config.yaml"))
    config.update(cache_dir=str(tiny_cache), runs_dir=str(tmp_path / "runs"))
    config["pretrain"].update(image="synthetic", epochs=1)
    config["points"]["num"] = 512
    config["train"].update(batch_size=2, num_workers=0, device="cpu")
    config["pretrain"].update(batch_size=4, crop_size=32)
    # the tiny cache has no pretrain scenes; its train scenes stand in for them (the code path is the same)
    pre = pretrain_settings(config, ["scene0000_00", "scene0001_00"])
    assert (pre["losses"], pre["scenes"], pre["train"]["epochs"], pre["train"]["batch_size"],
            pre["model"]["image"]["weights"]) == (["pixel_cls"], ["scene0000_00", "scene0001_00"], 1, 4, None)
    assert (pre["pixel_loss"], pre["train"]["milestones"]) == ("one_vs_rest", config["pretrain"]["milestones"])
    crops = pretrain_settings({**config, "pretrain": {**config["pretrain"], "task": "crops"}}, pre["scenes"])
    assert (crops["losses"], crops["crops"]) == (["object_cls"], {"size": 32, "min_area_fraction": 0.005})
    assert "pixel_loss" not in crops and "frame_crop" not in crops
    assert pre.get("frame_crop") == config["pretrain"]["frame_crop"]   # absent where null, as runs before the key
    pre["frame_crop"] = [24, 16]                                       # the pretraining on random windows of frames
    for settings, run in ((crops, "pretrain_crops"), (pre, "pretrain_image")):
        settings["train"].update(num_workers=0, device="cpu")  # given on the command line by the rule
        train(settings, tmp_path / "runs" / run)
    assert set(_metrics(tmp_path / "runs" / "pretrain_crops")[-1]["loss"]) == {"object_cls", "total"}
    assert set(_metrics(tmp_path / "runs" / "pretrain_image")[-1]["loss"]) == {"pixel_cls", "total"}
    pretrained = weights(tmp_path / "runs" / "pretrain_image")["image"]

    joint = experiment_settings(config, "joint")
    assert joint["model"]["image"]["weights"] == str(tmp_path / "runs" / "pretrain_image" / "model.pt")
    assert experiment_settings(config, "cls3d")["model"]["image"]["weights"] is None  # no image network
    image_net, point_net = build_networks(joint)
    state = image_net.state_dict()
    backbone = [k for k in pretrained if not k.startswith("cam_head.") and not k.endswith("num_batches_tracked")]
    assert len(backbone) > 100
    for key in backbone:
        assert torch.equal(state[key], pretrained[key]), key
    assert not torch.equal(state["cam_head.weight"], pretrained["cam_head.weight"])  # the head starts fresh

    # a re-pretrained file changes the settings hash, so no stale checkpoint is resumed
    before = settings_hash(joint)
    payload = load_checkpoint(tmp_path / "runs" / "pretrain_image" / FINAL_MODEL)
    payload["models"]["image"]["conv1a.weight"] += 1.0
    torch.save(payload, tmp_path / "runs" / "pretrain_image" / FINAL_MODEL)
    assert settings_hash(joint) != before


def test_ground_truth_diagnostics_train_the_point_network_alone(tiny_cache, tmp_path):
    """workflow/configs/oracle.yaml: eq. 7 with ground-truth labels; no image network, no pretrained weights."""
    from jointwsss.config import resolve_config
    from jointwsss.experiments import experiment_settings

    from conftest import REPO

    config = resolve_config(REPO / "config.yaml", REPO / "workflow" / "configs" / "oracle.yaml")
    assert config["runs_dir"] != resolve_config(REPO / "config.yaml")["runs_dir"]  # must not retrain the main runs
    config.update(cache_dir=str(tiny_cache), runs_dir=str(tmp_path / "runs"))
    config["pretrain"]["image"] = "synthetic"
    assert "to3d_labels" not in experiment_settings(config, "to3d")  # the method's settings are unchanged
    for name, mode, terms in (("to3d_gt_visible", "ground_truth_visible", {"to3d", "total"}),
                              ("to3d_gt_visible_scene", "ground_truth_visible", {"cls3d", "to3d", "total"}),
                              ("to3d_gt_all", "ground_truth_all_points", {"to3d", "total"})):
        settings = experiment_settings(config, name)
        assert settings["to3d_labels"] == mode and settings["model"]["image"]["weights"] is None
        settings["points"]["num"] = 512
        settings["train"].update(epochs=1, batch_size=2, num_workers=0, device="cpu", milestones=[])
        metrics = train(settings, tmp_path / "runs" / name)
        assert set(metrics["loss"]) == terms and all(0 < v < 10 for v in metrics["loss"].values())
        assert list(weights(tmp_path / "runs" / name)) == ["point"]
    bad = {**settings, "to3d_labels": "oracle"}
    with pytest.raises(ValueError, match="to3d_labels 'oracle' is not one of"):
        train_module.loss_switches(bad)


def test_default_to3d_labels_agree_between_config_and_losses():
    """experiments.py spells the default without importing torch; it must stay the losses' default."""
    from jointwsss import experiments, losses
    assert experiments.IMAGE_NETWORK_LABELS == losses.IMAGE_NETWORK_LABELS == losses.TO3D_LABELS[0]
    assert losses.LossSwitches().to3d_labels == "image_network"
