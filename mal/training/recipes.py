"""Loss recipes as named presets: ``configs/recipes/<name>.yaml``.

A recipe is the part of a :class:`~mal.training.config.TrainConfig` that says *how the model is judged*: its
``loss`` section (which terms, their settings) and ``calibrate`` (which term starts at what ratio of the
others). Everything else (model, data, schedule) comes from the run. A config names its recipe
(``recipe: mal-frozen``) and the preset fills in whatever the config does not set itself, so
``{recipe: mal-frozen, loss: {mal_layers: all}}`` is frozen MAL on every layer.

Adding a recipe is one file: drop ``configs/recipes/<name>.yaml`` with a ``loss`` and optionally a
``calibrate`` mapping; the name is then valid everywhere (notebook 02's ``recipe`` parameter, the CLI's
``--set recipe=...``, study plans and sweeps).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mal.config import ConfigError

RECIPE_DIR = Path(__file__).resolve().parents[2] / "configs" / "recipes"
# The only sections a recipe may set.
RECIPE_SECTIONS = ("loss", "calibrate")
# Loss terms that are not conventional: a recipe switches on at most these.
FEATURE_TERMS = ("mal", "deep_feature", "lossnet")


def recipe_names() -> list[str]:
    """Every preset in :data:`RECIPE_DIR`, sorted."""
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))


def load_recipe(name: str) -> dict[str, Any]:
    """The preset ``name`` as a nested mapping ``{"loss": {...}, "calibrate": {...}}``.

    Raises:
        ConfigError: no such preset (the message lists the known ones), or it sets anything but
            :data:`RECIPE_SECTIONS`.
    """
    path = RECIPE_DIR / f"{name}.yaml"
    if not name or "/" in name or not path.is_file():
        raise ConfigError(f"unknown recipe {name!r}: no {path}; recipes are {recipe_names()}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, Mapping) or set(data) - set(RECIPE_SECTIONS):
        raise ConfigError(f"{path}: a recipe sets only {list(RECIPE_SECTIONS)}, got {sorted(data)}")
    return {section: dict(data.get(section) or {}) for section in RECIPE_SECTIONS}


def switched_on(loss: Mapping[str, Any]) -> set[str]:
    """The feature terms (:data:`FEATURE_TERMS`) with a weight above 0 in a loss mapping."""
    return {term for term in FEATURE_TERMS if float(loss.get(term, 0.0) or 0.0) > 0}
