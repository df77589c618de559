"""Loaders for the corpora users bring, on tiny generated fixtures that copy each naming pattern, plus bad input."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from mal.audio import AudioError
from mal.data import DATASETS, open_dataset
from mal.data.errors import DataError


def _tone(seconds: float, sr: int, freq: float = 440.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _write(path: Path, data: np.ndarray, sr: int = 16000, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, sr, subtype=subtype)
    return path


def _pair(base: Path, clean_rel: str, noisy_rel: str, sr: int = 16000, seconds: float = 0.5) -> None:
    clean = _tone(seconds, sr)
    _write(base / clean_rel, clean, sr)
    _write(base / noisy_rel, clean + 0.05 * np.random.default_rng(0).standard_normal(clean.size).astype(np.float32), sr)


def test_every_layout_has_a_loader() -> None:
    assert sorted(DATASETS) == ["dns-synthetic", "ears-wham", "folders", "mal-offline", "voicebank-demand"]
    with pytest.raises(DataError, match="unknown dataset"):
        open_dataset("librispeech", ".", "train")


def test_voicebank_demand_48k_and_speaker_splits(tmp_path: Path) -> None:
    for name in ("p226_001", "p226_002", "p286_001", "p287_004"):
        _pair(tmp_path, f"clean_trainset_28spk_wav/{name}.wav", f"noisy_trainset_28spk_wav/{name}.wav", sr=48000)
    _pair(tmp_path, "clean_testset_wav/p232_001.wav", "noisy_testset_wav/p232_001.wav", sr=48000)
    with pytest.warns(UserWarning, match="48000 Hz"):
        train = open_dataset("voicebank-demand", tmp_path, "train")
    assert train.ids == ["p226_001", "p226_002"]
    with pytest.warns(UserWarning):
        valid = open_dataset("voicebank-demand", tmp_path, "valid")
        test = open_dataset("voicebank-demand", tmp_path, "test")
    assert valid.ids == ["p286_001", "p287_004"] and test.ids == ["p232_001"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the expected 48 kHz resampling does not warn per file
        noisy, clean, meta = test[0]
    assert noisy.shape == clean.shape == (1, 8000) and noisy.dtype == torch.float32
    assert meta == {
        "id": "p232_001",
        "dataset": "voicebank-demand",
        "split": "test",
        "speaker": "p232",
        "language": "en",
    }
    with pytest.raises(DataError, match="split must be"):
        open_dataset("voicebank-demand", tmp_path, "dev")


def test_voicebank_missing_folder_is_named(tmp_path: Path) -> None:
    _pair(tmp_path, "clean_testset_wav/p232_001.wav", "elsewhere/p232_001.wav")
    with pytest.raises(DataError, match="noisy_testset_wav: missing folder"):
        open_dataset("voicebank-demand", tmp_path, "test")
    with pytest.raises(DataError, match="clean_trainset_28spk_wav"):
        open_dataset("voicebank-demand", tmp_path, "train")


def test_dns_synthetic_pairs_by_fileid(tmp_path: Path) -> None:
    base = tmp_path / "DNS" / "test_set" / "synthetic"
    for i, (noise, snr) in enumerate([("AirConditioner", 10), ("Babble", -5), ("Typing", 0)]):
        _pair(
            base,
            f"no_reverb/clean/clean_fileid_{i}.wav",
            f"no_reverb/noisy/clnsp{i}_{noise}_{7 + i}_snr{snr}_tl-25_fileid_{i}.wav",
        )
    _pair(base, "with_reverb/clean/clean_fileid_10.wav", "with_reverb/noisy/clnsp3_Fan_1_snr15_tl-30_fileid_10.wav")
    ds = open_dataset("dns-synthetic", tmp_path / "DNS", "test")  # any parent of test_set/synthetic works
    frame = ds.meta_frame()
    assert list(frame["id"]) == ["fileid_0", "fileid_1", "fileid_2"]
    assert list(frame["snr_db"]) == [10.0, -5.0, 0.0] and list(frame["noise_type"]) == [
        "AirConditioner",
        "Babble",
        "Typing",
    ]
    assert frame["split"].eq("no_reverb").all()
    noisy, clean, meta = ds[1]
    assert Path(frame["noisy_path"][1]).name.endswith("fileid_1.wav") and noisy.shape == clean.shape
    reverb = open_dataset("dns-synthetic", base, "with_reverb")
    assert reverb.ids == ["fileid_10"] and reverb[0][2]["room"]


def test_dns_unpaired_noisy_file_is_named(tmp_path: Path) -> None:
    base = tmp_path / "no_reverb"
    _pair(tmp_path, "no_reverb/clean/clean_fileid_1.wav", "no_reverb/noisy/clnsp1_Fan_1_snr5_tl-20_fileid_1.wav")
    _write(base / "noisy" / "clnsp2_Fan_1_snr5_tl-20_fileid_2.wav", _tone(0.2, 16000))
    with pytest.raises(DataError, match="without a clean partner: .*fileid_2.wav"):
        open_dataset("dns-synthetic", tmp_path, "no_reverb")


def test_ears_wham_strips_the_snr_suffix(tmp_path: Path) -> None:
    for spk, utt, snr in [("p102", "00001", "-2.5"), ("p102", "00002", "10"), ("p103", "00001", "5")]:
        _pair(tmp_path, f"test/clean/{spk}/{utt}.wav", f"test/noisy/{spk}/{utt}_{snr}dB.wav", sr=48000)
    with pytest.warns(UserWarning, match="48000 Hz"):
        ds = open_dataset("ears-wham", tmp_path, "test")
    frame = ds.meta_frame()
    assert list(frame["id"]) == ["p102_00001", "p102_00002", "p103_00001"]
    assert list(frame["snr_db"]) == [-2.5, 10.0, 5.0] and list(frame["speaker"]) == ["p102", "p102", "p103"]
    assert ds[0][0].shape == (1, 8000)
    _write(tmp_path / "test/noisy/p103/00009.wav", _tone(0.1, 48000), 48000)
    with pytest.raises(DataError, match=r"_<snr>dB"):
        open_dataset("ears-wham", tmp_path, "test")
    with pytest.raises(DataError, match="missing folder"):
        open_dataset("ears-wham", tmp_path, "train")


def test_folders_pair_by_relative_path(tmp_path: Path) -> None:
    _pair(tmp_path, "valid/clean/a.wav", "valid/noisy/a.wav")
    _pair(tmp_path, "valid/clean/sub/b.flac", "valid/noisy/sub/b.wav")
    ds = open_dataset("folders", tmp_path, "valid")
    assert ds.ids == ["a", "sub_b"] and len(ds) == 2 and ds[1][2]["split"] == "valid"
    flat = tmp_path / "flat"
    _pair(flat, "clean/x.wav", "noisy/x.wav")
    assert open_dataset("folders", flat, "").ids == ["x"]
    with pytest.raises(DataError, match="missing folders clean/ and noisy/"):
        open_dataset("folders", tmp_path / "valid" / "clean", "test")
    with pytest.raises(DataError, match="missing folder"):
        open_dataset("folders", tmp_path / "nowhere", "test")


# -- bad input ------------------------------------------------------------------------------------------------------


@pytest.fixture()
def messy(tmp_path: Path) -> Path:
    """A folders dataset with one of each problem."""
    _pair(tmp_path, "clean/good.wav", "noisy/good.wav")
    _write(tmp_path / "clean/mismatch.wav", _tone(0.5, 16000))
    _write(tmp_path / "noisy/mismatch.wav", _tone(0.6, 16000))
    _write(tmp_path / "clean/silent.wav", np.zeros(8000, np.float32))
    _write(tmp_path / "noisy/silent.wav", _tone(0.5, 16000))
    stereo = np.stack([_tone(0.5, 16000), _tone(0.5, 16000, 220)], 1)
    _write(tmp_path / "clean/stereo.wav", stereo)
    _write(tmp_path / "noisy/stereo.wav", stereo)
    nan = _tone(0.5, 16000)
    nan[100] = np.nan
    _write(tmp_path / "clean/nan.wav", nan, subtype="FLOAT")
    _write(tmp_path / "noisy/nan.wav", _tone(0.5, 16000))
    _write(tmp_path / "clean/rate.wav", _tone(0.5, 8000), 8000)
    _write(tmp_path / "noisy/rate.wav", _tone(0.5, 8000), 8000)
    (tmp_path / "clean/corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    _write(tmp_path / "noisy/corrupt.wav", _tone(0.5, 16000))
    _write(tmp_path / "clean/empty.wav", np.zeros(0, np.float32))
    _write(tmp_path / "noisy/empty.wav", _tone(0.5, 16000))
    return tmp_path


def _item(ds, name: str):
    return ds[ds.index_of(name)]


def test_bad_files_raise_errors_that_name_them(messy: Path) -> None:
    ds = open_dataset("folders", messy, "")
    assert _item(ds, "good")[0].shape == (1, 8000)
    with pytest.raises(DataError, match=r"length mismatch for mismatch: noisy .*mismatch.wav has 9600 samples"):
        _item(ds, "mismatch")
    with pytest.raises(AudioError, match=r"silent.wav: audio is all zeros"):
        _item(ds, "silent")
    with pytest.raises(AudioError, match=r"nan.wav: 1 NaN/inf samples"):
        _item(ds, "nan")
    with pytest.raises(AudioError, match=r"corrupt.wav: cannot decode"):
        _item(ds, "corrupt")
    with pytest.raises(AudioError, match=r"empty.wav: empty audio"):
        _item(ds, "empty")


def test_documented_fix_ups_warn(messy: Path) -> None:
    ds = open_dataset("folders", messy, "", length_mismatch="trim", allow_silent=True)
    with pytest.warns(UserWarning, match="both trimmed"):
        noisy, clean, _ = _item(ds, "mismatch")
    assert noisy.shape == clean.shape == (1, 8000)
    assert _item(ds, "silent")[1].abs().max() == 0
    with pytest.warns(UserWarning, match="2 channels averaged to mono"):
        noisy, _, _ = _item(ds, "stereo")
    assert noisy.shape == (1, 8000)
    with pytest.warns(UserWarning, match=r"rate.wav: resampled 8000 Hz -> 16000 Hz"):
        noisy, clean, _ = _item(ds, "rate")
    assert noisy.shape == (1, 8000)
    assert len(ds) == 8  # nothing was dropped from the listing


def test_in_memory_cache_returns_the_same_audio(tmp_path: Path) -> None:
    _pair(tmp_path, "clean/a.wav", "noisy/a.wav")
    ds = open_dataset("folders", tmp_path, "", cache=True)
    first = ds[0]
    (tmp_path / "noisy/a.wav").unlink()  # served from memory now
    assert torch.equal(ds[0][0], first[0])


def test_mal_offline_items(smoke_corpus: Path) -> None:
    ds = open_dataset("mal-offline", smoke_corpus, "test_reverb")
    noisy, clean, meta = ds[0]
    assert noisy.dtype == clean.dtype == torch.float32 and noisy.shape == clean.shape and noisy.shape[0] == 1
    for key in (
        "id",
        "dataset",
        "split",
        "speaker",
        "language",
        "prompt",
        "noise_type",
        "noise_source",
        "snr_db",
        "room",
    ):
        assert key in meta, key
    assert meta["dataset"] == "mal-offline" and meta["split"] == "test_reverb" and isinstance(meta["snr_db"], float)
    frame = open_dataset("mal-offline", smoke_corpus, "test").meta_frame()
    assert frame["room"].isna().all() and len(frame) == len(frame["id"].unique())
    with pytest.raises(DataError, match="splits in this corpus: .*test_ood"):
        open_dataset("mal-offline", smoke_corpus, "dev")
    with pytest.raises(DataError, match="not a built mal-offline corpus"):
        open_dataset("mal-offline", smoke_corpus / "test", "clean")


def test_without_leaves_a_voice_or_a_noise_out_and_names_typos(smoke_corpus: Path) -> None:
    train = open_dataset("mal-offline", smoke_corpus, "train")
    speakers = sorted({train.meta(i)["speaker"] for i in range(len(train))})
    kept = train.without("speaker", [speakers[0]])
    assert 0 < len(kept) < len(train)
    assert {kept.meta(i)["speaker"] for i in range(len(kept))} == set(speakers[1:])
    assert kept.load_pair(0)[1].shape == train.load_pair(train.index_of(kept.ids[0]))[1].shape
    with pytest.raises(DataError, match=re.escape(f"no speaker ['Nobody'] to leave out; the values are {speakers}")):
        train.without("speaker", ["Nobody"])
    with pytest.raises(DataError, match="leaves no items"):
        train.without("speaker", speakers)
    no_hum = train.without("noise_type", ["hum"])
    assert "hum" not in {no_hum.meta(i)["noise_type"] for i in range(len(no_hum))} and len(no_hum) < len(train)
