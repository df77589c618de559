"""``bandcrn``: a small phase-aware band-wise convolutional recurrent network with a complex mask.

::

    wav ─ STFT ─ normalise ─ (|X|, Re, Im)^c ─ bands ─ conv₀ ─ conv₁ ─ tconv×3 ─ dual-path RNN×2 ─┐     (encoder)
                                                          │       │       │                     │
    wav' ◄ iSTFT ◄ M·X ◄ bins ◄ up₀ ◄──(+)──── up₁ ◄─(+)── tconv×3 ◄─(+)──────────────────────────┘     (decoder)

It is built for what the CPU budget of the quick profile can train (54.5 k parameters and 114 M multiply-adds per
second of audio at the defaults), from what lightweight enhancement models of the GTCRN / DeepFilterNet / FSPEN
family have in common:

* **Phase in, phase out.** The encoder sees the power-law compressed complex spectrum (real and imaginary parts,
  plus the compressed magnitude), and the decoder predicts a complex ratio mask ``M`` that multiplies the noisy
  STFT, so it can change phase as well as gain. The mask starts as exactly ``1 + 0i`` (identity): the untrained
  model returns its input, and training starts from the noisy floor rather than from a half-muted signal.
* **Parameters where the bins are.** Below ``linear_bins`` (2 kHz with the defaults) every STFT bin is kept; above,
  bins are averaged into bands equally spaced on the ERB-rate scale, so the network works on 129 instead of 257
  frequencies and the high bands, where speech has little fine structure, cost little. The mask is computed per
  band and copied to the bins of its band.
* **Time context in the convolutions.** Every conv has a kernel along time (``time_kernel`` frames), and three
  depth-wise separable blocks dilate it (1, 2, 5 frames), so the encoder sees about 20 frames (320 ms) of context
  before any recurrence.
* **Band-wise recurrence.** Two dual-path blocks each run a bidirectional GRU across the frequency bands of one
  frame (``intra``) and a GRU along time per band (``inter``), with a linear layer, a layer norm and a residual
  connection each. The recurrent weights are shared across bands, so their cost is spread over every band.
* **Normalised input.** The encoder input is divided by the utterance's RMS (or, with ``causal=True``, by the
  running RMS of the frames seen so far); the mask multiplies the *un*-normalised STFT, so the output keeps the
  input's level and the model is level-invariant.
* **Causal option.** ``causal=True`` pads every time kernel on the past side only and makes the time GRU
  unidirectional: the output at sample ``t`` then depends on input up to ``t + n_fft`` (the STFT window).

MAL reads ``Encoded.layers`` (the two strided convs and the three time-conv blocks, each ``(B, C, F', N)``) and the
bottleneck (the dual-path output flattened to ``(B, C·F', N)``).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from mal.models.base import Encoded, SEModel, as_batch
from mal.models.specmask import FreqUpBlock, conv_out_size, istft, padded_length, stft

SCALE_FLOOR = 1e-5  # floor of the RMS used to normalise the input (full scale = 1), so silence stays finite
DILATIONS = (1, 2, 5)  # time dilations of the three depth-wise blocks: about 20 frames of context with kernel 3


def erb_rate(freq_hz: float) -> float:
    """Glasberg & Moore's ERB-rate scale (number of ERBs below ``freq_hz``)."""
    return 21.4 * math.log10(1.0 + 0.00437 * freq_hz)


def inverse_erb_rate(erb: float) -> float:
    return (10 ** (erb / 21.4) - 1.0) / 0.00437


