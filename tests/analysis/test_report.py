from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch
from analysis_helpers import mixtures

import mal.models
from mal.analysis import (
    AnalysisConfig,
    build_spaces,
    correlation_table,
    run_feature_study,
    run_self_consistency,
)
from mal.analysis.report import (
    Spread,
    build_summary,
    headline,
    load_systems,
    resolve_device,
    write_summary,
    write_table,
)

TINY = {
    "waveunet": {"depth": 2, "hidden": 4, "lstm_layers": 1},
    "specmask": {"depth": 2, "hidden": 4, "gru_hidden": 16},
}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("ckpt")
    paths = {}
    for i, (name, hparams) in enumerate(TINY.items()):
        torch.manual_seed(i)
        paths[name] = str(mal.models.save(mal.models.build(name, **hparams), root / f"{name}.pt"))
    return paths


def test_spread_picks_evenly_spaced_items_lazily() -> None:
    data = list(range(10))
    assert list(Spread(data, 4)) == [0, 3, 6, 9]
    assert list(Spread(data, 0)) == data and len(Spread(data, 50)) == 10
    assert Spread(data, 3)[1] == 4  # linspace(0, 9, 3) = [0, 4.5, 9], rounded half to even
    with pytest.raises(ValueError, match="empty"):
        Spread([], 3)
    with pytest.raises(TypeError, match="sized dataset"):
        Spread(iter(data), 3)


def test_load_systems_and_device(checkpoints, tmp_path) -> None:
    systems = load_systems(checkpoints, "cpu")
    assert list(systems) == ["waveunet", "specmask"] and not systems["specmask"].training
    with pytest.raises(FileNotFoundError, match="'gone'.*missing.pt"):
        load_systems({"gone": tmp_path / "missing.pt"})
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            resolve_device("cuda")


def test_real_models_real_metrics_end_to_end(checkpoints, tmp_path) -> None:
    """Tiny random-init waveunet (1-D features) and specmask (2-D features) with mal.metrics; summary round trip."""
    cfg = AnalysisConfig.from_params(
        checkpoints=checkpoints,
        judge="specmask,waveunet",
        reference="waveunet",
        k_max=2,
        run_dir=str(tmp_path / "run"),
    )
    systems = load_systems(cfg.checkpoints)
    items = Spread(mixtures([0.0, 5.0, 10.0, 15.0, 20.0], same_clean=False, seconds=1.5), 4)
    spaces, skipped = build_spaces(["logmel", "mrstft", "lossnet"])
    study = run_feature_study(
        {j: systems[j] for j in cfg.judge_labels},
        systems,
        items,
        spaces=spaces,
        metrics=cfg.metric_list,
        progress=False,
    )
    assert study.encoder_columns[0].startswith("specmask/") and study.pooled.judge == "specmask"
    assert study.pairs[cfg.metric_list].notna().all().all()
    table = correlation_table(study.pairs, study.distance_columns, cfg.metric_list, n_boot=50)
    assert table["rho"].notna().all() and (table["n_files"] == 4).all()
    sc = run_self_consistency(systems, items, k_max=cfg.k_max, metrics=["si_sdr"], n_files=2, progress=False)
    versus = sc.decay_difference(cfg.reference, n_boot=50)
    summary = build_summary(cfg, study, table, sc.summary(n_boot=50), sc.decay(n_boot=50), versus, ["a.png"], skipped)
    path = write_summary(cfg.run_path, summary)
    loaded = json.loads(path.read_text())
    assert loaded["n_files"] == 4 and loaded["n_pairs"] == 4 * 3 and loaded["skipped_spaces"].keys() == {"lossnet"}
    assert {row["space"] for row in loaded["correlation"]} == set(study.distance_columns)
    best = loaded["best"]["pesq_wb"]["best_layer"]
    assert best["space"] in study.encoder_columns and -1 <= best["rho"] <= 1
    assert loaded["self_consistency"]["k_max"] == 2 and loaded["self_consistency"]["n_files"] == 2
    assert all(r["k"] in (0, 1, 2) for r in loaded["self_consistency"]["curves"])
    assert {r["system"] for r in loaded["self_consistency"]["decay_vs_reference"]} == {"specmask"}
    text = headline(loaded)
    assert "best judge layer" in text and "Self-consistency" in text and "minus `waveunet`" in text
    csv = write_table(table, tmp_path / "t" / "correlation.csv")
    back = pd.read_csv(csv)
    assert len(back) == len(table) and math.isclose(back["rho"][0], table["rho"][0], rel_tol=1e-9)
