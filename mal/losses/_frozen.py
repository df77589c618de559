"""Freezing a network used inside a loss: no trainable parameters and eval-mode behaviour, whatever the trainer does.

``model.train()`` recurses into every submodule, so a frozen feature network that is part of a training
model or objective would silently switch its batch norm and dropout back to training behaviour. A forward
pre-hook pins the mode at every call instead.
"""

from __future__ import annotations

import torch
from torch import nn


def _pin_frozen_mode(module: nn.Module, args: tuple) -> None:
    """Forward pre-hook: a frozen module computes in eval mode, whatever ``.train()`` was last called.

    Dropout-free RNNs go to training mode instead: identical output, and cuDNN can only backpropagate
    through an RNN in training mode (which a loss network must do to pass gradients to the estimate).
    """
    module.training = isinstance(module, nn.RNNBase) and module.dropout == 0


def pin_frozen_mode(module: nn.Module) -> list[torch.utils.hooks.RemovableHandle]:
    """Make every submodule of ``module`` run in frozen (eval) mode from now on; returns the hook handles."""
    handles = [m.register_forward_pre_hook(_pin_frozen_mode) for m in module.modules()]
    module.eval()
    for m in module.modules():
        _pin_frozen_mode(m, ())
    return handles


def freeze(module: nn.Module) -> list[torch.utils.hooks.RemovableHandle]:
    """``requires_grad=False`` and no stored gradient on every parameter, plus :func:`pin_frozen_mode`."""
    for p in module.parameters():
        p.requires_grad_(False)
        p.grad = None
    return pin_frozen_mode(module)


def needs_cudnn_off(module: nn.Module) -> bool:
    """An RNN with dropout must stay in eval mode when frozen, and then cuDNN cannot run its backward."""
    return any(isinstance(m, nn.RNNBase) and m.dropout > 0 for m in module.modules())
