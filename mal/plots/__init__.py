"""Figures. One module per area (data, training, evaluation, analysis); this file holds what they share.

Every figure is saved as PNG (for notebooks and the README) and SVG (for papers) under one stem, atomically.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
    # Headless runs (papermill, CI) have no display; notebooks keep their inline backend.
    matplotlib.use("Agg", force=False)

import matplotlib.pyplot as plt  # noqa: E402

from mal.io import atomic_path  # noqa: E402

FORMATS = ("png", "svg")

# Axis labels of the metrics every figure module plots; a name not listed here is shown as it is.
METRIC_LABELS = {
    "pesq_wb": "PESQ-WB",
    "pesq_nb": "PESQ-NB",
    "stoi": "STOI",
    "estoi": "ESTOI",
    "si_sdr": "SI-SDR (dB)",
    "ssnr": "segSNR (dB)",
    "csig": "CSIG",
    "cbak": "CBAK",
    "covl": "COVL",
    "dnsmos_sig": "DNSMOS SIG",
    "dnsmos_bak": "DNSMOS BAK",
    "dnsmos_ovrl": "DNSMOS OVRL",
    "dnsmos_p808": "DNSMOS P.808",
    "distillmos": "DistillMOS",
    "nisqa": "NISQA",
    "hnr_db": "HNR, voiced frames (dB)",
    "spectral_flatness": "spectral flatness, voiced frames",
    "snr_db": "input SNR (dB)",
}


def metric_label(name: str) -> str:
    """Axis label of a metric column (e.g. "pesq_wb" -> "PESQ-WB"); unknown names are returned unchanged."""
    return METRIC_LABELS.get(name, name)


def save_figure(fig: plt.Figure, stem: str | Path, formats: tuple[str, ...] = FORMATS, dpi: int = 120) -> list[Path]:
    """Save ``fig`` as ``<stem>.png`` and ``<stem>.svg`` (atomic writes); returns the written paths."""
    stem = Path(stem)
    written = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
        written.append(path)
    return written
