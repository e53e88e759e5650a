"""Config: the schema is the one place defaults are written, the default config is valid, every mistake names its
key, and the checks across keys live in check_config."""

from __future__ import annotations

import copy
import os
from dataclasses import fields

import pytest

from jointwsss.config import (
    SCHEMA_PATH, ConfigError, check_config, load_schema, load_yaml, reference_markdown, resolve_config, schema_default,
    validate_config,
)

from conftest import REPO, run_cmd

CONFIG_YAML = REPO / "config.yaml"


def default_config() -> dict:
    return load_yaml(CONFIG_YAML)


def _leaves(node: dict, prefix: str = ""):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def _schema_defaults_of_every_key(node: dict, prefix: str = ""):
    for key, sub in node.get("properties", {}).items():
        if "default" in sub:
            yield f"{prefix}{key}"
        yield from _schema_defaults_of_every_key(sub, f"{prefix}{key}.")


def test_config_yaml_holds_no_second_copy_of_a_default():
    """config.yaml sets only keys the schema gives no default: a default written in both places could disagree,
    as 12 of them once did."""
    with_default = set(_schema_defaults_of_every_key(load_yaml(SCHEMA_PATH)))
    keys = set(_leaves(default_config())) | set(default_config())
    copies = sorted(keys & with_default)
    assert not copies, f"config.yaml repeats the schema's defaults of {copies}: keep them in the schema only"
    assert sorted(_leaves(default_config())) == ["dataset.raw_dir", "dataset.source", "experiment"]


def test_code_defaults_of_config_settings_are_the_schemas():
    """The dataclasses and CLI options that stand for a config setting take their default from the schema."""
    from jointwsss.cli import build_parser
    from jointwsss.synth.s3dis import SynthS3DISConfig
    from jointwsss.synth.scannet import SynthScanNetConfig

    resolved = resolve_config(CONFIG_YAML)
    scannet = SynthScanNetConfig()
    for f in fields(SynthScanNetConfig):
        if f.name in resolved["synth"]:
            assert getattr(scannet, f.name) == type(getattr(scannet, f.name))(resolved["synth"][f.name]), f.name
    s3dis = SynthS3DISConfig()
    assert s3dis.area == resolved["s3dis"]["area"]
    for key, value in resolved["s3dis"]["synth"].items():
        assert getattr(s3dis, key) == value, key

    def option(command: list[str], dest: str):
        parser = build_parser()
        sub = parser._subparsers._group_actions[0].choices[command[0]]
        for name in command[1:]:
            sub = sub._subparsers._group_actions[0].choices[name]
        return next(a for a in sub._actions if a.dest == dest)

    assert option(["infer"], "passes_3d").default == resolved["eval"]["passes_3d"] == 2
    assert option(["infer"], "seed").default == resolved["seed"]
    assert option(["infer"], "device").default == resolved["train"]["device"]
    assert option(["synth", "s3dis"], "area").default == resolved["s3dis"]["area"]
    assert tuple(option(["train"], "device").choices) == ("auto", "cpu", "cuda")


def test_standalone_synth_and_the_pipeline_make_the_same_scene(tmp_path):
    """`jointwsss synth scannet` with no settings writes the default pipeline's scene byte for byte (the rule passes
    every scene setting of the resolved default config)."""
    import json

    from jointwsss.synth.scannet import SCENE_KEYS

    resolved = resolve_config(CONFIG_YAML)
    small = {"frames_per_scene": 6, "color_size": [96, 72], "depth_size": [64, 48]}  # keeps the test fast
    pipeline = json.dumps({**{key: resolved["synth"][key] for key in SCENE_KEYS}, **small})
    run_cmd(["jointwsss", "synth", "scannet", "--out", str(tmp_path / "a"), "--scene", "scene0003_00",
             "--settings", pipeline])
    run_cmd(["jointwsss", "synth", "scannet", "--out", str(tmp_path / "b"), "--scene", "scene0003_00",
             "--settings", json.dumps(small)])
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files_a) == 5
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_default_and_shipped_configs_are_valid():
    cfg = resolve_config(CONFIG_YAML)
    assert cfg["dataset"]["source"] == "synthetic"
    assert cfg["synth"]["num_train_scenes"] == 48 and cfg["frames"]["image_size"] == [160, 120]
    for extra in sorted((REPO / "workflow" / "configs").glob("*.yaml")):
        resolve_config(CONFIG_YAML, extra)


