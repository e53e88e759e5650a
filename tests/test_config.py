"""Config schema: the default config is valid, and every mistake names its key."""

from __future__ import annotations

import copy

import pytest

from jointwsss.config import ConfigError, load_yaml, validate_config

from conftest import REPO

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def default_config() -> dict:
    return load_yaml(REPO / "config.yaml")


def test_default_and_shipped_configs_are_valid():
    cfg = validate_config(default_config(), SCHEMA)
    assert cfg["dataset"]["source"] == "synthetic"
    for extra in sorted((REPO / "workflow" / "configs").glob("*.yaml")):
        merged = default_config()
        for key, value in load_yaml(extra).items():
            merged[key] = {**merged.get(key, {}), **value} if isinstance(value, dict) else value
        validate_config(merged, SCHEMA, source=str(extra))


def test_defaults_are_filled_in():
    cfg = default_config()
    del cfg["synth"]["jpeg_quality"]
    del cfg["dataset"]["splits"]
    validate_config(cfg, SCHEMA)
    assert cfg["synth"]["jpeg_quality"] == 90
    assert cfg["dataset"]["splits"] == ["train", "val"]


def test_misspelled_key_is_named_with_a_suggestion():
    cfg = default_config()
    cfg["synth"]["frames_per_scen"] = cfg["synth"].pop("frames_per_scene")
    with pytest.raises(ConfigError) as exc:
        validate_config(cfg, SCHEMA, source="config.yaml")
    msg = str(exc.value)
    assert "synth.frames_per_scen: unknown key" in msg
    assert "did you mean 'frames_per_scene'?" in msg
    assert msg.startswith("config.yaml:")


def test_misspelled_top_level_key_and_wrong_type_are_both_reported():
    cfg = default_config()
    cfg["datset"] = cfg.pop("dataset")
    cfg["synth"]["seed"] = "zero"
    with pytest.raises(ConfigError) as exc:
        validate_config(cfg, SCHEMA)
    msg = str(exc.value)
    assert "datset: unknown key (did you mean 'dataset'?)" in msg
    assert "<top level>: 'dataset' is a required property" in msg
    assert "synth.seed: 'zero' is not of type 'integer'" in msg


@pytest.mark.parametrize(
    "path, value, expected",
    [
        (("dataset", "source"), "ftp", "dataset.source: 'ftp' is not one of ['synthetic', 'download', 'local']"),
        (("synth", "color_size"), [320], "synth.color_size: [320] is too short"),
        (("synth", "invalid_pose_fraction"), 0.9, "synth.invalid_pose_fraction: 0.9 is greater than the maximum of 0.5"),
    ],
)
def test_bad_values_name_the_key(path, value, expected):
    cfg = copy.deepcopy(default_config())
    cfg[path[0]][path[1]] = value
    with pytest.raises(ConfigError) as exc:
        validate_config(cfg, SCHEMA)
    assert expected in str(exc.value)
