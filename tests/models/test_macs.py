"""MAC counting: each layer type against a hand computation, and whole models."""

from __future__ import annotations

import torch
from torch import nn

import mal.models
from mal.models.macs import count_forward_macs


def test_conv1d_matches_hand_count() -> None:
    conv = nn.Conv1d(3, 5, kernel_size=4, stride=2)
    # (20 - 4) // 2 + 1 = 9 output frames × 5 channels, each a dot product over 3 × 4 inputs
    assert count_forward_macs(conv, torch.zeros(1, 3, 20)) == 9 * 5 * 3 * 4
    assert count_forward_macs(conv, torch.zeros(2, 3, 20)) == 2 * 9 * 5 * 3 * 4


def test_grouped_conv2d_matches_hand_count() -> None:
    conv = nn.Conv2d(4, 6, kernel_size=(5, 1), stride=(2, 1), padding=(2, 0), groups=2)
    # freq (33 + 4 - 5) // 2 + 1 = 17, time 10; each output sees 4/2 channels × 5 taps
    assert count_forward_macs(conv, torch.zeros(1, 4, 33, 10)) == 6 * 17 * 10 * 2 * 5


def test_transposed_convs_match_hand_count() -> None:
    deconv = nn.ConvTranspose1d(6, 2, kernel_size=8, stride=4)
    # each of the 6 × 11 inputs is scattered to 2 channels × 8 taps
    assert count_forward_macs(deconv, torch.zeros(1, 6, 11)) == 6 * 11 * 2 * 8
    deconv2d = nn.ConvTranspose2d(3, 4, kernel_size=(3, 1), stride=(2, 1))
    assert count_forward_macs(deconv2d, torch.zeros(1, 3, 9, 7)) == 3 * 9 * 7 * 4 * 3


def test_linear_matches_hand_count() -> None:
    assert count_forward_macs(nn.Linear(10, 7), torch.zeros(2, 5, 10)) == 2 * 5 * 10 * 7


def test_rnns_match_hand_count() -> None:
    lstm = nn.LSTM(8, 16, num_layers=2, bidirectional=True)
    x = torch.zeros(50, 3, 8)  # (time, batch, features)
    per_step = 2 * 4 * 16 * (8 + 16) + 2 * 4 * 16 * (32 + 16)
    assert count_forward_macs(lstm, x) == 50 * 3 * per_step
    gru = nn.GRU(8, 16, batch_first=True)
    assert count_forward_macs(gru, torch.zeros(3, 50, 8)) == 3 * 50 * 3 * 16 * (8 + 16)


def test_nested_modules_are_summed_and_hooks_removed() -> None:
    model = nn.Sequential(nn.Conv1d(1, 4, 3), nn.ReLU(), nn.Conv1d(4, 2, 1))
    x = torch.zeros(1, 1, 12)
    assert count_forward_macs(model, x) == 10 * 4 * 1 * 3 + 10 * 2 * 4 * 1
    assert all(not m._forward_hooks for m in model.modules())


def test_waveunet_macs_follow_its_shapes() -> None:
    model = mal.models.build("waveunet", depth=1, hidden=4, lstm_layers=1, causal=True, rescale=0.0)
    # 1 s → padded to 16004 samples → 3999 frames at level 1
    frames = (model.valid_length(16000) - 8) // 4 + 1
    encoder = frames * 4 * 8 + frames * 8 * 4 + frames * 4 * 4 * (4 + 4)
    decoder = frames * 8 * 4 + frames * 4 * 1 * 8
    assert mal.models.count_macs(model) == encoder + decoder


def test_macs_grow_linearly_with_duration() -> None:
    model = mal.models.build("specmask", depth=2, hidden=4, gru_hidden=16)
    one, four = mal.models.count_macs(model, 1.0), mal.models.count_macs(model, 4.0)
    assert 3.9 < four / one < 4.1