def test_defaults_are_filled_in_and_experiments_merge():
    cfg = default_config()
    cfg["synth"] = {"seed": 3}
    cfg["experiments"] = {"mine": {"losses": ["cls3d"]}, "joint": {"confidence": False}}
    validate_config(cfg)
    assert cfg["synth"]["jpeg_quality"] == 90 and cfg["synth"]["seed"] == 3
    assert cfg["dataset"]["splits"] == ["train", "val"]
    # the paper's rows stay, an added entry joins them with its own defaults, a given field overrides one
    assert list(cfg["experiments"])[:8] == ["cls2d", "cls3d", "to2d_noconf", "to2d", "to3d_noconf", "to3d", "joint",
                                            "pcam_like"]
    assert cfg["experiments"]["mine"] == {"losses": ["cls3d"], "confidence": True}
    assert cfg["experiments"]["joint"] == {"losses": ["cls2d", "cls3d", "to3d", "to2d"], "confidence": False,
                                           "table_row": "2D and 3D, last rows"}


def test_every_table_row_has_a_default_experiment():
    from jointwsss.ablation import TABLE2_ROWS, TABLE4_ROWS

    experiments = schema_default("experiments")
    assert {name for _, name, *_ in TABLE2_ROWS + TABLE4_ROWS} <= set(experiments)


def test_misspelled_key_is_named_with_a_suggestion():
    cfg = default_config()
    cfg["synth"] = {"frames_per_scen": 40}
    with pytest.raises(ConfigError) as exc:
        validate_config(cfg, source="config.yaml")
    msg = str(exc.value)
    assert "synth.frames_per_scen: unknown key" in msg
    assert "did you mean 'frames_per_scene'?" in msg
    assert msg.startswith("config.yaml:")


def test_misspelled_top_level_key_and_wrong_type_are_both_reported():
    cfg = default_config()
    cfg["datset"] = cfg.pop("dataset")
    cfg["synth"] = {"seed": "zero"}
    with pytest.raises(ConfigError) as exc:
        validate_config(cfg)
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
    cfg.setdefault(path[0], {})[path[1]] = value
    with pytest.raises(ConfigError) as exc:
        validate_config(cfg)
    assert expected in str(exc.value)


@pytest.mark.parametrize(
    "override, expected",
    [
        ({"dataset": {"source": "download"}}, "scannet.base_url is empty but dataset.source is 'download'"),
        ({"dataset": {"source": "local", "raw_dir": "/nonexistent/scannet"}},
         "dataset.source is 'local' but /nonexistent/scannet/scans does not exist"),
        ({"experiment": "nope"}, "experiment: 'nope' is not one of the keys of experiments: cls2d, cls3d"),
        ({"experiments": {"pretrain_image": {"losses": ["cls2d"]}}}, "experiments.pretrain_image: the name is reserved"),
        ({"s3dis": {"cache_dir": "data/cache"}}, "s3dis.cache_dir equals cache_dir (data/cache)"),
        ({"s3dis": {"source": "local", "raw_dir": "/nonexistent/s3dis"}},
         "s3dis.source is 'local' but /nonexistent/s3dis/Stanford3dDataset_v1.2_Aligned_Version/Area_5 does not exist"),
    ],
)
def test_check_config_names_each_contradiction(override, expected):
    from jointwsss.config import _deep_update

    cfg = _deep_update(default_config(), override)
    with pytest.raises(ConfigError) as exc:
        check_config(cfg, source="my.yaml")
    assert str(exc.value).startswith("my.yaml: invalid configuration")
    assert expected in str(exc.value)


