"""Mixing rules, generated noises and simulated rooms."""

from __future__ import annotations

import numpy as np
import pytest

from mal.data.errors import DataError
from mal.data.mixing import NoiseClip, assemble_noise, peak_guard, power, scale_noise_to_snr, set_level
from mal.data.rooms import make_room, reverberate
from mal.data.synth_noise import coloured_noise, mains_hum


def _slope(x: np.ndarray, sr: int = 16000) -> float:
    """Slope of log power vs log frequency between 100 Hz and 4 kHz (Welch average)."""
    from scipy.signal import welch

    f, p = welch(x, fs=sr, nperseg=4096)
    band = (f > 100) & (f < 4000)
    return float(np.polyfit(np.log10(f[band]), np.log10(p[band]), 1)[0])


@pytest.mark.parametrize(("colour", "slope"), [("white", 0.0), ("pink", -1.0), ("brown", -2.0)])
def test_coloured_noise_has_its_spectral_slope(colour: str, slope: float) -> None:
    x = coloured_noise(16000 * 8, colour, np.random.default_rng(1))
    assert x.dtype == np.float32 and np.sqrt(power(x)) == pytest.approx(1.0, rel=1e-4)
    assert _slope(x) == pytest.approx(slope, abs=0.15)
    assert np.array_equal(x, coloured_noise(16000 * 8, colour, np.random.default_rng(1)))


def test_hum_sits_on_the_mains_frequency() -> None:
    x = mains_hum(16000 * 4, np.random.default_rng(3))
    spec = np.abs(np.fft.rfft(x))
    freqs = np.fft.rfftfreq(x.size, 1 / 16000)
    peak = freqs[np.argmax(spec)]
    assert min(abs(peak - 50), abs(peak - 60), abs(peak - 100), abs(peak - 120), abs(peak - 150)) < 1.0
    assert 0.99 < np.sqrt(power(x)) < 1.01


def test_snr_and_level_are_exact() -> None:
    rng = np.random.default_rng(0)
    speech = set_level(rng.standard_normal(8000).astype(np.float32), -26.0)
    assert 10 * np.log10(power(speech)) == pytest.approx(-26.0, abs=1e-4)
    noise = scale_noise_to_snr(speech, rng.standard_normal(8000).astype(np.float32) * 3, 7.5)
    assert 10 * np.log10(power(speech) / power(noise)) == pytest.approx(7.5, abs=1e-4)
    with pytest.raises(DataError, match="power"):
        scale_noise_to_snr(speech, np.zeros(8000, np.float32), 5.0)
    with pytest.raises(DataError, match="silent"):
        set_level(np.zeros(10, np.float32), -20)


def test_peak_guard_scales_the_pair_together() -> None:
    a, b = np.array([0.5, -1.8], np.float32), np.array([0.2, 0.3], np.float32)
    gain, (ga, gb) = peak_guard(a, b, peak=0.9)
    assert gain == pytest.approx(0.5) and np.max(np.abs(ga)) == pytest.approx(0.9)
    assert gb == pytest.approx(b * 0.5)
    assert peak_guard(b, peak=0.9)[0] == 1.0


def test_assemble_noise_fills_length_from_beds_and_events() -> None:
    rng = np.random.default_rng(0)
    bed = [NoiseClip("pkg:bed.wav", np.ones(1000, np.float32), offset_s=10.0)]
    out, desc = assemble_noise(bed, 2500, rng)
    assert out.shape == (2500,) and desc.startswith("pkg:bed.wav@10.") and "+2 more" in desc
    assert np.count_nonzero(out == 0) < 10  # beds are continuous (only fade endpoints touch zero)
    clicks = [NoiseClip("pkg:click.wav", np.ones(80, np.float32))]
    out, _ = assemble_noise(clicks, 16000, rng, gap_seconds=(0.05, 0.1))
    assert out.shape == (16000,) and 0.3 < np.mean(out == 0) < 0.95  # events leave pauses
    long = [NoiseClip("pkg:long.wav", np.arange(50000, dtype=np.float32))]
    out, desc = assemble_noise(long, 1000, np.random.default_rng(5))
    assert "more" not in desc and np.all(np.diff(out[200:-200]) == 1)  # one contiguous crop
    with pytest.raises(DataError, match="empty"):
        assemble_noise([], 10, rng)


def test_room_rir_and_alignment() -> None:
    room = make_room("r", np.random.default_rng(2), (0.4, 0.6))
    assert room.rir[room.direct_index] == pytest.approx(1.0)
    assert np.max(np.abs(room.rir[: room.direct_index])) <= 1.0 + 1e-6
    dry = np.zeros(4000, np.float32)
    dry[100] = 1.0
    wet, ref = reverberate(dry, room)
    assert wet.shape == ref.shape and wet.size > dry.size
    assert int(np.argmax(ref)) == 100 + room.direct_index == int(np.argmax(wet))
    assert power(wet) > power(ref)  # reflections add energy
    again = make_room("r", np.random.default_rng(2), (0.4, 0.6))
    assert np.array_equal(room.rir, again.rir)
