"""Sources: pinned archives, pure-Python .deb unpacking, fetching rules, file listing and decoding."""

from __future__ import annotations

import io
import lzma
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mal.data import sources
from mal.data.errors import DataError
from mal.data.sources import (
    ARCHIVES,
    SOURCES,
    Archive,
    DecodedCache,
    archives_for,
    decode_file,
    decode_g722,
    extract_archive,
    fetch_archive,
    list_source_files,
)


def _ar_entry(name: str, data: bytes) -> bytes:
    header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
    assert len(header) == 60
    return header + data + (b"\n" if len(data) % 2 else b"")


def _fake_deb(path: Path, files: dict[str, bytes]) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo("./" + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("./usr/share/x/sounds/link.wav")
        link.type = tarfile.SYMTYPE
        link.linkname = "a.wav"
        tar.addfile(link)
    payload = lzma.compress(buf.getvalue())
    path.write_bytes(b"!<arch>\n" + _ar_entry("debian-binary", b"2.0\n") + _ar_entry("data.tar.xz", payload))
    return path


def _archive(tmp_path: Path, path: Path, members: tuple[str, ...]) -> Archive:
    return Archive(
        name="fake-data",
        kind="deb",
        version="1:1.0-1",
        filename=path.name,
        url="http://invalid.example/fake.deb",
        sha256=sources.sha256_file(path),
        size=path.stat().st_size,
        members=members,
        licence="CC0",
        credit="test",
    )


def test_archive_pins_are_well_formed() -> None:
    for a in ARCHIVES.values():
        assert re.fullmatch(r"[0-9a-f]{64}", a.sha256), a.name
        assert a.url.startswith(("http://deb.debian.org/", "https://registry.npmjs.org/")), a.name
        assert a.members and a.size > 0
    # Every file-backed source points at a pinned archive; generated ones at none.
    for s in SOURCES.values():
        assert (s.archive is None) == (s.name in ("colour-noise", "hum"))
        assert s.archive is None or s.archive in ARCHIVES


def test_archives_for_rejects_unknown_sources() -> None:
    assert [a.name for a in archives_for(["hum", "asterisk-en"])] == ["asterisk-core-sounds-en-g722"]
    with pytest.raises(DataError, match="unknown source"):
        archives_for(["asterisk-xx"])


def test_extract_takes_only_matching_regular_files(tmp_path: Path) -> None:
    deb = _fake_deb(
        tmp_path / "fake.deb",
        {"usr/share/x/sounds/a.wav": b"A" * 11, "usr/share/x/other/b.txt": b"B", "usr/share/doc/fake/copyright": b"C"},
    )
    archive = _archive(tmp_path, deb, ("usr/share/x/sounds/*", "usr/share/doc/fake/copyright"))
    out = extract_archive(archive, deb, tmp_path / "raw")
    got = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != ".mal-extracted")
    assert got == ["usr/share/doc/fake/copyright", "usr/share/x/sounds/a.wav"]  # no symlink, no other folder
    assert (out / "usr/share/x/sounds/a.wav").read_bytes() == b"A" * 11
    # A second call reuses the folder without unpacking again.
    (out / "usr/share/x/sounds/a.wav").write_bytes(b"changed")
    assert extract_archive(archive, deb, tmp_path / "raw") == out
    assert (out / "usr/share/x/sounds/a.wav").read_bytes() == b"changed"


def test_extract_rejects_non_deb_and_unmatched_layout(tmp_path: Path) -> None:
    bad = tmp_path / "bad.deb"
    bad.write_bytes(b"not an archive")
    with pytest.raises(DataError, match="not a Debian package"):
        extract_archive(_archive(tmp_path, bad, ("*",)), bad, tmp_path / "raw")
    deb = _fake_deb(tmp_path / "fake.deb", {"usr/a.wav": b"x"})
    with pytest.raises(DataError, match="no member matches"):
        extract_archive(_archive(tmp_path, deb, ("usr/share/nothing/*",)), deb, tmp_path / "raw2")


