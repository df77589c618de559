"""Typed configuration dataclasses shared by the library, the CLI and the notebooks.

Every concern owns one dataclass (see the module that uses it). They all derive from :class:`ConfigBase`,
which turns flat notebook parameters or a YAML mapping into a validated instance and back, so a notebook's
parameters cell and a CLI config file go through the same checks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from mal.io import atomic_write_text

C = TypeVar("C", bound="ConfigBase")


class ConfigError(ValueError):
    """A configuration value is unknown, missing or of the wrong type."""


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp``; allow only lossless coercions (int→float, list→tuple)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Union or origin is types.UnionType:
        errors = []
        for arg in get_args(tp):
            if arg is type(None):
                if value is None:
                    return None
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"{where}: {value!r} matches none of {_type_name(tp)}")
    if origin is typing.Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{where}: {value!r} is not one of {list(get_args(tp))}")
        return value
    if origin in (list, tuple):
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        args = get_args(tp)
        item_tp = args[0] if args else Any
        items = [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        _, v_tp = get_args(tp) or (Any, Any)
        return {str(k): _coerce(v, v_tp, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type) and issubclass(tp, ConfigBase):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
        return tp.from_params(value, _where=where)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {type(value).__name__} {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {type(value).__name__} {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {type(value).__name__} {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
    return value


@dataclasses.dataclass
class ConfigBase:
    """Base for typed configs: strict construction from mappings, YAML round trip and a stable hash."""

    @classmethod
    def from_params(cls: type[C], params: Mapping[str, Any] | None = None, _where: str = "", **overrides: Any) -> C:
        """Build from a flat or nested mapping; reject unknown keys and ill-typed values with a clear message.

        Fields whose annotation is itself a ``ConfigBase`` accept a nested mapping.
        """
        merged = {**(params or {}), **overrides}
        hints = get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(merged) - names)
        prefix = f"{_where}." if _where else ""
        if unknown:
            raise ConfigError(
                f"{cls.__name__}: unknown parameter(s) {', '.join(prefix + u for u in unknown)}; "
                f"valid names are: {', '.join(sorted(names))}"
            )
        kwargs = {k: _coerce(v, hints[k], f"{cls.__name__}.{prefix}{k}") for k, v in merged.items()}
        try:
            obj = cls(**kwargs)
        except TypeError as err:  # a required field without a default was not given
            raise ConfigError(f"{cls.__name__}: {err}") from err
        obj.validate()
        return obj

    def validate(self) -> None:
        """Check cross-field constraints; subclasses raise :class:`ConfigError` with a helpful message."""

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))

    def replace(self: C, **changes: Any) -> C:
        return type(self).from_params({**self.to_dict(), **changes})

    def hash(self) -> str:
        """Short stable hash of the values: used to decide whether a cached output is still valid."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def save(self, path: str | Path) -> Path:
        """Write the config as YAML, atomically."""
        path = Path(path)
        atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))
        return path

    @classmethod
    def load(cls: type[C], path: str | Path) -> C:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path}: expected a mapping at top level, got {type(data).__name__}")
        return cls.from_params(data)