def test_check_config_warns_where_the_image_network_would_start_from_nothing(tmp_path):
    from jointwsss.config import _deep_update

    (tmp_path / "scans").mkdir()
    cfg = default_config()
    cfg["dataset"].update(source="local", raw_dir=str(tmp_path))
    warnings = check_config(cfg)
    assert len(warnings) == 2 and "pretrain.image 'synthetic' needs dataset.source synthetic" in warnings[0]
    assert "model.image.freeze_bn is true but the image network starts from random weights" in warnings[1]
    cfg["model"] = {"image": {"freeze_bn": False}}  # random weights with batch norm that trains: only the first
    assert [w for w in check_config(cfg) if "freeze_bn" in w] == [] and len(check_config(cfg)) == 1
    cfg = _deep_update(default_config(), {"pretrain": {"image": "none"}})  # synthetic data, no pretraining
    expected = ("model.image.freeze_bn is true but the image network starts from random weights (no "
                "model.image.weights, no synthetic pretraining)")
    assert [w.split(":")[1].strip() for w in check_config(cfg)] == [expected]
    cfg = default_config()
    cfg["model"] = {"image": {"weights": str(tmp_path / "ilsvrc.params")}}
    assert "ilsvrc.params not found -- download" in " ".join(check_config(cfg))
    assert check_config(default_config()) == []


def test_config_show_prints_the_resolved_config(tmp_path):
    import yaml

    mine = tmp_path / "mine.yaml"
    mine.write_text("train:\n  epochs: 3\n")
    proc = run_cmd(["jointwsss", "config", "show", str(CONFIG_YAML), str(mine)])
    shown = yaml.safe_load(proc.stdout)
    assert shown["train"]["epochs"] == 3 and shown["train"]["lr"] == 0.003 and shown["experiment"] == "joint"
    assert list(shown)[:3] == ["dataset", "scannet", "synth"]  # the schema's order
    assert "# synth.real_size" not in proc.stdout
    mine.write_text("synth:\n  real_size: true\n")
    shown = run_cmd(["jointwsss", "config", "show", str(CONFIG_YAML), str(mine)]).stdout
    assert shown.splitlines()[-1] == ("# synth.real_size: the generator uses color_size (1296, 968), depth_size "
                                      "(640, 480), frames_per_scene 1500, mesh_vertex_spacing_m 0.03 in place of the "
                                      "values above (jointwsss.synth.scannet.REAL_SIZE)")
    bad = run_cmd(["jointwsss", "config", "show", str(tmp_path / "missing.yaml")], check=False)
    assert bad.returncode == 2 and "missing.yaml: cannot read the config file" in bad.stderr


def test_configuration_reference_page_is_generated_from_the_schema():
    page = (REPO / "docs" / "configuration.md").read_text()
    assert page == reference_markdown(), "run `jointwsss config reference > docs/configuration.md`"
    assert "| `frames.image_size` | array | `[160, 120]` |" in page
    assert "| `dataset.source` | `synthetic` \\| `download` \\| `local` | **required** |" in page


def test_schema_is_parsed_once_but_every_caller_gets_its_own_copy(tmp_path):
    """load_schema caches the parse (every CLI call of every rule reads the schema) yet no caller can change what
    the next one reads, and an edited schema file is read again."""
    first = load_schema()
    assert first == load_yaml(SCHEMA_PATH)
    first["properties"]["seed"]["default"] = 12345
    assert load_schema()["properties"]["seed"]["default"] == 0
    scale = schema_default("augment.image_scale_range")  # read from the shared parse, returned as a copy
    scale.append(9.0)
    assert schema_default("augment.image_scale_range") == [1.0, 1.25]
    schema = tmp_path / "schema.yaml"
    schema.write_text("type: object\nproperties: {a: {type: integer, default: 1}}\n")
    assert load_schema(schema)["properties"]["a"]["default"] == 1
    schema.write_text("type: object\nproperties: {a: {type: integer, default: 2}}\n")
    os.utime(schema, ns=(schema.stat().st_atime_ns, schema.stat().st_mtime_ns + 10**9))
    assert load_schema(schema)["properties"]["a"]["default"] == 2
    assert validate_config({}, schema) == {"a": 2}
