"""What notebook 02 shows and records after a run: the histories of both stages, and the summary file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from mal.io import atomic_write_json
from mal.training.history import read_history


def warmup_run_dir(run_dir: str | Path) -> Path | None:
    """The warm-up run a stage-2 run started from (``<warm-up run_dir>/checkpoints/last.pt``), if it exists."""
    config = Path(run_dir) / "config.yaml"
    if not config.is_file():
        return None
    init = (yaml.safe_load(config.read_text()) or {}).get("init_checkpoint") or ""
    if not init:
        return None
    candidate = Path(init).parent.parent
    return candidate if (candidate / "history.jsonl").is_file() else None


def stage_histories(run_dir: str | Path) -> pd.DataFrame:
    """This run's history, preceded by its warm-up's when it is a stage-2 run; a ``run`` column names each.

    The warm-up rows after this run's starting step are dropped (a warm-up may have been trained on
    past the checkpoint this run started from).
    """
    run_dir = Path(run_dir)
    own = read_history(run_dir).assign(run=run_dir.name)
    warm_dir = warmup_run_dir(run_dir)
    if warm_dir is None:
        return own
    first = own["step"].min() if len(own) else 0
    warm = read_history(warm_dir)
    warm = warm[warm["step"] < first].assign(run=warm_dir.name)
    return pd.concat([warm, own], ignore_index=True)


def record_summary(run_dir: str | Path, **sections: Any) -> dict[str, Any]:
    """Merge ``sections`` into ``<run_dir>/summary.json`` (written by :func:`mal.train.train`), atomically.

    Returns:
        The merged summary.
    """
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: train() writes it when a run finishes")
    summary = json.loads(path.read_text())
    summary.update(sections)
    atomic_write_json(path, summary)
    return summary


def headline(summary: dict[str, Any]) -> pd.DataFrame:
    """A small table: validation metrics of the model next to the noisy input's, the step size (mean gradient norm
    before clipping, and how far the stage moved the weights: ‖Δθ‖/‖θ‖ in all and per half) and the throughput."""
    valid, noisy = summary.get("valid", {}), summary.get("noisy", {})
    metrics = [m for m in valid if not m.endswith("_files") and not m.startswith("loss") and m in noisy]
    rows = [{"metric": m, "model": valid[m], "noisy input": noisy[m], "gain": valid[m] - noisy[m]} for m in metrics]
    step_size = {
        "grad_norm_mean": "gradient norm (stage mean)",
        "weight_change": "weight change ‖Δθ‖/‖θ‖",
        "weight_change_encoder": "weight change, encoder",
        "weight_change_decoder": "weight change, decoder",
    }
    rows += [{"metric": label, "model": summary.get(key)} for key, label in step_size.items()]
    rows.append({"metric": "step time (s)", "model": summary.get("step_time_s")})
    rows.append({"metric": "samples / s", "model": summary.get("samples_per_s")})
    return pd.DataFrame(rows).set_index("metric")
