"""Extra training voices (flite reading the train prompts): train only, real rows untouched, byte-identical per seed,
clear errors when flite cannot be had."""

from __future__ import annotations

import csv
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from mal.__main__ import main
from mal.config import ConfigError
from mal.data import sources as sources_mod
from mal.data import voices
from mal.data.corpus import CorpusConfig, build_corpus, split_of
from mal.data.errors import DataError

needs_flite = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.machine().lower() not in ("x86_64", "amd64"),
    reason="the packaged flite binary is amd64 Linux",
)
# Smallest build that exercises the option: one real voice, generated noise, train only, two synthetic voices.
TINY = {
    "profile": "smoke",
    "seed": 0,
    "sources": ["asterisk-en", "hum"],
    "n_train": 3,
    "n_valid": 0,
    "n_test": 0,
    "n_test_ood": 0,
    "n_test_reverb": 0,
    "extra_voices": ["flite-kal16", "flite-slt"],
    "n_train_extra": 4,
}


def _rows(root: Path, split: str) -> list[dict[str, str]]:
    with open(root / split / "manifest.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _sums(root: Path) -> dict[str, str]:
    return {
        rel: digest
        for digest, _, rel in (ln.partition("  ") for ln in (root / "SHA256SUMS").read_text().split("\n") if ln)
    }


def _linked_raw(src: Path, dest: Path, only: tuple[str, ...] | None = None) -> Path:
    """A fresh raw folder holding links to the packages of ``src`` (no download, nothing unpacked or decoded)."""
    for folder in ("debs", "npm"):
        (dest / folder).mkdir(parents=True)
        for p in sorted((src / folder).glob("*")) if (src / folder).is_dir() else []:
            if only is None or p.name.startswith(only):
                (dest / folder / p.name).symlink_to(p.resolve())
    return dest


@pytest.fixture(scope="module")
def tiny_voices(tmp_path_factory: pytest.TempPathFactory, mal_raw_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("voices") / "tiny"
    return build_corpus(CorpusConfig.from_params({**TINY, "root": str(root)}), mal_raw_dir, progress=False)


# -- no audio needed ------------------------------------------------------------------------------------------------


def test_transcripts_keep_spoken_words_only() -> None:
    text = "; Core sounds\n\nagent-pass: Please enter your password.\nbeep: [a beep tone]\nletters/at: at [@]\n"
    text += "confbridge-join: <beep ascending>\ndigits/1: one\n"
    assert voices.parse_transcripts(text) == {
        "agent-pass": "Please enter your password.",
        "letters/at": "at",
        "digits/1": "one",
    }
    with pytest.raises(DataError, match="name: text"):
        voices.parse_transcripts("no colon on this line")


def test_voice_names_and_build_key() -> None:
    assert voices.resolve_voices(["flite-slt", "flite"]) == ("flite-awb", "flite-kal16", "flite-rms", "flite-slt")
    with pytest.raises(ConfigError, match="unknown extra voice 'piper'"):
        CorpusConfig(extra_voices=["piper"]).validate()
    with pytest.raises(ConfigError, match="n_train_extra"):
        CorpusConfig(extra_voices=["flite"], n_train_extra=-3).validate()
    plain = CorpusConfig(profile="quick")
    # Without voices the count is ignored and the key is the one corpora built before the option had.
    assert plain.n_extra() == 0 and plain.replace(n_train_extra=50).build_key() == plain.build_key()
    widened = plain.replace(extra_voices=["flite"])
    assert widened.n_extra() == voices.PROFILE_EXTRA_TRAIN["quick"]
    assert len({plain.build_key(), widened.build_key(), widened.replace(n_train_extra=50).build_key()}) == 3


def test_other_platforms_get_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "machine", lambda: "arm64")
    with pytest.raises(DataError, match="amd64 flite binary"):
        voices.prepare_flite(tmp_path / "raw")
    assert not (tmp_path / "raw").exists()


@needs_flite
def test_unfetchable_flite_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(url: str, dest: Path, progress: bool) -> None:
        raise OSError("network unreachable")

    monkeypatch.setattr(sources_mod, "_download_with_tool", lambda archive, workdir: None)
    monkeypatch.setattr(sources_mod, "_download_url", offline)
    with pytest.raises(DataError, match=r"cannot download flite 2\.2-5: .*network unreachable"):
        voices.prepare_flite(tmp_path / "raw")


@needs_flite
def test_a_binary_that_does_not_run_is_a_clear_error(mal_raw_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: voices.Flite, *args: str) -> subprocess.CompletedProcess:
        return subprocess.CompletedProcess(args, 127, "", "flite: error while loading shared libraries")

    monkeypatch.setattr(voices.Flite, "run", broken)
    with pytest.raises(DataError, match="does not run here .*exit 127.*loading shared libraries"):
        voices.prepare_flite(mal_raw_dir, progress=False)


# -- built with flite ------------------------------------------------------------------------------------------------


@needs_flite
def test_synthetic_voices_go_to_train_only_after_the_real_rows(
    tiny_voices: Path, mal_raw_dir: Path, tmp_path: Path
) -> None:
    rows = _rows(tiny_voices, "train")
    real, synthetic = rows[: TINY["n_train"]], rows[TINY["n_train"] :]
    assert {r["speaker"] for r in real} == {"Allison"}
    assert len(synthetic) == TINY["n_train_extra"]
    assert {r["speaker"] for r in synthetic} == set(TINY["extra_voices"])
    assert {(r["speech_source"], r["language"]) for r in synthetic} == {("flite", "en")}
    # Only train prompts are read: no valid or test prompt (nor its translations) is ever synthesised.
    prompts = [p for r in synthetic for p in r["prompt"].split("+")]
    assert prompts and all(split_of(p, (0.8, 0.1, 0.1)) == "train" for p in prompts)
    assert sorted(p.parent.name for p in tiny_voices.glob("*/manifest.csv")) == ["train"]
    # The real rows are the bytes the same config builds without extra voices.
    plain = {k: v for k, v in TINY.items() if k not in ("extra_voices", "n_train_extra")}
    without = build_corpus(
        CorpusConfig.from_params({**plain, "root": str(tmp_path / "plain")}), mal_raw_dir, progress=False
    )
    sums, plain_sums = _sums(tiny_voices), _sums(without)
    for r in real:
        assert sums[r["clean"]] == plain_sums[r["clean"]] and sums[r["noisy"]] == plain_sums[r["noisy"]]
    assert len(plain_sums) == 2 * TINY["n_train"] + 1  # manifest + pairs: no synthetic file without the option


@needs_flite
def test_same_seed_resynthesises_byte_identical(tiny_voices: Path, mal_raw_dir: Path, tmp_path: Path) -> None:
    # A fresh raw folder: flite is unpacked, every prompt synthesised and decoded again.
    raw = _linked_raw(
        mal_raw_dir, tmp_path / "raw", only=("asterisk-core-sounds-en", "flite", "libflite1", "libasound2")
    )
    again = build_corpus(CorpusConfig.from_params({**TINY, "root": str(tmp_path / "again")}), raw, progress=False)
    assert (again / "SHA256SUMS").read_bytes() == (tiny_voices / "SHA256SUMS").read_bytes()
    other = build_corpus(
        CorpusConfig.from_params({**TINY, "seed": 1, "root": str(tmp_path / "seed1")}), raw, progress=False
    )
    synthetic = [
        {r["prompt"] for r in _rows(c, "train") if r["speech_source"] == "flite"} for c in (tiny_voices, other)
    ]
    assert synthetic[0] != synthetic[1]  # each seed reads its own draw of train prompts


def test_cli_rejects_an_unknown_voice_before_downloading(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["corpus", "build", "--profile", "smoke", "--root", str(tmp_path / "c"), "--raw-dir", str(tmp_path / "raw")]
    assert main([*args, "--extra-voices", "flite-slt,piper"]) == 1
    assert "unknown extra voice 'piper'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@needs_flite
def test_cli_flags_build_the_same_corpus(tiny_voices: Path, mal_raw_dir: Path, tmp_path: Path) -> None:
    plain = CorpusConfig.from_params({k: v for k, v in TINY.items() if k not in ("extra_voices", "n_train_extra")})
    config = plain.save(tmp_path / "tiny.yaml")
    args = ["corpus", "build", "--config", str(config), "--root", str(tmp_path / "c"), "--raw-dir", str(mal_raw_dir)]
    assert main([*args, "--extra-voices", "flite-slt, flite-kal16", "--n-train-extra", "4", "--no-progress"]) == 0
    assert (tmp_path / "c" / "SHA256SUMS").read_bytes() == (tiny_voices / "SHA256SUMS").read_bytes()
