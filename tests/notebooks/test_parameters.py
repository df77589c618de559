"""Every notebook's parameters cell is the flat view of one schema: same names, the schema's defaults."""

from __future__ import annotations

import ast
import inspect

import nbformat
import pytest
from notebook_checks import ROOT

from mal.analysis.config import AnalysisConfig
from mal.cross_dataset import CrossDatasetConfig
from mal.data.preparation import DataPreparationConfig
from mal.pretrain import LossNetPretrainConfig
from mal.train import TrainConfig, train

SCHEMAS = {
    "01_data_preparation": DataPreparationConfig,
    "02_training": TrainConfig,
    "03_feature_space_analysis": AnalysisConfig,
    "04_cross_dataset_evaluation": CrossDatasetConfig,
    "05_lossnet_pretraining": LossNetPretrainConfig,
}
# Parameters that are arguments of the call a notebook makes, not config fields: their default is the signature's.
CALL_ARGUMENTS = {"02_training": {"if_exists": inspect.signature(train).parameters["if_exists"].default}}


def declared_parameters(name: str) -> dict[str, object]:
    """Name → literal default of every assignment in the notebook's parameters cell."""
    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    out = {}
    for node in ast.parse(cell.source).body:
        assert isinstance(node, ast.AnnAssign), f"{name}: only `name: type = value` lines, got {ast.dump(node)}"
        out[node.target.id] = ast.literal_eval(node.value)
    return out


def test_every_notebook_has_a_schema() -> None:
    assert sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb")) == sorted(SCHEMAS)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_parameter_defaults_are_the_schema_defaults(name: str) -> None:
    expected = {**SCHEMAS[name].parameters(), **CALL_ARGUMENTS.get(name, {})}
    assert declared_parameters(name) == expected


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_notebook_opens_with_its_title_then_its_parameters(name: str) -> None:
    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    first, second = nb.cells[0], nb.cells[1]
    assert first.cell_type == "markdown" and first.source.startswith(f"# {name[:2]} · ")
    assert "parameters" in second.metadata.get("tags", [])


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_defaults_rebuild_the_default_config(name: str) -> None:
    schema = SCHEMAS[name]
    defaults = {k: v for k, v in declared_parameters(name).items() if k in schema.parameters()}
    assert schema.from_parameters(defaults) == schema.from_params({})
