"""Extra training voices: English Asterisk prompt texts read by the text-to-speech voices that ship in flite.

The in-domain corpus has four real speakers, three of them female. Synthetic voices widen the timbres a model hears
in training (three of the four flite voices are male) without touching any test split:

* Only prompts whose **name** falls in the train split (:func:`mal.data.corpus.split_of`, the rule that splits the
  Asterisk recordings) are synthesised, so no valid or test prompt is read by any voice.
* The utterances are appended to ``train`` only. ``valid`` stays the real speakers alone, so validation scores of a
  corpus with and without extra voices compare directly; ``test_ood`` keeps its unseen speakers and noise types.

Everything comes from pinned Debian packages, fetched and unpacked without root like the recordings
(:mod:`mal.data.sources`): the ``flite`` binary, its voices in ``libflite1``, ``libasound2`` (linked by libflite,
absent from minimal systems) and the prompt transcripts of ``asterisk-core-sounds-en``. The binary is amd64 Linux;
elsewhere the option fails with a clear error. flite is deterministic, so a seed rebuilds the same bytes.

Voices left out: flite's ``kal`` (8 kHz, narrow band like the KTuberling files the corpus drops) and
``time_awb`` (it only says times of day); Festival voices (Festival needs its Scheme library tree and a voice
package per speaker; not done yet); Piper (its voices download from a model hub at run time, not from a package).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from mal.audio import SAMPLE_RATE
from mal.data.errors import DataError
from mal.data.paths import cache_dir_for
from mal.data.sources import Archive, SourceFile, extract_archive, fetch_archive
from mal.io import atomic_path

_POOL = "http://deb.debian.org/debian/pool/main"
_LIB = "usr/lib/x86_64-linux-gnu"
_TRANSCRIPT = "usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"
_FLITE_LICENCE = "CMU Flite licence (BSD-style: free use and redistribution with the notice kept)"
_FLITE_CREDIT = "Carnegie Mellon University, Language Technologies Institute (Alan W Black, Kevin Lenzo and others)"

ARCHIVES: dict[str, Archive] = {
    a.name: a
    for a in (
        Archive(
            name="flite",
            kind="deb",
            version="2.2-5",
            filename="flite_2.2-5_amd64.deb",
            url=f"{_POOL}/f/flite/flite_2.2-5_amd64.deb",
            sha256="f4ce03470bf9974c2cb9cacd981e6be29339ef4c97cf994dd6fa3f90e6544db9",
            size=252784,
            members=("usr/bin/flite", "usr/share/doc/flite/copyright"),
            licence=_FLITE_LICENCE,
            credit=_FLITE_CREDIT,
        ),
        Archive(
            name="libflite1",
            kind="deb",
            version="2.2-5",
            filename="libflite1_2.2-5_amd64.deb",
            url=f"{_POOL}/f/flite/libflite1_2.2-5_amd64.deb",
            sha256="bfa8c591f1b47730b30b372ec38e02918a1c9795eada67684e1746390ad2f061",
            size=12823776,
            members=(f"{_LIB}/libflite*.so.2.2", "usr/share/doc/libflite1/copyright"),
            licence=_FLITE_LICENCE,
            credit=f"{_FLITE_CREDIT}; voices built from the CMU ARCTIC and CMU diphone recordings",
        ),
        Archive(
            name="libasound2",
            kind="deb",
            version="1.2.8-1+b1",
            filename="libasound2_1.2.8-1+b1_amd64.deb",
            url=f"{_POOL}/a/alsa-lib/libasound2_1.2.8-1+b1_amd64.deb",
            sha256="44c77b076a7b11ae99712439022d822245b1994c435da564ebd320bb676faf4c",
            size=361788,
            members=(f"{_LIB}/libasound.so.2.0.0", "usr/share/doc/libasound2/copyright"),
            licence="LGPL-2.1+",
            credit="the ALSA project (linked by libflite; never used to play audio here)",
        ),
        Archive(
            name="asterisk-core-sounds-en",
            kind="deb",
            version="1.6.1-1",
            filename="asterisk-core-sounds-en_1.6.1-1_all.deb",
            url=f"{_POOL}/a/asterisk-core-sounds/asterisk-core-sounds-en_1.6.1-1_all.deb",
            sha256="973e797d28e37fa6ca3c0a9d6fa717e77cf1268ae916bf09fd3503113cdffa50",
            size=22844,
            members=(_TRANSCRIPT, "usr/share/doc/asterisk-core-sounds-en/copyright"),
            licence="CC-BY-SA-3.0",
            credit="Asterisk core sounds prompt list (Digium, Inc.; recorded by Allison Smith)",
        ),
    )
}
# The runtime needs each shared library under its soname; the packages ship those names as symlinks, which the
# unpacker skips, so the real files are copied to the soname: <real suffix> -> <soname suffix>.
_SONAME_SUFFIXES = ((".so.2.2", ".so.1"), (".so.2.0.0", ".so.2"))


@dataclasses.dataclass(frozen=True)
class Voice:
    """One synthetic voice: its corpus speaker name, flite's name for it and what it sounds like."""

    name: str  # speaker name in manifests
    flite_name: str  # argument of ``flite -voice``
    description: str


