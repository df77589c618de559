"""Typed configuration dataclasses shared by the library, the CLI and the notebooks.

Every concern owns one dataclass (see the module that uses it), and a default is declared only there. They all
derive from :class:`ConfigBase`, which turns a YAML mapping into a validated instance and back. A notebook's
parameters cell is the *flat view* of one schema: :meth:`ConfigBase.parameters` lists its parameters with the
schema's defaults (a test checks every notebook against it), :meth:`ConfigBase.from_parameters` rebuilds the
typed config from them, and :meth:`ConfigBase.to_parameters` goes the other way (what the pipeline passes to a
notebook). So a notebook's parameters cell and a CLI config file go through the same checks, once.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar, Union, get_args, get_origin, get_type_hints

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
        if isinstance(value, str):
            # PyYAML (YAML 1.1) reads "3e-4" without a dot as a string; it is a number to every reader.
            try:
                return float(value)
            except ValueError:
                pass
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


def apply_overrides(config: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of the nested mapping ``config`` with dotted-key ``overrides`` set.

    ``apply_overrides({"optim": {"lr": 1e-3}}, {"optim.lr": 3e-4})`` → ``{"optim": {"lr": 3e-4}}``. A key
    whose parent is missing creates it; the config class rejects names that do not exist.
    """
    out = copy.deepcopy(dict(config))
    for key, value in overrides.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {key!r}: {part!r} is a value ({child!r}), not a section")
            node = child
        node[parts[-1]] = copy.deepcopy(value)
    return out


def parse_override(text: str) -> tuple[str, Any]:
    """``"optim.lr=3e-4"`` → ``("optim.lr", 0.0003)``; the value is read as YAML (numbers, lists, true/false)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value (e.g. optim.lr=3e-4)")
    key, raw = text.split("=", 1)
    return key.strip(), yaml.safe_load(raw)


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"lr": 1e-3}}`` → ``{"optim.lr": 1e-3}``; an empty mapping stays a value (``{"hparams": {}}``)."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _is_config(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, ConfigBase)


def _get_path(mapping: Mapping[str, Any], path: str) -> Any:
    node: Any = mapping
    for part in path.split("."):
        node = node[part]
    return node


@dataclasses.dataclass
class ConfigBase:
    """Base for typed configs: strict construction from mappings, YAML round trip and a stable hash."""

    # The flat parameters of the notebook this schema drives: parameter name → dotted path of the field it sets.
    # Empty: every field under its own name (a flat schema). A nested schema names the fields a notebook user
    # types most and carries every other field in one ``overrides`` parameter ({dotted name: value}).
    PARAMETERS: ClassVar[dict[str, str]] = {}

    @classmethod
    def parameter_paths(cls) -> dict[str, str]:
        """Flat parameter → dotted field path (see :attr:`PARAMETERS`)."""
        return dict(cls.PARAMETERS) or {f.name: f.name for f in dataclasses.fields(cls) if f.init}

    @classmethod
    def parameters(cls) -> dict[str, Any]:
        """Every flat parameter with its default, read from the schema: what a notebook's parameters cell declares."""
        defaults = cls().to_dict()
        out = {name: _get_path(defaults, path) for name, path in cls.parameter_paths().items()}
        if cls.PARAMETERS:
            out["overrides"] = {}
        return out

    @classmethod
    def from_parameters(cls: type[C], values: Mapping[str, Any]) -> C:
        """Rebuild the typed config from flat parameters, validated once.

        Layers, later wins: the schema defaults, the parameters, then their ``overrides``. Unknown parameter
        names are an error.
        """
        known = cls.parameters()
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(
                f"{cls.__name__}: unknown parameter(s) {', '.join(unknown)}; valid names are: {', '.join(known)}"
            )
        given = {path: values[name] for name, path in cls.parameter_paths().items() if name in values}
        nested = apply_overrides({}, given)
        overrides = values.get("overrides") or {}
        if not isinstance(overrides, Mapping):
            raise ConfigError(f"{cls.__name__}: overrides must be a mapping of dotted names, got {overrides!r}")
        return cls.from_params(apply_overrides(nested, overrides))

    def to_parameters(self) -> dict[str, Any]:
        """The flat parameters that rebuild this config with :meth:`from_parameters`: each parameter's value and,
        for a nested schema, ``overrides`` with every other field that differs from its default."""
        values = self.to_dict()
        paths = self.parameter_paths()
        out = {name: _get_path(values, path) for name, path in paths.items()}
        if self.PARAMETERS:
            defaults = flatten(type(self)().to_dict())
            covered = tuple(paths.values())
            out["overrides"] = {
                key: value
                for key, value in flatten(values).items()
                if not any(key == p or key.startswith(p + ".") for p in covered)
                and (key not in defaults or defaults[key] != value)
            }
        return out

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
        # A partial nested section is laid over that field's own default (which may differ from its class's):
        # the keys it gives replace the default's, the others keep the default's values.
        for f in dataclasses.fields(cls):
            value = merged.get(f.name)
            if (
                isinstance(value, Mapping)
                and _is_config(hints[f.name])
                and f.default_factory is not dataclasses.MISSING
            ):
                merged[f.name] = {**f.default_factory().to_dict(), **value}
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
