"""The configuration: its schema (the one place every default is written), validation with messages that name
the offending key, and the checks across keys and files that the schema cannot express.

The Snakefile calls :func:`check_config` once; `jointwsss config show` prints what it resolves. jsonschema does the
checking, this module turns its errors into one readable message per problem (``dataset.sorce: unknown key ...``).
"""

from __future__ import annotations

import copy
import difflib
import functools
import os
from pathlib import Path
from typing import Any

import yaml


#: The config's JSON schema, shipped inside the package: every key, its type, its meaning and its default.
SCHEMA_PATH = Path(__file__).resolve().parent / "resources" / "config.schema.yaml"


class ConfigError(ValueError):
    """The configuration does not match the schema; the message lists every problem with its key."""


# libyaml's loader where PyYAML was built with it: the schema is parsed by every CLI call of every rule, and the
# pure-Python loader took ~0.1 s a parse (about a second of each `jointwsss synth` call)
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: str | os.PathLike) -> Any:
    """The parsed YAML (or JSON) file at ``path``."""
    with open(path) as f:
        return yaml.load(f, Loader=_SAFE_LOADER)


@functools.lru_cache(maxsize=8)
def _parsed_schema(resolved_path: str, mtime_ns: int) -> Any:
    return load_yaml(resolved_path)


def _shared_schema(schema_path: str | os.PathLike) -> dict:
    """The one parse of the schema at ``schema_path`` this process shares (again if the file changes): read it,
    never change it."""
    resolved = Path(schema_path).resolve()
    return _parsed_schema(str(resolved), resolved.stat().st_mtime_ns)


def load_schema(schema_path: str | os.PathLike = SCHEMA_PATH) -> dict:
    """The parsed schema at ``schema_path``: parsed once per process (and again if the file changes), a fresh copy
    each call so that no caller can change another's."""
    return copy.deepcopy(_shared_schema(schema_path))


def _dotted(path) -> str:
    parts = [str(p) if not isinstance(p, int) else f"[{p}]" for p in path]
    out = ""
    for p in parts:
        out += p if p.startswith("[") or not out else "." + p
    return out or "<top level>"


def _subschema(schema: dict, path) -> dict:
    node = schema
    for p in path:
        if isinstance(p, int):
            node = node.get("items", {})
        else:
            node = node.get("properties", {}).get(p, {})
    return node


def _describe(error, schema: dict) -> list[str]:
    """Readable lines for one ``jsonschema.ValidationError``."""
    where = list(error.absolute_path)
    if error.validator == "additionalProperties":
        known = sorted(_subschema(schema, where).get("properties", {}))
        allowed = set(known)
        msgs = []
        for key in error.instance:
            if key in allowed:
                continue
            key_path = _dotted(where + [key])
            hint = difflib.get_close_matches(str(key), known, n=1) or [
                k for k in known if k.startswith(str(key)) or str(key).startswith(k)
            ][:1]
            suggestion = f"did you mean '{hint[0]}'?" if hint else f"known keys: {', '.join(known)}"
            msgs.append(f"{key_path}: unknown key ({suggestion})")
        return msgs
    if error.validator == "required":
        return [f"{_dotted(where)}: {error.message}"]
    return [f"{_dotted(where)}: {error.message}"]


def _deep_update(base: dict, override: dict) -> dict:
    """``base`` with the entries of ``override`` written over it, recursively (Snakemake merges config files so)."""
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def _fill_defaults(schema: dict, instance: Any) -> None:
    """Insert schema defaults for missing keys, recursively (objects only).

    A mapping default (``experiments``: the paper's rows) is merged with what the config gives, so an added
    entry does not remove the default ones; the entries of a mapping get their own defaults too.
    """
    if not isinstance(instance, dict):
        return
    for key, sub in schema.get("properties", {}).items():
        if "default" in sub:
            if key not in instance:
                instance[key] = copy.deepcopy(sub["default"])
            elif isinstance(instance[key], dict) and isinstance(sub["default"], dict):
                # the default entries first, in their order, with what the config gives written over them
                instance[key] = _deep_update(copy.deepcopy(sub["default"]), instance[key])
        if key in instance:
            _fill_defaults(sub, instance[key])
    entry_schema = schema.get("additionalProperties")
    if isinstance(entry_schema, dict):
        for key, value in instance.items():
            if key not in schema.get("properties", {}):
                _fill_defaults(entry_schema, value)


def validate_config(config: dict, schema_path: str | os.PathLike = SCHEMA_PATH, *, source: str = "config") -> dict:
    """Validate ``config`` against the YAML/JSON schema at ``schema_path`` and fill in defaults.

    Raises :class:`ConfigError` listing every problem as ``<dotted key>: <what is wrong>``.
    Returns the same (mutated) dict for convenience.
    """
    schema = load_schema(schema_path)
    if not isinstance(config, dict):
        raise ConfigError(f"{source}: the configuration must be a mapping of keys to values, got {type(config).__name__}")
    _fill_defaults(schema, config)
    # imported here: it takes ~0.15 s, and every stage job's CLI imports this module for the schema's defaults only
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    problems: list[str] = []
    for error in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        problems.extend(_describe(error, schema))
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise ConfigError(f"{source}: invalid configuration ({Path(schema_path).name}):\n{lines}")
    return config


