"""Voice and channel augmentation of clean training speech (applied before remixing, so the target changes too).

The quick corpus has four real speakers; the out-of-domain test set has sixteen others, recorded on other
microphones. Two cheap transforms widen what the model hears without touching any test split:

* :func:`change_speed`: play the speech ``factor`` times faster (Kaldi-style speed perturbation, as used for
  ASR training by Ko et al., 2015): duration scales by ``1/factor`` and pitch and formants by ``factor``, so one
  speaker becomes a family of nearby voices. Done by band-limited (windowed-sinc) resampling, so no aliasing.
* :func:`tilt`: a first-order FIR ``y[t] = x[t] - a·x[t-1]``, a smooth spectral tilt between DC (gain ``1 - a``)
  and Nyquist (gain ``1 + a``), the way microphones and rooms colour speech; the output keeps the input's RMS.

On the clean segment, the noisy input is then the augmented speech plus noise, so the model learns to keep
whatever voice and colour it is given, not to pull every voice towards the four it knows. On the noise
(:class:`mal.data.SegmentDataset`'s ``noise_*`` options) they move and tilt its spectrum instead. Screened on the
validation splits in docs/model_quality.md: neither closes the out-of-domain gap, so both are off by default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

# Speed factors are whole percentages: ``factor = percent / 100`` keeps the resampling ratio a small fraction.
SPEED_STEP = 100
# The augmentation settings (SegmentDataset keywords and DataConfig fields of the same names) and the open upper
# bound of each: speeds below 50 % or above 150 % are not voices any more; tilt coefficients and a probability < 1.
BOUNDS: dict[str, float] = {
    "speed_perturb": 0.5,
    "tilt": 1.0,
    "noise_speed_perturb": 0.5,
    "noise_tilt": 1.0,
    "noise_mix": 1.0,
}


def check_settings(settings: Mapping[str, float], remix: bool) -> None:
    """Raise ValueError unless every setting lies in ``[0, bound)`` and any switched-on one has ``remix``.

    Args:
        settings: name (a key of :data:`BOUNDS`) → value.
        remix: whether segments are remixed; the augmentations act on the clean speech and noise while mixing.
    """
    for name, value in settings.items():
        if not 0 <= value < BOUNDS[name]:
            raise ValueError(f"{name} must be in [0, {BOUNDS[name]:g}), got {value}")
    on = [name for name, value in settings.items() if value]
    if on and not remix:
        raise ValueError(f"{', '.join(on)} act while remixing speech and noise, so they need remix=True")


def speed_input_samples(n: int, percent: int) -> int:
    """Input samples :func:`change_speed` needs to return ``n`` samples at ``percent`` % speed (a few spare)."""
    return int(math.ceil(n * percent / SPEED_STEP)) + 1


def change_speed(x: torch.Tensor, percent: int, n: int) -> torch.Tensor:
    """Play ``x`` at ``percent`` % speed and return its first ``n`` samples.

    Args:
        x: ``(..., T)`` waveform at 16 kHz; give at least :func:`speed_input_samples` ``(n, percent)`` samples
            so the output is not padded.
        percent: speed in percent (110: 10 % faster, higher voice; 90: slower, lower voice).
        n: output length in samples (zero-padded at the end if ``x`` is too short).

    Returns:
        ``(..., n)`` waveform, same dtype.
    """
    if percent <= 0:
        raise ValueError(f"change_speed: percent must be positive, got {percent}")
    if percent != SPEED_STEP:
        import torchaudio.functional as AF  # here: config validation imports this module, resampling is rare

        # Reading x as if sampled at `percent` Hz and resampling to SPEED_STEP Hz shortens it by percent/100.
        x = AF.resample(x, orig_freq=percent, new_freq=SPEED_STEP)
    x = x[..., :n]
    if x.shape[-1] < n:
        x = torch.nn.functional.pad(x, (0, n - x.shape[-1]))
    return x


def tilt(x: torch.Tensor, a: float) -> torch.Tensor:
    """Spectral tilt ``y[t] = x[t] - a·x[t-1]`` (``x[-1] = 0``), rescaled to the RMS of ``x``.

    Args:
        x: ``(..., T)`` waveform.
        a: tilt coefficient in ``(-1, 1)``: ``a > 0`` brightens (gain ``1 + a`` at Nyquist, ``1 - a`` at DC),
            ``a < 0`` darkens. ``|a| = 0.5`` is a 9.5 dB difference between the band edges.

    Returns:
        ``(..., T)`` waveform, same dtype; a silent ``x`` stays silent.
    """
    if not -1 < a < 1:
        raise ValueError(f"tilt: coefficient must be in (-1, 1), got {a}")
    if a == 0:
        return x
    y = x.clone()
    y[..., 1:] -= a * x[..., :-1]
    rms_x, rms_y = x.double().pow(2).mean().sqrt(), y.double().pow(2).mean().sqrt()
    if rms_y > 0:
        y = y * float(rms_x / rms_y)
    return y
