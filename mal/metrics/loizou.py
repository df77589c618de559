"""Loizou's composite quality measure (CSIG, CBAK, COVL) and its parts: LLR, WSS and segmental SNR.

A port written for ``mal`` from the published definitions (Hu & Loizou, "Evaluation of objective quality
measures for speech enhancement", IEEE TASLP 2008; Loizou, "Speech Enhancement: Theory and Practice",
2nd ed., 2013; Klatt 1982 for WSS; Quackenbush et al. 1988 for LLR). It follows the reference MATLAB
``composite.m`` in every detail that moves the numbers, so scores are comparable with published tables:

* both signals are trimmed to the shorter and offset by machine epsilon (keeps digital silence finite);
* frames of 30 ms with a hop of a quarter frame, MATLAB ``hanning`` window (no zero end points), and the
  frame count ``floor((T - win) / hop)`` (the last full frame is not used);
* WSS: 25 Gaussian critical-band filters (-30 dB cut) on a ``2**nextpow2(2*win)``-point power spectrum,
  Klatt's weights with Kmax = 20 and Klocmax = 1, normalised by the sum of weights; the nearest-peak search
  keeps the reference's convention (a rising slope takes the band *below* the first falling slope);
* LLR: LPC order 10 below 10 kHz and 16 above, autocorrelation method with Levinson-Durbin;
* the worst 5 % of LLR and WSS frames are dropped (``round(0.95·n)`` lowest kept; NaN frames sort last);
* segSNR per frame is clipped to [-10, 35] dB and averaged over all frames;
* CSIG = 3.093 - 1.029·LLR + 0.603·PESQ - 0.009·WSS,
  CBAK = 1.634 + 0.478·PESQ - 0.007·WSS + 0.063·segSNR,
  COVL = 1.594 + 0.805·PESQ - 0.512·LLR - 0.007·WSS, each clipped to [1, 5].

PESQ is wide band at 16 kHz and narrow band at 8 kHz (the MATLAB code used its own narrow-band raw
PESQ; wide band at 16 kHz is what speech-enhancement papers report, so it is used here). Callers that already
have PESQ pass it in, so it is computed once per file.

Everything is vectorised over frames with numpy (one FFT call, one matrix product for the filter bank, a
batched Levinson recursion), about 10 ms per 3 s clip.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft

from mal.metrics.inputs import MetricUndefined

TRIM_FRACTION = 0.95  # share of LLR/WSS frames kept (the best ones)
SEGSNR_RANGE = (-10.0, 35.0)  # dB, per-frame clip
KMAX = 20.0  # Klatt's global-maximum weight constant
KLOCMAX = 1.0  # Klatt's local-maximum weight constant
_EPS = float(np.finfo(np.float64).eps)

# Critical bands of the WSS measure (centre frequency, bandwidth in Hz), from Klatt (1982) as tabulated by Loizou.
CRITICAL_BAND_CENTRES = np.array(
    [50.0, 120.0, 190.0, 260.0, 330.0, 400.0, 470.0, 540.0, 617.372, 703.378, 798.717, 904.128, 1020.38,
     1148.30, 1288.72, 1442.54, 1610.70, 1794.16, 1993.93, 2211.08, 2446.71, 2701.97, 2978.04, 3276.17,
     3597.63]
)  # fmt: skip
CRITICAL_BAND_WIDTHS = np.array(
    [70.0, 70.0, 70.0, 70.0, 70.0, 70.0, 70.0, 77.3724, 86.0056, 95.3398, 105.411, 116.256, 127.914, 140.423,
     153.823, 168.154, 183.457, 199.776, 217.153, 235.631, 255.255, 276.072, 298.126, 321.465, 346.136]
)  # fmt: skip


@dataclass(frozen=True)
class CompositeScores:
    """The three composite ratings (clipped to [1, 5]) and the terms they were built from."""

    csig: float
    cbak: float
    covl: float
    llr: float  # mean LLR over the best 95 % of frames
    wss: float  # mean WSS over the best 95 % of frames
    segsnr: float  # mean segmental SNR in dB (frames clipped to [-10, 35])
    pesq: float


def frame_setup(sample_rate: int) -> tuple[int, int]:
    """(window, hop) in samples: 30 ms and a quarter of it."""
    win = int(np.floor(30 * sample_rate / 1000 + 0.5))
    return win, win // 4


@lru_cache(maxsize=4)
def _hanning(win: int) -> np.ndarray:
    """MATLAB's ``hanning(win)``: a Hann window without its zero end points."""
    n = np.arange(1, win + 1)
    return 0.5 * (1.0 - np.cos(2.0 * np.pi * n / (win + 1)))


