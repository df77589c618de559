from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from mal.runner import Step, StepFailed, run_steps


def _notebook(path: Path, body: str) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('x: int = 1  # a number\nrun_dir: str = ""  # output folder\nfail: bool = False')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_code_cell("import json, pathlib"), params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


BODY = """
if fail:
    raise ValueError("asked to fail")
out = pathlib.Path(run_dir)
log = out.parent / "calls.txt"
log.write_text(log.read_text() + out.name + "\\n" if log.exists() else out.name + "\\n")
(out / "summary.json").write_text(json.dumps({"y": 2 * x}))
"""


@pytest.mark.slow
def test_steps_run_in_order_skip_when_done_and_rerun_when_changed(tmp_path) -> None:
    nbdir = tmp_path / "nb"
    nbdir.mkdir()
    _notebook(nbdir / "double.ipynb", BODY)
    runs = tmp_path / "runs"

    def steps(x_b: int) -> list[Step]:
        a = Step("a", "double", {"x": 1}, runs / "a", notebook_dir=nbdir)
        b = Step("b", "double", {"x": x_b}, runs / "b", deps=("a",), notebook_dir=nbdir)
        c = Step("c", "double", {"x": 5}, runs / "c", notebook_dir=nbdir)
        return [a, b, c]

    first = run_steps(steps(2), cores=2, cwd=tmp_path)
    assert [o.status for o in first] == ["ran", "ran", "ran"]
    assert json.loads((runs / "b" / "summary.json").read_text()) == {"y": 4}
    calls = (runs / "calls.txt").read_text().split()
    assert calls.index("a") < calls.index("b")

    again = run_steps(steps(2), cores=2, cwd=tmp_path)
    assert [o.status for o in again] == ["skipped"] * 3

    changed = run_steps(steps(3), cores=2, cwd=tmp_path)
    assert [o.status for o in changed] == ["skipped", "ran", "skipped"]
    assert json.loads((runs / "b" / "summary.json").read_text()) == {"y": 6}

    forced = run_steps(steps(3), cores=2, cwd=tmp_path, force=True)
    assert [o.status for o in forced] == ["ran"] * 3
    html = (runs / "b" / "double.html").read_text()  # readable without Jupyter, next to the executed notebook
    assert html.lstrip().lower().startswith("<!doctype html") and "asked to fail" in html  # the cell's source


@pytest.mark.slow
def test_failed_step_keeps_notebook_and_leaves_no_stamp(tmp_path) -> None:
    nbdir = tmp_path / "nb"
    nbdir.mkdir()
    _notebook(nbdir / "double.ipynb", BODY)
    step = Step("bad", "double", {"fail": True}, tmp_path / "bad", notebook_dir=nbdir)
    with pytest.raises(StepFailed, match="asked to fail"):
        run_steps([step], cwd=tmp_path)
    assert (tmp_path / "bad" / "double.ipynb").is_file()
    assert "ValueError" in (tmp_path / "bad" / "double.html").read_text()  # the traceback, readable in a browser
    assert not (tmp_path / "bad" / "step.json").exists()


@pytest.mark.slow
def test_kernel_warnings_stay_out_of_the_terminal_but_errors_do_not(tmp_path, capfd) -> None:
    nbdir = tmp_path / "nb"
    nbdir.mkdir()
    body = (
        BODY + "\nget_ipython().kernel.log.warning('kernel notice')\nget_ipython().kernel.log.error('kernel failure')"
    )
    _notebook(nbdir / "double.ipynb", body)
    run_steps([Step("a", "double", {}, tmp_path / "a", notebook_dir=nbdir)], cwd=tmp_path)
    terminal = capfd.readouterr().err  # the kernel writes its log to the stderr it inherits from the pipeline
    assert "kernel failure" in terminal
    assert "kernel notice" not in terminal and "without encryption" not in terminal


def test_unknown_dependency_and_missing_notebook_are_reported(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown step"):
        run_steps([Step("a", "x", {}, tmp_path, deps=("zzz",), notebook_dir=tmp_path)])
    with pytest.raises(FileNotFoundError, match="not found"):
        run_steps([Step("a", "missing", {}, tmp_path, notebook_dir=tmp_path)])
