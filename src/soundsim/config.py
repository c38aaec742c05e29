"""Load and validate the workflow configuration (``config.yaml``).

The schema is package data, ``soundsim/data/config.schema.yaml`` (JSON Schema,
draft 2020-12; :func:`find_schema`), so an installed soundsim has it too.
This module is the one validator: the workflow (``common.smk``) calls
:func:`validate_config` once at start, and so do the CLI and tests. It turns
jsonschema's errors into messages that name the key and the allowed values, e.g.::

    config.yaml: grid.searches[1]: 'cosine' is not allowed; allowed values: 'mips', 'mcss', 'nns'

Defaults declared in the schema are filled in (as ``snakemake.utils.validate``
would, which the workflow therefore does not call again).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError

from soundsim.errors import ConfigError, SoundsimError

def find_schema() -> Path:
    """The configuration schema shipped with this package
    (``soundsim/data/config.schema.yaml``, :mod:`soundsim.data`): the same
    file in a source checkout and in an installed wheel."""
    from soundsim.data import schema_file

    try:
        return schema_file()
    except SoundsimError as e:
        raise ConfigError(f"{e}; pass --schema") from e


def load_yaml(path: str | Path) -> Any:
    """Read a YAML file; a syntax error names the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        with path.open() as fh:
            return yaml.safe_load(fh)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e


def _with_defaults(cls: type) -> type:
    """jsonschema validator class that also fills in ``default`` values
    (the recipe from the jsonschema FAQ, which Snakemake uses too)."""
    validate_properties = cls.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):  # type: ignore[no-untyped-def]
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if "default" in sub:
                    instance.setdefault(prop, copy.deepcopy(sub["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(cls, {"properties": set_defaults})


_DefaultFillingValidator = _with_defaults(Draft202012Validator)


def _key_path(path: Iterable[Any]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _schema_at(schema: Mapping[str, Any], schema_path: Iterable[Any]) -> Any:
    node: Any = schema
    for p in schema_path:
        node = node[p]
    return node


def _describe_alternative(sub: Mapping[str, Any]) -> str:
    if "const" in sub:
        return repr(sub["const"])
    if "enum" in sub:
        return " or ".join(repr(v) for v in sub["enum"])
    kind = sub.get("type", "value")
    if "minimum" in sub:
        return f"an {kind} >= {sub['minimum']}" if kind == "integer" else f"a {kind} >= {sub['minimum']}"
    return f"a {kind}"


def _format_error(err: ValidationError, schema: Mapping[str, Any]) -> str:
    where = _key_path(err.absolute_path)
    v = err.validator
    if v == "enum":
        allowed = ", ".join(repr(x) for x in err.validator_value)
        return f"{where}: {err.instance!r} is not allowed; allowed values: {allowed}"
    if v == "const":
        return f"{where}: {err.instance!r} is not allowed; allowed value: {err.validator_value!r}"
    if v == "anyOf":
        alts = " or ".join(_describe_alternative(s) for s in err.validator_value)
        return f"{where}: {err.instance!r} is not allowed; use {alts}"
    if v == "additionalProperties":
        props = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(props))
        if props:
            return f"{where}: unknown key(s) {', '.join(map(repr, extra))}; allowed keys: {', '.join(props)}"
        return f"{where}: {err.message}"
    if v == "required":
        path = list(err.absolute_schema_path)
        msg = f"{where}: {err.message}"
        if "then" in path:
            # a conditional requirement: say which condition triggered it
            cond = _schema_at(schema, path[: path.index("then")])["if"]
            for key, sub in cond.get("properties", {}).items():
                if "const" in sub:
                    msg += f" (needed when {where}.{key} is {sub['const']!r})"
        return msg
    if v == "pattern":
        return f"{where}: {err.instance!r} does not match {err.validator_value!r}"
    return f"{where}: {err.message}"


def validate_config(config: dict[str, Any], schema: Mapping[str, Any], source: str = "config") -> dict[str, Any]:
    """Validate ``config`` against ``schema`` in place, filling defaults.

    Raises :class:`ConfigError` listing every problem, one per line, each
    naming the key (``grid.searches[1]``) and the allowed values.
    Returns ``config`` for convenience.
    """
    if not isinstance(config, dict):
        raise ConfigError(f"{source}: expected a mapping of settings, got {type(config).__name__}")
    validator = _DefaultFillingValidator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    if errors:
        lines = [f"{source}: {_format_error(e, schema)}" for e in errors]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines))
    return config


def load_config(path: str | Path, schema_path: str | Path | None = None) -> dict[str, Any]:
    """Read ``path`` (YAML), validate it against the schema (``schema_path``,
    default: :func:`find_schema`) and fill defaults."""
    schema_file = Path(schema_path) if schema_path else find_schema()
    schema = load_yaml(schema_file)
    config = load_yaml(path) or {}
    return validate_config(config, schema, source=str(path))


def collection_dir(config: Mapping[str, Any]) -> Path:
    """``<results>/<collection.name>``: where all outputs of this collection go."""
    return Path(config.get("results", "results")) / config["collection"]["name"]
