"""Non-intrusive MOS predictors (no reference needed): DNSMOS, DistillMOS and, with user weights, NISQA.

* **DNSMOS** (Reddy et al. 2022, P.835 SIG/BAK/OVRL + P.808) through ``speechmos``, whose ONNX models ship in
  the wheel. speechmos tiles clips shorter than 9.01 s and averages 9.01 s windows hopped by 1 s, so a 3 s
  clip costs three windows. Its sessions are rebuilt here with one intra-op thread: parallelism comes from
  processes (:func:`mal.metrics.score_many`), and one thread keeps results bit-identical across runs.
* **DistillMOS** (Stahl & Gamper 2025), a distilled XLS-R quality model whose weights ship in the
  ``distillmos`` wheel: the offline stand-in for the paper's NISQA.
* **NISQA** (Mittag et al. 2021) only when the user passes a local weights file (``nisqa.tar`` from the NISQA
  repository) and has the authors' package (``pip install --no-deps nisqa``); otherwise NaN with the reason.

Input rule for all of them: 16 kHz, at least 0.5 s, and samples in [-1, 1]. A few samples beyond full scale
are clipped, as a 16-bit WAV writer would; more than 1 % beyond full scale means the scale is wrong (int16
values passed as floats?) and gives NaN with a reason. Models are loaded once per process and cached.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path

import numpy as np

from mal.metrics.inputs import MetricUndefined

MOS_SAMPLE_RATE = 16000
MOS_MIN_SECONDS = 0.5
MAX_CLIPPED_FRACTION = 0.01

_dnsmos_model = None
_distillmos_model = None


def mos_input(estimate: np.ndarray, sample_rate: int) -> np.ndarray:
    """The estimate as the MOS models must see it: float32 in [-1, 1] at 16 kHz (see the module rule)."""
    if sample_rate != MOS_SAMPLE_RATE:
        raise MetricUndefined(f"non-intrusive MOS models need 16 kHz input, got {sample_rate} Hz")
    if estimate.size < MOS_MIN_SECONDS * sample_rate:
        raise MetricUndefined(f"too short for a MOS model ({estimate.size / sample_rate:.2f} s < {MOS_MIN_SECONDS} s)")
    over = int(np.count_nonzero(np.abs(estimate) > 1.0))
    if over > MAX_CLIPPED_FRACTION * estimate.size:
        raise MetricUndefined(
            f"{100 * over / estimate.size:.1f} % of samples exceed full scale (peak {np.max(np.abs(estimate)):.3g}); "
            "MOS models expect [-1, 1] (int16 values passed as floats?)"
        )
    return np.clip(estimate, -1.0, 1.0).astype(np.float32)


def _load_dnsmos():
    global _dnsmos_model
    if _dnsmos_model is None:
        import onnxruntime as ort
        import speechmos.dnsmos as sd

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        folder = Path(sd.__file__).parent / "dnsmos_models"
        # speechmos's DNSMOS class builds its sessions with default threading; build ours and reuse its
        # scoring code (windowing, mel features, polynomial mapping) unchanged.
        model = sd.DNSMOS.__new__(sd.DNSMOS)
        model.primary_model_path = str(folder / "sig_bak_ovr.onnx")
        model.onnx_sess = ort.InferenceSession(model.primary_model_path, options, providers=["CPUExecutionProvider"])
        model.p808_onnx_sess = ort.InferenceSession(
            str(folder / "model_v8.onnx"), options, providers=["CPUExecutionProvider"]
        )
        _dnsmos_model = model
    return _dnsmos_model


def dnsmos(estimate: np.ndarray, sample_rate: int) -> dict[str, float]:
    """DNSMOS P.835 (``dnsmos_sig``, ``dnsmos_bak``, ``dnsmos_ovrl``) and P.808 (``dnsmos_p808``), 1 … 5."""
    audio = mos_input(estimate, sample_rate)  # never empty: speechmos loops forever on an empty array
    out = _load_dnsmos()(audio, MOS_SAMPLE_RATE, False)
    return {
        "dnsmos_sig": float(out["sig_mos"]),
        "dnsmos_bak": float(out["bak_mos"]),
        "dnsmos_ovrl": float(out["ovrl_mos"]),
        "dnsmos_p808": float(out["p808_mos"]),
    }


def _load_distillmos():
    global _distillmos_model
    if _distillmos_model is None:
        import distillmos

        with contextlib.redirect_stdout(io.StringIO()):  # it prints the weights path on load
            _distillmos_model = distillmos.ConvTransformerSQAModel().eval()
    return _distillmos_model


def distillmos(estimate: np.ndarray, sample_rate: int) -> float:
    """DistillMOS, 1 … 5 (CPU; the model pads or windows the clip itself)."""
    import torch

    audio = mos_input(estimate, sample_rate)
    model = _load_distillmos()
    with torch.inference_mode():
        return float(model(torch.from_numpy(audio)[None]).reshape(-1)[0])


def nisqa(estimate: np.ndarray, sample_rate: int, weights: str) -> float:
    """NISQA overall MOS with the user's weights file, through the authors' ``nisqa`` package.

    Raises:
        MetricUndefined: no weights given, weights missing, or the package is not installed.
    """
    if not weights:
        raise MetricUndefined(
            "NISQA skipped: no weights given (its weights cannot be downloaded here; pass nisqa_weights= the path "
            "of nisqa.tar from the NISQA repository)"
        )
    if not Path(weights).is_file():
        raise MetricUndefined(f"NISQA skipped: weights file not found: {weights}")
    try:
        from nisqa.NISQA_model import nisqaModel
    except ImportError as err:
        raise MetricUndefined(
            "NISQA skipped: the authors' package is not installed (pip install --no-deps nisqa)"
        ) from err
    import soundfile as sf

    audio = mos_input(estimate, sample_rate)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "estimate.wav")
        sf.write(path, audio, sample_rate, subtype="FLOAT")
        args = {
            "mode": "predict_file",
            "pretrained_model": str(Path(weights).resolve()),
            "deg": path,
            "output_dir": None,
            "ms_channel": None,
            "tr_bs_val": 1,
            "tr_num_workers": 0,
            "tr_parallel": False,
        }
        with contextlib.redirect_stdout(io.StringIO()):
            table = nisqaModel(args).predict()
    return float(table["mos_pred"].iloc[0])
