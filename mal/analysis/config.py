"""``AnalysisConfig``: the parameters of the feature-space analysis (notebook 03) as one typed, validated config."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mal.config import ConfigBase, ConfigError
from mal.plan import DEFAULT_BASELINE, DEFAULT_JUDGE, default_checkpoints, default_corpus_root

KNOWN_SPACES = ("logmel", "mrstft", "lossnet")


def split_list(text: str) -> list[str]:
    """``"a, b,c"`` → ``["a", "b", "c"]`` (empty entries dropped)."""
    return [part.strip() for part in text.split(",") if part.strip()]


def check_checkpoints(checkpoints: dict[str, str], where: str = "AnalysisConfig.checkpoints") -> dict[str, str]:
    """Validate a ``{label: checkpoint path}`` mapping; raise :class:`ConfigError` naming the bad entry."""
    if not checkpoints:
        raise ConfigError(f"{where}: give at least one entry, e.g. {{'baseline': 'runs/x/checkpoints/last.pt'}}")
    for label, path in checkpoints.items():
        if not label.strip() or label != label.strip():
            raise ConfigError(f"{where}: label {label!r} must be a non-empty name without surrounding spaces")
        if label in ("noisy", "clean"):
            raise ConfigError(f"{where}: {label!r} is a reserved label; rename it")
        if not path.strip():
            raise ConfigError(f"{where}: the path of {label!r} is empty")
    return checkpoints


@dataclasses.dataclass
class AnalysisConfig(ConfigBase):
    """Feature-space analysis and self-consistency study."""

    run_dir: str = "runs/03_feature_space_analysis"  # outputs: config, summary.json, tables, figures/
    dataset: str = "mal-offline"  # name for mal.data.open_dataset
    data_root: str = dataclasses.field(default_factory=default_corpus_root)  # root of that dataset (quick corpus)
    split: str = "test"  # which split to analyse
    # label → checkpoint of every system compared (default: the quick study's, last.pt: equal steps for all)
    checkpoints: dict[str, str] = dataclasses.field(default_factory=default_checkpoints)
    judge: str = DEFAULT_JUDGE  # label(s) from checkpoints whose encoder measures distances (first: projections)
    layers: str = "all"  # encoder feature maps: all | bottleneck | blocks | indices like "0,2,-1"
    distance: str = "l1"  # l1 | l2, normalised per layer by the reference's own magnitude
    n_files: int = 32  # files in the correlation study (0: the whole split)
    metrics: str = "pesq_wb,stoi,si_sdr"  # metrics correlated with each distance
    spaces: str = "logmel,mrstft,deep:wavlm_base"  # comparison feature spaces
    deep_weights: str = ""  # local pretrained weights of the deep: backbone (empty: hub cache, else random-init)
    lossnet_checkpoint: str = ""  # a lossnet pretrained by mal, enables the 'lossnet' space
    projections: str = "pca,tsne"  # 2-D projection methods (umap when installed)
    k_max: int = 5  # K: passes of repeated enhancement
    sc_files: int = 8  # files in the self-consistency study
    sc_metrics: str = "pesq_wb,si_sdr,dnsmos_ovrl"  # metrics tracked against k (harmonicity is always added)
    reference: str = DEFAULT_BASELINE  # checkpoint label whose k-curve decay the others are compared with (paired)
    n_boot: int = 1000  # bootstrap resamples for every CI
    seed: int = 0  # bootstrap and projection seed
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 1  # torch CPU threads (the pipeline runner packs steps onto cores with it)
    interactive: bool = False  # build the ipywidgets explorer

    def validate(self) -> None:
        ckpts = check_checkpoints(self.checkpoints)
        missing = [j for j in self.judge_labels if j not in ckpts]
        if missing:
            raise ConfigError(f"AnalysisConfig.judge: {missing} not among the checkpoint labels {list(ckpts)}")
        if self.reference not in ckpts:
            raise ConfigError(
                f"AnalysisConfig.reference: {self.reference!r} is not among the checkpoint labels {list(ckpts)}"
            )
        if self.distance not in ("l1", "l2"):
            raise ConfigError(f"AnalysisConfig.distance: {self.distance!r} is not 'l1' or 'l2'")
        if self.threads < 1:
            raise ConfigError(f"AnalysisConfig.threads: must be >= 1, got {self.threads}")
        for name in ("n_files", "sc_files", "n_boot"):
            if getattr(self, name) < 0:
                raise ConfigError(f"AnalysisConfig.{name}: must be >= 0, got {getattr(self, name)}")
        if self.k_max < 1:
            raise ConfigError(f"AnalysisConfig.k_max: must be >= 1, got {self.k_max}")
        for space in self.space_list:
            if space not in KNOWN_SPACES and not (space.startswith("deep:") and len(space) > 5):
                raise ConfigError(
                    f"AnalysisConfig.spaces: unknown space {space!r}; use {KNOWN_SPACES} or deep:<backbone>"
                )
        for method in self.projection_list:
            if method not in ("pca", "tsne", "umap"):
                raise ConfigError(f"AnalysisConfig.projections: unknown method {method!r}; use pca, tsne, umap")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ConfigError(f"AnalysisConfig.device: {self.device!r}; use auto, cpu, cuda or cuda:N")
        if self.layers.strip().lower() not in ("all", "bottleneck", "blocks"):
            try:
                indices = [int(part) for part in split_list(self.layers)]
            except ValueError as err:
                raise ConfigError(
                    f"AnalysisConfig.layers: {self.layers!r}; use all, bottleneck, blocks or indices like '0,2,-1'"
                ) from err
            if not indices:
                raise ConfigError("AnalysisConfig.layers: no layer selected")

    @property
    def judge_labels(self) -> list[str]:
        labels = split_list(self.judge)
        if not labels:
            raise ConfigError("AnalysisConfig.judge: name at least one checkpoint label")
        return labels

    @property
    def metric_list(self) -> list[str]:
        return split_list(self.metrics)

    @property
    def sc_metric_list(self) -> list[str]:
        return split_list(self.sc_metrics)

    @property
    def space_list(self) -> list[str]:
        return split_list(self.spaces)

    @property
    def projection_list(self) -> list[str]:
        return split_list(self.projections)

    @property
    def run_path(self) -> Path:
        return Path(self.run_dir)

    @property
    def figures_dir(self) -> Path:
        return self.run_path / "figures"
