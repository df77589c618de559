"""The compressed spectral loss: MSE between power-law compressed spectra, magnitude and complex.

    L = w_mag · mean (|Ŷ|^c − |Y|^c)²  +  w_ri · mean |Ŷ·|Ŷ|^(c−1) − Y·|Y|^(c−1)|²

with ``Ŷ`` and ``Y`` the STFTs of the estimate and the reference, each divided by the reference's RMS first (so
the loss does not depend on the level of the utterance), and ``c = 0.3``. Compression is what makes it fit speech:
``|X|^0.3`` lifts quiet speech bins towards loud ones, like loudness perception, yet a noise-only bin at −70 dB
still counts for almost nothing (0.3 × 70 dB ≈ 21 dB below the speech), which a log-magnitude loss does not do.
The complex part makes the phase matter; the magnitude part keeps the spectral shape sharp. Lightweight models
of the GTCRN family train with this hybrid (magnitude 70 : complex 30, plus a small SI-SNR term), which is where
the default weights come from.
"""

from __future__ import annotations

import torch
from torch import nn

from mal.losses._checks import check_pair, flat


class CompressedSpectralLoss(nn.Module):
    """Compressed magnitude + compressed complex MSE on one STFT resolution.

    Args:
        n_fft: STFT size (Hann window of the same length). Use the model's own STFT where it has one.
        hop: STFT hop in samples.
        exponent: compression exponent ``c`` (0 < c ≤ 1).
        mag_weight, ri_weight: weights of the magnitude and the complex part.
        eps: added to the squared magnitude before the root (finite gradients at silent bins) and to the
            reference RMS (a silent reference does not divide by zero).

    Shape:
        estimate, reference: ``(B, T)`` or ``(B, 1, T)``, identical.

    Returns:
        Scalar tensor, dimensionless (0 for identical inputs).
    """

    def __init__(
        self,
        n_fft: int = 512,
        hop: int = 256,
        exponent: float = 0.3,
        mag_weight: float = 0.7,
        ri_weight: float = 0.3,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        if not 0 < hop <= n_fft:
            raise ValueError(f"CompressedSpectralLoss: need 0 < hop <= n_fft; got hop={hop}, n_fft={n_fft}")
        if not 0 < exponent <= 1:
            raise ValueError(f"CompressedSpectralLoss: exponent must be in (0, 1]; got {exponent}")
        if mag_weight < 0 or ri_weight < 0 or mag_weight + ri_weight == 0:
            raise ValueError(f"CompressedSpectralLoss: weights must be >= 0, not both 0; got {mag_weight}, {ri_weight}")
        self.n_fft, self.hop, self.exponent = n_fft, hop, exponent
        self.mag_weight, self.ri_weight, self.eps = mag_weight, ri_weight, eps
        # A non-persistent buffer follows .to(device) and stays out of checkpoints.
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def _compressed(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, T)`` → compressed magnitude ``(B, F, N)`` and compressed complex spectrum ``(B, F, N)``."""
        spec = torch.stft(wav, self.n_fft, self.hop, window=self.window, center=True, return_complex=True)
        mag = (spec.real.square() + spec.imag.square() + self.eps).sqrt()
        return mag.pow(self.exponent), spec * mag.pow(self.exponent - 1)

    def components(self, estimate: torch.Tensor, reference: torch.Tensor) -> dict[str, torch.Tensor]:
        """The magnitude and complex MSE terms, unweighted (for inspection)."""
        check_pair(estimate, reference, type(self).__name__)
        est, ref = flat(estimate).float(), flat(reference).float()
        # The reference's RMS is a constant (no gradient): it only sets the level both are compared at.
        rms = ref.detach().square().mean(dim=-1, keepdim=True).sqrt() + self.eps
        with torch.autocast(device_type=est.device.type, enabled=False):
            mag_est, ri_est = self._compressed(est / rms)
            mag_ref, ri_ref = self._compressed(ref / rms)
            diff = ri_est - ri_ref
            return {
                "mag": (mag_est - mag_ref).square().mean(),
                "ri": (diff.real.square() + diff.imag.square()).mean(),
            }

    def forward(self, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        parts = self.components(estimate, reference)
        return self.mag_weight * parts["mag"] + self.ri_weight * parts["ri"]

    def extra_repr(self) -> str:
        weights = f"mag_weight={self.mag_weight}, ri_weight={self.ri_weight}"
        return f"n_fft={self.n_fft}, hop={self.hop}, exponent={self.exponent}, {weights}"