def band_edges(n_bins: int, linear_bins: int, n_bands: int, sample_rate: int) -> list[int]:
    """First bin of every band: bins ``< linear_bins`` one each, the rest in ``n_bands`` ERB-spaced bands.

    Returns ``linear_bins + n_bands + 1`` strictly increasing edges from 0 to ``n_bins``; a band gets at least one
    bin even where the ERB spacing is finer than the bin spacing.
    """
    if not 0 < linear_bins < n_bins or not 0 < n_bands <= n_bins - linear_bins:
        raise ValueError(
            f"need 0 < linear_bins < {n_bins} and 0 < n_bands <= {n_bins} - linear_bins; "
            f"got linear_bins={linear_bins}, n_bands={n_bands}"
        )
    hz_per_bin = sample_rate / 2 / (n_bins - 1)
    lo, hi = erb_rate(linear_bins * hz_per_bin), erb_rate(sample_rate / 2)
    edges = list(range(linear_bins + 1))
    for k in range(1, n_bands):
        bin_k = round(inverse_erb_rate(lo + (hi - lo) * k / n_bands) / hz_per_bin)
        # At least one bin per band, and leave at least one bin for each band still to come.
        edges.append(min(max(bin_k, edges[-1] + 1), n_bins - (n_bands - k)))
    edges.append(n_bins)
    return edges