VOICES: dict[str, Voice] = {
    v.name: v
    for v in (
        Voice("flite-awb", "awb", "Scottish English male, statistical parametric (clustergen, CMU ARCTIC awb)"),
        Voice("flite-kal16", "kal16", "US English male, 16 kHz diphone concatenation (CMU kal)"),
        Voice("flite-rms", "rms", "US English male, statistical parametric (clustergen, CMU ARCTIC rms)"),
        Voice("flite-slt", "slt", "US English female, statistical parametric (clustergen, CMU ARCTIC slt)"),
    )
}
# Names accepted in CorpusConfig.extra_voices besides single voices.
VOICE_GROUPS: dict[str, tuple[str, ...]] = {"flite": tuple(VOICES)}
LANGUAGE = "en"  # the transcripts and every flite voice are English
SPEECH_SOURCE = "flite"  # speech_source column of the synthetic rows
# Synthetic utterances appended to train per profile when CorpusConfig.n_train_extra is None (-1: every train
# prompt in every voice). Quick adds a third of its 600 real utterances: the real speakers still dominate.
PROFILE_EXTRA_TRAIN: dict[str, int] = {"smoke": 8, "quick": 200, "full": -1}
# Prompts are synthesised in fixed-size batches (threads inside a batch), stopping after the batch that gives a voice
# enough audio; a fixed size keeps the chosen prompts independent of the worker count.
BATCH = 16
# Audio synthesised per voice, as a multiple of what its share of utterances needs on average: planning leaves
# short prompts over and some utterances are cut from longer recordings.
AUDIO_MARGIN = 1.5
# Bumped whenever the text clean-up or the flite call changes, so old synthesised files are not reused.
_RECIPE_VERSION = 1