def test_fetch_never_overwrites_a_file_with_the_wrong_hash(tmp_path: Path) -> None:
    archive = ARCHIVES["bucklespring-data"]
    dest = tmp_path / "debs" / archive.filename
    dest.parent.mkdir()
    dest.write_bytes(b"truncated download")
    with pytest.raises(DataError, match="does not match the pinned"):
        fetch_archive(archive, tmp_path, progress=False)
    assert dest.read_bytes() == b"truncated download"


def test_fetch_reports_what_to_install_when_nothing_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources.shutil, "which", lambda name: None)

    def offline(url: str, dest: Path, progress: bool) -> None:
        raise OSError("network unreachable")

    monkeypatch.setattr(sources, "_download_url", offline)
    with pytest.raises(DataError, match=r"Install npm \(Node.js\).*fetch https://registry"):
        fetch_archive(ARCHIVES["supersonic-scsynth-samples"], tmp_path, progress=False)
    with pytest.raises(DataError, match=r"Install apt \(apt-get download\)"):
        fetch_archive(ARCHIVES["bucklespring-data"], tmp_path, progress=False)
    assert not any((tmp_path / "debs").iterdir())  # nothing half-downloaded left behind


def test_g722_round_trip() -> None:
    G722 = pytest.importorskip("G722")
    t = np.arange(16000) / 16000
    x = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    y = decode_g722(G722.G722(16000, 64000).encode(x))
    assert y.dtype == np.float32 and y.size == x.size
    # G.722 delays by 22 samples (QMF banks); after alignment the 440 Hz tone is reproduced well.
    ref = x[:-22].astype(np.float64) / 32768
    err = y[22:].astype(np.float64) - ref
    assert 10 * np.log10(np.sum(ref[2000:] ** 2) / np.sum(err[2000:] ** 2)) > 20
    with pytest.raises(DataError, match="empty G.722"):
        decode_g722(b"", "x.g722")


def test_decode_file_makes_mono_16k_and_names_bad_files(tmp_path: Path) -> None:
    t = np.arange(44100) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 300 * t), np.sin(2 * np.pi * 300 * t)], 1) * 0.5
    sf.write(tmp_path / "s.ogg", stereo, 44100)
    wav = decode_file(tmp_path / "s.ogg")
    assert wav.dtype == np.float32 and wav.ndim == 1 and abs(wav.size - 16000) <= 2
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF....garbage")
    with pytest.raises(DataError, match="corrupt.wav"):
        decode_file(tmp_path / "corrupt.wav")


def test_decoded_cache_is_exact(tmp_path: Path) -> None:
    sf.write(tmp_path / "n.flac", (np.random.default_rng(0).standard_normal(22050) * 0.1), 22050)
    archive = ARCHIVES["supersonic-scsynth-samples"]
    f = sources.SourceFile("sonic-pi", archive.name, "package/samples/n.flac", tmp_path / "n.flac")
    first = DecodedCache(tmp_path / "cache", {archive.name: archive}).load(f)
    cached = list((tmp_path / "cache").rglob("*.npy"))
    assert len(cached) == 1
    again = DecodedCache(tmp_path / "cache", {archive.name: archive}).load(f)
    assert np.array_equal(first, again)
    # G.722 is cached as int16 and reads back bit-exactly.
    G722 = pytest.importorskip("G722")
    tone = (np.sin(np.arange(3200) / 5) * 8000).astype(np.int16)
    (tmp_path / "p.g722").write_bytes(G722.G722(16000, 64000).encode(tone))
    moh = ARCHIVES["asterisk-moh-opsound-g722"]
    g = sources.SourceFile("opsound-moh", moh.name, "usr/share/asterisk/moh/p.g722", tmp_path / "p.g722")
    direct = decode_file(tmp_path / "p.g722")
    assert np.array_equal(DecodedCache(tmp_path / "cache", {moh.name: moh}).load(g), direct)
    assert np.array_equal(DecodedCache(tmp_path / "cache", {moh.name: moh}).load(g), direct)
    assert np.load(next((tmp_path / "cache").rglob("p.g722.npy"))).dtype == np.int16
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 2


def _asterisk_tree(root: Path) -> Path:
    voice = root / "usr/share/asterisk/sounds/en_US_f_Allison"
    (voice / "digits").mkdir(parents=True)
    (voice / "silence").mkdir()
    for name in ("vm-hello.g722", "beep.g722", "digits/1.g722", "silence/1.g722"):
        (voice / name).write_bytes(b"\x00" * 100)
    (voice / "empty.g722").write_bytes(b"")
    return root