def band_matrices(edges: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(merge (F, K), split (K, F))``: averaging bins into bands, and copying each band back to its bins."""
    n_bins, n_bands = edges[-1], len(edges) - 1
    split = torch.zeros(n_bands, n_bins)
    for k in range(n_bands):
        split[k, edges[k] : edges[k + 1]] = 1.0
    merge = (split / split.sum(dim=1, keepdim=True)).T.contiguous()
    return merge, split


class TimeConv2d(nn.Conv2d):
    """Conv2d over ``(B, C, F, N)`` with a kernel ``(kf, kt)``: 'same' padding in frequency, and in time either
    centred or (``causal=True``) on the past side only, so the output frame ``n`` never reads frames ``> n``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: tuple[int, int],
        stride_f: int = 1,
        dilation_t: int = 1,
        groups: int = 1,
        causal: bool = False,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel, stride=(stride_f, 1), dilation=(1, dilation_t), groups=groups
        )
        total = (kernel[1] - 1) * dilation_t
        self.time_pad = (total, 0) if causal else (total // 2, total - total // 2)
        self.freq_pad = kernel[0] // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (*self.time_pad, self.freq_pad, self.freq_pad)))


class TimeConvBlock(nn.Module):
    """Depth-wise separable residual block: 1×1 → depth-wise ``(kf, kt)`` dilated in time → 1×1, PReLUs between.

    Shape: ``(B, C, F, N) → (B, C, F, N)``.
    """

    def __init__(self, channels: int, freq_kernel: int, time_kernel: int, dilation: int, causal: bool) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 1),
            nn.PReLU(channels),
            TimeConv2d(
                channels, channels, (freq_kernel, time_kernel), dilation_t=dilation, groups=channels, causal=causal
            ),
            nn.PReLU(channels),
            nn.Conv2d(channels, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class DualPathRNN(nn.Module):
    """A GRU across frequency within each frame, then a GRU along time within each band; each with linear +
    layer-norm + residual.

    The frequency GRU is bidirectional (a frame is available whole); the time GRU is bidirectional unless
    ``causal``. Hidden sizes are split between the directions so both paths map ``C`` channels to ``C``.

    Shape: ``(B, C, F, N) → (B, C, F, N)``.
    """

    def __init__(self, channels: int, causal: bool) -> None:
        super().__init__()
        if channels % 2:
            raise ValueError(f"DualPathRNN needs an even channel count; got {channels}")
        self.intra = nn.GRU(channels, channels // 2, batch_first=True, bidirectional=True)
        self.intra_out = nn.Linear(channels, channels)
        self.intra_norm = nn.LayerNorm(channels)
        self.inter = nn.GRU(channels, channels if causal else channels // 2, batch_first=True, bidirectional=not causal)
        self.inter_out = nn.Linear(channels, channels)
        self.inter_norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, f, n = x.shape
        # Under inference mode (enhancement, evaluation, analysis) a bidirectional GRU runs as one GRU of twice the
        # width: same outputs to float rounding, half the sequential steps. Training and validation (no_grad) keep
        # PyTorch's own bidirectional GRU, so training is unchanged bit for bit.
        run = run_gru_fused if torch.is_inference_mode_enabled() else run_gru
        # Across frequency: one sequence of F bands per (item, frame).
        seq = x.permute(0, 3, 2, 1).reshape(b * n, f, c)
        seq = seq + self.intra_norm(self.intra_out(run_gru(self.intra, seq)))
        # Along time: one sequence of N frames per (item, band).
        seq = seq.reshape(b, n, f, c).transpose(1, 2).reshape(b * f, n, c)
        seq = seq + self.inter_norm(self.inter_out(run(self.inter, seq)))
        return seq.reshape(b, f, n, c).permute(0, 3, 1, 2)


def run_gru(gru: nn.GRU, seq: torch.Tensor) -> torch.Tensor:
    """Output sequence of a one-layer batch-first GRU: ``(B, N, C) → (B, N, H · directions)``."""
    return gru(seq)[0]


def run_gru_fused(gru: nn.GRU, seq: torch.Tensor) -> torch.Tensor:
    """The output of a one-layer batch-first GRU, with a bidirectional one run as a single forward pass.

    The two directions of a bidirectional GRU share no state, so they are one GRU of hidden size ``2H`` whose
    weights are block-diagonal (the forward half reads ``x_t``, the backward half reads ``x_{N-1-t}``, each only
    its own hidden units; the gates act unit by unit). On a CPU the recurrence costs a fixed overhead per time
    step whatever the width, so this halves the time of the GRUs that step along the frames, which dominate a
    forward pass. The backward half's outputs are flipped back in time, giving PyTorch's ``(forward, backward)``
    layout. Shape: ``(B, N, C) → (B, N, 2H)``; a unidirectional GRU runs as it is.
    """
    if not gru.bidirectional:
        return run_gru(gru, seq)
    h = gru.hidden_size
    forward_weights = (gru.weight_ih_l0, gru.weight_hh_l0, gru.bias_ih_l0, gru.bias_hh_l0)
    backward_weights = (
        gru.weight_ih_l0_reverse,
        gru.weight_hh_l0_reverse,
        gru.bias_ih_l0_reverse,
        gru.bias_hh_l0_reverse,
    )
    fused = []
    for fw, bw in zip(forward_weights, backward_weights, strict=True):
        # Gate by gate (PyTorch's order: reset, update, new), forward units then backward units.
        gates = []
        for g in range(3):
            f_part, b_part = fw[g * h : (g + 1) * h], bw[g * h : (g + 1) * h]
            gates.append(torch.block_diag(f_part, b_part) if fw.dim() == 2 else torch.cat([f_part, b_part]))
        fused.append(torch.cat(gates))
    both = torch.cat([seq, seq.flip(1)], dim=-1)
    hidden = seq.new_zeros(1, seq.shape[0], 2 * h)
    out, _ = torch.ops.aten.gru.input(both, hidden, fused, True, 1, 0.0, False, False, True)
    return torch.cat([out[..., :h], out[..., h:].flip(1)], dim=-1)


class BandCRNEncoder(nn.Module):
    """Two strided convs (halving the bands each), three time-conv blocks, then the dual-path RNNs."""

    def __init__(
        self, in_channels: int, channels: int, freq_kernel: int, time_kernel: int, rnn_blocks: int, causal: bool
    ) -> None:
        super().__init__()
        self.down = nn.ModuleList(
            [
                nn.Sequential(
                    TimeConv2d(in_channels, channels, (freq_kernel, time_kernel), stride_f=2, causal=causal),
                    nn.PReLU(channels),
                ),
                nn.Sequential(
                    TimeConv2d(channels, channels, (freq_kernel, time_kernel), stride_f=2, groups=2, causal=causal),
                    nn.PReLU(channels),
                ),
            ]
        )
        self.tconv = nn.ModuleList(TimeConvBlock(channels, 3, time_kernel, d, causal) for d in DILATIONS)
        self.rnn = nn.Sequential(*(DualPathRNN(channels, causal) for _ in range(rnn_blocks)))

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        layers = []
        for block in [*self.down, *self.tconv]:
            x = block(x)
            layers.append(x)
        return layers, self.rnn(x)


class BandCRNDecoder(nn.Module):
    """Mirror of the encoder: time-conv blocks, then two sub-pixel up-sampling convs to the 2 mask channels, each
    after adding the encoder output of the same resolution (U-Net skips)."""

    def __init__(self, channels: int, time_kernel: int, freq_kernel: int, freqs: list[int], causal: bool) -> None:
        super().__init__()
        self.tconv = nn.ModuleList(TimeConvBlock(channels, 3, time_kernel, d, causal) for d in reversed(DILATIONS))
        self.up = nn.ModuleList(
            [
                FreqUpBlock(channels, channels, freq_kernel, freqs[2], freqs[1], last=False),
                FreqUpBlock(channels, 2, freq_kernel, freqs[1], freqs[0], last=True),
            ]
        )
        # Identity start: zero weights and a bias of (1, 0) give the mask 1 + 0i at every bin.
        last = self.up[-1].conv
        nn.init.zeros_(last.weight)
        with torch.no_grad():
            last.bias.zero_()
            last.bias[0] = 1.0  # phase 0 of channel 0 (real part), even bands
            last.bias[2] = 1.0  # phase 1 of channel 0 (real part), odd bands

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        # skips: [down0, down1, tconv0, tconv1, tconv2]; walk them back from the deepest.
        for block, skip in zip(self.tconv, reversed(skips[2:]), strict=True):
            x = block(x + skip)
        for block, skip in zip(self.up, reversed(skips[:2]), strict=True):
            x = block(x + skip)
        return x


class BandCRN(SEModel):
    """Band-wise convolutional recurrent network with a complex ratio mask: 16 kHz waveform in, same length out.

    Args:
        n_fft: STFT size (Hann window); ``n_fft // 2 + 1`` bins.
        hop: STFT hop in samples (``n_fft // 2``: 62.5 frames per second at the defaults).
        compress: exponent ``c`` of the power-law compression of the encoder input.
        linear_bins: bins kept one per band (the lowest ones); the rest are merged.
        erb_bands: number of ERB-spaced bands the remaining bins are merged into.
        channels: channels of every conv and of the dual-path RNNs (even). 32 measured +0.18 PESQ-WB over 16 on the
            quick validation split at equal steps (docs/model_quality.md) for 1.8× the step cost.
        freq_kernel, time_kernel: conv kernel sizes in bands and frames.
        rnn_blocks: number of dual-path RNN blocks.
        causal: only past frames in every conv and in the time GRU, running RMS normalisation.
    """

    name = "bandcrn"

    def __init__(
        self,
        n_fft: int = 512,
        hop: int = 256,
        compress: float = 0.3,
        linear_bins: int = 65,
        erb_bands: int = 64,
        channels: int = 32,
        freq_kernel: int = 5,
        time_kernel: int = 3,
        rnn_blocks: int = 2,
        causal: bool = False,
    ) -> None:
        super().__init__(
            n_fft=n_fft,
            hop=hop,
            compress=compress,
            linear_bins=linear_bins,
            erb_bands=erb_bands,
            channels=channels,
            freq_kernel=freq_kernel,
            time_kernel=time_kernel,
            rnn_blocks=rnn_blocks,
            causal=causal,
        )
        if not 0 < hop <= n_fft // 2:
            raise ValueError(f"need 0 < hop <= n_fft / 2 for perfect reconstruction; got hop={hop}, n_fft={n_fft}")
        if not 0 < compress <= 1:
            raise ValueError(f"compress must be in (0, 1]; got {compress}")
        if channels < 2 or channels % 2 or rnn_blocks < 1 or freq_kernel < 1 or time_kernel < 1:
            raise ValueError("channels must be even and >= 2; rnn_blocks, freq_kernel and time_kernel >= 1")
        self.n_fft, self.hop, self.compress, self.causal = n_fft, hop, compress, causal
        merge, split = band_matrices(band_edges(n_fft // 2 + 1, linear_bins, erb_bands, self.sample_rate))
        # Derived from the hyperparameters, so not part of the state dict.
        self.register_buffer("merge", merge, persistent=False)
        self.register_buffer("split", split, persistent=False)
        freqs = [merge.shape[1]]
        for _ in range(2):
            freqs.append(conv_out_size(freqs[-1], freq_kernel, 2, freq_kernel // 2))
        self.encoder = BandCRNEncoder(3, channels, freq_kernel, time_kernel, rnn_blocks, causal)
        self.decoder = BandCRNDecoder(channels, time_kernel, freq_kernel, freqs, causal)

    def input_scale(self, spec: torch.Tensor) -> torch.Tensor:
        """RMS of the input per item ``(B, 1, 1)`` or, causal, per frame over the frames so far ``(B, 1, N)``."""
        power = spec.real.square() + spec.imag.square()  # (B, F, N)
        if self.causal:
            frame_power = power.mean(dim=1, keepdim=True)
            count = torch.arange(1, power.shape[-1] + 1, device=power.device, dtype=power.dtype)
            mean_power = frame_power.cumsum(dim=-1) / count
        else:
            mean_power = power.mean(dim=(1, 2), keepdim=True)
        # With a Hann window the mean of |X|² over the one-sided bins is about (3/8)·n_fft·σ² for a signal of
        # RMS σ; dividing by n_fft puts the scale at about 0.6 σ, which only matters for the size of the floor.
        # The floor inside the root keeps its gradient finite on digital silence (MAL backpropagates through it).
        return (mean_power / self.n_fft + SCALE_FLOOR**2).sqrt()

    def features(self, spec: torch.Tensor) -> torch.Tensor:
        """Encoder input: ``(B, F, N)`` complex → ``(B, 3, K, N)`` (compressed |X|, Re, Im, merged into K bands)."""
        x = spec / self.input_scale(spec)
        # The small offset keeps the gradient of |X|^c finite in silent bins (MAL backpropagates through here).
        mag = (x.real.square() + x.imag.square() + 1e-12).sqrt()
        gain = mag.pow(self.compress - 1)
        feats = torch.stack([mag * gain, x.real * gain, x.imag * gain], dim=1)  # (B, 3, F, N)
        return torch.einsum("bcfn,fk->bckn", feats, self.merge)

    def encode(self, wav: torch.Tensor) -> Encoded:
        """Shape: ``wav (B, 1, T)`` (or ``(B, T)``, ``(T,)``) → layers ``[(B, C, K_i, N)]``, bottleneck
        ``(B, C·K_2, N)`` with ``N = ceil(T / hop) + 1`` frames. The context holds the noisy STFT ``spec``."""
        x = as_batch(wav).float()
        spec = stft(x, self.n_fft, self.hop)
        with torch.autocast(device_type=spec.device.type, enabled=False):
            feats = self.features(spec)
        layers, deep = self.encoder(feats)
        b, c, k, n = deep.shape
        return Encoded(layers=layers, bottleneck=deep.reshape(b, c * k, n), context={"spec": spec})

    def decode(self, enc: Encoded, length: int) -> torch.Tensor:
        """Shape: → ``(B, 1, length)`` float32, at the input's level."""
        spec: torch.Tensor = enc.context["spec"]
        if padded_length(length, self.hop) > (spec.shape[-1] - 1) * self.hop:
            raise ValueError(f"decode(length={length}) asks for more than the {spec.shape[-1]} frames encoded")
        skips = enc.layers
        deep = enc.bottleneck.reshape(*skips[-1].shape)
        mask = self.decoder(deep, skips)
        with torch.autocast(device_type=spec.device.type, enabled=False):
            mask = torch.einsum("bckn,kf->bcfn", mask.float(), self.split)
            return istft(spec * torch.complex(mask[:, 0], mask[:, 1]), self.n_fft, self.hop, length)
