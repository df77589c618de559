"""pyproject.toml and environment.yml must name the same packages, so pip and conda users get one environment."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# conda-forge spells a few packages differently from PyPI.
CONDA_TO_PYPI = {"pysoundfile": "soundfile"}
# Tools of the environment itself, not dependencies of the package.
NOT_PACKAGE_DEPS = {"python", "pip", "mal"}


def _name(spec: str) -> str:
    return re.split(r"[<>=!~\[ ;]", spec.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject_names() -> tuple[set[str], dict[str, str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + project["optional-dependencies"]["dev"]
    return {_name(s) for s in specs}, {_name(s): s for s in specs}


def _conda_names() -> tuple[set[str], dict[str, str]]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    specs: list[str] = []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            specs += [s for s in dep["pip"] if not s.startswith("-e")]
        else:
            specs.append(dep)
    names = {CONDA_TO_PYPI.get(_name(s), _name(s)) for s in specs} - NOT_PACKAGE_DEPS
    return names, {CONDA_TO_PYPI.get(_name(s), _name(s)): s for s in specs}


def test_environment_yml_matches_pyproject() -> None:
    pip_names, _ = _pyproject_names()
    conda_names, _ = _conda_names()
    assert conda_names - pip_names == set(), "in environment.yml only"
    assert pip_names - conda_names == set(), "in pyproject.toml only"


def test_pinned_versions_agree() -> None:
    _, pip_specs = _pyproject_names()
    _, conda_specs = _conda_names()
    for name in ("torch", "torchaudio"):
        assert pip_specs[name].replace(" ", "") == conda_specs[name].replace(" ", "")


def test_cli_help_lists_existing_commands() -> None:
    out = subprocess.run([sys.executable, "-m", "mal", "--help"], capture_output=True, text=True, check=True).stdout
    from mal.__main__ import available_commands

    commands = available_commands()
    assert commands, "no CLI command is installed"
    for command in commands:
        assert command in out
