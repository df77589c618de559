"""The mal-offline corpus: noisy/clean pairs built from packaged real recordings, byte-identical from a seed.

Layout of a built corpus (paths in manifests are relative to the root)::

    <root>/corpus.json              config, seed, sources and licences, per-split summary, content hash
    <root>/SHA256SUMS               one line per file (``sha256sum -c SHA256SUMS`` checks it)
    <root>/<split>/manifest.csv     id, clean, noisy, speaker, language, prompt, noise_type, noise_source, snr_db, ...
    <root>/<split>/clean/<id>.wav   16 kHz mono PCM-16
    <root>/<split>/noisy/<id>.wav

Splits:

* ``train`` / ``valid`` / ``test``: in-domain. Asterisk prompts (4 speakers, 5 languages) split by *prompt
  name*, so a test prompt and all its translations are never in train. Noise: hold music, MegaGlest ambience,
  keyboard clicks (long files split in time, short ones whole by name), generated colour noise and hum.
  Train SNRs are drawn uniformly from ``train_snr_db``; valid and test use the fixed ``test_snr_levels_db``,
  balanced over levels × noise types (as VoiceBank-DEMAND's test set uses fixed levels).
* ``test_ood``: other real speakers (KTuberling words joined into utterances, one voice per language) and other
  noise (Sonic Pi samples, LinCity city sounds, Tux Racer slide textures), at the test levels.
* ``valid_ood`` (opt-in, ``n_valid_ood``): out-of-domain utterances that ``test_ood`` did not take (same unseen
  voices and noise recordings, other words, other noise crops), so a recipe can be screened for out-of-domain
  robustness without looking at ``test_ood``. Only when asked for, so corpora without it keep their build key.
* ``test_reverb``: test prompts in simulated rooms (see :mod:`mal.data.rooms`) with test-split noise; the
  clean reference is the dry speech aligned to the direct path.

Every random choice comes from ``numpy.random.SeedSequence([seed, <purpose>, ...])``, so the same seed and
config rebuild the same bytes, whatever was built before.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
import shutil
import time
import warnings
import zlib
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

import mal
from mal.audio import SAMPLE_RATE, check_waveform
from mal.config import ConfigBase, ConfigError
from mal.data import paths, voices
from mal.data.errors import DataError
from mal.data.mixing import (
    NoiseClip,
    assemble_noise,
    check_noise_level,
    peak_guard,
    rms_dbfs,
    scale_noise_to_snr,
    set_level,
)
from mal.data.rooms import Room, make_room, reverberate
from mal.data.sources import (
    SOURCES,
    Archive,
    DecodedCache,
    Excluded,
    SourceFile,
    list_source_files,
    prepare_archives,
    sha256_file,
)
from mal.data.synth_noise import COLOURS, coloured_noise, mains_hum
from mal.io import atomic_write_json, atomic_write_text

FORMAT = "mal-offline/1"
# valid_ood comes last: it takes what test_ood left, so test_ood must be chosen first.
SPLITS = ("train", "valid", "test", "test_ood", "test_reverb", "valid_ood")
OPT_IN_SPLITS = ("valid_ood",)  # absent from PROFILE_SIZES: 0 unless CorpusConfig asks for them
IN_DOMAIN_SPLITS = ("train", "valid", "test")
MANIFEST_COLUMNS = (
    "id",
    "clean",
    "noisy",
    "split",
    "speaker",
    "language",
    "prompt",
    "speech_source",
    "noise_type",
    "noise_source",
    "snr_db",
    "speech_level_dbfs",
    "room",
    "rt60_s",
    "duration_s",
    "seed",
)

DEFAULT_SOURCES = tuple(SOURCES)  # what quick and full build: every source
PROFILE_SOURCES: dict[str, tuple[str, ...]] = {
    # CI-sized: two in-domain voices, small noise packages, and the two smallest out-of-domain packages.
    "smoke": (
        "asterisk-en",
        "asterisk-fr",
        "opsound-moh",
        "bucklespring",
        "colour-noise",
        "hum",
        "ktuberling",
        "sonic-pi",
    ),  # fmt: skip
    "quick": DEFAULT_SOURCES,
    "full": DEFAULT_SOURCES,
}
# Out-of-domain voices (KTuberling languages) per profile; None: every language with wide-band recordings.
# Smoke keeps four so that a cold CI build decodes a fraction of the package.
PROFILE_OOD_LANGUAGES: dict[str, tuple[str, ...] | None] = {
    "smoke": ("de", "en", "fr", "ru"),
    "quick": None,
    "full": None,
}
# Utterances per split (-1: every usable one) and number of simulated rooms.
PROFILE_SIZES: dict[str, dict[str, int]] = {
    "smoke": {"train": 24, "valid": 8, "test": 8, "test_ood": 8, "test_reverb": 8, "rooms": 2},
    "quick": {"train": 600, "valid": 60, "test": 120, "test_ood": 84, "test_reverb": 80, "rooms": 8},
    "full": {"train": -1, "valid": -1, "test": -1, "test_ood": -1, "test_reverb": -1, "rooms": 24},
}
# Noise files at least this long are split in time between train/valid/test; shorter ones go whole to one split.
LONG_NOISE_SECONDS = 20.0
# Pause between consecutive events of event-like noise (seconds); continuous beds use (0, 0).
NOISE_GAPS: dict[str, tuple[float, float]] = {
    "keyboard": (0.03, 0.25),
    "instruments": (0.0, 0.5),
    "city": (0.0, 0.3),
    "machines": (0.0, 0.3),
    "foley": (0.0, 0.5),
}
GENERATED_TYPES = ("colour", "hum")
# Trimming: frames (10 ms) within this many dB of the loudest frame count as speech; a margin is kept.
TRIM_DB = 40.0
TRIM_MARGIN_S = 0.05
MIN_SPEECH_S = 0.2
# Peaks are kept this far below the configured limit, so PCM-16 rounding can never reach it.
PEAK_HEADROOM = 0.98


@dataclasses.dataclass
class CorpusConfig(ConfigBase):
    """What to build. Sizes left at ``None`` come from the profile (see ``PROFILE_SIZES``)."""

    profile: Literal["smoke", "quick", "full"] = "quick"  # smoke: CI-sized; quick: CPU study; full: every file
    seed: int = 0  # the same seed and config rebuild the same bytes
    root: str | None = None  # output folder; None: <data>/corpora/<profile> ($MAL_DATA_DIR or ./data)
    sources: list[str] | None = None  # names from mal.data.SOURCES; None: the profile's sources
    ood_languages: list[str] | None = None  # KTuberling languages for test_ood; None: the profile's (all but smoke)
    train_snr_db: tuple[float, float] = (0.0, 15.0)  # train SNRs drawn uniformly from this range (dB)
    test_snr_levels_db: tuple[float, ...] = (2.5, 7.5, 12.5, 17.5)  # fixed levels of valid and all test sets
    speech_level_dbfs: tuple[float, float] = (-33.0, -23.0)  # clean RMS level drawn per utterance (dBFS)
    peak: float = 0.9  # the larger peak of clean and noisy stays below this (pair scaled together)
    utterance_seconds: tuple[float, float] = (2.0, 6.0)  # train/valid utterance length range
    test_utterance_seconds: tuple[float, float] = (2.0, 4.0)  # test and test_reverb: short, so evaluation is cheap
    ood_utterance_seconds: tuple[float, float] = (3.0, 6.0)  # KTuberling words joined into utterances of this length
    gap_seconds: tuple[float, float] = (0.1, 0.3)  # silence between joined prompts or words
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)  # train/valid/test share of prompts and noise
    rt60_s: tuple[float, float] = (0.3, 0.9)  # reverberation time range of the simulated rooms
    n_train: int | None = None  # utterances per split; -1: all usable; None: profile default
    n_valid: int | None = None
    n_test: int | None = None
    n_test_ood: int | None = None
    n_test_reverb: int | None = None
    n_valid_ood: int | None = None  # opt-in out-of-domain validation utterances (test_ood's leftovers); None: 0
    n_rooms: int | None = None  # simulated rooms for test_reverb; None: profile default
    extra_voices: list[str] | None = None  # synthetic train voices (mal.data.voices: "flite" or "flite-slt", ...)
    n_train_extra: int | None = None  # synthetic utterances appended to train; -1: all; None: profile default

    def validate(self) -> None:
        pairs = {
            "train_snr_db": self.train_snr_db,
            "speech_level_dbfs": self.speech_level_dbfs,
            "utterance_seconds": self.utterance_seconds,
            "test_utterance_seconds": self.test_utterance_seconds,
            "ood_utterance_seconds": self.ood_utterance_seconds,
            "gap_seconds": self.gap_seconds,
            "rt60_s": self.rt60_s,
        }
        for name, value in pairs.items():
            if len(value) != 2 or value[0] > value[1]:
                raise ConfigError(f"CorpusConfig.{name}: expected (low, high) with low <= high, got {value}")
        for name in ("utterance_seconds", "test_utterance_seconds", "ood_utterance_seconds"):
            lo, hi = getattr(self, name)
            if lo <= 0 or hi < 2 * lo:
                # Joining short prompts relies on two short pieces always fitting under the maximum.
                raise ConfigError(f"CorpusConfig.{name}: need 0 < low and high >= 2*low, got {(lo, hi)}")
        if not self.test_snr_levels_db:
            raise ConfigError("CorpusConfig.test_snr_levels_db: give at least one level")
        if not 0 < self.peak <= 1:
            raise ConfigError(f"CorpusConfig.peak: must be in (0, 1], got {self.peak}")
        if self.speech_level_dbfs[1] >= 0:
            raise ConfigError(f"CorpusConfig.speech_level_dbfs: must be below 0 dBFS, got {self.speech_level_dbfs}")
        fr = self.split_fractions
        if len(fr) != 3 or min(fr) <= 0 or abs(sum(fr) - 1) > 1e-6:
            raise ConfigError(f"CorpusConfig.split_fractions: three positive shares summing to 1, got {fr}")
        if self.rt60_s[0] <= 0.05:
            raise ConfigError(f"CorpusConfig.rt60_s: RT60 must exceed 0.05 s, got {self.rt60_s}")
        for split in SPLITS:
            n = getattr(self, f"n_{split}")
            if n is not None and n < -1:
                raise ConfigError(f"CorpusConfig.n_{split}: -1 (all), 0 (skip) or a positive count, got {n}")
        if self.n_rooms is not None and self.n_rooms < 1:
            raise ConfigError(f"CorpusConfig.n_rooms: at least 1, got {self.n_rooms}")
        if self.extra_voices:
            try:
                voices.resolve_voices(self.extra_voices)
            except DataError as err:
                raise ConfigError(f"CorpusConfig.extra_voices: {err}") from err
        if self.n_train_extra is not None and self.n_train_extra < -1:
            raise ConfigError(f"CorpusConfig.n_train_extra: -1 (all), 0 or a positive count, got {self.n_train_extra}")
        if self.sources is not None:
            unknown = sorted(set(self.sources) - set(SOURCES))
            if unknown:
                raise ConfigError(f"CorpusConfig.sources: unknown {unknown}; known: {sorted(SOURCES)}")
            roles = {(SOURCES[s].role, SOURCES[s].domain) for s in self.sources}
            if ("speech", "in") not in roles or ("noise", "in") not in roles:
                raise ConfigError(
                    "CorpusConfig.sources: need at least one in-domain speech source (asterisk-*) and one "
                    f"in-domain noise source; got {self.sources}"
                )

    # -- resolved values ------------------------------------------------------------------------------------------

    def source_names(self) -> tuple[str, ...]:
        return tuple(sorted(self.sources)) if self.sources is not None else PROFILE_SOURCES[self.profile]

    def ood_language_set(self) -> tuple[str, ...] | None:
        if self.ood_languages is not None:
            return tuple(sorted(self.ood_languages))
        return PROFILE_OOD_LANGUAGES[self.profile]

    def sizes(self) -> dict[str, int]:
        """Utterances per split (-1: all) and ``rooms``, profile defaults filled in."""
        out = dict(PROFILE_SIZES[self.profile])
        for split in SPLITS:  # an opt-in split appears only when asked for, so existing build keys stay
            if getattr(self, f"n_{split}") is not None:
                out[split] = getattr(self, f"n_{split}")
        if self.n_rooms is not None:
            out["rooms"] = self.n_rooms
        return out

    def n_extra(self) -> int:
        """Synthetic train utterances to append (0 without extra voices, -1: all)."""
        return voices.extra_train_count(self.profile, self.n_train_extra) if self.extra_voices else 0

    def corpus_root(self) -> Path:
        return Path(self.root) if self.root else paths.corpus_dir(self.profile)

    def build_key(self) -> str:
        """Hash of everything that changes the corpus content (the output folder does not)."""
        left_out = ("root", "extra_voices", "n_train_extra", *(f"n_{s}" for s in OPT_IN_SPLITS))  # via sizes()
        content = {k: v for k, v in self.to_dict().items() if k not in left_out}
        if self.extra_voices:  # only then, so corpora built before the option existed keep their key
            content.update(extra_voices=voices.resolve_voices(self.extra_voices), n_train_extra=self.n_extra())
        # Sorted: the corpus does not depend on the order the sources are named in, so neither does its key.
        names = sorted(self.source_names())
        content.update(sources=names, ood_languages=self.ood_language_set(), sizes=self.sizes(), format=FORMAT)
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------------------
# Randomness and splits


def rng_for(seed: int, *keys: str | int) -> np.random.Generator:
    """An independent generator per purpose: ``rng_for(seed, "mix", "train", 12)``."""
    entropy = [int(seed) & 0xFFFFFFFF] + [zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in keys]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def split_of(name: str, fractions: tuple[float, float, float]) -> str:
    """Assign a prompt (or noise file) name to train/valid/test by a hash of the name alone.

    It does not depend on the seed or the language, so translations of a prompt share a split and every seed
    tests on the same prompts.
    """
    u = int(hashlib.sha256(name.encode()).hexdigest()[:12], 16) / 16**12
    if u < fractions[0]:
        return "train"
    return "valid" if u < fractions[0] + fractions[1] else "test"


# ---------------------------------------------------------------------------------------------------------------
# Speech: trimming, cutting long prompts at pauses, joining short ones


@dataclasses.dataclass(frozen=True)
class Part:
    file: SourceFile
    start: int  # samples into the decoded file
    stop: int


@dataclasses.dataclass
class Utterance:
    """A planned clean utterance: parts of one voice joined with silent gaps."""

    source: str
    speaker: str
    language: str
    parts: list[Part]
    gaps: list[int]  # samples of silence between consecutive parts (len(parts) - 1)

    @property
    def prompt(self) -> str:
        return "+".join(p.file.prompt or "" for p in self.parts)

    @property
    def n_samples(self) -> int:
        return sum(p.stop - p.start for p in self.parts) + sum(self.gaps)


def _frame_db(wav: np.ndarray, frame: int) -> np.ndarray:
    n = wav.size // frame
    if n == 0:
        return np.array([10 * np.log10(np.mean(np.square(wav, dtype=np.float64)) + 1e-12)])
    frames = wav[: n * frame].reshape(n, frame).astype(np.float64)
    return 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)


def trim_bounds(wav: np.ndarray, sample_rate: int = SAMPLE_RATE) -> tuple[int, int]:
    """``(start, stop)`` of the speech: leading/trailing 10 ms frames more than TRIM_DB below the loudest are cut."""
    frame = sample_rate // 100
    db = _frame_db(wav, frame)
    active = np.flatnonzero(db > db.max() - TRIM_DB)
    margin = int(TRIM_MARGIN_S * sample_rate)
    start = max(0, int(active[0]) * frame - margin)
    stop = min(wav.size, (int(active[-1]) + 1) * frame + margin)
    return start, stop


def cut_at_pauses(wav: np.ndarray, start: int, stop: int, lo: int, hi: int) -> list[tuple[int, int]]:
    """Cut ``wav[start:stop]`` into pieces of ``lo``..``hi`` samples at the quietest 10 ms frame of each window."""
    frame = SAMPLE_RATE // 100
    pieces, pos = [], start
    while stop - pos > hi:
        a, b = pos + lo, min(pos + hi, stop - lo)
        db = _frame_db(wav[a:b], frame)
        cut = a + int(np.argmin(db)) * frame + frame // 2
        pieces.append((pos, cut))
        pos = cut
    pieces.append((pos, stop))
    return pieces


def plan_voice(
    items: list[tuple[SourceFile, int, int, np.ndarray]],
    lo: int,
    hi: int,
    gap: tuple[int, int],
    rng: np.random.Generator,
) -> tuple[list[Utterance], list[SourceFile]]:
    """Turn one voice's trimmed recordings into utterances of ``lo``..``hi`` samples.

    Recordings in range are used as they are, longer ones are cut at pauses, shorter ones are joined (in a
    seeded random order) with silent gaps. Returns the utterances and the short recordings left over.
    """
    f0 = items[0][0]
    utts: list[Utterance] = []

    def utt(parts: list[Part], gaps: list[int]) -> Utterance:
        return Utterance(f0.source, f0.speaker or "", f0.language or "", parts, gaps)

    short = []
    for f, s, e, wav in items:
        if e - s > hi:
            utts.extend(utt([Part(f, a, b)], []) for a, b in cut_at_pauses(wav, s, e, lo, hi))
        elif e - s >= lo:
            utts.append(utt([Part(f, s, e)], []))
        else:
            short.append(Part(f, s, e))
    order = rng.permutation(len(short))
    cur: list[Part] = []
    gaps: list[int] = []
    length, target = 0, int(rng.uniform(lo, hi))
    deferred: list[Part] = []
    for i in order:
        part = short[int(i)]
        g = int(rng.integers(gap[0], gap[1] + 1)) if cur else 0
        size = part.stop - part.start
        if cur and length + g + size > hi:
            if length >= lo:
                utts.append(utt(cur, gaps))
                cur, gaps, length, target = [], [], 0, int(rng.uniform(lo, hi))
                g = 0
            else:
                deferred.append(part)
                continue
        if cur:
            gaps.append(g)
        cur.append(part)
        length += g + size
        if length >= target:
            utts.append(utt(cur, gaps))
            cur, gaps, length, target = [], [], 0, int(rng.uniform(lo, hi))
    leftover = [p.file for p in cur + deferred]
    return utts, leftover


def render_speech(utt: Utterance, cache: DecodedCache) -> np.ndarray:
    """The clean waveform of a planned utterance, float32 ``(n_samples,)``."""
    out = np.zeros(utt.n_samples, dtype=np.float32)
    pos = 0
    for i, part in enumerate(utt.parts):
        wav = cache.load(part.file)[part.start : part.stop]
        out[pos : pos + wav.size] = wav
        pos += wav.size + (utt.gaps[i] if i < len(utt.gaps) else 0)
    return out


def select_balanced(utts: list[Utterance], n: int, rng: np.random.Generator) -> list[Utterance]:
    """Pick ``n`` utterances (``-1``: all) round-robin over voices, so every speaker/language is represented."""
    by_voice: dict[tuple[str, str], list[Utterance]] = defaultdict(list)
    for u in utts:
        by_voice[(u.speaker, u.language)].append(u)
    queues = []
    for voice in sorted(by_voice):
        items = by_voice[voice]
        queues.append([items[int(i)] for i in rng.permutation(len(items))])
    voice_order = [queues[int(i)] for i in rng.permutation(len(queues))]
    out: list[Utterance] = []
    total = len(utts) if n < 0 else min(n, len(utts))
    depth = 0
    while len(out) < total:
        for q in voice_order:
            if depth < len(q) and len(out) < total:
                out.append(q[depth])
        depth += 1
    return out


# ---------------------------------------------------------------------------------------------------------------
# Noise pools


def _noise_group(f: SourceFile) -> str:
    # bucklespring stores each key as <code>-0 (press) and <code>-1 (release): keep a key's two sounds together.
    stem = Path(f.member).stem
    return stem.split("-")[0] if f.source == "bucklespring" else stem


def in_domain_noise_pools(
    files: list[SourceFile], cache: DecodedCache, fractions: tuple[float, float, float]
) -> dict[str, dict[str, list[NoiseClip]]]:
    """``{split: {noise_type: clips}}``: long files split in time (train first), short files whole by name."""
    pools: dict[str, dict[str, list[NoiseClip]]] = {s: defaultdict(list) for s in IN_DOMAIN_SPLITS}
    edges = np.cumsum((0.0, *fractions))
    for f in files:
        wav = cache.load(f)
        dur = wav.size / SAMPLE_RATE
        if dur >= LONG_NOISE_SECONDS:
            for split, a, b in zip(IN_DOMAIN_SPLITS, edges[:-1], edges[1:], strict=True):
                i0, i1 = int(round(a * wav.size)), int(round(b * wav.size))
                pools[split][f.noise_type or ""].append(NoiseClip(f.key, wav[i0:i1], offset_s=i0 / SAMPLE_RATE))
        else:
            split = split_of(f"{f.source}/{_noise_group(f)}", fractions)
            pools[split][f.noise_type or ""].append(NoiseClip(f.key, wav))
    return {s: dict(p) for s, p in pools.items()}


def draw_noise(
    noise_type: str, pools: dict[str, list[NoiseClip]], n: int, rng: np.random.Generator
) -> tuple[np.ndarray, str]:
    """``n`` samples of one noise type, and where they came from. Near-silent draws are redrawn."""
    for _ in range(20):
        if noise_type == "colour":
            colour = str(COLOURS[int(rng.integers(len(COLOURS)))])
            noise, desc = coloured_noise(n, colour, rng), f"generated:{colour}"
        elif noise_type == "hum":
            noise, desc = mains_hum(n, rng), "generated:hum"
        else:
            if not pools.get(noise_type):
                raise DataError(f"no {noise_type!r} noise available for this split; add sources or change the split")
            noise, desc = assemble_noise(pools[noise_type], n, rng, NOISE_GAPS.get(noise_type, (0.0, 0.0)))
        if check_noise_level(noise):
            return noise, desc
    raise DataError(f"20 draws of {noise_type!r} noise were all near-silent; the noise files are too quiet")


# ---------------------------------------------------------------------------------------------------------------
# Conditions and rendering


@dataclasses.dataclass(frozen=True)
class Condition:
    snr_db: float
    noise_type: str
    room: Room | None = None


def assign_conditions(
    n: int,
    fixed_levels: tuple[float, ...] | None,
    snr_range: tuple[float, float],
    noise_types: list[str],
    rng: np.random.Generator,
    rooms: list[Room] | None = None,
) -> list[Condition]:
    """SNR, noise type (and room) per utterance.

    With ``fixed_levels`` every (level, type) pair occurs equally often (shuffled blocks); otherwise SNRs are
    uniform in ``snr_range`` and types uniform. Rooms cycle in shuffled blocks of their own.
    """
    if fixed_levels:
        combos = [(float(s), t) for s in fixed_levels for t in noise_types]
        picks: list[tuple[float, str]] = []
        while len(picks) < n:
            picks.extend(combos[int(i)] for i in rng.permutation(len(combos)))
        picks = picks[:n]
    else:
        picks = [(float(rng.uniform(*snr_range)), noise_types[int(rng.integers(len(noise_types)))]) for _ in range(n)]
    room_list: list[Room | None] = [None] * n
    if rooms:
        order: list[Room] = []
        while len(order) < n:
            order.extend(rooms[int(i)] for i in rng.permutation(len(rooms)))
        room_list = list(order[:n])
    return [Condition(s, t, r) for (s, t), r in zip(picks, room_list, strict=True)]


@dataclasses.dataclass
class Rendered:
    clean: np.ndarray
    noisy: np.ndarray
    noise_source: str
    speech_level_dbfs: float


def render_pair(
    speech: np.ndarray,
    cond: Condition,
    pools: dict[str, list[NoiseClip]],
    rng: np.random.Generator,
    cfg: CorpusConfig,
) -> Rendered:
    """Level → (room) → noise at the SNR → shared peak guard. Returns float32 clean reference and mixture."""
    speech = set_level(speech, float(rng.uniform(*cfg.speech_level_dbfs)))
    if cond.room is not None:
        in_mix, reference = reverberate(speech, cond.room)
    else:
        in_mix, reference = speech, speech
    noise, desc = draw_noise(cond.noise_type, pools, in_mix.size, rng)
    noisy = in_mix + scale_noise_to_snr(in_mix, noise, cond.snr_db)
    _, (noisy, reference) = peak_guard(noisy, reference, peak=cfg.peak * PEAK_HEADROOM)
    return Rendered(reference, noisy, desc, rms_dbfs(reference))


# ---------------------------------------------------------------------------------------------------------------
# Building


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _write_manifest(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row.get(k)) for k in MANIFEST_COLUMNS})
    atomic_write_text(path, buf.getvalue())


def _write_pcm16(path: Path, wav: np.ndarray) -> None:
    """Write into the private build folder without a per-file fsync.

    The folder only becomes the corpus by one rename after a single sync (see :func:`_publish`), and a reused corpus
    is re-hashed against SHA256SUMS first, so per-file atomic writes (an fsync each: most of the full profile's build
    time) buy nothing here. Peaks are below ``peak`` < 1, so PCM-16 never clips.
    """
    check_waveform(wav, str(path))
    # Encode in memory: libsndfile syncs real files to disk when it closes them.
    buf = io.BytesIO()
    sf.write(buf, wav, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    path.write_bytes(buf.getvalue())


def _checksums(root: Path) -> str:
    """``sha256sum``-format listing of every manifest and audio file under ``root`` (sorted by path)."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".wav", ".csv"))
    return "".join(f"{sha256_file(p)}  {p.relative_to(root).as_posix()}\n" for p in files)