def resolve_voices(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Expand groups (``flite``) and check names; sorted, without duplicates. DataError naming the known ones."""
    out: set[str] = set()
    for name in names:
        if name in VOICE_GROUPS:
            out.update(VOICE_GROUPS[name])
        elif name in VOICES:
            out.add(name)
        else:
            raise DataError(f"unknown extra voice {name!r}; known: {sorted(VOICE_GROUPS)} or {sorted(VOICES)}")
    return tuple(sorted(out))


def extra_train_count(profile: str, n_train_extra: int | None) -> int:
    """Synthetic train utterances to add: the explicit count, else the profile's (-1: all)."""
    return PROFILE_EXTRA_TRAIN[profile] if n_train_extra is None else n_train_extra


# ---------------------------------------------------------------------------------------------------------------
# Prompt texts


def parse_transcripts(text: str) -> dict[str, str]:
    """``{prompt name: what is said}`` from an Asterisk ``core-sounds-<lang>.txt`` listing.

    Lines read ``name: text``; ``;`` starts a comment. Bracketed notes (``[ascending tones]``, ``<beep>``, the
    ``[@]`` after ``at``) are not spoken and are removed; prompts left with no words (tones, silences) are dropped.
    """
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        name, sep, said = line.partition(":")
        if not sep:
            raise DataError(f"transcript line without 'name: text': {line[:80]!r}")
        spoken = " ".join(re.sub(r"\[[^\]]*\]|<[^>]*>", " ", said).split())
        if re.search(r"\w", spoken):
            out[name.strip()] = spoken
    return out


# ---------------------------------------------------------------------------------------------------------------
# The flite runtime


def _check_platform() -> None:
    machine = platform.machine().lower()
    if not sys.platform.startswith("linux") or machine not in ("x86_64", "amd64"):
        raise DataError(
            f"extra voices run Debian's amd64 flite binary; this machine is {sys.platform}/{machine}. "
            "Build without extra_voices here, or on an x86-64 Linux machine."
        )


@dataclasses.dataclass(frozen=True)
class Flite:
    """An unpacked flite that runs without root: the binary and its libraries in one folder."""

    folder: Path  # <folder>/flite and <folder>/lib/<soname>
    recipe: str  # hash of the packages and the synthesis recipe; names the folder of synthesised files

    def run(self, *args: str) -> subprocess.CompletedProcess:
        """Run the binary with its own libraries (captured text output; the exit status is the caller's to check)."""
        return subprocess.run(
            [str(self.folder / "flite"), *args],
            env={**os.environ, "LD_LIBRARY_PATH": str(self.folder / "lib")},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def say(self, voice: Voice, text: str, dest: Path) -> None:
        """Synthesise ``text`` into the 16 kHz PCM-16 WAV ``dest`` (written atomically)."""
        with atomic_path(dest) as tmp:
            proc = self.run("-voice", voice.flite_name, "-t", text, "-o", str(tmp))
            if proc.returncode != 0:
                raise DataError(f"flite ({voice.name}) failed on {text[:60]!r}: {proc.stderr.strip()[:300]}")
            info = sf.info(str(tmp))
            if info.samplerate != SAMPLE_RATE or info.frames == 0:
                raise DataError(f"flite ({voice.name}) wrote {info.frames} samples at {info.samplerate} Hz")


def prepare_flite(raw: Path, progress: bool = True) -> tuple[Flite, dict[str, str], dict[str, Archive]]:
    """Fetch and unpack the packages, assemble a runnable flite and read the prompt texts.

    Returns the runtime, ``{prompt name: text}`` and the archives used. DataError when a package cannot be fetched
    (no network and not in ``<raw>/debs``), on another platform, or when the binary does not run.
    """
    _check_platform()
    folders = {name: extract_archive(a, fetch_archive(a, raw, progress), raw) for name, a in ARCHIVES.items()}
    prompts = parse_transcripts(
        gzip.decompress((folders["asterisk-core-sounds-en"] / _TRANSCRIPT).read_bytes()).decode()
    )
    blob = json.dumps([_RECIPE_VERSION, [(a.name, a.version, a.sha256) for a in ARCHIVES.values()]]).encode()
    recipe = hashlib.sha256(blob).hexdigest()[:8]
    folder = cache_dir_for(raw) / "flite" / f"runtime_{recipe}"
    if not (folder / "flite").exists():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".runtime_{recipe}.", dir=folder.parent))
        try:
            (tmp / "lib").mkdir()
            for name in ("libflite1", "libasound2"):
                for lib in sorted((folders[name] / _LIB).iterdir()):
                    soname = next((lib.name[: -len(a)] + b for a, b in _SONAME_SUFFIXES if lib.name.endswith(a)), None)
                    if soname is None:
                        raise DataError(f"{lib}: no soname rule for this library; the package layout changed")
                    shutil.copyfile(lib, tmp / "lib" / soname)
            shutil.copyfile(folders["flite"] / "usr/bin/flite", tmp / "flite")
            (tmp / "flite").chmod(0o755)
            os.replace(tmp, folder)
        except OSError:
            if not (folder / "flite").exists():  # not a concurrent build that won the rename
                raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
    flite = Flite(folder, recipe)
    proc = flite.run("-lv")  # lists the voices: proves the binary and every library load here
    missing = [v.flite_name for v in VOICES.values() if v.flite_name not in proc.stdout.split()]
    if proc.returncode != 0 or missing:
        raise DataError(
            f"{folder / 'flite'} does not run here (exit {proc.returncode}; voices missing: {missing}): "
            f"{proc.stderr.strip()[:300]}. It needs x86-64 Linux with glibc >= 2.34."
        )
    return flite, prompts, dict(ARCHIVES)


