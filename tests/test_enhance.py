"""Chunked overlap-add enhancement, file/folder enhancement and the ``enhance`` CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from speech_signals import speech_like
from toy_checkpoints import Gain

import mal.models
from mal.__main__ import main
from mal.audio import AudioError
from mal.config import ConfigError
from mal.enhance import ModelDivergedError, chunk_bounds, enhance, enhance_path

SR = 16000
REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("length", "chunk", "overlap"), [(100, 40, 10), (100, 100, 10), (101, 40, 0), (7, 40, 5)])
def test_chunk_bounds_cover_the_input(length: int, chunk: int, overlap: int) -> None:
    bounds = chunk_bounds(length, chunk, overlap)
    assert bounds[0][0] == 0 and bounds[-1][1] == length
    assert all(e - s == min(chunk, length) for s, e in bounds)  # the model always sees full chunks
    for (s0, e0), (s1, _) in zip(bounds, bounds[1:], strict=False):
        assert s0 < s1 and e0 - s1 >= overlap  # consecutive chunks overlap at least as asked


def test_chunked_pointwise_model_is_exact() -> None:
    x = torch.from_numpy(speech_like(3.3, SR, seed=2)).float()
    whole = enhance(Gain(), x)
    chunked = enhance(Gain(), x[None], chunk_seconds=1.0, overlap_seconds=0.25)
    assert whole.shape == chunked.shape == (1, x.numel())
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=0)  # the cross-fade weights sum to one


@pytest.mark.parametrize("name", ["specmask", "waveunet"])
def test_chunked_real_models_stay_close_to_whole_file(name: str) -> None:
    model = mal.models.build(name)
    x = torch.from_numpy(speech_like(6.0, SR, seed=3)).float()
    whole = enhance(model, x)
    chunked = enhance(model, x, chunk_seconds=2.0, overlap_seconds=0.5)
    err = 10 * torch.log10(whole.pow(2).sum() / (whole - chunked).pow(2).sum())
    # Untrained models with recurrent state and per-input normalisation: seams cost little.
    assert err > 15.0, f"chunked vs whole-file processing differ: {err:.1f} dB"


def test_enhance_restores_training_mode_and_needs_no_grad() -> None:
    model = Gain().train()
    out = enhance(model, torch.randn(SR))
    assert model.training and not out.requires_grad


def test_enhance_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="mono"):
        enhance(Gain(), torch.zeros(2, 100))
    with pytest.raises(AudioError, match="empty"):
        enhance(Gain(), torch.zeros(0))


@pytest.fixture()
def checkpoint(tmp_path) -> str:
    path = tmp_path / "ckpt" / "specmask.pt"
    mal.models.save(mal.models.build("specmask"), path)
    return str(path)


def _write(path, seconds: float, sr: int = SR, seed: int = 0) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    x = speech_like(seconds, sr, seed=seed).astype(np.float32)
    sf.write(path, x, sr, subtype="PCM_16")
    return x


def test_streamed_file_matches_in_memory_chunking(tmp_path, checkpoint: str) -> None:
    _write(tmp_path / "in.wav", 7.0)
    out = tmp_path / "out.wav"
    enhance_path(tmp_path / "in.wav", out, checkpoint, subtype="FLOAT", chunk_seconds=2.0, progress=False)
    assert sf.info(out).subtype == "FLOAT" and sf.info(out).samplerate == SR
    streamed, _ = sf.read(out, dtype="float32")
    noisy, _ = sf.read(tmp_path / "in.wav", dtype="float32")
    model = mal.models.load(checkpoint)
    expected = enhance(model, torch.from_numpy(noisy), chunk_seconds=2.0, overlap_seconds=0.5)[0].numpy()
    np.testing.assert_allclose(streamed, expected, atol=1e-5)


def test_folder_to_folder_mirrors_structure_and_resamples(tmp_path, checkpoint: str) -> None:
    _write(tmp_path / "noisy" / "a.wav", 1.0)
    _write(tmp_path / "noisy" / "sub" / "b.wav", 1.0, sr=8000)  # resampled to 16 kHz on read
    (tmp_path / "noisy" / "notes.txt").write_text("not audio")
    with pytest.warns(UserWarning, match="resampled"):
        written = enhance_path(tmp_path / "noisy", tmp_path / "clean", checkpoint, progress=False).written
    assert sorted(p.relative_to(tmp_path / "clean").as_posix() for p in written) == ["a.wav", "sub/b.wav"]
    info = sf.info(tmp_path / "clean" / "sub" / "b.wav")
    assert info.samplerate == SR and info.subtype == "PCM_16" and info.frames == SR


def test_refuses_to_overwrite_inputs(tmp_path, checkpoint: str) -> None:
    _write(tmp_path / "x.wav", 0.5)
    with pytest.raises(AudioError, match="overwrite"):
        enhance_path(tmp_path / "x.wav", tmp_path / "x.wav", checkpoint, progress=False)
    with pytest.raises(AudioError, match="overwrite|input folder"):
        enhance_path(tmp_path, tmp_path, checkpoint, progress=False)
    with pytest.raises(AudioError, match="overwrite"):
        enhance_path(tmp_path / "x.wav", tmp_path, checkpoint, progress=False)  # folder target, same name


def test_errors_name_the_file(tmp_path, checkpoint: str) -> None:
    (tmp_path / "bad.wav").write_bytes(b"RIFF junk")
    with pytest.raises(AudioError, match="bad.wav"):
        enhance_path(tmp_path / "bad.wav", tmp_path / "o.wav", checkpoint, progress=False)
    with pytest.raises(AudioError, match="no such"):
        enhance_path(tmp_path / "missing", tmp_path / "o", checkpoint, progress=False)


def test_cli(tmp_path, checkpoint: str, capsys) -> None:
    _write(tmp_path / "in" / "a.wav", 0.5)
    assert main(["enhance", str(tmp_path / "in"), str(tmp_path / "out"), "--checkpoint", checkpoint, "--float"]) == 0
    assert sf.info(tmp_path / "out" / "a.wav").subtype == "FLOAT"
    assert (
        main(["enhance", str(tmp_path / "in" / "a.wav"), str(tmp_path / "in" / "a.wav"), "--checkpoint", checkpoint])
        == 1
    )
    assert "refusing to overwrite" in capsys.readouterr().err


def test_diverged_model_fails_every_output_path_naming_the_checkpoint_and_writes_nothing(
    tmp_path, diverged_checkpoint: Path, capsys
) -> None:
    _write(tmp_path / "in16.wav", 2.5)
    _write(tmp_path / "in8.wav", 2.5, sr=8000)
    named = rf"{diverged_checkpoint.name}: model diverged"
    with pytest.raises(ModelDivergedError, match=named):
        enhance(mal.models.load(diverged_checkpoint), torch.randn(SR), source=str(diverged_checkpoint))
    cases = [  # streamed 16 kHz (chunked), 16 kHz whole file, resampled 8 kHz, float samples
        ("in16.wav", "a.wav", "PCM_16", 1.0),
        ("in16.wav", "b.wav", "PCM_16", None),
        ("in8.wav", "c.wav", "PCM_16", 1.0),
        ("in16.wav", "d.wav", "FLOAT", 1.0),
    ]
    for src, dst, subtype, chunk in cases:
        with pytest.raises(ModelDivergedError, match=named):
            enhance_path(tmp_path / src, tmp_path / dst, diverged_checkpoint, subtype, chunk, progress=False)
        assert not (tmp_path / dst).exists(), dst
    assert (
        main(["enhance", str(tmp_path / "in16.wav"), str(tmp_path / "e.wav"), "--checkpoint", str(diverged_checkpoint)])
        == 1
    )
    assert "model diverged" in capsys.readouterr().err and not (tmp_path / "e.wav").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in16.wav", "in8.wav"]  # no temporary files either


def test_a_folder_run_enhances_every_readable_file_and_reports_the_rest(tmp_path, checkpoint: str, capsys) -> None:
    _write(tmp_path / "in" / "a.wav", 1.0)
    _write(tmp_path / "in" / "sub" / "d.wav", 1.0, seed=1)
    (tmp_path / "in" / "b.wav").write_bytes(b"RIFF junk")  # corrupt
    sf.write(tmp_path / "in" / "c.wav", np.zeros(0, np.float32), SR)  # empty
    with pytest.warns(UserWarning, match="2 of 4 file"):
        result = enhance_path(tmp_path / "in", tmp_path / "out", checkpoint, progress=False)
    assert [p.relative_to(tmp_path / "out").as_posix() for p in result.written] == ["a.wav", "sub/d.wav"]
    assert sorted(p.name for p in result.failed) == ["b.wav", "c.wav"]
    assert "cannot decode" in result.failed[tmp_path / "in" / "b.wav"]
    assert "empty audio" in result.failed[tmp_path / "in" / "c.wav"]
    summary = json.loads((tmp_path / "out" / "enhance_summary.json").read_text())
    assert summary["done"] == ["a.wav", "sub/d.wav"] and summary["checkpoint"] == checkpoint
    assert [f["input"] for f in summary["failed"]] == ["b.wav", "c.wav"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.wav", "enhance_summary.json", "sub"]

    assert main(["enhance", str(tmp_path / "in"), str(tmp_path / "cli"), "--checkpoint", checkpoint, "--quiet"]) == 1
    out = capsys.readouterr()
    assert "wrote 2 file(s)" in out.out
    assert "b.wav: AudioError" in out.err and "c.wav: AudioError" in out.err and "2 file(s) failed" in out.err


@pytest.mark.parametrize(
    ("name", "sr", "container"), [("o.ogg", SR, "OGG"), ("o.mp3", 8000, "MP3"), ("o.flac", SR, "FLAC")]
)
def test_every_output_extension_gets_its_own_format(
    tmp_path, checkpoint: str, name: str, sr: int, container: str
) -> None:
    _write(tmp_path / "in.wav", 1.0, sr=sr)  # 16 kHz inputs are streamed, others go through write_audio
    enhance_path(tmp_path / "in.wav", tmp_path / name, checkpoint, progress=False)
    info = sf.info(tmp_path / name)
    assert info.format == container and info.samplerate == SR and abs(info.frames - SR) < 0.05 * SR
    assert not (tmp_path / name).read_bytes().startswith(b"RIFF")


def test_output_formats_that_cannot_hold_the_samples_are_refused_before_any_work(tmp_path, checkpoint: str) -> None:
    _write(tmp_path / "in.wav", 0.5)
    with pytest.raises(AudioError, match=r"o\.flac: \.flac files cannot hold FLOAT samples; write \.wav"):
        enhance_path(tmp_path / "in.wav", tmp_path / "o.flac", checkpoint, subtype="FLOAT", progress=False)
    with pytest.raises(AudioError, match=r"o\.aiff: cannot write \.aiff; use \.wav, \.flac, \.ogg, \.mp3"):
        enhance_path(tmp_path / "in.wav", tmp_path / "o.aiff", checkpoint, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "in.wav"]


def test_device_errors_are_one_line(tmp_path, checkpoint: str, capsys) -> None:
    _write(tmp_path / "in.wav", 0.5)
    with pytest.raises(ConfigError, match="unknown device 'bogus'"):
        enhance_path(tmp_path / "in.wav", tmp_path / "o.wav", checkpoint, device="bogus", progress=False)
    args = ["enhance", str(tmp_path / "in.wav"), str(tmp_path / "o.wav"), "--checkpoint", checkpoint]
    assert main([*args, "--device", "bogus"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown device 'bogus'; use auto, cpu, cuda or cuda:N" in err
    if not torch.cuda.is_available():
        assert main([*args, "--device", "cuda"]) == 1
        err = capsys.readouterr().err
        assert "CUDA is unavailable" in err and "checkpoint" not in err


def test_cli_refuses_a_checkpoint_that_runs_code(tmp_path, malicious_checkpoint) -> None:
    path, marker = malicious_checkpoint
    _write(tmp_path / "in.wav", 0.5)
    cmd = [sys.executable, "-m", "mal", "enhance", str(tmp_path / "in.wav"), str(tmp_path / "o.wav")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([*cmd, "--checkpoint", str(path)], capture_output=True, text=True, cwd=REPO, env=env)
    assert done.returncode == 1 and done.stdout == ""
    assert f"{path}: refused to load this checkpoint" in done.stderr and "Traceback" not in done.stderr
    assert not marker.exists() and not (tmp_path / "o.wav").exists()