def frames(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Windowed analysis frames ``(F, win)`` with F = floor((T - win) / hop), as in ``composite.m``."""
    win, hop = frame_setup(sample_rate)
    n_frames = (x.size - win) // hop
    if n_frames < 1:
        raise MetricUndefined(f"too short for the composite measure ({x.size} samples < {win + hop})")
    view = np.lib.stride_tricks.sliding_window_view(x, win)[: n_frames * hop : hop]
    return view * _hanning(win)


def _trimmed_mean(values: np.ndarray) -> float:
    """Mean of the lowest round(0.95·n) values (MATLAB rounding: halves away from zero); NaNs sort last."""
    keep = int(np.floor(values.size * TRIM_FRACTION + 0.5))
    return float(np.mean(np.sort(values)[:keep])) if keep else float("nan")


def segsnr_frames(clean_frames: np.ndarray, est_frames: np.ndarray) -> np.ndarray:
    """Per-frame segmental SNR in dB, clipped to [-10, 35]. Shape ``(F,)``."""
    signal = np.sum(clean_frames**2, axis=1)
    noise = np.sum((clean_frames - est_frames) ** 2, axis=1)
    snr = 10.0 * np.log10(signal / (noise + _EPS) + _EPS)
    return np.clip(snr, *SEGSNR_RANGE)


@lru_cache(maxsize=4)
def _critical_band_filters(sample_rate: int) -> tuple[np.ndarray, int]:
    """Gaussian critical-band filters ``(25, n_fft/2)`` on FFT bins, zeroed below their -30 dB point."""
    win, _ = frame_setup(sample_rate)
    n_fft = int(2 ** np.ceil(np.log2(2 * win)))
    half = n_fft // 2
    max_freq = sample_rate / 2
    centre_bins = np.floor(CRITICAL_BAND_CENTRES / max_freq * half)
    widths = CRITICAL_BAND_WIDTHS / max_freq * half
    # Equal-area filters: narrower bands get proportionally higher gain (log(bw_min) - log(bw_i)).
    norm = np.log(CRITICAL_BAND_WIDTHS[0]) - np.log(CRITICAL_BAND_WIDTHS)
    bins = np.arange(half)
    filt = np.exp(-11.0 * ((bins[None, :] - centre_bins[:, None]) / widths[:, None]) ** 2 + norm[:, None])
    min_factor = np.exp(-30.0 / (2.0 * 2.303))
    filt = filt * (filt > min_factor)
    return filt, n_fft


def _band_energies_db(frames_: np.ndarray, sample_rate: int) -> np.ndarray:
    filt, n_fft = _critical_band_filters(sample_rate)
    spec = np.abs(scipy.fft.rfft(frames_, n_fft, axis=1)[:, : n_fft // 2]) ** 2
    return 10.0 * np.log10(np.maximum(spec @ filt.T, 1e-10))


def _nearest_peaks(energy: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """Energy of the spectral peak nearest to each band (``(F, 24)``), searching along the slope's sign.

    Rising slope at band i: walk right to the first falling (or flat) slope j and take the energy of band
    j - 1, the reference code's convention. Falling or flat slope: walk left to the last rising slope k and
    take band k + 1 (band 0 when there is none).
    """
    n_f, n_s = slope.shape
    idx = np.broadcast_to(np.arange(n_s), (n_f, n_s))
    rising = slope > 0
    first_fall = np.where(rising, n_s, idx)
    first_fall = np.minimum.accumulate(first_fall[:, ::-1], axis=1)[:, ::-1]  # first j >= i with slope <= 0
    last_rise = np.maximum.accumulate(np.where(rising, idx, -1), axis=1)  # last k <= i with slope > 0
    right = np.take_along_axis(energy, first_fall - 1, axis=1)
    left = np.take_along_axis(energy, last_rise + 1, axis=1)
    return np.where(rising, right, left)


def wss_frames(clean_frames: np.ndarray, est_frames: np.ndarray, sample_rate: int) -> np.ndarray:
    """Weighted spectral slope distance per frame (Klatt 1982). Shape ``(F,)``."""
    e_ref = _band_energies_db(clean_frames, sample_rate)
    e_est = _band_energies_db(est_frames, sample_rate)
    s_ref = np.diff(e_ref, axis=1)
    s_est = np.diff(e_est, axis=1)

    def weights(energy: np.ndarray, slope: np.ndarray) -> np.ndarray:
        bands = energy[:, :-1]
        w_max = KMAX / (KMAX + energy.max(axis=1, keepdims=True) - bands)
        w_loc = KLOCMAX / (KLOCMAX + _nearest_peaks(energy, slope) - bands)
        return w_max * w_loc

    w = 0.5 * (weights(e_ref, s_ref) + weights(e_est, s_est))
    return np.sum(w * (s_ref - s_est) ** 2, axis=1) / np.sum(w, axis=1)


def lpc_order(sample_rate: int) -> int:
    return 10 if sample_rate < 10000 else 16


def autocorrelation(frames_: np.ndarray, order: int) -> np.ndarray:
    """Autocorrelation lags 0..order of each frame. ``(F, win)`` → ``(F, order + 1)``."""
    win = frames_.shape[1]
    return np.stack([np.sum(frames_[:, : win - k] * frames_[:, k:], axis=1) for k in range(order + 1)], axis=1)


def levinson(r: np.ndarray) -> np.ndarray:
    """LPC polynomials ``[1, -a_1, …, -a_p]`` from autocorrelations ``r`` ``(F, p + 1)``, batched over frames."""
    n_f, p1 = r.shape
    order = p1 - 1
    a = np.zeros((n_f, order))
    err = r[:, 0].copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(order):
            acc = np.sum(a[:, :i] * r[:, i:0:-1], axis=1)
            k = (r[:, i + 1] - acc) / err
            prev = a[:, :i].copy()
            a[:, :i] = prev - k[:, None] * prev[:, ::-1]
            a[:, i] = k
            err = (1.0 - k * k) * err
    return np.concatenate([np.ones((n_f, 1)), -a], axis=1)


def llr_frames(clean_frames: np.ndarray, est_frames: np.ndarray, sample_rate: int) -> np.ndarray:
    """Log-likelihood ratio per frame: log(a_e R_c a_eᵀ / a_c R_c a_cᵀ) with R_c the reference's Toeplitz
    autocorrelation matrix. Shape ``(F,)``; NaN where a frame's LPC fit is undefined."""
    order = lpc_order(sample_rate)
    r_ref = autocorrelation(clean_frames, order)
    a_ref = levinson(r_ref)
    a_est = levinson(autocorrelation(est_frames, order))
    lag = np.abs(np.arange(order + 1)[:, None] - np.arange(order + 1)[None, :])
    toeplitz = r_ref[:, lag]  # (F, p+1, p+1)
    with np.errstate(divide="ignore", invalid="ignore"):
        num = np.einsum("fi,fij,fj->f", a_est, toeplitz, a_est)
        den = np.einsum("fi,fij,fj->f", a_ref, toeplitz, a_ref)
        return np.log(num / den)


def composite(
    clean: np.ndarray, estimate: np.ndarray, sample_rate: int, pesq_score: float | None = None
) -> CompositeScores:
    """CSIG, CBAK and COVL of ``estimate`` against ``clean`` (1-D float arrays at 8 or 16 kHz).

    Args:
        pesq_score: PESQ of the same pair (wide band at 16 kHz, narrow band at 8 kHz); computed when None.

    Raises:
        MetricUndefined: too short, or PESQ/LLR undefined for this pair.
    """
    n = min(clean.size, estimate.size)
    ref = np.asarray(clean[:n], dtype=np.float64) + _EPS
    est = np.asarray(estimate[:n], dtype=np.float64) + _EPS
    if pesq_score is None:
        from mal.metrics.intrusive import pesq

        pesq_score = pesq(ref, est, sample_rate, "wb" if sample_rate == 16000 else "nb")
    if not np.isfinite(pesq_score):
        raise MetricUndefined("composite measure needs PESQ, which is undefined for this pair")
    f_ref = frames(ref, sample_rate)
    f_est = frames(est, sample_rate)
    llr = _trimmed_mean(llr_frames(f_ref, f_est, sample_rate))
    wss = _trimmed_mean(wss_frames(f_ref, f_est, sample_rate))
    seg = float(np.mean(segsnr_frames(f_ref, f_est)))
    if not np.isfinite(llr):
        raise MetricUndefined("LLR undefined: more than 5 % of frames have no valid LPC fit")
    if not np.isfinite(wss):
        raise MetricUndefined("WSS undefined for this pair")
    csig = 3.093 - 1.029 * llr + 0.603 * pesq_score - 0.009 * wss
    cbak = 1.634 + 0.478 * pesq_score - 0.007 * wss + 0.063 * seg
    covl = 1.594 + 0.805 * pesq_score - 0.512 * llr - 0.007 * wss
    return CompositeScores(
        csig=float(np.clip(csig, 1.0, 5.0)),
        cbak=float(np.clip(cbak, 1.0, 5.0)),
        covl=float(np.clip(covl, 1.0, 5.0)),
        llr=llr,
        wss=wss,
        segsnr=seg,
        pesq=float(pesq_score),
    )


def segmental_snr(clean: np.ndarray, estimate: np.ndarray, sample_rate: int) -> float:
    """Mean segmental SNR in dB as in the composite measure (30 ms frames, each clipped to [-10, 35])."""
    n = min(clean.size, estimate.size)
    ref = np.asarray(clean[:n], dtype=np.float64) + _EPS
    est = np.asarray(estimate[:n], dtype=np.float64) + _EPS
    return float(np.mean(segsnr_frames(frames(ref, sample_rate), frames(est, sample_rate))))