def check_config(config: dict, *, source: str = "config") -> list[str]:
    """Everything that makes a configuration usable, checked in one place (the Snakefile calls this first).

    Validates ``config`` against the schema and fills in its defaults (:func:`validate_config`), then checks what
    one key cannot say alone: settings that contradict each other and the folders and files they name. Raises
    :class:`ConfigError` listing every problem with its key and its fix; returns the warnings (things that run,
    but not as the user probably meant), one line each.
    """
    from jointwsss.experiments import PRETRAIN_EXPERIMENT, pretrained_image_weights

    validate_config(config, source=source)
    problems, warnings = [], []
    dataset, raw_dir = config["dataset"], Path(config["dataset"]["raw_dir"])
    if dataset["source"] == "download" and not config["scannet"]["base_url"]:
        problems.append("scannet.base_url is empty but dataset.source is 'download' -- set scannet.base_url to the URL "
                        "you received after accepting the ScanNet terms of use, or use dataset.source: local / synthetic")
    if dataset["source"] == "local" and not (raw_dir / "scans").is_dir():
        problems.append(f"dataset.source is 'local' but {raw_dir / 'scans'} does not exist -- point dataset.raw_dir at "
                        "your ScanNet copy (the folder holding scans/ and scannetv2-labels.combined.tsv)")
    if PRETRAIN_EXPERIMENT in config["experiments"]:
        problems.append(f"experiments.{PRETRAIN_EXPERIMENT}: the name is reserved for the image network's pretraining "
                        "-- rename that experiment")
    if config["experiment"] not in config["experiments"]:
        problems.append(f"experiment: '{config['experiment']}' is not one of the keys of experiments: "
                        f"{', '.join(config['experiments'])}")
    step = config["synth"]["rendered_frame_step"]
    if dataset["source"] == "synthetic" and config["frames"]["skip"] % step:
        problems.append(f"frames.skip {config['frames']['skip']} is not a multiple of synth.rendered_frame_step {step}: "
                        "the frames it reads would repeat rendered ones -- make frames.skip a multiple of it, or set "
                        "synth.rendered_frame_step 1 (every frame rendered)")
    problems += _s3dis_problems(config)
    weights = config["model"]["image"]["weights"]
    if weights and not Path(weights).is_file():
        from jointwsss.imagenet_weights import GOOD_COPY_FIX

        fix = GOOD_COPY_FIX if str(weights).endswith(".params") else "give the path of an existing state dict"
        warnings.append(f"model.image.weights {weights} not found -- {fix}")
    if config["pretrain"]["image"] == "synthetic" and dataset["source"] != "synthetic" and not weights:
        warnings.append(f"pretrain.image 'synthetic' needs dataset.source synthetic; with '{dataset['source']}' the "
                        "image network starts from random weights -- set model.image.weights to PSA's ImageNet file "
                        "(README, 'ImageNet weights')")
    if config["model"]["image"]["freeze_bn"] and not pretrained_image_weights(config):
        # Frozen BN of random weights is the identity (running mean 0, variance 1): nothing normalises the 38 layers,
        # and Adam at the paper's lr drives the logits to ~1e14 within a few steps.
        warnings.append("model.image.freeze_bn is true but the image network starts from random weights (no "
                        "model.image.weights, no synthetic pretraining): its batch norm has no statistics to freeze "
                        "and training diverges -- set model.image.freeze_bn: false")
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise ConfigError(f"{source}: invalid configuration:\n{lines}")
    return [f"{source}: {w}" for w in warnings]


def _s3dis_problems(config: dict) -> list[str]:
    """The Table 4 settings (s3dis.*) against the rest: separate caches, and a local area that exists."""
    from jointwsss.preprocess.s3dis import s3dis_area_dir

    s3dis, problems = config["s3dis"], []
    if Path(s3dis["cache_dir"]).resolve() == Path(config["cache_dir"]).resolve():
        problems.append(f"s3dis.cache_dir equals cache_dir ({config['cache_dir']}) -- S3DIS rooms and ScanNet scenes "
                        "need separate caches")
    area_dir = s3dis_area_dir(s3dis["raw_dir"], s3dis["area"])
    if s3dis["source"] == "local" and not area_dir.is_dir():
        problems.append(f"s3dis.source is 'local' but {area_dir} does not exist -- point s3dis.raw_dir at the folder "
                        "holding Stanford3dDataset_v1.2_Aligned_Version/ and 2D-3D-Semantics/")
    return problems


