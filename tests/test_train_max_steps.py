"""train.max_steps: the trainer stops after exactly that many optimiser steps in total, across epochs and resumes,
and ends the run as after its last epoch."""

from __future__ import annotations

import json
import logging

import torch
from conftest import REPO, tiny_settings

import jointwsss.train as train_module
from jointwsss.config import load_yaml, validate_config
from jointwsss.experiments import experiment_settings
from jointwsss.runs import CHECKPOINT, FINAL_MODEL, load_checkpoint
from jointwsss.train import settings_hash, steps_done_before, train


def _count_steps(monkeypatch) -> list[int]:
    """Wrap the real train_step so each call is counted (the step itself runs unchanged)."""
    calls = []
    real = train_module.train_step

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_step", counted)
    return calls


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for net, tensors in a.items():
        assert tensors.keys() == b[net].keys()
        for key, tensor in tensors.items():
            assert torch.equal(tensor, b[net][key]), f"{net}.{key} differs"


def test_max_steps_counts_across_a_resume_takes_exactly_that_many_steps_and_ends_the_run(tiny_cache, tmp_path,
                                                                                       monkeypatch, caplog):
    settings = tiny_settings(tiny_cache, epochs=3, milestones=[3])
    task = train_module.training_task(settings, train_module.loss_switches(settings))
    steps_per_epoch = len(task.dataset) // settings["train"]["batch_size"]   # drop_last, one process
    assert steps_per_epoch >= 2
    limit = steps_per_epoch + 1                  # all of epoch 1, then one step of epoch 2
    limited = tiny_settings(tiny_cache, epochs=3, milestones=[3], max_steps=limit)
    run = tmp_path / "limited"
    calls = _count_steps(monkeypatch)

    train(limited, run, stop_after_epoch=1)      # cut after epoch 1: below the limit, no model.pt
    assert len(calls) == steps_per_epoch and not (run / FINAL_MODEL).exists()
    calls.clear()
    with caplog.at_level(logging.INFO, logger="jointwsss"):
        last = train(limited, run)               # resumes after epoch 1 and takes the one step left
    assert "resuming after epoch 1" in caplog.text
    assert len(calls) == 1
    assert f"stopped at the step limit, train.max_steps {limit}, in epoch 2/3" in caplog.text
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(m["epoch"], m["steps"]) for m in lines] == [(1, steps_per_epoch), (2, limit)]
    # 1 step of 2 items; "seconds" is stored rounded to 0.01 s, samples/s from the unrounded time
    seconds, rate = lines[1]["seconds"], lines[1]["samples_per_second"]
    assert 2 / (seconds + 0.005) - 0.005 <= rate <= 2 / max(seconds - 0.005, 1e-9) + 0.005
    assert lines[1]["max_cuda_memory_allocated_bytes"] is None                  # CPU
    assert last == lines[-1]
    # A normal end: model.pt holds the settings and the checkpoint's weights, of the cut epoch 2 (0-based 1).
    ckpt, model = load_checkpoint(run / CHECKPOINT), load_checkpoint(run / FINAL_MODEL)
    assert ckpt["epoch"] == 1 and model["settings"] == limited
    assert model["settings_hash"] == ckpt["settings_hash"] == settings_hash(limited)
    _assert_same(model["models"], ckpt["models"])

    calls.clear()
    train(limited, run)                          # at the limit already: trains nothing, keeps its files
    assert len(calls) == 0
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    _assert_same(load_checkpoint(run / FINAL_MODEL)["models"], model["models"])


def test_max_steps_is_a_result_setting_written_only_when_set():
    config = validate_config(load_yaml(REPO / "config.yaml"))
    assert config["train"]["max_steps"] is None
    unlimited = experiment_settings(config, "joint")
    assert "max_steps" not in unlimited["train"]     # the hashes of runs without a limit are unchanged
    config["train"]["max_steps"] = 7
    limited = experiment_settings(config, "joint")
    assert limited["train"]["max_steps"] == 7
    assert settings_hash(limited) != settings_hash(unlimited)


def test_steps_done_before_a_resume():
    assert steps_done_before(0, 4, None) == 0
    assert steps_done_before(3, 4, None) == 12
    assert steps_done_before(2, 4, 5) == 5        # the limit cut epoch 2 and ended the run
    assert steps_done_before(1, 4, 9) == 4
