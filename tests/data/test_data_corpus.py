"""The mal-offline corpus: config checks, planning rules, and the built smoke corpus (layout, mixing, splits,
byte-identical rebuilds, reuse, atomic builds)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mal.config import ConfigError
from mal.data import corpus as corpus_mod
from mal.data import open_dataset, verify_corpus
from mal.data.corpus import (
    MANIFEST_COLUMNS,
    CorpusConfig,
    assign_conditions,
    build_corpus,
    cut_at_pauses,
    plan_voice,
    select_balanced,
    split_of,
)
from mal.data.errors import DataError
from mal.data.sources import SourceFile

SR = 16000


# -- config and planning (no audio needed) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"train_snr_db": [10, 0]}, "low <= high"),
        ({"utterance_seconds": [2, 3]}, "high >= 2"),
        ({"peak": 1.5}, "peak"),
        ({"split_fractions": [0.5, 0.1, 0.1]}, "summing to 1"),
        ({"sources": ["asterisk-en"]}, "in-domain noise"),
        ({"sources": ["asterisk-en", "hum", "nope"]}, "unknown"),
        ({"n_train": -2}, "n_train"),
        ({"profile": "huge"}, "not one of"),
        ({"snr": 5}, "unknown parameter"),
    ],
)
def test_config_rejects_bad_values(params: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        CorpusConfig.from_params(params)


def test_profiles_and_build_key() -> None:
    smoke, quick = CorpusConfig(profile="smoke"), CorpusConfig(profile="quick")
    assert smoke.sizes()["train"] < quick.sizes()["train"] and CorpusConfig(profile="full").sizes()["test"] == -1
    assert "megaglest" not in smoke.source_names() and "megaglest" in quick.source_names()
    assert CorpusConfig(n_test=5).sizes()["test"] == 5
    # The output folder does not change the content; the seed does.
    assert quick.build_key() == quick.replace(root="/elsewhere").build_key() != quick.replace(seed=1).build_key()


def test_split_by_prompt_name_is_stable_and_proportional() -> None:
    fractions = (0.8, 0.1, 0.1)
    names = [f"prompt-{i}" for i in range(4000)]
    splits = [split_of(n, fractions) for n in names]
    assert splits == [split_of(n, fractions) for n in names]
    share = {s: splits.count(s) / len(names) for s in ("train", "valid", "test")}
    assert share["train"] == pytest.approx(0.8, abs=0.03) and share["test"] == pytest.approx(0.1, abs=0.02)


def _speechlike(seconds: float, pause_at: list[float] | None = None) -> np.ndarray:
    rng = np.random.default_rng(int(seconds * 1000))
    x = rng.standard_normal(int(seconds * SR)).astype(np.float32) * 0.1
    for t in pause_at or []:
        x[int(t * SR) : int((t + 0.2) * SR)] = 0.0
    return x


def test_cut_at_pauses_lands_in_the_pause() -> None:
    wav = _speechlike(10.0, pause_at=[3.5, 7.0])
    pieces = cut_at_pauses(wav, 0, wav.size, 2 * SR, 5 * SR)
    assert pieces[0][0] == 0 and pieces[-1][1] == wav.size
    assert all(2 * SR <= b - a <= 5 * SR for a, b in pieces)
    for _, b in pieces[:-1]:
        assert np.all(wav[b - 80 : b + 80] == 0)  # cut inside a silent stretch


def test_plan_voice_keeps_lengths_in_range_and_uses_each_prompt_once() -> None:
    durations = [0.5, 0.7, 0.9, 1.1, 0.6, 0.8, 3.0, 4.5, 12.0, 0.4, 1.5, 1.2]
    items = []
    for i, d in enumerate(durations):
        wav = _speechlike(d, pause_at=[4.0, 8.0] if d > 10 else None)
        f = SourceFile("asterisk-en", "pkg", f"p{i}.g722", Path(f"p{i}"), "A", "en", f"p{i}")
        items.append((f, 0, wav.size, wav))
    lo, hi = 2 * SR, 6 * SR
    utts, leftover = plan_voice(items, lo, hi, (int(0.1 * SR), int(0.3 * SR)), np.random.default_rng(0))
    assert all(lo <= u.n_samples <= hi for u in utts)
    used = [p.file.prompt for u in utts for p in u.parts] + [f.prompt for f in leftover]
    long_pieces = [u for u in utts if u.parts[0].file.prompt == "p8"]
    assert len(long_pieces) >= 2  # the 12 s prompt was cut
    assert sorted(set(used)) == sorted(f"p{i}" for i in range(len(durations)))
    assert len(used) - len(long_pieces) + 1 == len(durations)  # every other prompt used exactly once
    joined = [u for u in utts if len(u.parts) > 1]
    assert joined and all(len(u.gaps) == len(u.parts) - 1 for u in joined)
    assert all(int(0.1 * SR) <= g <= int(0.3 * SR) for u in joined for g in u.gaps)


def test_select_balanced_round_robins_voices() -> None:
    def utt(spk: str, i: int) -> corpus_mod.Utterance:
        f = SourceFile("s", "pkg", f"{spk}{i}", Path("x"), spk, "en", f"{spk}{i}")
        return corpus_mod.Utterance("s", spk, "en", [corpus_mod.Part(f, 0, 10)], [])

    utts = [utt("a", i) for i in range(10)] + [utt("b", i) for i in range(2)] + [utt("c", i) for i in range(5)]
    chosen = select_balanced(utts, 6, np.random.default_rng(0))
    assert sorted(u.speaker for u in chosen) == ["a", "a", "b", "b", "c", "c"]
    assert len(select_balanced(utts, -1, np.random.default_rng(0))) == len(utts)


def test_fixed_levels_are_balanced_over_noise_types() -> None:
    conds = assign_conditions(40, (2.5, 7.5), (0, 15), ["music", "hum"], np.random.default_rng(0))
    counts: dict = {}
    for c in conds:
        counts[(c.snr_db, c.noise_type)] = counts.get((c.snr_db, c.noise_type), 0) + 1
    assert counts == {(2.5, "music"): 10, (2.5, "hum"): 10, (7.5, "music"): 10, (7.5, "hum"): 10}
    train = assign_conditions(500, None, (0, 15), ["music", "hum"], np.random.default_rng(0))
    snrs = np.array([c.snr_db for c in train])
    assert snrs.min() >= 0 and snrs.max() <= 15 and len(set(snrs)) == 500


# -- the built smoke corpus ------------------------------------------------------------------------------------------


def _rows(root: Path, split: str) -> list[dict[str, str]]:
    with open(root / split / "manifest.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_smoke_corpus_layout(smoke_corpus: Path) -> None:
    assert verify_corpus(smoke_corpus)["ok"]
    for split in ("train", "valid", "test", "test_ood", "test_reverb"):
        rows = _rows(smoke_corpus, split)
        assert rows and list(rows[0]) == list(MANIFEST_COLUMNS)
        for row in rows:
            assert row["clean"] == f"{split}/clean/{row['id']}.wav" and row["noisy"] == f"{split}/noisy/{row['id']}.wav"
            info = sf.info(str(smoke_corpus / row["noisy"]))
            assert info.samplerate == SR and info.channels == 1 and info.subtype == "PCM_16"
            assert info.frames == sf.info(str(smoke_corpus / row["clean"])).frames
            assert abs(info.frames / SR - float(row["duration_s"])) < 1e-3


def test_smoke_mixtures_match_their_manifest(smoke_corpus: Path) -> None:
    cfg = CorpusConfig(profile="smoke")
    for split in ("train", "test", "test_ood", "test_reverb"):
        ds = open_dataset("mal-offline", smoke_corpus, split)
        for noisy, clean, meta in ds:
            peak = max(float(noisy.abs().max()), float(clean.abs().max()))
            assert peak < cfg.peak
            if split == "test_reverb":
                assert meta["room"] and meta["rt60_s"] > 0  # noisy - clean also holds reverberation
                continue
            n, c = (noisy - clean).double(), clean.double()
            snr = 10 * np.log10(float(c.pow(2).mean()) / float(n.pow(2).mean()))
            assert snr == pytest.approx(meta["snr_db"], abs=0.05), meta["id"]
            if split == "train":
                assert cfg.train_snr_db[0] <= meta["snr_db"] <= cfg.train_snr_db[1]
            else:
                assert meta["snr_db"] in cfg.test_snr_levels_db


def test_no_test_prompt_or_translation_in_train(smoke_corpus: Path) -> None:
    def prompts(split: str) -> set[str]:
        return {p for row in _rows(smoke_corpus, split) for p in row["prompt"].split("+")}

    train = prompts("train")
    for split in ("valid", "test", "test_reverb"):
        assert not train & prompts(split), split
    # Splitting is by name, whatever the language: every prompt name maps to exactly one split.
    for split in ("train", "valid", "test"):
        assert {split_of(p, (0.8, 0.1, 0.1)) for p in prompts(split)} == {split}


def test_ood_split_has_other_speakers_and_noises(smoke_corpus: Path) -> None:
    ood = _rows(smoke_corpus, "test_ood")
    in_domain = [r for s in ("train", "valid", "test") for r in _rows(smoke_corpus, s)]
    assert not {r["speaker"] for r in ood} & {r["speaker"] for r in in_domain}
    assert not {r["noise_type"] for r in ood} & {r["noise_type"] for r in in_domain}
    assert all(r["speaker"].startswith("ktuberling-") for r in ood)


def test_same_seed_rebuilds_byte_identical(smoke_corpus: Path, mal_raw_dir: Path, tmp_path: Path) -> None:
    again = build_corpus(CorpusConfig(profile="smoke", seed=0, root=str(tmp_path / "a")), mal_raw_dir, progress=False)
    assert (again / "SHA256SUMS").read_bytes() == (smoke_corpus / "SHA256SUMS").read_bytes()
    for split in ("train", "test_ood", "test_reverb"):
        assert (again / split / "manifest.csv").read_bytes() == (smoke_corpus / split / "manifest.csv").read_bytes()
    other = build_corpus(
        CorpusConfig(profile="smoke", seed=1, root=str(tmp_path / "b"), n_train=4, n_valid=2, n_test=2),
        mal_raw_dir,
        progress=False,
    )
    assert (other / "test" / "manifest.csv").read_bytes() != (smoke_corpus / "test" / "manifest.csv").read_bytes()


def test_reuse_and_repair(smoke_corpus: Path, mal_raw_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(smoke_corpus, root)
    cfg = CorpusConfig(profile="smoke", seed=0, root=str(root))
    stamp = (root / "corpus.json").stat().st_mtime_ns
    assert build_corpus(cfg, mal_raw_dir, progress=False) == root
    assert (root / "corpus.json").stat().st_mtime_ns == stamp  # reused, nothing rewritten
    damaged = root / "test" / "noisy" / "test_00000.wav"
    damaged.write_bytes(damaged.read_bytes()[:-100] + b"\x00" * 100)
    report = verify_corpus(root)
    assert not report["ok"] and any("test_00000.wav" in p for p in report["problems"])
    build_corpus(cfg, mal_raw_dir, progress=False)
    assert verify_corpus(root)["ok"]
    assert (root / "SHA256SUMS").read_bytes() == (smoke_corpus / "SHA256SUMS").read_bytes()


def test_interrupted_build_never_looks_complete(
    smoke_corpus: Path, mal_raw_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = corpus_mod._render_split
    calls = []

    def crash_on_second_split(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 2:
            raise KeyboardInterrupt("power cut")
        return real(*args, **kwargs)

    monkeypatch.setattr(corpus_mod, "_render_split", crash_on_second_split)
    root = tmp_path / "new"
    with pytest.raises(KeyboardInterrupt):
        build_corpus(CorpusConfig(profile="smoke", seed=0, root=str(root)), mal_raw_dir, progress=False)
    assert not root.exists() and list(tmp_path.iterdir()) == []
    # Over an existing corpus, the old one stays intact.
    shutil.copytree(smoke_corpus, root)
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        build_corpus(CorpusConfig(profile="smoke", seed=3, root=str(root)), mal_raw_dir, progress=False)
    assert verify_corpus(root)["ok"] and sorted(p.name for p in tmp_path.iterdir()) == ["new"]


def test_refuses_to_overwrite_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(DataError, match="refusing to overwrite"):
        build_corpus(CorpusConfig(profile="smoke", root=str(tmp_path / "mine")), tmp_path / "raw", progress=False)
    assert not (tmp_path / "raw").exists()  # failed before downloading anything


def test_valid_ood_takes_what_test_ood_left_and_changes_nothing_else(
    smoke_corpus: Path, mal_raw_dir: Path, tmp_path: Path
) -> None:
    cfg = CorpusConfig(profile="smoke", seed=0, root=str(tmp_path / "v"), n_test_ood=4, n_valid_ood=4)
    root = build_corpus(cfg, mal_raw_dir, progress=False)
    plain = build_corpus(cfg.replace(n_valid_ood=None, root=str(tmp_path / "p")), mal_raw_dir, progress=False)
    sums = {p: (p / "SHA256SUMS").read_text().splitlines() for p in (root, plain)}
    # Every other split is byte for byte the corpus built without it.
    assert [s for s in sums[root] if " valid_ood/" not in s] == sums[plain]
    valid_ood, test_ood = _rows(root, "valid_ood"), _rows(root, "test_ood")
    assert len(valid_ood) == 4 and all(r["speaker"].startswith("ktuberling-") for r in valid_ood)
    assert {r["noise_type"] for r in valid_ood} <= {r["noise_type"] for r in test_ood}
    assert {r["snr_db"] for r in valid_ood} <= {f"{x:.4f}" for x in cfg.test_snr_levels_db}

    def recordings(rows: list[dict]) -> set[tuple[str, str]]:
        return {(r["speaker"], word) for r in rows for word in r["prompt"].split("+")}

    assert not recordings(valid_ood) & recordings(test_ood)  # other words of the same unseen voices
    # Opt-in: a config that does not ask for it keeps the build key it had before the split existed.
    assert "valid_ood" not in CorpusConfig(profile="quick").sizes()
    assert cfg.build_key() != cfg.replace(n_valid_ood=None).build_key()
