"""Conventional enhancement objectives: waveform L1, multi-resolution STFT and SI-SDR.

Every loss is an ``nn.Module`` called as ``loss(estimate, reference)`` on 16 kHz waveforms shaped ``(B, T)``
or ``(B, 1, T)`` (identical shapes, else ``ValueError``) and returns a scalar tensor: the mean over the batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mal.losses._checks import check_pair, flat


class WaveformL1(nn.Module):
    """Mean absolute error between waveforms, optionally in a per-utterance normalised domain.

    With ``normalise=True`` both signals are divided by ``σ_y``, the standard deviation of each *reference*
    utterance (plus ``eps``), before the L1. One could take σ of the *noisy input*, but a loss with the
    ``(estimate, reference)`` signature never sees the noisy input; σ of the reference serves the same purpose:
    it balances utterances of different loudness, so quiet utterances are not ignored and the term lands on an
    O(1) scale next to MR-STFT (docs/method.md: the raw-scale L1 was ~5 % of the loss and phase was never learned).
    σ_y is treated as a constant (it depends on the reference only, so it carries no gradient anyway).

    Args:
        normalise: divide by the reference's per-item std (``True``) or compare raw samples (``False``).
        eps: added to σ_y so a silent reference does not divide by zero (in waveform units, full scale = 1).

    Shape:
        estimate, reference: ``(B, T)`` or ``(B, 1, T)``, identical.

    Returns:
        Scalar tensor: mean over batch and time of ``|ŷ - y| / σ_y`` (or ``|ŷ - y|``).
    """

    def __init__(self, normalise: bool = True, eps: float = 1e-4) -> None:
        super().__init__()
        self.normalise = normalise
        self.eps = eps

    def forward(self, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        check_pair(estimate, reference, type(self).__name__)
        est, ref = flat(estimate), flat(reference)
        err = (est - ref).abs()
        if self.normalise:
            sigma = ref.detach().std(dim=-1, keepdim=True, unbiased=False) + self.eps
            err = err / sigma
        return err.mean()

    def extra_repr(self) -> str:
        return f"normalise={self.normalise}, eps={self.eps}"


# Demucs' 16 kHz setting (Défossez et al. 2020): FFT sizes, hops and window lengths per resolution.
DEFAULT_FFT_SIZES = (512, 1024, 2048)
DEFAULT_HOP_SIZES = (50, 120, 240)
DEFAULT_WIN_LENGTHS = (240, 600, 1200)


class MultiResolutionSTFTLoss(nn.Module):
    """Spectral convergence + log-magnitude L1, averaged over several STFT resolutions.

    For each resolution (Hann window of ``win_length`` centred in ``fft_size``, hop ``hop_size``):

    - spectral convergence ``‖|Y| - |Ŷ|‖_F / ‖|Y|‖_F`` per utterance (then the batch mean),
    - log-magnitude distance ``mean |log|Y| - log|Ŷ||``,

    and the loss is ``mean over resolutions of (sc_weight·SC + mag_weight·LogMag)``. The STFT always runs in
    float32, also under autocast: half-precision magnitudes underflow in the log and the Frobenius norms.

    Args:
        fft_sizes, hop_sizes, win_lengths: one entry per resolution (equal lengths, ``win ≤ fft``).
        sc_weight, mag_weight: weights of the two parts inside each resolution.
        eps: floor on the squared magnitude before ``sqrt``/``log`` (keeps gradients finite at silence).

    Shape:
        estimate, reference: ``(B, T)`` or ``(B, 1, T)``, identical, ``T > max(fft_sizes) // 2`` (the centred
        STFT reflect-pads by half an FFT).

    Returns:
        Scalar tensor (dimensionless).
    """

    def __init__(
        self,
        fft_sizes: Sequence[int] = DEFAULT_FFT_SIZES,
        hop_sizes: Sequence[int] = DEFAULT_HOP_SIZES,
        win_lengths: Sequence[int] = DEFAULT_WIN_LENGTHS,
        sc_weight: float = 1.0,
        mag_weight: float = 1.0,
        eps: float = 1e-7,
    ) -> None:
        super().__init__()
        if not (len(fft_sizes) == len(hop_sizes) == len(win_lengths)) or len(fft_sizes) == 0:
            raise ValueError(
                f"MultiResolutionSTFTLoss: fft_sizes {list(fft_sizes)}, hop_sizes {list(hop_sizes)} and "
                f"win_lengths {list(win_lengths)} must be non-empty and of equal length"
            )
        for n_fft, hop, win in zip(fft_sizes, hop_sizes, win_lengths, strict=True):
            if not (0 < win <= n_fft and 0 < hop):
                raise ValueError(
                    f"MultiResolutionSTFTLoss: need 0 < win_length ≤ fft_size and hop > 0; got fft {n_fft}, "
                    f"hop {hop}, win {win}"
                )
        self.fft_sizes = tuple(int(n) for n in fft_sizes)
        self.hop_sizes = tuple(int(h) for h in hop_sizes)
        self.win_lengths = tuple(int(w) for w in win_lengths)
        self.sc_weight = sc_weight
        self.mag_weight = mag_weight
        self.eps = eps
        # Windows as non-persistent buffers: they follow .to(device) but stay out of checkpoints.
        for i, win in enumerate(self.win_lengths):
            self.register_buffer(f"window{i}", torch.hann_window(win), persistent=False)

    def _magnitude(self, wav: torch.Tensor, i: int) -> torch.Tensor:
        spec = torch.stft(
            wav,
            n_fft=self.fft_sizes[i],
            hop_length=self.hop_sizes[i],
            win_length=self.win_lengths[i],
            window=getattr(self, f"window{i}"),
            center=True,
            return_complex=True,
        )
        return (spec.real.square() + spec.imag.square()).clamp_min(self.eps).sqrt()

    def components(self, estimate: torch.Tensor, reference: torch.Tensor) -> dict[str, torch.Tensor]:
        """Spectral convergence and log-magnitude terms, each averaged over resolutions (for inspection)."""
        name = type(self).__name__
        check_pair(estimate, reference, name)
        length = estimate.shape[-1]
        if length <= max(self.fft_sizes) // 2:
            raise ValueError(
                f"{name}: input of {length} samples is too short for FFT size {max(self.fft_sizes)}; "
                f"need more than {max(self.fft_sizes) // 2} samples"
            )
        est = flat(estimate).float()
        ref = flat(reference).float()
        device_type = est.device.type
        sc_total = est.new_zeros(())
        mag_total = est.new_zeros(())
        with torch.autocast(device_type=device_type, enabled=False):
            for i in range(len(self.fft_sizes)):
                mag_est = self._magnitude(est, i)
                mag_ref = self._magnitude(ref, i)
                diff = torch.linalg.vector_norm(mag_ref - mag_est, dim=(-2, -1))
                norm = torch.linalg.vector_norm(mag_ref, dim=(-2, -1))
                sc_total = sc_total + (diff / norm.clamp_min(self.eps)).mean()
                mag_total = mag_total + (mag_ref.log() - mag_est.log()).abs().mean()
        n = len(self.fft_sizes)
        return {"sc": sc_total / n, "log_mag": mag_total / n}

    def forward(self, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        parts = self.components(estimate, reference)
        return self.sc_weight * parts["sc"] + self.mag_weight * parts["log_mag"]

    def extra_repr(self) -> str:
        return f"fft_sizes={self.fft_sizes}, hop_sizes={self.hop_sizes}, win_lengths={self.win_lengths}"


def si_sdr(estimate: torch.Tensor, reference: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Zero-mean scale-invariant SDR in dB per item.

    ``α = ⟨ŷ, y⟩ / ‖y‖²``, ``SI-SDR = 10·log10(‖αy‖² / ‖ŷ - αy‖²)`` after removing each signal's mean.
    ``eps`` keeps silent or perfect pairs finite (a perfect estimate gives a large finite value, not inf).

    Shape:
        estimate, reference: ``(B, T)`` or ``(B, 1, T)``, identical.

    Returns:
        ``(B,)`` tensor in dB.
    """
    check_pair(estimate, reference, "si_sdr")
    est = flat(estimate).float()
    ref = flat(reference).float()
    est = est - est.mean(dim=-1, keepdim=True)
    ref = ref - ref.mean(dim=-1, keepdim=True)
    alpha = (est * ref).sum(dim=-1, keepdim=True) / (ref.square().sum(dim=-1, keepdim=True) + eps)
    target = alpha * ref
    noise = est - target
    return 10 * torch.log10((target.square().sum(dim=-1) + eps) / (noise.square().sum(dim=-1) + eps))


class SISDRLoss(nn.Module):
    """Negative zero-mean SI-SDR in dB, averaged over the batch (lower is better, like every loss here).

    Args:
        eps: numerical floor inside the energy ratio (see :func:`si_sdr`).

    Shape:
        estimate, reference: ``(B, T)`` or ``(B, 1, T)``, identical.

    Returns:
        Scalar tensor in dB (e.g. ``-10.0`` for an estimate at 10 dB SI-SDR).
    """

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        check_pair(estimate, reference, type(self).__name__)
        return -si_sdr(estimate, reference, self.eps).mean()
