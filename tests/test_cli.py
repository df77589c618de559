"""The command line itself: --help and argument errors answer without loading torch; errors are one line on stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mal.__main__ import COMMANDS, main

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchaudio", "numpy", "pandas", "soundfile", "scipy")

PROBE = """
import json, sys
from mal.__main__ import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {heavy} if m in sys.modules)))
"""


def _imported_by(*argv: str) -> list[str]:
    """Heavy modules loaded by ``python -m mal <argv>`` (run in a fresh interpreter)."""
    code = PROBE.format(heavy=HEAVY)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "argv",
    [
        ("--help",),
        ("--bogus",),
        *[(command, "--help") for command in COMMANDS],
        ("enhance",),  # missing arguments
        ("train", "--resume", "--overwrite", "--config", "x.yaml"),  # mutually exclusive
    ],
    ids=lambda argv: " ".join(argv),
)
def test_help_and_argument_errors_import_no_heavy_module(argv: tuple[str, ...]) -> None:
    assert _imported_by(*argv) == []


def test_train_errors_are_one_line_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "--config", str(tmp_path / "missing.yaml")]) == 1
    captured = capsys.readouterr()
    assert (
        captured.out == ""
        and captured.err == f"python -m mal train: error: --config: {tmp_path / 'missing.yaml'} not found\n"
    )


def test_pipeline_set_overrides_the_plan_and_bad_fields_are_one_line(tmp_path, capsys) -> None:
    root = str(tmp_path / "runs")
    assert main(["pipeline", "--dry-run", "--runs-root", root, "--set", "seeds=[0]"]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if "02_training" in line]
    assert len(listed) == 1 + 10  # the warm-up and the 10 systems, one seed each (3 seeds: 1 + 30)
    assert main(["pipeline", "--dry-run", "--runs-root", root]) == 0
    assert len([line for line in capsys.readouterr().out.splitlines() if "02_training" in line]) == 1 + 30
    assert main(["pipeline", "--dry-run", "--set", "stage2s=1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("python -m mal pipeline: error: StudyPlan: unknown parameter(s) stage2s")
    assert "Traceback" not in err
