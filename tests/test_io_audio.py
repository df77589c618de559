from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from mal.audio import AudioError, read_audio, write_audio
from mal.io import atomic_open, atomic_torch_save, atomic_write_json, remove_orphan_temps


def test_atomic_write_keeps_old_file_on_error(tmp_path) -> None:
    path = tmp_path / "x.json"
    atomic_write_json(path, {"a": 1})
    with pytest.raises(RuntimeError), atomic_open(path) as fh:
        fh.write("partial")
        raise RuntimeError("killed")
    assert path.read_text().strip().startswith("{")
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temp file left behind


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_written_files_follow_the_umask(tmp_path, umask: int) -> None:
    old = os.umask(umask)
    try:
        for path in (atomic_write_json(tmp_path / "a.json", {}), atomic_torch_save({}, tmp_path / "b.pt")):
            assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path
        assert write_audio(tmp_path / "c.wav", torch.zeros(160)).stat().st_mode & 0o777 == 0o666 & ~umask
    finally:
        os.umask(old)


KILLED_WRITER = """
import os, signal, sys
from mal.io import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"half a checkpoint")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_orphan_temp_files_of_a_killed_writer_are_removed(tmp_path) -> None:
    atomic_write_json(tmp_path / "keep.json", {"a": 1})
    (tmp_path / "notes.tmp").write_text("not ours: no leading dot")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(tmp_path / "last.pt")], env=env)
    assert killed.returncode == -signal.SIGKILL
    (orphan,) = [p for p in tmp_path.iterdir() if p.name.startswith(".last.pt.")]
    assert remove_orphan_temps(tmp_path) == [orphan]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.json", "notes.tmp"]


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
