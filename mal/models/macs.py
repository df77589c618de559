"""Count multiply-accumulates (MACs) of a real forward pass with forward hooks.

Counted: ``Conv1d/2d``, ``ConvTranspose1d/2d``, ``Linear``, ``LSTM`` and ``GRU``, the layers that hold nearly
all the arithmetic of ``mal``'s models. Not counted: bias additions, activations, normalisation, elementwise
products and FFTs (the STFT of ``specmask`` costs about ``n_fft/2 · log2(n_fft)`` complex MACs per frame, well
under 1 % of its layers). Because the hooks see the actual tensors, the count follows the model's real shapes
(padding, strides, sequence lengths) rather than a formula that could drift from the code.
"""

from __future__ import annotations

import math

import torch
from torch import nn

_CONVS = (nn.Conv1d, nn.Conv2d)
_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d)


def conv_macs(module: nn.Module, inputs: torch.Tensor, output: torch.Tensor) -> int:
    """Conv: every output element is a dot product over ``C_in / groups × prod(kernel)`` inputs."""
    return output.numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size)


def transposed_conv_macs(module: nn.Module, inputs: torch.Tensor, output: torch.Tensor) -> int:
    """Transposed conv: every input element is scattered to ``C_out / groups × prod(kernel)`` outputs."""
    return inputs.numel() * (module.out_channels // module.groups) * math.prod(module.kernel_size)


def linear_macs(module: nn.Module, inputs: torch.Tensor, output: torch.Tensor) -> int:
    return output.numel() * module.in_features


def rnn_macs(module: nn.Module, inputs: torch.Tensor, output: torch.Tensor) -> int:
    """LSTM (4 gates) or GRU (3 gates): per step, layer and direction ``gates × H × (input + H)``."""
    if isinstance(module, nn.LSTM) and module.proj_size > 0:
        raise NotImplementedError("MAC counting does not support LSTM(proj_size > 0)")
    if isinstance(inputs, nn.utils.rnn.PackedSequence):
        raise NotImplementedError("MAC counting does not support packed sequences")
    gates = 4 if isinstance(module, nn.LSTM) else 3
    # Batch × time: everything but the feature axis (works for batched and unbatched, batch_first or not).
    steps = inputs.numel() // inputs.shape[-1]
    directions = 2 if module.bidirectional else 1
    hidden = module.hidden_size
    total = 0
    for layer in range(module.num_layers):
        layer_input = module.input_size if layer == 0 else hidden * directions
        total += directions * gates * hidden * (layer_input + hidden)
    return steps * total


_COUNTERS = (
    (_CONVS, conv_macs),
    (_TRANSPOSED, transposed_conv_macs),
    ((nn.Linear,), linear_macs),
    ((nn.LSTM, nn.GRU), rnn_macs),
)


def count_forward_macs(model: nn.Module, wav: torch.Tensor) -> int:
    """MACs of ``model(wav)`` (the whole batch), counted with hooks over one real forward pass without gradients.

    ``wav`` is moved to the model's device; the model's train/eval mode is left as it is.
    """
    param = next(model.parameters(), None)
    if param is not None:
        wav = wav.to(param.device)
    total = 0

    def hook_for(counter):
        def hook(module: nn.Module, args: tuple, output) -> None:
            nonlocal total
            out = output[0] if isinstance(output, tuple) else output  # RNNs return (output, state)
            total += counter(module, args[0], out)

        return hook

    handles = []
    try:
        for module in model.modules():
            for types, counter in _COUNTERS:
                if isinstance(module, types):
                    handles.append(module.register_forward_hook(hook_for(counter)))
                    break
        with torch.no_grad():
            model(wav)
    finally:
        for handle in handles:
            handle.remove()
    return int(total)
