from __future__ import annotations

import pytest

from mal.analysis import AnalysisConfig, check_checkpoints
from mal.config import ConfigError


def test_defaults_validate_and_round_trip(tmp_path) -> None:
    cfg = AnalysisConfig()
    # Run alone, the notebook looks at the quick study's first comparison, at the checkpoints that count.
    assert list(cfg.checkpoints) == ["warmup-bandcrn", "bandcrn-baseline", "bandcrn-mal-all"]
    assert all(p.startswith("runs/quick/") and p.endswith("/checkpoints/last.pt") for p in cfg.checkpoints.values())
    assert cfg.judge_labels == ["warmup-bandcrn"] and cfg.metric_list == ["pesq_wb", "stoi", "si_sdr"]
    path = cfg.save(tmp_path / "config.yaml")
    assert AnalysisConfig.load(path) == cfg


def test_check_checkpoints() -> None:
    assert check_checkpoints({"a": "x/a.pt"}) == {"a": "x/a.pt"}
    for bad, msg in [({"noisy": "x"}, "reserved"), ({}, "at least one"), ({"a": " "}, "empty"), ({" a": "x"}, "label")]:
        with pytest.raises(ConfigError, match=msg):
            check_checkpoints(bad)


@pytest.mark.parametrize(
    ("params", "msg"),
    [
        ({"judge": "other"}, "not among the checkpoint labels"),
        ({"reference": "other"}, "reference"),
        ({"checkpoints": "baseline=x.pt"}, "expected a mapping"),
        ({"checkpoints": {"a": 3}}, "expected a string"),
        ({"k_max": 0}, "k_max"),
        ({"n_files": -1}, "n_files"),
        ({"distance": "cos"}, "distance"),
        ({"spaces": "logmel,mfcc"}, "mfcc"),
        ({"projections": "pca,lda"}, "lda"),
        ({"layers": "first"}, "layers"),
        ({"device": "gpu"}, "device"),
        ({"k_max": "5"}, "integer"),
        ({"n_file": 3}, "unknown parameter"),
    ],
)
def test_bad_parameters_are_named(params, msg) -> None:
    with pytest.raises(ConfigError, match=msg):
        AnalysisConfig.from_params(params)
