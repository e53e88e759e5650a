"""Config validation with messages that name the offending key.

The Snakefile and the tests call :func:`validate_config`; jsonschema does the checking, this module
turns its errors into one readable message per problem (``dataset.sorce: unknown key ...``).
"""

from __future__ import annotations

import copy
import difflib
import os
from pathlib import Path
from typing import Any

import jsonschema
import yaml


#: The config's JSON schema: every key, its type and its default (the only place defaults are written).
SCHEMA_PATH = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """The configuration does not match the schema; the message lists every problem with its key."""


def load_yaml(path: str | os.PathLike) -> Any:
    with open(path) as f:
        return yaml.safe_load(f)


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


def _describe(error: jsonschema.ValidationError, schema: dict) -> list[str]:
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


def _fill_defaults(schema: dict, instance: Any) -> None:
    """Insert schema defaults for missing keys, recursively (objects only)."""
    if not isinstance(instance, dict):
        return
    for key, sub in schema.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance:
            _fill_defaults(sub, instance[key])


def validate_config(config: dict, schema_path: str | os.PathLike, *, source: str = "config") -> dict:
    """Validate ``config`` against the YAML/JSON schema at ``schema_path`` and fill in defaults.

    Raises :class:`ConfigError` listing every problem as ``<dotted key>: <what is wrong>``.
    Returns the same (mutated) dict for convenience.
    """
    schema = load_yaml(schema_path)
    if not isinstance(config, dict):
        raise ConfigError(f"{source}: the configuration must be a mapping of keys to values, got {type(config).__name__}")
    _fill_defaults(schema, config)
    validator = jsonschema.Draft202012Validator(schema)
    problems: list[str] = []
    for error in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        problems.extend(_describe(error, schema))
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise ConfigError(f"{source}: invalid configuration ({Path(schema_path).name}):\n{lines}")
    return config


def schema_defaults(section: str, schema_path: str | os.PathLike = SCHEMA_PATH) -> dict:
    """``{key: default}`` of the keys of one config section (dotted: ``"s3dis.synth"``) that the schema gives
    a default."""
    node = load_yaml(schema_path)
    for part in section.split("."):
        node = node["properties"][part]
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
