"""Run parameterised notebooks as steps of a pipeline: skip what is already done, run the rest in order.

A step is one papermill execution of a notebook with a parameter dict, writing into its own ``run_dir``.
It counts as done when ``run_dir/summary.json`` exists and ``run_dir/step.json`` holds the same
fingerprint. The fingerprint hashes the notebook's source, the parameters and the fingerprints of the
steps it depends on, so changing a parameter reruns that step and whatever consumes its outputs, and
nothing else. The executed notebook is kept in ``run_dir`` with an HTML copy that opens in any browser, so a
step's figures and tables can be read without Jupyter.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

import mal
from mal.io import atomic_write_json, atomic_write_text

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
KERNEL_NAME = "python3"
# The kernel's own log goes to the terminal that runs the pipeline. At its default level (WARNING) every kernel start
# prints a "running over TCP without encryption" notice, which buries the progress bar; errors still get through.
KERNEL_LOG_LEVEL = "ERROR"


class StepFailed(RuntimeError):
    """A notebook step raised; the executed notebook (with the traceback) is kept for inspection."""


@dataclasses.dataclass
class Step:
    """One notebook execution.

    Attributes:
        name: unique label, used in logs and ``deps``.
        notebook: notebook file stem in ``notebook_dir`` (e.g. ``"02_training"``).
        params: papermill parameters; must be JSON-serialisable literals.
        run_dir: where the notebook writes its outputs (it is also passed as the ``run_dir`` parameter).
        deps: names of steps that must finish first.
        threads: CPU threads this step uses (the scheduler packs steps onto the cores with it; pass the same
            number to the notebook as a parameter so it limits torch's threads).
    """

    name: str
    notebook: str
    params: dict[str, Any]
    run_dir: Path
    deps: tuple[str, ...] = ()
    threads: int = 1
    notebook_dir: Path = NOTEBOOK_DIR

    @property
    def notebook_path(self) -> Path:
        return self.notebook_dir / f"{self.notebook}.ipynb"

    @property
    def summary_path(self) -> Path:
        return self.run_dir / "summary.json"

    def fingerprint(self, dep_fingerprints: Sequence[str]) -> str:
        blob = json.dumps(
            {
                "notebook": hashlib.sha256(self.notebook_path.read_bytes()).hexdigest(),
                "params": self.params,
                "deps": list(dep_fingerprints),
                "mal": mal.__version__,
            },
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclasses.dataclass
class StepOutcome:
    name: str
    status: str  # "ran" | "skipped"
    seconds: float  # wall time of the execution that produced the outputs (an earlier one when skipped)
    run_dir: Path
    fingerprint: str


def is_complete(step: Step, fingerprint: str) -> bool:
    stamp = step.run_dir / "step.json"
    if not (step.summary_path.is_file() and stamp.is_file()):
        return False
    try:
        return json.loads(stamp.read_text()).get("fingerprint") == fingerprint
    except json.JSONDecodeError:
        return False


def execute_step(step: Step, fingerprint: str, cwd: Path) -> float:
    """Execute one notebook with papermill; returns its wall time in seconds.

    The executed notebook is written to ``run_dir/<notebook>.ipynb`` and exported next to it as ``.html``, also when
    a cell fails (the HTML then shows the traceback).
    """
    import papermill as pm

    step.run_dir.mkdir(parents=True, exist_ok=True)
    # A stale stamp must not survive a rerun that fails half-way.
    (step.run_dir / "step.json").unlink(missing_ok=True)
    output = step.run_dir / f"{step.notebook}.ipynb"
    params = {**step.params, "run_dir": str(step.run_dir)}
    start = time.perf_counter()
    try:
        pm.execute_notebook(
            str(step.notebook_path),
            str(output),
            parameters=params,
            kernel_name=KERNEL_NAME,
            cwd=str(cwd),
            progress_bar=False,
            extra_arguments=[f"--IPKernelApp.log_level={KERNEL_LOG_LEVEL}"],
        )
    except Exception as err:  # papermill wraps the kernel's exception; keep its message
        if output.is_file():
            export_html(output)
        raise StepFailed(f"step {step.name!r} failed; see the executed notebook {output}\n{err}") from err
    seconds = time.perf_counter() - start
    export_html(output)
    if not step.summary_path.is_file():
        raise StepFailed(f"step {step.name!r} finished without writing {step.summary_path}")
    atomic_write_json(step.run_dir / "step.json", {"fingerprint": fingerprint, "seconds": seconds, "params": params})
    return seconds


def export_html(notebook: Path) -> Path:
    """Write ``notebook`` (an executed .ipynb) as a standalone HTML file next to it (figures embedded); returns it."""
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(notebook, as_version=4))
    return atomic_write_text(notebook.with_suffix(".html"), body)


def fingerprints(steps: Sequence[Step]) -> dict[str, str]:
    """Fingerprint of every step (steps must come after their dependencies, as :func:`run_steps` requires)."""
    out: dict[str, str] = {}
    for step in steps:
        missing = [d for d in step.deps if d not in out]
        if missing:
            raise ValueError(f"step {step.name!r} depends on {missing}, which do not come before it")
        out[step.name] = step.fingerprint([out[d] for d in step.deps])
    return out


def run_steps(
    steps: Sequence[Step],
    cores: int = 2,
    force: bool = False,
    cwd: Path | None = None,
    on_done: Callable[[StepOutcome], None] | None = None,
) -> list[StepOutcome]:
    """Run ``steps`` respecting ``deps``, several at once while their ``threads`` fit in ``cores``.

    Steps already complete with the same fingerprint are skipped unless ``force``.
    """
    by_name = {s.name: s for s in steps}
    if len(by_name) != len(steps):
        raise ValueError("step names must be unique")
    for step in steps:
        missing = [d for d in step.deps if d not in by_name]
        if missing:
            raise ValueError(f"step {step.name!r} depends on unknown step(s) {missing}")
        if not step.notebook_path.is_file():
            raise FileNotFoundError(f"step {step.name!r}: notebook {step.notebook_path} not found")
    cwd = cwd or Path.cwd()
    fingerprints: dict[str, str] = {}
    outcomes: dict[str, StepOutcome] = {}
    pending = list(steps)
    running: dict[Future[float], tuple[Step, str]] = {}
    # Kernels are external processes, so threads here only wait on them.
    with ThreadPoolExecutor(max_workers=max(1, len(steps))) as pool, tqdm(total=len(steps), desc="pipeline") as bar:
        while pending or running:
            used = sum(s.threads for s, _ in running.values())
            for step in list(pending):
                if not all(d in outcomes for d in step.deps):
                    continue
                fp = step.fingerprint([fingerprints[d] for d in step.deps])
                fingerprints[step.name] = fp
                if not force and is_complete(step, fp):
                    pending.remove(step)
                    # Keep the wall time of the run that produced these outputs, for timing reports.
                    seconds = float(json.loads((step.run_dir / "step.json").read_text()).get("seconds", 0.0))
                    outcomes[step.name] = StepOutcome(step.name, "skipped", seconds, step.run_dir, fp)
                    bar.set_postfix_str(f"skip {step.name}")
                    bar.update()
                    if on_done:
                        on_done(outcomes[step.name])
                    continue
                if running and used + step.threads > cores:
                    continue
                pending.remove(step)
                bar.set_postfix_str(f"run {step.name}")
                running[pool.submit(execute_step, step, fp, cwd)] = (step, fp)
                used += step.threads
            if not running:
                if pending:  # every pending step waits on something that will never finish
                    raise RuntimeError(f"unsatisfiable dependencies: {[s.name for s in pending]}")
                break
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in done:
                step, fp = running.pop(fut)
                seconds = fut.result()  # re-raises StepFailed; the other running steps finish first
                outcomes[step.name] = StepOutcome(step.name, "ran", seconds, step.run_dir, fp)
                bar.update()
                if on_done:
                    on_done(outcomes[step.name])
    return [outcomes[s.name] for s in steps]