def resolve_config(*config_files: str | os.PathLike) -> dict:
    """The configuration of ``config_files`` merged in order, as Snakemake merges ``--configfile`` files over
    ``config.yaml``, with the schema's defaults filled in (validated; ConfigError names the file and key)."""
    config: dict = {}
    for path in config_files:
        try:
            data = load_yaml(path) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read the config file ({exc})") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a config file must be a mapping of keys to values, got {type(data).__name__}")
        _deep_update(config, data)
    validate_config(config, source=", ".join(map(str, config_files)) or "the schema's defaults")
    return _in_schema_order(config, load_schema())


def _in_schema_order(config: Any, schema: dict) -> Any:
    """``config`` with the keys of every section in the schema's order (the order the reference lists them)."""
    if not isinstance(config, dict) or "properties" not in schema:
        return config
    props = schema["properties"]
    ordered = {key: _in_schema_order(config[key], props[key]) for key in props if key in config}
    return {**ordered, **{key: value for key, value in config.items() if key not in ordered}}


def _schema_node(dotted_key: str, schema_path) -> dict:
    """One key's node of the shared parse; its callers copy what they return from it."""
    node = _shared_schema(schema_path)
    for part in filter(None, dotted_key.split(".")):
        node = node["properties"][part]
    return node


def schema_default(dotted_key: str, schema_path: str | os.PathLike = SCHEMA_PATH) -> Any:
    """The schema's default of one key (dotted: ``"eval.passes_3d"``); KeyError if it has none."""
    return copy.deepcopy(_schema_node(dotted_key, schema_path)["default"])


def schema_choices(dotted_key: str, schema_path: str | os.PathLike = SCHEMA_PATH) -> tuple:
    """The values the schema allows for one key (its ``enum``)."""
    return tuple(_schema_node(dotted_key, schema_path)["enum"])


def schema_defaults(section: str, schema_path: str | os.PathLike = SCHEMA_PATH) -> dict:
    """``{key: default}`` of the keys of one config section (dotted: ``"s3dis.synth"``) that the schema gives
    a default."""
    node = _schema_node(section, schema_path)
    return {key: copy.deepcopy(sub["default"]) for key, sub in node["properties"].items() if "default" in sub}


def stage_settings(settings: dict, required, known, *, what: str, fix: str) -> dict:
    """``settings`` (one stage's settings, passed as JSON) checked for ``required`` and unknown keys.

    Raises ConfigError naming every missing and every unknown key, then ``fix``.
    """
    if not isinstance(settings, dict):
        raise ConfigError(f"{what} must be a JSON object of settings, got {type(settings).__name__} -- {fix}")
    problems = [f"lack {', '.join(k for k in required if k not in settings)}"] if set(required) - set(settings) else []
    unknown = sorted(set(settings) - set(known))
    if unknown:
        problems.append(f"have unknown keys {', '.join(unknown)}")
    if problems:
        raise ConfigError(f"{what} {' and '.join(problems)} -- {fix}")
    return settings


def reference_markdown(schema_path: str | os.PathLike = SCHEMA_PATH) -> str:
    """docs/configuration.md: every key of the schema with its type, default and meaning, as one Markdown table
    (`jointwsss config reference` prints it; a test keeps the committed page equal to it)."""
    schema = load_schema(schema_path)
    lines = ["# Configuration reference", "",
             "Generated from `jointwsss/resources/config.schema.yaml` by `jointwsss config reference`; do not edit. "
             "The schema is the one place a default is written. `config.yaml` sets only the keys without a default; "
             "`jointwsss config show config.yaml [your.yaml ...]` prints the resolved configuration.", "",
             "| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    lines += [f"| `{key}` | {kind} | {default} | {meaning} |" for key, kind, default, meaning in _reference_rows(schema)]
    return "\n".join(lines) + "\n"


def _reference_rows(node: dict, prefix: str = ""):
    required = set(node.get("required", ()))
    for key, sub in node.get("properties", {}).items():
        dotted = f"{prefix}{key}"
        if "properties" in sub:
            yield from _reference_rows(sub, dotted + ".")
            continue
        entry = sub.get("additionalProperties")
        if isinstance(entry, dict) and "properties" in entry:
            names = ", ".join(f"`{name}`" for name in sub.get("default", {}))
            yield dotted, "mapping", names or "–", _cell(sub.get("description", ""))
            yield from _reference_rows(entry, f"{dotted}.<name>.")
            continue
        default = f"`{_flow_yaml(sub['default'])}`" if "default" in sub else "**required**" if key in required else "–"
        yield dotted, _kind(sub), default, _cell(sub.get("description", ""))


def _kind(sub: dict) -> str:
    if "enum" in sub:
        return " \\| ".join(f"`{v}`" for v in sub["enum"])
    kind = sub.get("type", "")
    return " or ".join(kind) if isinstance(kind, list) else kind


def _flow_yaml(value: Any) -> str:
    """A default as YAML flow style writes it (``[160, 120]``, ``null``, ``true``)."""
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("\n...").strip()


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")
