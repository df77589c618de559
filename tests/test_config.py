from __future__ import annotations

import dataclasses
from typing import Literal

import pytest

from mal.config import ConfigBase, ConfigError


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
