"""``python -m mal corpus`` build / verify / summary."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mal.__main__ import main


def test_verify_and_summary(smoke_corpus: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["corpus", "verify", str(smoke_corpus)]) == 0
    assert "OK (train 24, valid 8, test 8, test_ood 8, test_reverb 8)" in capsys.readouterr().out
    assert main(["corpus", "summary", str(smoke_corpus), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["profile"] == "smoke" and summary["splits"]["test"]["n"] == 8
    assert summary["splits"]["test"]["snr_db"]["levels"] and summary["totals"]["n_speakers"] >= 4


def test_build_reuses_and_verify_fails_on_damage(
    smoke_corpus: Path, mal_raw_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = tmp_path / "c"
    shutil.copytree(smoke_corpus, root)
    args = ["corpus", "build", "--profile", "smoke", "--seed", "0", "--root", str(root), "--raw-dir", str(mal_raw_dir)]
    assert main([*args, "--no-progress"]) == 0
    assert "profile=smoke seed=0" in capsys.readouterr().out
    (root / "valid" / "clean" / "valid_00001.wav").unlink()
    assert main(["corpus", "verify", str(root), "--shallow"]) == 1
    assert "valid_00001.wav: missing" in capsys.readouterr().out


def test_errors_are_reported_not_raised(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["corpus", "build", "--profile", "smoke", "--sources", "asterisk-en", "--root", str(tmp_path)]) == 1
    assert "in-domain noise" in capsys.readouterr().err
    assert main(["corpus", "summary", str(tmp_path)]) == 1
    assert "not a built mal-offline corpus" in capsys.readouterr().err
