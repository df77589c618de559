"""Checkpoints from elsewhere: nothing in them runs, and a damaged or diverged one is refused with its name."""

from __future__ import annotations

import pytest
import torch

import mal.models
from mal.models.registry import CHECKPOINT_FORMAT, CheckpointError, checkpoint_payload, write_checkpoint

TINY = {"n_fft": 128, "hop": 64, "depth": 2, "hidden": 4, "gru_hidden": 16}


def test_a_checkpoint_that_runs_code_is_refused_unrun(malicious_checkpoint, tmp_path) -> None:
    path, marker = malicious_checkpoint
    with pytest.raises(CheckpointError, match=r"evil\.pt: refused to load .*could run that code"):
        mal.models.load(path)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the control: full unpickling does run it
    assert marker.read_text() == "ran"


def test_non_finite_weights_are_refused_at_load(tmp_path) -> None:
    model = mal.models.build("specmask", **TINY)
    with torch.no_grad():
        next(model.parameters())[0] = float("nan")
    path = mal.models.save(model, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match=r"nan\.pt: the model diverged .*non-finite weights in 1 tensor"):
        mal.models.load(path)


def test_missing_model_fields_are_named_not_a_key_error(tmp_path) -> None:
    payload = checkpoint_payload(mal.models.build("specmask", **TINY))
    del payload["model_class"], payload["hparams"]
    path = write_checkpoint(payload, tmp_path / "partial.pt")
    with pytest.raises(
        CheckpointError, match=r"partial\.pt: incomplete mal checkpoint: missing \['model_class', 'hparams'\]"
    ):
        mal.models.load(path)
    payload = checkpoint_payload(mal.models.build("specmask", **TINY))
    path = write_checkpoint({**payload, "hparams": [128, 64]}, tmp_path / "listed.pt")
    with pytest.raises(CheckpointError, match=r"listed\.pt: malformed mal checkpoint: hparams is a list, not a dict"):
        mal.models.load(path)
    path = write_checkpoint({**payload, "model_class": "no-such-model"}, tmp_path / "unknown.pt")
    with pytest.raises(CheckpointError, match=r"unknown\.pt: cannot rebuild its model .*no-such-model"):
        mal.models.load(path)


def test_a_bit_flip_in_the_weights_fails_the_checksum(tmp_path) -> None:
    model = mal.models.build("specmask", **TINY)
    path = mal.models.save(model, tmp_path / "last.pt")
    weight = next(iter(model.state_dict().values())).contiguous().numpy().tobytes()
    data = bytearray(path.read_bytes())
    at = data.find(weight)  # tensors are stored uncompressed, so the bytes are there as they are in memory
    assert at > 0
    data[at + len(weight) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"last\.pt: checksum mismatch"):
        mal.models.load(path)


def test_a_checkpoint_from_before_the_checksum_says_so(tmp_path) -> None:
    payload = checkpoint_payload(mal.models.build("specmask", **TINY))
    torch.save({**payload, "format": "mal-checkpoint/1"}, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match=r"old\.pt: written by an older mal \(mal-checkpoint/1"):
        mal.models.load(tmp_path / "old.pt")
    assert CHECKPOINT_FORMAT != "mal-checkpoint/1"