def split_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts, hours, speakers, languages, noise types and SNRs of one split's manifest rows."""
    if not rows:
        return {"n": 0, "hours": 0.0}
    snrs = [float(r["snr_db"]) for r in rows]
    hours = sum(float(r["duration_s"]) for r in rows) / 3600
    noise_types: dict[str, int] = defaultdict(int)
    for r in rows:
        noise_types[r["noise_type"]] += 1
    return {
        "n": len(rows),
        "hours": round(hours, 4),
        "minutes": round(hours * 60, 2),
        "mean_seconds": round(hours * 3600 / len(rows), 3),
        "speakers": sorted({r["speaker"] for r in rows}),
        "n_speakers": len({r["speaker"] for r in rows}),
        "languages": sorted({r["language"] for r in rows}),
        "noise_types": dict(sorted(noise_types.items())),
        "snr_db": {
            "min": round(min(snrs), 3),
            "max": round(max(snrs), 3),
            # Fixed-level splits list their levels; continuous (train) SNRs do not.
            "levels": sorted({round(s, 3) for s in snrs}) if len(set(snrs)) <= 16 else None,
        },
        "rooms": len({r["room"] for r in rows if r.get("room")}),
    }


def _decode_speech(
    files: list[SourceFile], cache: DecodedCache, progress: bool, desc: str
) -> tuple[list[tuple[SourceFile, int, int, np.ndarray]], list[Excluded]]:
    items, excluded = [], []
    cache.load_many(files, progress, desc)
    for f in files:
        wav = cache.load(f)
        if not np.any(wav):
            excluded.append(Excluded(f.key, "digital silence"))
            continue
        s, e = trim_bounds(wav)
        if (e - s) / SAMPLE_RATE < MIN_SPEECH_S:
            excluded.append(Excluded(f.key, f"shorter than {MIN_SPEECH_S} s after trimming silence"))
            continue
        items.append((f, s, e, wav))
    return items, excluded


