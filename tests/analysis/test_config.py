from __future__ import annotations

import pytest

from mal.analysis import AnalysisConfig, parse_checkpoints
from mal.config import ConfigError


def test_defaults_validate_and_round_trip(tmp_path) -> None:
    cfg = AnalysisConfig()
    assert list(cfg.checkpoint_map) == ["warmup", "baseline", "mal"]
    assert cfg.judge_labels == ["warmup"] and cfg.metric_list == ["pesq_wb", "stoi", "si_sdr"]
    path = cfg.save(tmp_path / "config.yaml")
    assert AnalysisConfig.load(path) == cfg


def test_parse_checkpoints() -> None:
    assert parse_checkpoints(" a = x/a.pt, b=y.pt ,") == {"a": "x/a.pt", "b": "y.pt"}
    for bad, msg in [("a", "label=path"), ("a=x,a=y", "twice"), ("noisy=x", "reserved"), ("", "at least one")]:
        with pytest.raises(ConfigError, match=msg):
            parse_checkpoints(bad)


@pytest.mark.parametrize(
    ("params", "msg"),
    [
        ({"judge": "other"}, "not among the checkpoint labels"),
        ({"checkpoints": "baseline"}, "label=path"),
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
