"""Golden values and the NaN-with-reason contract of mal.metrics."""

from __future__ import annotations

import math

import numpy as np
import pesq as pesq_lib
import pytest
import scipy.linalg
import torch
from pystoi import stoi as pystoi_stoi
from speech_signals import mix_at_snr, speech_like

import mal.metrics as M
from mal.metrics import loizou

SR = 16000


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    return speech_like(3.0, SR, seed=1)


@pytest.fixture(scope="module")
def noisy(clean: np.ndarray) -> np.ndarray:
    return mix_at_snr(clean, np.random.default_rng(7).standard_normal(clean.size), 5.0)


CHEAP = ["pesq_wb", "stoi", "estoi", "si_sdr", "ssnr", "csig", "cbak", "covl"]


# --- golden values ---------------------------------------------------------------------------------------------


def test_clean_vs_clean_is_perfect(clean: np.ndarray) -> None:
    values, reasons = M.score_with_reasons(clean, clean, SR, CHEAP)
    assert values["pesq_wb"] == pytest.approx(4.644, abs=0.01)
    assert values["stoi"] == pytest.approx(1.0, abs=1e-6)
    assert values["estoi"] == pytest.approx(1.0, abs=1e-6)
    assert values["csig"] == 5.0 and values["cbak"] == 5.0 and values["covl"] == 5.0  # clipped at the top
    assert values["ssnr"] == 35.0  # every frame at the segSNR ceiling
    # SI-SDR of a signal with itself is +inf: undefined, reported as NaN with the reason.
    assert math.isnan(values["si_sdr"]) and "+inf" in reasons["si_sdr"]


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 5.0, 12.5, 20.0])
def test_si_sdr_equals_constructed_snr(clean: np.ndarray, snr_db: float) -> None:
    rng = np.random.default_rng(int(snr_db * 10) + 100)
    s = clean - clean.mean()
    n = rng.standard_normal(s.size)
    n -= n.mean()
    n -= (n @ s) / (s @ s) * s  # orthogonal to the zero-mean reference: SI-SDR is exactly the SNR
    n *= np.sqrt((s @ s) / (n @ n) / 10 ** (snr_db / 10))
    assert M.si_sdr(s + n, s) == pytest.approx(snr_db, abs=0.01)
    # Scale invariance and the zero-mean step: gain and DC offset on the estimate change nothing.
    assert M.score(s, 0.3 * (s + n) + 0.05, SR, ["si_sdr"])["si_sdr"] == pytest.approx(snr_db, abs=0.01)


def test_agrees_with_direct_library_calls(clean: np.ndarray, noisy: np.ndarray) -> None:
    values = M.score(clean, noisy, SR, ["pesq_wb", "stoi", "estoi"])
    assert values["pesq_wb"] == pytest.approx(pesq_lib.pesq(SR, clean, noisy, "wb"), rel=1e-9)  # 10 digits kept
    assert values["stoi"] == pytest.approx(pystoi_stoi(clean, noisy, SR, extended=False), abs=1e-9)
    assert values["estoi"] == pytest.approx(pystoi_stoi(clean, noisy, SR, extended=True), abs=1e-9)
    assert values["estoi"] < values["stoi"]  # the two are different measures; never mix them up


def test_narrow_band_pesq_at_8k(clean: np.ndarray, noisy: np.ndarray) -> None:
    c8, n8 = clean[::2], noisy[::2]  # crude decimation is fine for an agreement check
    values, reasons = M.score_with_reasons(c8, n8, 8000, ["pesq_nb", "pesq_wb", "csig"])
    assert values["pesq_nb"] == pytest.approx(pesq_lib.pesq(8000, c8, n8, "nb"), rel=1e-9)
    assert math.isnan(values["pesq_wb"]) and "16 kHz" in reasons["pesq_wb"]
    assert 1.0 <= values["csig"] <= 5.0
    assert "pesq_nb" not in M.default_metrics(16000) and "pesq_wb" not in M.default_metrics(8000)


# --- the composite measure, term by term -----------------------------------------------------------------------


