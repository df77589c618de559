"""``specmask``: an STFT-domain mask model that takes and returns waveforms.

::

    wav ─ STFT ─ compress ─ enc_0 ─ … ─ enc_{D-1} ─ flatten ─ GRU ─┐        (encoder)
                              │             │                       │
    wav' ◄ iSTFT ◄ mask·X ◄ dec_0 ◄(+)─ … ◄─(+) dec_{D-1} ◄ linear ◄┘        (decoder)

The STFT (Hann, ``n_fft`` / ``hop``) runs inside the model in float32, even under autocast. The encoder's
convs have kernels along frequency only (stride 2 in frequency, kernel 1 in time), so every frame is
processed on its own until the GRU, which is unidirectional by default: the whole model then looks only
``n_fft`` samples ahead (the STFT window). The decoder mirrors the encoder with up-sampling (sub-pixel) convs and U-Net
skip additions, and predicts a mask that multiplies the noisy STFT:

* ``mask="sigmoid"``: a real mask in (0, 1), one per time-frequency bin (the noisy phase is kept);
* ``mask="complex"``: ``tanh(a) + i·tanh(b)``, which can also rotate the phase.

The encoder sees either the compressed magnitude ``|X|^c`` (``input="mag"``), or the compressed complex
spectrum ``|X|^c · e^{i∠X}`` as real and imaginary channels (``input="ri"``), which carries the phase: docs/method.md
names an encoder that sees phase as an untested lead for MAL.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from mal.models.base import Encoded, SEModel, as_batch

INPUTS = ("mag", "ri")
MASKS = ("sigmoid", "complex")


def stft(wav: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """Complex STFT of ``wav`` right-padded with zeros to a multiple of ``hop`` (centred frames, Hann window).

    Always computed in float32, even under autocast. Any length ``T >= 1`` works.

    Shape: ``wav (B, T)`` or ``(B, 1, T)`` → ``(B, n_fft // 2 + 1, ceil(T / hop) + 1)`` complex64.
    """
    x = wav.reshape(wav.shape[0], wav.shape[-1])
    with torch.autocast(device_type=x.device.type, enabled=False):
        x = x.float()
        x = F.pad(x, (0, padded_length(x.shape[-1], hop) - x.shape[-1]))
        window = torch.hann_window(n_fft, device=x.device, dtype=torch.float32)
        # Zero ("constant") centre padding, unlike the reflect default, works for inputs shorter than n_fft / 2.
        return torch.stft(
            x, n_fft, hop, window=window, center=True, pad_mode="constant", return_complex=True, normalized=False
        )


def istft(spec: torch.Tensor, n_fft: int, hop: int, length: int) -> torch.Tensor:
    """Inverse of :func:`stft`: overlap-add back to exactly ``length`` samples (float32).

    Shape: ``(B, n_fft // 2 + 1, N)`` complex → ``(B, 1, length)``.
    """
    with torch.autocast(device_type=spec.device.type, enabled=False):
        window = torch.hann_window(n_fft, device=spec.device, dtype=torch.float32)
        wav = torch.istft(
            spec.to(torch.complex64), n_fft, hop, window=window, center=True, length=padded_length(length, hop)
        )
    return wav[:, None, :length]


def padded_length(length: int, hop: int) -> int:
    """``length`` rounded up to a whole number of hops (at least one)."""
    return max(1, -(-length // hop)) * hop


def conv_out_size(size: int, kernel_size: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel_size) // stride + 1


class FreqConvBlock(nn.Sequential):
    """Conv2d along frequency only (kernel ``(k, 1)``, stride ``(2, 1)``) → ELU. ``(B, C, F, T) → (B, C', F', T)``."""

    def __init__(self, in_channels: int, channels: int, kernel_size: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, channels, (kernel_size, 1), stride=(2, 1), padding=(kernel_size // 2, 0)),
            nn.ELU(),
        )


class FreqUpBlock(nn.Module):
    """Double the frequency axis with a sub-pixel conv (→ ELU unless it is the mask output).

    A Conv2d with kernel ``(kernel_size // 2 + 1, 1)`` predicts both output phases (even and odd bins) from the
    coarse bins, which are then interleaved and cropped to ``out_freqs``. It spans the same coarse bins as a
    stride-2 transposed conv of ``kernel_size`` taps and can learn any map that one can, but runs 2-3× faster
    on CPU, where PyTorch's ConvTranspose2d takes a slow path.

    Shape: ``(B, C, F_in, T) → (B, C_out, out_freqs, T)`` with ``out_freqs <= 2 F_in``.
    """

    def __init__(self, channels: int, out_channels: int, kernel_size: int, in_freqs: int, out_freqs: int, last: bool):
        super().__init__()
        if not in_freqs <= out_freqs <= 2 * in_freqs:
            raise ValueError(f"cannot grow {in_freqs} bins to {out_freqs} by a factor of 2")
        taps = kernel_size // 2 + 1
        self.out_channels, self.out_freqs = out_channels, out_freqs
        self.conv = nn.Conv2d(channels, 2 * out_channels, (taps, 1), padding=(taps // 2, 0))
        self.activation = nn.Identity() if last else nn.ELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, f, t = x.shape
        y = self.conv(x)[:, :, :f]  # an even tap count pads one bin too many
        # (B, [phase, C], F, T) → (B, C, F, phase, T) → (B, C, 2F, T): bin 2m is phase 0 of coarse bin m.
        y = y.reshape(b, 2, self.out_channels, f, t).permute(0, 2, 3, 1, 4).reshape(b, self.out_channels, 2 * f, t)
        return self.activation(y[:, :, : self.out_freqs])


class SpecMaskEncoder(nn.Module):
    """Frequency convs then a GRU over time; returns every conv output and the GRU output ``(B, H, T')``."""

    def __init__(
        self,
        in_channels: int,
        channels: list[int],
        kernel_size: int,
        freqs: list[int],
        gru_hidden: int,
        gru_layers: int,
        bidirectional: bool,
    ) -> None:
        super().__init__()
        ins = [in_channels, *channels[:-1]]
        self.blocks = nn.ModuleList(FreqConvBlock(i, c, kernel_size) for i, c in zip(ins, channels, strict=True))
        self.gru = nn.GRU(channels[-1] * freqs[-1], gru_hidden, num_layers=gru_layers, bidirectional=bidirectional)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        layers = []
        for block in self.blocks:
            x = block(x)
            layers.append(x)
        b, c, f, t = x.shape
        seq, _ = self.gru(x.reshape(b, c * f, t).permute(2, 0, 1))  # (T', B, C·F'): the GRU's native layout
        return layers, seq.permute(1, 2, 0)


class SpecMaskDecoder(nn.Module):
    """Linear from the GRU state to the deepest conv map, then up-sampling convs with skips, to mask channels."""

    def __init__(
        self, bottleneck: int, channels: list[int], kernel_size: int, freqs: list[int], mask_channels: int
    ) -> None:
        super().__init__()
        self.shape = (channels[-1], freqs[-1])
        self.linear = nn.Linear(bottleneck, channels[-1] * freqs[-1])
        outs = [mask_channels, *channels[:-1]]
        # Stored deepest-first, the order they run in; freqs[i] is the input size of encoder block i.
        self.blocks = nn.ModuleList(
            FreqUpBlock(channels[i], outs[i], kernel_size, freqs[i + 1], freqs[i], last=(i == 0))
            for i in reversed(range(len(channels)))
        )

    def forward(self, bottleneck: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        b, _, t = bottleneck.shape
        x = self.linear(bottleneck.transpose(1, 2))  # (B, T', C·F')
        x = x.transpose(1, 2).reshape(b, *self.shape, t)
        for block, skip in zip(self.blocks, reversed(skips), strict=True):
            x = block(x + skip)
        return x


class SpecMask(SEModel):
    """STFT mask model: 16 kHz mono waveform in, waveform of the same length out.

    Args:
        n_fft: STFT size (Hann window of the same length); ``n_fft // 2 + 1`` frequency bins.
        hop: STFT hop in samples.
        input: ``"mag"`` (compressed magnitude, 1 channel) or ``"ri"`` (compressed complex as Re/Im, 2 channels).
        compress: exponent ``c`` of the magnitude compression ``|X|^c``.
        mask: ``"sigmoid"`` (real mask in (0, 1)) or ``"complex"`` (tanh-bounded real and imaginary parts).
        depth: number of frequency-conv blocks (each halves the frequency axis).
        hidden: channels of the first conv block.
        growth: channel multiplier per block (block ``i`` has ``round(hidden * growth**i)`` channels).
        kernel_size: conv kernel along frequency, in bins.
        gru_hidden: GRU width (per direction).
        gru_layers: GRU layers.
        bidirectional: bidirectional GRU (non-causal); the default is causal up to the STFT window.
        normalize: divide the input by its std (per item, + ``floor``) and multiply the output back.
        floor: added to the std so that silence does not blow up.

    The defaults (channels 12, 18, 27, 40 over 129, 65, 33, 17 bins; GRU 256) give 0.92 M parameters: most of
    them in the GRU, which costs one MAC per parameter per frame, while wide convs at fine frequency resolution
    would cost tens.
    """

    name = "specmask"

    def __init__(
        self,
        n_fft: int = 512,
        hop: int = 128,
        input: str = "mag",
        compress: float = 0.3,
        mask: str = "sigmoid",
        depth: int = 4,
        hidden: int = 12,
        growth: float = 1.5,
        kernel_size: int = 5,
        gru_hidden: int = 256,
        gru_layers: int = 1,
        bidirectional: bool = False,
        normalize: bool = False,
        floor: float = 1e-3,
    ) -> None:
        super().__init__(
            n_fft=n_fft,
            hop=hop,
            input=input,
            compress=compress,
            mask=mask,
            depth=depth,
            hidden=hidden,
            growth=growth,
            kernel_size=kernel_size,
            gru_hidden=gru_hidden,
            gru_layers=gru_layers,
            bidirectional=bidirectional,
            normalize=normalize,
            floor=floor,
        )
        if input not in INPUTS:
            raise ValueError(f"input must be one of {INPUTS}; got {input!r}")
        if mask not in MASKS:
            raise ValueError(f"mask must be one of {MASKS}; got {mask!r}")
        if not 0 < hop <= n_fft // 2:
            raise ValueError(f"need 0 < hop <= n_fft / 2 for perfect reconstruction; got hop={hop}, n_fft={n_fft}")
        if depth < 1 or hidden < 1 or gru_hidden < 1 or gru_layers < 1 or kernel_size < 1:
            raise ValueError("depth, hidden, kernel_size, gru_hidden and gru_layers must be >= 1")
        self.n_fft, self.hop, self.input, self.compress, self.mask = n_fft, hop, input, compress, mask
        self.normalize, self.floor = normalize, floor
        channels = [max(1, round(hidden * growth**i)) for i in range(depth)]
        freqs = [n_fft // 2 + 1]
        for _ in range(depth):
            freqs.append(conv_out_size(freqs[-1], kernel_size, 2, kernel_size // 2))
        in_channels = 1 if input == "mag" else 2
        mask_channels = 1 if mask == "sigmoid" else 2
        self.encoder = SpecMaskEncoder(in_channels, channels, kernel_size, freqs, gru_hidden, gru_layers, bidirectional)
        self.decoder = SpecMaskDecoder(
            gru_hidden * (2 if bidirectional else 1), channels, kernel_size, freqs, mask_channels
        )

    def features(self, spec: torch.Tensor) -> torch.Tensor:
        """Encoder input from a complex STFT: ``(B, F, N)`` → ``(B, 1 | 2, F, N)`` float32."""
        # The tiny offset keeps the gradient of |X|^c finite in silent bins (MAL backpropagates through here).
        mag = (spec.real.square() + spec.imag.square() + 1e-12).sqrt()
        if self.input == "mag":
            return mag.pow(self.compress)[:, None]
        scaled = spec * mag.pow(self.compress - 1)
        return torch.stack([scaled.real, scaled.imag], dim=1)

    def encode(self, wav: torch.Tensor) -> Encoded:
        """Shape: ``wav (B, 1, T)`` (or ``(B, T)``, ``(T,)``) → layers ``[(B, C_i, F_i, N)]``, bottleneck ``(B, H, N)``.

        ``N = ceil(T / hop) + 1`` frames. The context holds the noisy STFT ``spec``, ``std`` and ``length``.
        """
        x = as_batch(wav).float()
        if self.normalize:
            std = x.std(dim=-1, keepdim=True, unbiased=False) + self.floor
            x = x / std
        else:
            std = torch.ones(x.shape[0], 1, 1, device=x.device, dtype=x.dtype)
        spec = stft(x, self.n_fft, self.hop)
        with torch.autocast(device_type=spec.device.type, enabled=False):
            feats = self.features(spec)
        layers, bottleneck = self.encoder(feats)
        return Encoded(layers=layers, bottleneck=bottleneck, context={"spec": spec, "std": std, "length": x.shape[-1]})

    def decode(self, enc: Encoded, length: int) -> torch.Tensor:
        """Shape: → ``(B, 1, length)`` float32, in the input's scale."""
        spec: torch.Tensor = enc.context["spec"]
        if padded_length(length, self.hop) > (spec.shape[-1] - 1) * self.hop:
            raise ValueError(f"decode(length={length}) asks for more than the {spec.shape[-1]} frames encoded")
        out = self.decoder(enc.bottleneck, enc.layers)
        with torch.autocast(device_type=spec.device.type, enabled=False):
            out = out.float()
            if self.mask == "sigmoid":
                masked = spec * torch.sigmoid(out[:, 0])
            else:
                masked = spec * torch.complex(torch.tanh(out[:, 0]), torch.tanh(out[:, 1]))
            return istft(masked, self.n_fft, self.hop, length) * enc.context["std"]
