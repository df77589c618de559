"""Checks every notebook test shares: the committed notebook is clean, and a papermill run with smoke parameters.

Test modules import it by name (``from notebook_checks import ...``): pytest puts this folder on ``sys.path``.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import papermill as pm
import torch
import yaml

import mal.models

ROOT = Path(__file__).resolve().parents[2]


def notebook_files(name: str) -> tuple[Path, Path]:
    """The notebook ``notebooks/<name>.ipynb`` and its smoke parameters ``configs/smoke/<name>.yaml``."""
    return ROOT / "notebooks" / f"{name}.ipynb", ROOT / "configs" / "smoke" / f"{name}.yaml"


def smoke_parameters(smoke: Path) -> dict:
    """The smoke parameters of a notebook, as written in its YAML file."""
    return yaml.safe_load(smoke.read_text())


def assert_committed_clean(notebook: Path, smoke: Path) -> dict[str, dict]:
    """Assert the notebook contract and return papermill's view of its parameters (name -> inspect_notebook entry).

    Clean means: kernelspec "python3"; no outputs or execution counts; exactly one cell tagged ``parameters``, at
    index 1; every smoke parameter is a notebook parameter; every parameter has its one-line help comment; and no
    function or class is defined in the notebook (after the config cell it only calls into mal).
    """
    nb = nbformat.read(notebook, as_version=4)
    assert nb.metadata.kernelspec.name == "python3"
    assert all(not c.get("outputs") and not c.get("execution_count") for c in nb.cells if c.cell_type == "code")
    assert [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])] == [1]
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert not any(line.lstrip().startswith(("def ", "class ")) for src in code for line in src.splitlines())
    params = pm.inspect_notebook(notebook)
    assert set(smoke_parameters(smoke)) <= set(params)
    assert all(p["help"] for p in params.values())  # every parameter has its one-line comment
    return params


def execute(notebook: Path, params: dict, out: Path, interactive: bool = True) -> dict:
    """Run the notebook headless (kernel "python3", working directory ``out.parent``) and return its summary.json.

    Args:
        notebook: the committed notebook.
        params: papermill parameters; must include ``run_dir``, where the notebook writes summary.json.
        out: where the executed copy of the notebook is written.
        interactive: the ``interactive`` parameter. True by default, so the widgets are built as a student in
            JupyterLab meets them (the pipeline's smoke study runs every notebook with the default, False).
            Notebooks without widgets (02, 05) do not declare it and ignore it.
    """
    pm.execute_notebook(
        str(notebook),
        str(out),
        parameters={**params, "interactive": interactive},
        kernel_name="python3",
        cwd=str(out.parent),
        progress_bar=False,
    )
    return json.loads((Path(params["run_dir"]) / "summary.json").read_text())


def widget_models(executed: Path) -> list[str]:
    """Model names (e.g. ``"AudioModel"``) of every widget the kernel created, from the widget state papermill saves
    in the executed notebook's metadata."""
    nb = nbformat.read(executed, as_version=4)
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    return sorted(model["model_name"] for model in state.values())


def tiny_checkpoints(folder: Path, tiny: dict[str, tuple[str, dict]]) -> dict[str, str]:
    """Save random-init tiny models as stand-ins for trained ones (the notebook's code path is the same).

    Args:
        folder: where ``<label>.pt`` files are written.
        tiny: label -> (registry model name, hyper-parameters); model i is initialised with seed i.

    Returns:
        label -> checkpoint path (str), as the notebooks' ``checkpoints`` parameter expects.
    """
    paths = {}
    for i, (label, (name, hparams)) in enumerate(tiny.items()):
        torch.manual_seed(i)
        paths[label] = str(mal.models.save(mal.models.build(name, **hparams), folder / f"{label}.pt"))
    return paths