def test_asterisk_listing_excludes_tones_silence_and_empty_files(tmp_path: Path) -> None:
    files, excluded = list_source_files("asterisk-en", _asterisk_tree(tmp_path))
    assert [(f.prompt, f.speaker, f.language) for f in files] == [
        ("digits/1", "Allison", "en"),
        ("vm-hello", "Allison", "en"),
    ]
    reasons = {e.key.rsplit("/", 1)[-1]: e.reason for e in excluded}
    assert set(reasons) == {"beep.g722", "1.g722", "empty.g722"}
    assert "empty" in reasons["empty.g722"] and "not speech" in reasons["beep.g722"]


def test_parallel_decoding_gives_the_same_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = sources._decode_in_processes
    monkeypatch.setattr(sources, "_decode_in_processes", lambda *a: calls.append(len(a[0])) or real(*a))
    archive = ARCHIVES["supersonic-scsynth-samples"]
    rng = np.random.default_rng(1)
    files = []
    for i in range(12):
        sf.write(tmp_path / f"n{i}.flac", rng.standard_normal(4410 + 100 * i) * 0.1, 44100)
        files.append(
            sources.SourceFile("sonic-pi", archive.name, f"package/samples/n{i}.flac", tmp_path / f"n{i}.flac")
        )
    serial = DecodedCache(tmp_path / "serial", {archive.name: archive})
    serial.load_many(files, progress=False, workers=1)
    parallel = DecodedCache(tmp_path / "parallel", {archive.name: archive})
    parallel.load_many(files, progress=False, workers=2)
    assert calls == [12] and len(list((tmp_path / "parallel").rglob("*.npy"))) == 12
    for f in files:
        assert np.array_equal(serial.load(f), parallel.load(f))


def test_minetest_foley_leaves_out_surface_sounds_that_resemble_test_ood_slides(tmp_path: Path) -> None:
    mods = tmp_path / "usr/share/games/minetest/games/minetest_game/mods"
    for mod, name in (
        ("doors", "doors_door_open"),
        ("fire", "fire_fire.1"),
        ("default", "default_snow_footstep.1"),
        ("default", "default_dig_cracky.2"),
        ("default", "default_gravel_dug.1"),
        ("default", "default_place_node.1"),
        ("default", "default_break_glass.1"),
    ):
        (mods / mod / "sounds").mkdir(parents=True, exist_ok=True)
        (mods / mod / "sounds" / f"{name}.ogg").write_bytes(b"\x01" * 10)
    files, excluded = list_source_files("minetest", tmp_path)
    assert [f.prompt for f in files] == ["default_break_glass.1", "doors_door_open", "fire_fire.1"]
    assert all(f.noise_type == "foley" for f in files)
    assert len(excluded) == 4 and all("slides" in e.reason for e in excluded)


def test_machines_and_foley_are_in_the_quick_and_full_profiles() -> None:
    from mal.data import PROFILE_SOURCES, CorpusConfig

    added = {"colobot", "minetest"}
    assert added <= set(PROFILE_SOURCES["quick"]) and added <= set(PROFILE_SOURCES["full"])
    assert not added & set(PROFILE_SOURCES["smoke"])  # CI stays small
    noises = [SOURCES[s] for s in PROFILE_SOURCES["quick"] if SOURCES[s].role == "noise"]
    types = {s.noise_type for s in noises if s.domain == "in"}
    assert {"machines", "foley"} <= types and len(types) == 7
    # Naming the profile's sources in any order is the same corpus, and so the same key.
    quick = CorpusConfig(profile="quick")
    assert quick.build_key() == quick.replace(sources=list(reversed(PROFILE_SOURCES["quick"]))).build_key()
    without = [s for s in PROFILE_SOURCES["quick"] if s != "colobot"]
    assert quick.build_key() != quick.replace(sources=without).build_key()
    assert {a.name for a in archives_for(["colobot", "minetest"])} == {"colobot-common-sounds", "minetest-data"}
