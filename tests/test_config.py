from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

import pytest

from mal.config import ConfigBase, ConfigError, apply_overrides, flatten


@dataclasses.dataclass
class Inner(ConfigBase):
    lr: float = 1e-3


@dataclasses.dataclass
class Outer(ConfigBase):
    steps: int = 10
    variant: Literal["frozen", "dynamic"] = "frozen"
    layers: str | list[int] = "bottleneck"
    inner: Inner = dataclasses.field(default_factory=Inner)

    def validate(self) -> None:
        if self.steps < 0:
            raise ConfigError("steps must be >= 0")


def test_from_params_coerces_and_nests() -> None:
    cfg = Outer.from_params({"steps": 5, "layers": [0, 2], "inner": {"lr": 1}})
    assert cfg.steps == 5 and cfg.layers == [0, 2]
    assert isinstance(cfg.inner, Inner) and cfg.inner.lr == 1.0 and isinstance(cfg.inner.lr, float)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"stepz": 1}, "unknown parameter"),
        ({"steps": "ten"}, "expected an integer"),
        ({"steps": True}, "expected an integer"),
        ({"variant": "bogus"}, "not one of"),
        ({"inner": {"lr": "fast"}}, "expected a number"),
        ({"inner": {"momentum": 0.9}}, "inner.momentum"),
        ({"steps": -1}, "steps must be"),
    ],
)
def test_bad_params_are_rejected_clearly(params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Outer.from_params(params)


def test_yaml_round_trip_and_hash(tmp_path) -> None:
    cfg = Outer.from_params({"steps": 3, "layers": [1]})
    path = cfg.save(tmp_path / "c.yaml")
    again = Outer.load(path)
    assert again == cfg and again.hash() == cfg.hash()
    assert cfg.replace(steps=4).hash() != cfg.hash()


def test_missing_config_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        Outer.load(tmp_path / "nope.yaml")


@dataclasses.dataclass
class Section(ConfigBase):
    lr: float = 1e-3
    paths: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Run(ConfigBase):
    """A nested schema with a flat view: two aliases, the rest through ``overrides``."""

    PARAMETERS: ClassVar[dict[str, str]] = {"steps": "steps", "lr": "section.lr"}

    steps: int = 10
    name: str = "run"
    # The field's default differs from Section's own: a partial section must keep it.
    section: Section = dataclasses.field(default_factory=lambda: Section(lr=0.5, paths={"a": "x"}))


def test_flat_parameters_come_from_the_schema_and_rebuild_it() -> None:
    assert Run.parameters() == {"steps": 10, "lr": 0.5, "overrides": {}}
    cfg = Run.from_parameters({"lr": 0.1, "overrides": {"name": "b", "section.paths": {"c": "y"}}})
    assert (cfg.steps, cfg.name, cfg.section.lr) == (10, "b", 0.1)
    assert cfg.section.paths == {"c": "y"}  # a dict value is replaced, not merged into the default's
    assert Run.from_parameters({"lr": 0.1}).section.paths == {"a": "x"}  # the field's default, not Section()'s
    assert cfg.to_parameters() == {"steps": 10, "lr": 0.1, "overrides": {"name": "b", "section.paths.c": "y"}}
    assert Run.from_parameters(cfg.to_parameters()) == cfg
    with pytest.raises(ConfigError, match="unknown parameter.*name"):
        Run.from_parameters({"name": "b"})


def test_overrides_set_dotted_keys_and_refuse_values_as_sections() -> None:
    assert apply_overrides({"optim": {"lr": 1e-3}}, {"optim.lr": 3e-4, "data.root": "r"}) == {
        "optim": {"lr": 3e-4},
        "data": {"root": "r"},
    }
    with pytest.raises(ConfigError, match="not a section"):
        apply_overrides({"optim": 1}, {"optim.lr": 3e-4})
    assert flatten({"a": {"b": 1, "c": {}}}) == {"a.b": 1, "a.c": {}}


def test_exponent_without_a_dot_is_a_number() -> None:
    # PyYAML reads "2e-4" as a string; `--set optim.lr=2e-4` and `lr: 2e-4` in a YAML file must still work.
    from mal.config import parse_override
    from mal.training.config import TrainConfig

    key, value = parse_override("optim.lr=2e-4")
    assert TrainConfig.from_params({key.split(".")[0]: {"lr": value}}).optim.lr == pytest.approx(2e-4)
    with pytest.raises(ConfigError, match="expected a number"):
        TrainConfig.from_params({"optim": {"lr": "fast"}})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"speed_perturb": 0.1}, "speed_perturb act while remixing"),
        ({"tilt": 0.3, "noise_mix": 0.5, "remix": False}, r"DataConfig\.tilt, noise_mix act while remixing"),
        ({"noise_mix": 1.0, "remix": True}, r"noise_mix must be in \[0, 1\)"),
        ({"speed_perturb": 0.5, "remix": True}, r"speed_perturb must be in \[0, 0.5\)"),
        ({"tilt": -0.1, "remix": True}, r"tilt must be in \[0, 1\)"),
    ],
)
def test_augmentation_settings_are_checked_where_they_are_declared(data: dict, message: str) -> None:
    from mal.training.config import TrainConfig

    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_params({"data": data})
    assert TrainConfig.from_params({"data": {"remix": True, "speed_perturb": 0.1, "tilt": 0.5}}).data.tilt == 0.5