def _plan_speech(
    items: list[tuple[SourceFile, int, int, np.ndarray]],
    split: str,
    seconds: tuple[float, float],
    cfg: CorpusConfig,
) -> tuple[list[Utterance], list[SourceFile]]:
    by_voice: dict[tuple[str, str], list] = defaultdict(list)
    for it in items:
        by_voice[(it[0].speaker or "", it[0].language or "")].append(it)
    lo, hi = (int(s * SAMPLE_RATE) for s in seconds)
    gap = tuple(int(g * SAMPLE_RATE) for g in cfg.gap_seconds)
    utts, leftover = [], []
    for voice in sorted(by_voice):
        u, left = plan_voice(by_voice[voice], lo, hi, gap, rng_for(cfg.seed, "plan", split, *voice))  # type: ignore[arg-type]
        utts += u
        leftover += left
    return utts, leftover


def _render_split(
    split: str,
    utts: list[Utterance],
    conds: list[Condition],
    pools: dict[str, list[NoiseClip]],
    cache: DecodedCache,
    cfg: CorpusConfig,
    out: Path,
    progress: bool,
) -> list[dict[str, Any]]:
    rows = []
    (out / split / "clean").mkdir(parents=True, exist_ok=True)
    (out / split / "noisy").mkdir(parents=True, exist_ok=True)
    jobs = list(zip(utts, conds, strict=True))
    for i, (utt, cond) in enumerate(tqdm(jobs, desc=split, disable=not progress, leave=False)):
        uid = f"{split}_{i:05d}"
        rendered = render_pair(render_speech(utt, cache), cond, pools, rng_for(cfg.seed, "mix", split, i), cfg)
        clean_rel, noisy_rel = f"{split}/clean/{uid}.wav", f"{split}/noisy/{uid}.wav"
        _write_pcm16(out / clean_rel, rendered.clean)
        _write_pcm16(out / noisy_rel, rendered.noisy)
        rows.append(
            {
                "id": uid,
                "clean": clean_rel,
                "noisy": noisy_rel,
                "split": split,
                "speaker": utt.speaker,
                "language": utt.language,
                "prompt": utt.prompt,
                "speech_source": utt.source,
                "noise_type": cond.noise_type,
                "noise_source": rendered.noise_source,
                "snr_db": float(cond.snr_db),
                "speech_level_dbfs": float(rendered.speech_level_dbfs),
                "room": cond.room.name if cond.room else None,
                "rt60_s": float(cond.room.rt60_s) if cond.room else None,
                "duration_s": rendered.clean.size / SAMPLE_RATE,
                "seed": cfg.seed,
            }
        )
    _write_manifest(out / split / "manifest.csv", rows)
    return rows