def _hand_llr(c: np.ndarray, e: np.ndarray, order: int) -> float:
    """One frame's LLR the textbook way: LPC from the normal equations (scipy), then the quadratic forms."""

    def lpc(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = np.array([frame[: frame.size - k] @ frame[k:] for k in range(order + 1)])
        a = scipy.linalg.solve_toeplitz(r[:-1], r[1:])
        return np.concatenate([[1.0], -a]), r

    a_c, r_c = lpc(c)
    a_e, _ = lpc(e)
    big_r = scipy.linalg.toeplitz(r_c)
    return float(np.log((a_e @ big_r @ a_e) / (a_c @ big_r @ a_c)))


def _hand_wss(c: np.ndarray, e: np.ndarray, sr: int) -> float:
    """One frame's WSS with explicit loops, following Klatt's description band by band."""
    filt, n_fft = loizou._critical_band_filters(sr)

    def band_db(frame: np.ndarray) -> np.ndarray:
        spec = np.abs(np.fft.fft(frame, n_fft)[: n_fft // 2]) ** 2
        return np.array([10 * math.log10(max(float(spec @ filt[b]), 1e-10)) for b in range(25)])

    def peaks(energy: np.ndarray, slope: np.ndarray) -> np.ndarray:
        out = np.zeros(24)
        for i in range(24):
            n = i
            if slope[i] > 0:
                while n < 24 and slope[n] > 0:
                    n += 1
                out[i] = energy[n - 1]
            else:
                while n >= 0 and slope[n] <= 0:
                    n -= 1
                out[i] = energy[n + 1]
        return out

    ec, ee = band_db(c), band_db(e)
    sc, se = np.diff(ec), np.diff(ee)
    wc = 20 / (20 + ec.max() - ec[:24]) * (1 / (1 + peaks(ec, sc) - ec[:24]))
    we = 20 / (20 + ee.max() - ee[:24]) * (1 / (1 + peaks(ee, se) - ee[:24]))
    w = (wc + we) / 2
    return float(np.sum(w * (sc - se) ** 2) / np.sum(w))


def test_composite_terms_match_hand_computed_frames(clean: np.ndarray, noisy: np.ndarray) -> None:
    eps = np.finfo(float).eps
    fc = loizou.frames(clean + eps, SR)
    fe = loizou.frames(noisy + eps, SR)
    assert fc.shape == ((clean.size - 480) // 120, 480)  # 30 ms frames, 7.5 ms hop, last full frame unused
    llr = loizou.llr_frames(fc, fe, SR)
    wss = loizou.wss_frames(fc, fe, SR)
    seg = loizou.segsnr_frames(fc, fe)
    for f in (10, 57, 133, 250, fc.shape[0] - 1):
        assert llr[f] == pytest.approx(_hand_llr(fc[f], fe[f], 16), rel=1e-6, abs=1e-9)
        assert wss[f] == pytest.approx(_hand_wss(fc[f], fe[f], SR), rel=1e-9)
        snr = 10 * math.log10(np.sum(fc[f] ** 2) / (np.sum((fc[f] - fe[f]) ** 2) + eps) + eps)
        assert seg[f] == pytest.approx(min(max(snr, -10.0), 35.0))
    # Assembly: worst 5 % of LLR/WSS frames dropped, segSNR averaged, Hu & Loizou's regression, clipped.
    scores = loizou.composite(clean, noisy, SR, pesq_score=2.0)
    keep = int(math.floor(llr.size * 0.95 + 0.5))
    assert scores.llr == pytest.approx(np.sort(llr)[:keep].mean())
    assert scores.wss == pytest.approx(np.sort(wss)[:keep].mean())
    assert scores.segsnr == pytest.approx(seg.mean())
    csig = 3.093 - 1.029 * scores.llr + 0.603 * 2.0 - 0.009 * scores.wss
    cbak = 1.634 + 0.478 * 2.0 - 0.007 * scores.wss + 0.063 * scores.segsnr
    covl = 1.594 + 0.805 * 2.0 - 0.512 * scores.llr - 0.007 * scores.wss
    assert scores.csig == pytest.approx(min(max(csig, 1), 5))
    assert scores.cbak == pytest.approx(min(max(cbak, 1), 5))
    assert scores.covl == pytest.approx(min(max(covl, 1), 5))


def test_composite_golden_values(clean: np.ndarray, noisy: np.ndarray) -> None:
    """Pinned numbers of this port (two public Python ports differ by ~0.08; these must not drift)."""
    s = loizou.composite(clean, noisy, SR, pesq_score=2.0)
    assert (round(s.llr, 4), round(s.wss, 3), round(s.segsnr, 3)) == GOLDEN_TERMS


GOLDEN_TERMS = (1.4987, 31.854, -2.58)  # LLR, WSS, segSNR; pysepm (checked against MATLAB) gives the same


def test_composite_reuses_given_pesq(clean: np.ndarray, noisy: np.ndarray) -> None:
    direct = loizou.composite(clean, noisy, SR)
    assert direct.pesq == pesq_lib.pesq(SR, clean + np.finfo(float).eps, noisy + np.finfo(float).eps, "wb")
    via_score = M.score(clean, noisy, SR, ["pesq_wb", "csig", "cbak", "covl"])
    assert via_score["csig"] == pytest.approx(direct.csig, abs=1e-3)
    assert via_score["cbak"] == pytest.approx(direct.cbak, abs=1e-3)


# --- NaN with a reason, never 0 --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "expect"),
    [
        (lambda c: (c, np.zeros(0)), "empty"),
        (lambda c: (c, np.zeros_like(c)), "silent estimate"),
        (lambda c: (np.zeros_like(c), c), "silent reference"),
        (lambda c: (c, np.where(np.arange(c.size) == 5, np.nan, c)), "NaN/inf"),
        (lambda c: (c, np.stack([c, c])), "mono"),
        (lambda c: (c, c[: c.size // 2]), "length mismatch"),
        (lambda c: (c[:3000], c[:3000] * 0.9), "too short"),
    ],
)
def test_undefined_inputs_give_nan_with_reason(clean: np.ndarray, make, expect: str) -> None:
    ref, est = make(clean)
    values, reasons = M.score_with_reasons(ref, est, SR, ["pesq_wb", "stoi", "csig"])
    for name in ("pesq_wb", "stoi", "csig"):
        assert math.isnan(values[name]), name
        assert expect in reasons[name], (name, reasons[name])


def test_silent_reference_still_scores_non_intrusive_metrics() -> None:
    est = speech_like(4.6, SR, seed=3)
    values, reasons = M.score_with_reasons(np.zeros_like(est), est, SR, ["si_sdr", "distillmos"])
    assert math.isnan(values["si_sdr"]) and "silent reference" in reasons["si_sdr"]
    assert 1.0 <= values["distillmos"] <= 5.0 and "distillmos" not in reasons


def test_caller_errors_raise(clean: np.ndarray) -> None:
    with pytest.raises(ValueError, match="unknown metric"):
        M.score(clean, clean, SR, ["pesq"])
    with pytest.raises(ValueError, match="resample"):
        M.score(clean, clean, 44100, ["si_sdr"])


def test_pesq_nb_at_16k_is_nan_with_reason(clean: np.ndarray) -> None:
    values, reasons = M.score_with_reasons(clean, clean, SR, ["pesq_nb"])
    assert math.isnan(values["pesq_nb"]) and "8 kHz" in reasons["pesq_nb"]


def test_nisqa_is_optional_and_skipped_with_reason(clean: np.ndarray, tmp_path) -> None:
    assert "nisqa" not in M.default_metrics(SR)
    _, reasons = M.score_with_reasons(clean, clean, SR, ["nisqa"])
    assert "no weights given" in reasons["nisqa"]
    opts = M.MetricOptions(nisqa_weights=str(tmp_path / "missing.tar"))
    _, reasons = M.score_with_reasons(clean, clean, SR, ["nisqa"], opts)
    assert "not found" in reasons["nisqa"]


# --- input conventions -----------------------------------------------------------------------------------------


def test_int16_float_and_torch_inputs_agree(clean: np.ndarray, noisy: np.ndarray) -> None:
    ref = M.score(clean, noisy, SR, ["pesq_wb", "si_sdr", "ssnr"])
    as_int = M.score((clean * 32768).astype(np.int16), (noisy * 32768).astype(np.int16), SR, ["pesq_wb", "si_sdr"])
    as_torch = M.score(torch.from_numpy(clean)[None].float(), torch.from_numpy(noisy).float(), SR, ["pesq_wb"])
    assert as_int["si_sdr"] == pytest.approx(ref["si_sdr"], abs=0.01)
    assert as_int["pesq_wb"] == pytest.approx(ref["pesq_wb"], abs=0.02)
    assert as_torch["pesq_wb"] == pytest.approx(ref["pesq_wb"], abs=0.02)


def test_length_rule_trims_small_differences(clean: np.ndarray, noisy: np.ndarray) -> None:
    longer = np.concatenate([noisy, np.zeros(200)])  # 12.5 ms longer: within the 0.1 s tolerance
    assert M.score(clean, longer, SR, ["si_sdr", "ssnr"]) == M.score(clean, noisy, SR, ["si_sdr", "ssnr"])
    strict = M.MetricOptions(length_tolerance_s=0.0)
    _, reasons = M.score_with_reasons(clean, longer, SR, ["si_sdr"], strict)
    assert "length mismatch" in reasons["si_sdr"]


def test_mos_models_refuse_int_scaled_floats(clean: np.ndarray) -> None:
    loud = speech_like(1.0, SR, seed=4) * 32768.0
    _, reasons = M.score_with_reasons(loud, loud, SR, ["distillmos"])
    assert "exceed full scale" in reasons["distillmos"]


def test_dnsmos_and_distillmos_match_their_packages() -> None:
    import distillmos
    from speechmos import dnsmos as speechmos_dnsmos

    est = speech_like(4.6, SR, seed=5)  # 4.6 s: speechmos tiles it to 9.2 s, a single DNSMOS window
    values = M.score(est, est, SR, ["dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808", "distillmos"])
    direct = speechmos_dnsmos.run(est.astype(np.float32), SR)
    assert values["dnsmos_ovrl"] == pytest.approx(direct["ovrl_mos"], abs=1e-5)
    assert values["dnsmos_sig"] == pytest.approx(direct["sig_mos"], abs=1e-5)
    assert values["dnsmos_bak"] == pytest.approx(direct["bak_mos"], abs=1e-5)
    assert values["dnsmos_p808"] == pytest.approx(direct["p808_mos"], abs=1e-5)
    model = distillmos.ConvTransformerSQAModel().eval()
    with torch.inference_mode():
        expected = float(model(torch.from_numpy(est.astype(np.float32))[None])[0, 0])
    assert values["distillmos"] == pytest.approx(expected, abs=1e-5)
    assert all(1.0 <= v <= 5.0 for v in values.values())


# --- batches ---------------------------------------------------------------------------------------------------


def test_one_bad_file_gives_nan_rows_and_leaves_the_rest_intact(clean: np.ndarray, noisy: np.ndarray, tmp_path) -> None:
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF not really a wave file")
    pairs = [
        ("a", clean, noisy),
        ("bad-file", clean, corrupt),
        ("silent", clean, np.zeros_like(clean)),
        ("b", noisy, clean),
    ]
    metrics = ["pesq_wb", "si_sdr", "csig"]
    with pytest.warns(UserWarning, match="1 file"):
        table = M.score_many(pairs, metrics, workers=1, progress=False)
    assert list(table.columns) == ["file", "metric", "value", "reason"]
    assert len(table) == 4 * 3 and list(table["file"].unique()) == ["a", "bad-file", "silent", "b"]
    bad = table[table["file"] == "bad-file"]
    assert bad["value"].isna().all() and bad["reason"].str.contains("corrupt").all()
    assert table[table["file"] == "silent"]["reason"].str.contains("silent estimate").all()
    for fid, ref, est in (("a", clean, noisy), ("b", noisy, clean)):
        rows = table[table["file"] == fid].set_index("metric")
        expected = M.score(ref, est, SR, metrics)
        assert (rows["reason"] == "").all()
        assert rows["value"].to_dict() == expected


def test_parallel_scoring_is_identical_to_serial(tmp_path) -> None:
    import soundfile as sf

    rng = np.random.default_rng(3)
    pairs = []
    for i in range(3):
        c = speech_like(2.0, SR, seed=10 + i)
        est = mix_at_snr(c, rng.standard_normal(c.size), 5.0 * i)
        path = tmp_path / f"est{i}.wav"
        sf.write(path, est.astype(np.float32), SR, subtype="FLOAT")
        pairs.append((f"f{i}", c.astype(np.float32), path))
    # DNSMOS is left to benchmarks/bench_metrics.py (which checks identity too): its cold start per worker is slow.
    metrics = ["pesq_wb", "stoi", "estoi", "si_sdr", "csig", "distillmos"]
    serial = M.score_many(pairs, metrics, workers=1, progress=False)
    parallel = M.score_many(pairs, metrics, workers=2, progress=False)
    assert serial.equals(parallel)  # bit-identical (values carry 10 significant digits)
    assert serial["value"].notna().all()
    assert "estoi" in M.default_metrics(SR)


def test_tensors_sent_to_scoring_workers_stay_private_to_the_caller() -> None:
    # Pickling a tensor for a worker would move its storage into shared memory in place, under a caller that may
    # still be reading it (evaluation enhances the same noisy tensor it just queued as the `noisy` estimate): the
    # race corrupted about one estimate in 400. The workers get copies, so the caller's tensors are untouched.
    clean = torch.from_numpy(speech_like(1.0, SR, seed=4).astype(np.float32))[None]
    noisy = clean + 0.05 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    parallel = M.score_many([("a", clean, noisy), ("b", clean, clean)], ["si_sdr"], workers=2, progress=False)
    assert not clean.is_shared() and not noisy.is_shared()
    serial = M.score_many([("a", clean, noisy), ("b", clean, clean)], ["si_sdr"], workers=1, progress=False)
    assert serial.equals(parallel)


def test_rounding_to_ten_significant_digits_hides_last_bit_noise() -> None:
    assert M.scoring.round_significant(0.34281777185767875) == M.scoring.round_significant(0.34281777185767864)
    assert M.scoring.round_significant(-12.3456789012345) == -12.34567890


def test_cache_returns_stored_values_and_computes_only_what_is_missing(tmp_path) -> None:
    from mal.metrics.cache import ScoreCache

    rng = np.random.default_rng(5)
    pairs = []
    for i in range(3):
        c = speech_like(1.5, SR, seed=40 + i).astype(np.float32)
        pairs.append((f"c{i}", c, (c + 0.05 * rng.standard_normal(c.size)).astype(np.float32)))
    path = tmp_path / "cache.sqlite"
    first = M.score_many(pairs, ["si_sdr", "stoi"], progress=False, cache=path)
    cache = ScoreCache(path)
    assert len(cache) == 3 * 2
    again = M.score_many(pairs, ["si_sdr", "stoi", "pesq_wb"], progress=False, cache=cache)
    assert cache.hits == 3 * 2 and cache.misses == 3  # only PESQ was computed
    pd_first = first.set_index(["file", "metric"])["value"]
    assert again.set_index(["file", "metric"])["value"].loc[pd_first.index].equals(pd_first)
    assert again.equals(M.score_many(pairs, ["si_sdr", "stoi", "pesq_wb"], progress=False))  # same as uncached
    changed = [(f, c, e * 0.5 + 0.01) for f, c, e in pairs]  # different audio, different key
    M.score_many(changed, ["si_sdr"], progress=False, cache=cache)
    assert cache.misses == 3 + 3
