"""``waveunet``: a waveform U-Net in the Demucs family (Défossez et al. 2020), written for ``mal``.

Strided 1-D conv blocks with GLU shrink the waveform by ``stride`` per level, an LSTM models the sequence at the
bottom, and transposed-conv blocks grow it back with U-Net skip additions::

    x / std ─ enc_0 ─ enc_1 ─ … ─ enc_{D-1} ─ LSTM ─┐            (encoder: blocks + LSTM)
               │       │             │              │
               └───────┼─────────────┼─ (+) dec_0 ◄─ … ◄─ (+) dec_{D-1} ◄─┘   (decoder)
                                                    → × std

The input is right-padded with zeros to the nearest length that every strided conv divides exactly (so the
decoder's transposed convs give back the padded length), and the output is cropped to the input length.
With ``causal=True`` the LSTM is unidirectional; the strided convs still look ``lookahead`` samples ahead,
as in Demucs' causal variant.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from mal.models.base import Encoded, SEModel, as_batch


class EncoderBlock(nn.Sequential):
    """Conv1d(kernel, stride) → ReLU → Conv1d 1×1 to 2C → GLU. Shape: ``(B, C_in, L) → (B, C, L')``."""

    def __init__(self, in_channels: int, channels: int, kernel_size: int, stride: int) -> None:
        super().__init__(
            nn.Conv1d(in_channels, channels, kernel_size, stride),
            nn.ReLU(),
            nn.Conv1d(channels, 2 * channels, 1),
            nn.GLU(dim=1),
        )


class DecoderBlock(nn.Sequential):
    """Conv1d 1×1 to 2C → GLU → ConvTranspose1d(kernel, stride) (→ ReLU unless it is the output block)."""

    def __init__(self, channels: int, out_channels: int, kernel_size: int, stride: int, last: bool) -> None:
        layers: list[nn.Module] = [
            nn.Conv1d(channels, 2 * channels, 1),
            nn.GLU(dim=1),
            nn.ConvTranspose1d(channels, out_channels, kernel_size, stride),
        ]
        if not last:
            layers.append(nn.ReLU())
        super().__init__(*layers)


class SequenceModel(nn.Module):
    """LSTM over the bottleneck frames; bidirectional + a linear back to ``channels`` unless causal.

    Shape: ``(B, C, T') → (B, C, T')``.
    """

    def __init__(self, channels: int, num_layers: int, bidirectional: bool) -> None:
        super().__init__()
        self.lstm = nn.LSTM(channels, channels, num_layers=num_layers, bidirectional=bidirectional)
        self.linear = nn.Linear(2 * channels, channels) if bidirectional else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.lstm(x.permute(2, 0, 1))  # (T', B, C): the LSTM's native layout
        if self.linear is not None:
            y = self.linear(y)
        return y.permute(1, 2, 0)


class WaveUNetEncoder(nn.Module):
    """The strided conv blocks and the LSTM; returns every block output and the LSTM output."""

    def __init__(self, channels: list[int], kernel_size: int, stride: int, lstm_layers: int, causal: bool) -> None:
        super().__init__()
        ins = [1, *channels[:-1]]
        self.blocks = nn.ModuleList(EncoderBlock(i, c, kernel_size, stride) for i, c in zip(ins, channels, strict=True))
        self.sequence = SequenceModel(channels[-1], lstm_layers, bidirectional=not causal)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        layers = []
        for block in self.blocks:
            x = block(x)
            layers.append(x)
        return layers, self.sequence(x)


class WaveUNetDecoder(nn.Module):
    """Transposed-conv blocks from the deepest level up, each after adding its encoder skip."""

    def __init__(self, channels: list[int], kernel_size: int, stride: int) -> None:
        super().__init__()
        outs = [1, *channels[:-1]]
        # Stored deepest-first, the order they run in.
        self.blocks = nn.ModuleList(
            DecoderBlock(c, o, kernel_size, stride, last=(level == 0))
            for level, (c, o) in reversed(list(enumerate(zip(channels, outs, strict=True))))
        )

    def forward(self, bottleneck: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        x = bottleneck
        for block, skip in zip(self.blocks, reversed(skips), strict=True):
            x = block(x + skip)
        return x


class WaveUNet(SEModel):
    """Waveform U-Net (Demucs family): 16 kHz mono in, 16 kHz mono out, same length.

    Args:
        depth: number of encoder (and decoder) blocks; the bottleneck runs at ``16000 / stride**depth`` Hz.
        hidden: channels of the first block.
        growth: channel multiplier per level (block ``i`` has ``round(hidden * growth**i)`` channels).
        kernel_size: kernel of the strided (transposed) convs, in samples at that level.
        stride: down/up-sampling factor per level.
        lstm_layers: layers of the bottleneck LSTM.
        causal: unidirectional LSTM (no linear); otherwise bidirectional + linear back to the width.
        normalize: divide the input by its std (per item, + ``floor``) and multiply the output back.
        floor: added to the std so that silence does not blow up.
        rescale: initial weight-std target of every (transposed) conv, as in Demucs (``0`` keeps PyTorch's init).
            Each conv's weight and bias are divided by ``sqrt(std(weight) / rescale)``.

    The defaults give 1.21 M parameters (0.66 M with ``causal=True``).
    """

    name = "waveunet"

    def __init__(
        self,
        depth: int = 4,
        hidden: int = 18,
        growth: float = 2.0,
        kernel_size: int = 8,
        stride: int = 4,
        lstm_layers: int = 2,
        causal: bool = False,
        normalize: bool = True,
        floor: float = 1e-3,
        rescale: float = 0.1,
    ) -> None:
        super().__init__(
            depth=depth,
            hidden=hidden,
            growth=growth,
            kernel_size=kernel_size,
            stride=stride,
            lstm_layers=lstm_layers,
            causal=causal,
            normalize=normalize,
            floor=floor,
            rescale=rescale,
        )
        if depth < 1 or hidden < 1 or lstm_layers < 1:
            raise ValueError(f"depth, hidden and lstm_layers must be >= 1; got {depth}, {hidden}, {lstm_layers}")
        if not 1 <= stride <= kernel_size:
            raise ValueError(f"need 1 <= stride <= kernel_size; got stride={stride}, kernel_size={kernel_size}")
        self.depth, self.kernel_size, self.stride = depth, kernel_size, stride
        self.normalize, self.floor = normalize, floor
        channels = [max(1, round(hidden * growth**i)) for i in range(depth)]
        self.encoder = WaveUNetEncoder(channels, kernel_size, stride, lstm_layers, causal)
        self.decoder = WaveUNetDecoder(channels, kernel_size, stride)
        if rescale > 0:
            _rescale_convs(self, rescale)

    @property
    def lookahead(self) -> int:
        """Future input samples an output sample may depend on through the convs (LSTM and std aside).

        A level-``d`` frame at position ``j`` reads ``kernel_size - 1`` samples past ``j`` at that level's rate
        (``stride**d`` input samples each), while the transposed convs only read frames at or before an output
        sample, so the lookaheads of the levels add up.
        """
        k, s = self.kernel_size, self.stride
        return sum((k - 1) * s**level for level in range(self.depth))

    def valid_length(self, length: int) -> int:
        """Smallest length >= ``length`` that every strided conv divides exactly (so the decoder gives it back)."""
        n = max(length, 1)
        for _ in range(self.depth):
            n = max(math.ceil((n - self.kernel_size) / self.stride) + 1, 1)
        for _ in range(self.depth):
            n = (n - 1) * self.stride + self.kernel_size
        return n

    def encode(self, wav: torch.Tensor) -> Encoded:
        """Shape: ``wav (B, 1, T)`` (or ``(B, T)``, ``(T,)``) → layers ``[(B, C_i, T_i)]``, bottleneck ``(B, C, T')``.

        The context holds the per-item ``std`` ``(B, 1, 1)`` (ones without ``normalize``) and the input ``length``.
        """
        x = as_batch(wav).float()
        length = x.shape[-1]
        if self.normalize:
            std = x.std(dim=-1, keepdim=True, unbiased=False) + self.floor  # unbiased std is NaN for T = 1
            x = x / std
        else:
            std = torch.ones(x.shape[0], 1, 1, device=x.device, dtype=x.dtype)
        x = F.pad(x, (0, self.valid_length(length) - length))
        layers, bottleneck = self.encoder(x)
        return Encoded(layers=layers, bottleneck=bottleneck, context={"std": std, "length": length})

    def decode(self, enc: Encoded, length: int) -> torch.Tensor:
        """Shape: → ``(B, 1, length)``, in the input's scale (float32)."""
        y = self.decoder(enc.bottleneck, enc.layers)
        if y.shape[-1] < length:
            raise ValueError(f"decode(length={length}) asks for more than the {y.shape[-1]} samples encoded")
        return y[..., :length].float() * enc.context["std"]


def _rescale_convs(module: nn.Module, reference: float) -> None:
    """Shrink each conv's initial weights towards std ``reference`` (Demucs found this speeds up training)."""
    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, (nn.Conv1d, nn.ConvTranspose1d)):
                scale = (sub.weight.std() / reference) ** 0.5
                sub.weight.div_(scale)
                if sub.bias is not None:
                    sub.bias.div_(scale)
