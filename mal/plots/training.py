"""Training figures from ``history.jsonl``: loss terms, the MAL term next to the conventional ones, validation.

Every function takes the history as a DataFrame (:func:`mal.train.read_history`; several runs concatenated
with a ``run`` column work too, e.g. a warm-up followed by its stage-2 branches) and returns a Figure; save
it with :func:`mal.plots.save_figure`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from mal.plots import metric_label


def concat_histories(histories: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """One frame from several runs' histories, with the run's name in a ``run`` column."""
    return pd.concat([h.assign(run=name) for name, h in histories.items()], ignore_index=True)


def loss_term_columns(history: pd.DataFrame) -> list[str]:
    """The per-term loss columns (``loss_<term>``) present in the history, in first-seen order."""
    return [c for c in history.columns if c.startswith("loss_")]


def _long(rows: pd.DataFrame, columns: Sequence[str], name: str) -> pd.DataFrame:
    keep = ["step", *(["run"] if "run" in rows.columns else [])]
    out = rows.melt(id_vars=keep, value_vars=list(columns), var_name=name, value_name="value")
    out[name] = out[name].str.removeprefix("loss_")
    return out.dropna(subset=["value"])


def _stage_boundaries(ax: plt.Axes, history: pd.DataFrame) -> None:
    """Dotted vertical line where stage 2 begins, when the frame holds a warm-up and its stage 2."""
    if "stage" not in history.columns or not {"warmup", "stage2"} <= set(history["stage"]):
        return
    ax.axvline(history.loc[history["stage"] == "warmup", "step"].max(), color="0.5", linestyle=":", linewidth=1)


def plot_loss_terms(history: pd.DataFrame, log_scale: bool = True) -> plt.Figure:
    """Each training loss term (unweighted) over the global step, with the learning rate below it.

    The loss terms live on different scales, so the y axis is logarithmic by default.
    """
    train = history[history["kind"] == "train"]
    terms = loss_term_columns(train)
    fig, (ax, ax_lr) = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True, height_ratios=(3, 1))
    data = _long(train, terms, "term")
    style = "run" if "run" in data.columns and data["run"].nunique() > 1 else None
    sns.lineplot(data=data, x="step", y="value", hue="term", style=style, ax=ax)
    if log_scale:
        ax.set_yscale("log")
    ax.set_ylabel("training loss term")
    ax.set_title("Loss terms during training")
    _stage_boundaries(ax, history)
    sns.lineplot(data=train, x="step", y="lr", ax=ax_lr, color="0.3", hue="run" if style else None, legend=False)
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_xlabel("global step")
    fig.tight_layout()
    return fig


def plot_mal_vs_conventional(history: pd.DataFrame) -> plt.Figure:
    """The MAL (or deep-feature) term next to the conventional terms, each relative to its first logged value.

    Relative values put terms of different units on one axis: a term at 0.5 has halved since the stage began.
    Next to it, the collapse monitor ``mal_feat_var`` (variance of the MAL encoder's target features): a MAL
    term that falls while this collapses towards 0 means the encoder stopped separating signals.
    """
    train = history[history["kind"] == "train"].sort_values("step")
    terms = loss_term_columns(train)
    rel = train[["step", *terms]].copy()
    for t in terms:
        first = rel[t].dropna()
        rel[t] = rel[t] / first.iloc[0] if len(first) and first.iloc[0] != 0 else float("nan")
    has_var = "mal_feat_var" in train.columns and train["mal_feat_var"].notna().any()
    fig, axes = plt.subplots(1, 2 if has_var else 1, figsize=(11 if has_var else 7, 4), squeeze=False)
    ax = axes[0, 0]
    data = _long(rel, terms, "term")
    data["kind"] = data["term"].map(
        lambda t: "feature loss" if t in ("mal", "deep_feature", "lossnet") else "conventional"
    )
    sns.lineplot(data=data, x="step", y="value", hue="term", style="kind", ax=ax)
    ax.axhline(1.0, color="0.6", linewidth=0.8)
    ax.set_ylabel("term / its first logged value")
    ax.set_xlabel("global step")
    ax.set_title("MAL term vs conventional terms (relative)")
    if has_var:
        ax2 = axes[0, 1]
        sns.lineplot(data=train, x="step", y="mal_feat_var", ax=ax2, color="C3")
        ax2.set_yscale("log")
        ax2.set_ylabel("variance of E*(y) features")
        ax2.set_xlabel("global step")
        ax2.set_title("Collapse monitor")
    fig.tight_layout()
    return fig


def plot_step_size(history: pd.DataFrame) -> plt.Figure:
    """How large this stage's steps were: the total gradient norm before clipping and the weight change
    ‖θ − θ_start‖ / ‖θ_start‖ over the global step, plus each calibrated term's weight when the run calibrates.

    Two branches compare as losses only when these match (the gradient norm sets Adam's step through its
    inherited second moment); a calibrated branch re-matches its weights every ``calibrate_every`` steps, which
    the third panel shows.
    """
    train = history[history["kind"] == "train"].sort_values("step")
    weights = [c for c in train.columns if c.startswith("weight_") and not c.startswith("weight_change")]
    weights = [c for c in weights if train[c].notna().any()]
    panels = [("grad_norm", "gradient norm (before clipping)"), ("weight_change", "‖θ − θ_start‖ / ‖θ_start‖")]
    panels = [(c, label) for c, label in panels if c in train.columns and train[c].notna().any()]
    n = len(panels) + bool(weights)
    fig, axes = plt.subplots(1, max(n, 1), figsize=(4.2 * max(n, 1), 3.6), squeeze=False)
    for ax, (column, label) in zip(axes[0], panels, strict=False):
        sns.lineplot(data=train, x="step", y=column, ax=ax, color="C0")
        ax.set_ylabel(label)
        ax.set_xlabel("global step")
    if weights:
        ax = axes[0, len(panels)]
        sns.lineplot(data=_long(train, weights, "term"), x="step", y="value", hue="term", ax=ax)
        ax.set_yscale("log")
        ax.set_ylabel("loss weight")
        ax.set_xlabel("global step")
        ax.set_title("calibrated weights")
    fig.suptitle("Step size of this stage")
    fig.tight_layout()
    return fig


def plot_validation(
    history: pd.DataFrame,
    metrics: Sequence[str] = ("pesq_wb", "si_sdr"),
    noisy: Mapping[str, float] | None = None,
) -> plt.Figure:
    """Validation metrics (and the validation loss) over the global step.

    Args:
        history: the run's history (validation rows have ``kind == "valid"``).
        metrics: metric columns to show; missing ones are skipped.
        noisy: the unprocessed input's score per metric on the same files, drawn as a dashed line: the
            model is useful only above it.
    """
    valid = history[history["kind"] == "valid"]
    shown = [m for m in (*metrics, "loss") if m in valid.columns and valid[m].notna().any()]
    fig, axes = plt.subplots(1, max(1, len(shown)), figsize=(4 * max(1, len(shown)), 3.6), squeeze=False)
    hue = "run" if "run" in valid.columns and valid["run"].nunique() > 1 else None
    for ax, m in zip(axes[0], shown, strict=False):
        sns.lineplot(data=valid, x="step", y=m, hue=hue, marker="o", ax=ax)
        if noisy and m in noisy:
            ax.axhline(noisy[m], color="0.4", linestyle="--", linewidth=1, label="noisy input")
            ax.legend(loc="best", fontsize="small")
        ax.set_ylabel(metric_label(m))
        ax.set_xlabel("global step")
    axes[0, 0].set_title("Validation")
    fig.tight_layout()
    return fig
