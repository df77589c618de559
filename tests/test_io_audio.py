from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from mal.audio import AudioError, read_audio, write_audio
from mal.io import atomic_open, atomic_write_json


def test_atomic_write_keeps_old_file_on_error(tmp_path) -> None:
    path = tmp_path / "x.json"
    atomic_write_json(path, {"a": 1})
    with pytest.raises(RuntimeError), atomic_open(path) as fh:
        fh.write("partial")
        raise RuntimeError("killed")
    assert path.read_text().strip().startswith("{")
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temp file left behind


def test_round_trip_float(tmp_path) -> None:
    wav = torch.randn(1, 1600) * 0.1
    write_audio(tmp_path / "a.wav", wav, subtype="FLOAT")
    back, sr = read_audio(tmp_path / "a.wav")
    assert sr == 16000 and torch.allclose(back, wav)


def test_stereo_is_mixed_with_warning_or_refused(tmp_path) -> None:
    sf.write(tmp_path / "s.wav", np.stack([np.ones(100), -np.ones(100)], 1) * 0.5, 16000)
    with pytest.warns(UserWarning, match="2 channels"):
        wav, _ = read_audio(tmp_path / "s.wav")
    assert wav.shape == (1, 100) and float(wav.abs().max()) == 0.0
    with pytest.raises(AudioError, match="2 channels"):
        read_audio(tmp_path / "s.wav", mono="error")


def test_wrong_rate_is_resampled_with_warning(tmp_path) -> None:
    sf.write(tmp_path / "r.wav", np.zeros(4800) + 0.1, 48000)
    with pytest.warns(UserWarning, match="48000 Hz -> 16000 Hz"):
        wav, sr = read_audio(tmp_path / "r.wav")
    assert sr == 16000 and wav.shape == (1, 1600)


@pytest.mark.parametrize("kind", ["corrupt", "empty", "nan", "missing", "silent"])
def test_bad_files_name_the_file(tmp_path, kind: str) -> None:
    path = tmp_path / f"{kind}.wav"
    if kind == "corrupt":
        path.write_bytes(b"RIFF\x00\x00garbage")
    elif kind == "empty":
        sf.write(path, np.zeros(0), 16000)
    elif kind == "nan":
        sf.write(path, np.array([0.1, np.nan, 0.2], dtype=np.float32), 16000, subtype="FLOAT")
    elif kind == "silent":
        sf.write(path, np.zeros(100), 16000)
    with pytest.raises(AudioError, match=kind):
        read_audio(path, allow_silent=False)


def test_write_refuses_nan(tmp_path) -> None:
    with pytest.raises(AudioError, match="NaN"):
        write_audio(tmp_path / "n.wav", torch.tensor([0.0, float("nan")]))
    assert not (tmp_path / "n.wav").exists()