# ---------------------------------------------------------------------------------------------------------------
# Synthesising the train prompts


def synthesize_train_speech(
    voices: tuple[str, ...],
    n_utterances: int,
    utterance_seconds: tuple[float, float],
    seed: int,
    is_train_prompt: Callable[[str], bool],
    raw: Path,
    progress: bool = True,
    workers: int = 1,
) -> tuple[list[SourceFile], dict[str, Archive], dict]:
    """Synthesise enough train prompts in each voice for ``n_utterances`` utterances (``-1``: every train prompt).

    Each voice reads the train prompts in its own seeded order, batch by batch, until it has ``AUDIO_MARGIN`` times
    the audio its share of utterances needs on average. Synthesised files are kept in
    ``<raw>/../cache/flite/<recipe>/<voice>/<prompt>.wav`` and reused.

    Returns:
        the files (one per voice and prompt, ``speaker`` = voice name), the archives they come from (keyed as the
        files' ``archive``), and a description for ``corpus.json``.
    """
    from mal.data.corpus import rng_for  # corpus imports this module; a module-level import would be circular

    flite, prompts, archives = prepare_flite(raw, progress)
    names = sorted(p for p in prompts if is_train_prompt(p))
    if not names:
        raise DataError("no transcript prompt falls in the train split; check split_fractions")
    per_voice_s = (
        float("inf") if n_utterances < 0 else AUDIO_MARGIN * np.mean(utterance_seconds) * n_utterances / len(voices)
    )
    files: list[SourceFile] = []
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for voice_name in voices:
            voice = VOICES[voice_name]
            order = [names[int(i)] for i in rng_for(seed, "voice prompts", voice_name).permutation(len(names))]
            total_s = 0.0
            bar = tqdm(desc=f"synthesising {voice_name}", total=len(order), disable=not progress, leave=False)
            for start in range(0, len(order), BATCH):
                batch = order[start : start + BATCH]
                members = [f"{flite.recipe}/{voice_name}/{p}.wav" for p in batch]
                paths = [cache_dir_for(raw) / "flite" / m for m in members]
                todo = [(p, path) for p, path in zip(batch, paths, strict=True) if not path.exists()]
                list(pool.map(flite.say, [voice] * len(todo), [prompts[p] for p, _ in todo], [d for _, d in todo]))
                for p, member, path in zip(batch, members, paths, strict=True):
                    files.append(SourceFile(SPEECH_SOURCE, "flite", member, path, voice_name, LANGUAGE, p))
                    total_s += sf.info(str(path)).frames / SAMPLE_RATE
                bar.update(len(batch))
                if total_s >= per_voice_s:
                    break
            bar.close()
    meta = {
        "voices": {v: VOICES[v].description for v in voices},
        "n_train_prompts": len(names),
        "n_synthesised": len(files),
        "text": f"asterisk-core-sounds-en {ARCHIVES['asterisk-core-sounds-en'].version}: {_TRANSCRIPT}",
        "packages": {
            a.name: {"version": a.version, "sha256": a.sha256, "licence": a.licence, "credit": a.credit}
            for a in archives.values()
        },
    }
    return files, archives, meta