def _existing_build_matches(root: Path, key: str) -> bool:
    meta_path = root / "corpus.json"
    if not meta_path.is_file():
        return False
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError:
        return False
    return meta.get("build_key") == key and verify_corpus(root)["ok"]


def _check_output(root: Path) -> None:
    if root.exists() and (not root.is_dir() or (any(root.iterdir()) and not (root / "corpus.json").exists())):
        raise DataError(f"{root}: exists, is not empty and holds no corpus.json; refusing to overwrite it")


def _prepare_output(root: Path) -> Path:
    _check_output(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.building-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    return tmp


def _publish(tmp: Path, root: Path) -> None:
    """Swap the finished build into place; a crash before this leaves no corpus.json at ``root``."""
    if hasattr(os, "sync"):
        os.sync()  # one flush for the whole build instead of one fsync per file
    old = None
    if root.exists():
        old = root.parent / f".{root.name}.old-{os.getpid()}"
        os.replace(root, old)
    os.replace(tmp, root)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def default_workers() -> int:
    """Processes for decoding: the CPU cores this process may use, at most 4."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, cores))


@dataclasses.dataclass
class _Sources:
    """What the fetch stage found: the unpacked packages, their usable recordings, and the decoding cache."""

    names: tuple[str, ...]  # source names in the build
    archives: dict[str, Archive]  # archive name → pinned package
    files: dict[str, list[SourceFile]]  # source name → its recordings
    excluded: list[Excluded]  # recordings left out, with the reason
    cache: DecodedCache

    def of(self, role: str, domain: str) -> list[str]:
        """Source names with this role ("speech" / "noise") and domain ("in" / "ood")."""
        return [s for s in self.names if SOURCES[s].role == role and SOURCES[s].domain == domain]

    def recordings(self, role: str, domain: str) -> list[SourceFile]:
        return [f for s in self.of(role, domain) for f in self.files.get(s, [])]


@dataclasses.dataclass
class _Noise:
    """Noise to mix with, per split: in-domain pools split by time or name, out-of-domain pools by type."""

    pools: dict[str, dict[str, list[NoiseClip]]]  # in-domain split → noise type → clips
    ood_pools: dict[str, list[NoiseClip]]  # out-of-domain noise type → clips
    in_types: list[str]
    ood_types: list[str]


def _fetch(cfg: CorpusConfig, raw: Path, progress: bool, workers: int) -> _Sources:
    """Fetch: download (once) and unpack every package the sources need, and list their usable recordings."""
    names = cfg.source_names()
    extracted = prepare_archives(names, raw, progress, workers)
    archives: dict[str, Archive] = {name: a for name, (a, _) in extracted.items()}
    files: dict[str, list[SourceFile]] = {}
    excluded: list[Excluded] = []
    for name in names:
        spec = SOURCES[name]
        if spec.archive is None:
            continue
        found, skipped = list_source_files(name, extracted[spec.archive][1])
        files[name] = found
        excluded += skipped
    return _Sources(names, archives, files, excluded, DecodedCache.beside(raw, archives))


def _decode(cfg: CorpusConfig, src: _Sources, progress: bool, workers: int) -> tuple[list, list]:
    """Decode: every recording to 16 kHz mono (cached); speech trimmed of silence. Returns the in-domain and the
    out-of-domain speech items; recordings that hold no usable speech join ``src.excluded``."""
    speech_ood = src.recordings("speech", "ood")
    languages = cfg.ood_language_set()
    if languages is not None:
        speech_ood = [f for f in speech_ood if f.language in languages]
        if not speech_ood and src.of("speech", "ood"):
            raise DataError(f"ood_languages {list(languages)}: no usable out-of-domain recordings in these languages")
    speech_in = src.recordings("speech", "in")
    noise = src.recordings("noise", "in") + src.recordings("noise", "ood")
    src.cache.load_many(speech_in + speech_ood + noise, progress, "decoding", workers)
    items_in, skipped = _decode_speech(speech_in, src.cache, progress, "decoding speech")
    src.excluded += skipped
    items_ood, skipped = _decode_speech(speech_ood, src.cache, progress, "decoding ood speech")
    src.excluded += skipped
    return items_in, items_ood


def _plan(cfg: CorpusConfig, items_in: list, items_ood: list) -> tuple[dict[str, list[Utterance]], dict[str, int]]:
    """Split and plan: in-domain prompts go to train/valid/test by prompt name, then every split's recordings are
    joined into utterances of its length range. Returns the plans and, per split, the recordings left over."""
    by_split: dict[str, list] = defaultdict(list)
    for it in items_in:
        by_split[split_of(it[0].prompt or "", cfg.split_fractions)].append(it)
    plans: dict[str, list[Utterance]] = {}
    leftovers: dict[str, int] = {}
    for split in IN_DOMAIN_SPLITS:
        seconds = cfg.test_utterance_seconds if split == "test" else cfg.utterance_seconds
        plans[split], left = _plan_speech(by_split[split], split, seconds, cfg)
        leftovers[split] = len(left)
    if items_ood:
        plans["test_ood"], left = _plan_speech(items_ood, "test_ood", cfg.ood_utterance_seconds, cfg)
        leftovers["test_ood"] = len(left)
    return plans, leftovers


def _synthetic_train(
    cfg: CorpusConfig, src: _Sources, raw: Path, progress: bool, workers: int
) -> tuple[list[Utterance], dict[str, Any]]:
    """Extra voices (opt-in): synthesise train prompts only with :mod:`mal.data.voices`, decode and plan them.
    Returns the synthetic train utterances (appended after the real ones) and what corpus.json records."""
    if cfg.n_extra() == 0 or cfg.sizes()["train"] == 0:
        return [], {}
    synth, synth_archives, meta = voices.synthesize_train_speech(
        voices.resolve_voices(cfg.extra_voices or []),
        cfg.n_extra(),
        cfg.utterance_seconds,
        cfg.seed,
        lambda prompt: split_of(prompt, cfg.split_fractions) == "train",
        raw,
        progress,
        workers,
    )
    src.archives.update(synth_archives)  # the decoded cache keys files by their archive
    items, skipped = _decode_speech(synth, src.cache, progress, "decoding synthetic speech")
    src.excluded += skipped
    plan, _ = _plan_speech(items, "train", cfg.utterance_seconds, cfg)
    extra = select_balanced(plan, cfg.n_extra(), rng_for(cfg.seed, "select", "train extra"))
    meta["n_utterances"] = len(extra)
    if len(extra) < cfg.n_extra():
        warnings.warn(f"mal-offline train: only {len(extra)} of {cfg.n_extra()} synthetic utterances", stacklevel=3)
    return extra, meta


def _noise(cfg: CorpusConfig, src: _Sources) -> _Noise:
    """Noise pools: long in-domain noise files split in time, short ones whole by name; out-of-domain by type."""
    pools = in_domain_noise_pools(src.recordings("noise", "in"), src.cache, cfg.split_fractions)
    ood_pools: dict[str, list[NoiseClip]] = defaultdict(list)
    for f in src.recordings("noise", "ood"):
        ood_pools[f.noise_type or ""].append(NoiseClip(f.key, src.cache.load(f)))
    in_types = sorted({SOURCES[s].noise_type or "" for s in src.of("noise", "in")})
    ood_types = sorted({SOURCES[s].noise_type or "" for s in src.of("noise", "ood")})
    return _Noise(pools, dict(ood_pools), in_types, ood_types)


def _mix(
    cfg: CorpusConfig,
    plans: dict[str, list[Utterance]],
    noise: _Noise,
    rooms: list[Room],
    cache: DecodedCache,
    out: Path,
    progress: bool,
    extra_train: list[Utterance],
) -> tuple[dict[str, Any], dict[str, str]]:
    """Mix: per split, pick utterances balanced over voices, give each a noise type, an SNR (a room for
    test_reverb), render the pairs and write the manifest. Returns the per-split summary and any shortfall."""
    sizes = cfg.sizes()
    summary: dict[str, Any] = {}
    shortfall: dict[str, str] = {}
    taken_ood: set[int] = set()
    for split in SPLITS:
        n = sizes.get(split, 0)
        ood = split in ("test_ood", "valid_ood")
        if ood and ("test_ood" not in plans or not noise.ood_types):
            continue
        if n == 0:
            continue
        pool_split = {"test_reverb": "test", "valid_ood": "test_ood"}.get(split, split)
        pool = plans[pool_split]
        if split == "valid_ood":  # never an utterance of test_ood: other words of the same unseen voices
            pool = [u for u in pool if id(u) not in taken_ood]
        chosen = select_balanced(pool, n, rng_for(cfg.seed, "select", split))
        if split == "test_ood":
            taken_ood = {id(u) for u in chosen}
        if 0 <= n and len(chosen) < n:
            shortfall[split] = f"asked for {n}, only {len(chosen)} utterances available"
            warnings.warn(f"mal-offline {split}: {shortfall[split]}", stacklevel=3)
        if split == "train":  # after the real ones, so those keep their ids, conditions and bytes
            chosen = chosen + extra_train
        types = noise.ood_types if ood else noise.in_types
        split_pools = dict(noise.ood_pools) if ood else noise.pools[pool_split]
        for nt in types:
            if nt not in GENERATED_TYPES and not split_pools.get(nt):
                raise DataError(f"{split}: no {nt!r} noise files fall into this split; use more noise files")
        conds = assign_conditions(
            len(chosen),
            None if split == "train" else cfg.test_snr_levels_db,
            cfg.train_snr_db,
            types,
            rng_for(cfg.seed, "conditions", split),
            rooms if split == "test_reverb" else None,
        )
        rows = _render_split(split, chosen, conds, split_pools, cache, cfg, out, progress)
        summary[split] = split_summary(rows)
    return summary, shortfall


def _source_record(name: str, src: _Sources) -> dict[str, Any]:
    """corpus.json's entry of one source: what it is, how many files it gave, its package and licence."""
    spec = SOURCES[name]
    record = {
        "role": spec.role,
        "domain": spec.domain,
        "noise_type": spec.noise_type,
        "description": spec.description,
        "n_files": len(src.files.get(name, [])),
    }
    if not spec.archive:
        return {**record, "package": None, "licence": "generated by mal"}
    a = src.archives[spec.archive]
    return {**record, "package": a.name, "version": a.version, "sha256": a.sha256, "licence": a.licence,
            "credit": a.credit}  # fmt: skip


def build_corpus(
    cfg: CorpusConfig, raw_dir: str | Path | None = None, progress: bool = True, workers: int | None = None
) -> Path:
    """Build (or reuse) the mal-offline corpus described by ``cfg``; returns its root.

    Args:
        cfg: what to build (profile, seed, sources, SNRs, sizes); ``cfg.root`` is the output folder.
        raw_dir: where packages are downloaded once (default ``$MAL_RAW_DIR`` or ``<data>/raw``). Decoded audio is
            cached in ``<raw_dir>/../cache``.
        progress: show tqdm progress bars.
        workers: processes for decoding and threads for unpacking (default: the usable cores, at most 4). The
            result does not depend on it.

    The work is skipped when ``<root>/corpus.json`` has the same build key and every file verifies. Otherwise the
    stages run in order: fetch the packages, decode the recordings, split and plan the utterances, gather the
    noise pools (and simulate the rooms), mix and write every split into a temporary sibling folder, write the
    checksums and corpus.json, and swap the folder in at the end, so an interrupted build never looks complete.
    """
    t_start = time.perf_counter()
    root = cfg.corpus_root()
    key = cfg.build_key()
    if _existing_build_matches(root, key):
        return root
    _check_output(root)  # before any download: fail fast on a folder that is not ours
    raw = Path(raw_dir) if raw_dir is not None else paths.raw_dir()
    workers = default_workers() if workers is None else max(1, int(workers))
    timings: dict[str, float] = {}

    src = _fetch(cfg, raw, progress, workers)
    timings["fetch_s"] = time.perf_counter() - t_start
    t = time.perf_counter()
    items_in, items_ood = _decode(cfg, src, progress, workers)
    timings["decode_s"] = time.perf_counter() - t
    t = time.perf_counter()
    plans, leftovers = _plan(cfg, items_in, items_ood)
    extra_train, extra_meta = _synthetic_train(cfg, src, raw, progress, workers)
    noise = _noise(cfg, src)
    sizes = cfg.sizes()
    rooms: list[Room] = []
    if sizes["test_reverb"] != 0:
        rooms = [make_room(f"room{i:02d}", rng_for(cfg.seed, "room", i), cfg.rt60_s) for i in range(sizes["rooms"])]

    tmp = _prepare_output(root)
    try:
        summary, shortfall = _mix(cfg, plans, noise, rooms, src.cache, tmp, progress, extra_train)
        timings["render_s"] = time.perf_counter() - t
        checksums = _checksums(tmp)
        atomic_write_text(tmp / "SHA256SUMS", checksums)
        timings["total_s"] = time.perf_counter() - t_start
        meta = {
            "format": FORMAT,
            "mal_version": mal.__version__,
            "profile": cfg.profile,
            "seed": cfg.seed,
            "build_key": key,
            "config": cfg.to_dict(),
            "sizes": sizes,
            "sources": {name: _source_record(name, src) for name in src.names},
            "splits": summary,
            **({"extra_voices": extra_meta} if extra_meta else {}),
            "rooms": [r.describe() for r in rooms],
            "excluded": [dataclasses.asdict(e) for e in src.excluded],
            "leftover_short_recordings": leftovers,
            "shortfall": shortfall,
            "content_hash": hashlib.sha256(checksums.encode()).hexdigest(),
            "timings": {k: round(v, 2) for k, v in timings.items()},
        }
        atomic_write_json(tmp / "corpus.json", meta)
        _publish(tmp, root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root


# ---------------------------------------------------------------------------------------------------------------
# Verifying


def read_corpus_meta(root: str | Path) -> dict[str, Any]:
    """``<root>/corpus.json`` as a dict (DataError if missing or unreadable)."""
    path = Path(root) / "corpus.json"
    if not path.is_file():
        raise DataError(f"{path}: not found; {root} is not a built mal-offline corpus (python -m mal corpus build)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: unreadable JSON ({err}); rebuild the corpus") from err


def verify_corpus(root: str | Path, deep: bool = True) -> dict[str, Any]:
    """Check a built corpus against its SHA256SUMS and manifests.

    Args:
        root: corpus root.
        deep: hash every file (a second or two for the quick profile); ``False`` only checks that files exist.
    Returns:
        ``{"ok": bool, "root": str, "problems": [str], "splits": {split: n}, "content_hash": str | None}``.
    """
    root = Path(root)
    problems: list[str] = []
    out: dict[str, Any] = {"ok": False, "root": str(root), "problems": problems, "splits": {}, "content_hash": None}
    try:
        meta = read_corpus_meta(root)
    except DataError as err:
        problems.append(str(err))
        return out
    sums_path = root / "SHA256SUMS"
    if not sums_path.is_file():
        problems.append(f"{sums_path}: missing")
        return out
    sums = sums_path.read_text()
    if hashlib.sha256(sums.encode()).hexdigest() != meta.get("content_hash"):
        problems.append(f"{sums_path}: does not match corpus.json's content_hash")
    listed = {}
    for line in sums.splitlines():
        digest, _, rel = line.partition("  ")
        listed[rel] = digest
    for rel, digest in listed.items():
        path = root / rel
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif deep and sha256_file(path) != digest:
            problems.append(f"{path}: content changed since the build")
    for split, info in meta.get("splits", {}).items():
        manifest = root / split / "manifest.csv"
        if not manifest.is_file():
            problems.append(f"{manifest}: missing")
            continue
        with open(manifest, newline="") as fh:
            rows = list(csv.DictReader(fh))
        out["splits"][split] = len(rows)
        if len(rows) != info.get("n"):
            problems.append(f"{manifest}: {len(rows)} rows, corpus.json says {info.get('n')}")
        for row in rows:
            for col in ("clean", "noisy"):
                if row[col] not in listed:
                    problems.append(f"{manifest}: {row[col]} is not in SHA256SUMS")
    out["content_hash"] = meta.get("content_hash")
    out["ok"] = not problems
    return out


def iter_manifest(root: str | Path, split: str) -> Iterable[dict[str, str]]:
    """Rows of ``<root>/<split>/manifest.csv`` (DataError naming the file when it is missing)."""
    manifest = Path(root) / split / "manifest.csv"
    if not manifest.is_file():
        available = sorted(p.parent.name for p in Path(root).glob("*/manifest.csv"))
        raise DataError(f"{manifest}: not found; splits in this corpus: {available or 'none'}")
    with open(manifest, newline="") as fh:
        yield from csv.DictReader(fh)
