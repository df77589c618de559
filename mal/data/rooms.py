"""Simulated rooms for the reverberant test condition (pyroomacoustics image-source method).

Each room is a shoebox with a target RT60; wall absorption and reflection order follow from Sabine's formula
(``pyroomacoustics.inverse_sabine``). One source and one microphone sit at least ``WALL_MARGIN`` from the walls
and 0.7–3 m apart. The room impulse response is scaled so that its direct-path peak is 1, and the clean
*reference* for a reverberant mixture is the dry speech delayed by the direct path: a model is asked to remove
both noise and reverberation.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.signal import fftconvolve

from mal.audio import SAMPLE_RATE
from mal.data.errors import DataError

WALL_MARGIN = 0.5  # metres between source/microphone and any wall
DISTANCE_RANGE = (0.7, 3.0)  # source-microphone distance, metres
# A reflection order cap keeps the image-source count (and build time) bounded in large, live rooms; the late
# tail beyond it is weak at these RT60s.
MAX_ORDER_CAP = 60
# Kept after the end of the dry speech so the reverberant tail is not cut abruptly.
TAIL_SECONDS = 0.25


@dataclasses.dataclass(frozen=True)
class Room:
    """One simulated room and its impulse response (16 kHz)."""

    name: str
    dims_m: tuple[float, float, float]
    rt60_s: float  # target RT60 given to Sabine's formula
    source_m: tuple[float, float, float]
    mic_m: tuple[float, float, float]
    rir: np.ndarray  # float32, direct-path peak scaled to 1
    direct_index: int  # sample index of the direct-path peak

    def describe(self) -> dict:
        return {
            "name": self.name,
            "dims_m": [round(d, 2) for d in self.dims_m],
            "rt60_s": round(self.rt60_s, 3),
            "source_m": [round(d, 2) for d in self.source_m],
            "mic_m": [round(d, 2) for d in self.mic_m],
            "distance_m": round(float(np.linalg.norm(np.subtract(self.source_m, self.mic_m))), 2),
            "rir_seconds": round(self.rir.size / SAMPLE_RATE, 3),
        }


def _position(rng: np.random.Generator, dims: np.ndarray) -> np.ndarray:
    # Heads and table-top microphones sit 1–2 m above the floor.
    x, y = (rng.uniform(WALL_MARGIN, d - WALL_MARGIN) for d in dims[:2])
    return np.array([x, y, rng.uniform(1.0, min(2.0, dims[2] - WALL_MARGIN))])


def make_room(name: str, rng: np.random.Generator, rt60_range: tuple[float, float]) -> Room:
    """Draw a shoebox room (3–10 × 3–8 × 2.5–4 m) with RT60 in ``rt60_range`` and simulate its RIR."""
    try:
        import pyroomacoustics as pra
    except ImportError as err:
        raise DataError("the reverberant test set needs pyroomacoustics: pip install pyroomacoustics") from err
    dims = np.array([rng.uniform(3.0, 10.0), rng.uniform(3.0, 8.0), rng.uniform(2.5, 4.0)])
    rt60 = float(rng.uniform(*rt60_range))
    for _ in range(1000):
        src, mic = _position(rng, dims), _position(rng, dims)
        if DISTANCE_RANGE[0] <= np.linalg.norm(src - mic) <= DISTANCE_RANGE[1]:
            break
    else:  # pragma: no cover - the smallest room still fits the distance range
        raise DataError(f"could not place source and microphone in room {dims}")
    try:
        absorption, max_order = pra.inverse_sabine(rt60, dims.tolist())
    except ValueError as err:
        raise DataError(f"RT60 {rt60:.2f} s is not reachable in a {dims} m room: {err}") from err
    room = pra.ShoeBox(
        dims.tolist(),
        fs=SAMPLE_RATE,
        materials=pra.Material(absorption),
        max_order=min(int(max_order), MAX_ORDER_CAP),
        air_absorption=False,
        use_rand_ism=False,  # deterministic: the same seed gives the same response
    )
    room.add_source(src.tolist())
    room.add_microphone(mic.tolist())
    room.compute_rir()
    rir = np.asarray(room.rir[0][0], dtype=np.float64)
    # The direct path is the first strong peak: search up to 5 ms after its geometric delay.
    delay = float(np.linalg.norm(src - mic)) / room.c * SAMPLE_RATE
    search = int(delay) + pra.constants.get("frac_delay_length") + int(0.005 * SAMPLE_RATE)
    direct = int(np.argmax(np.abs(rir[:search])))
    rir = rir / rir[direct]
    return Room(
        name=name,
        dims_m=tuple(float(d) for d in dims),
        rt60_s=rt60,
        source_m=tuple(float(v) for v in src),
        mic_m=tuple(float(v) for v in mic),
        rir=rir.astype(np.float32),
        direct_index=direct,
    )


def reverberate(dry: np.ndarray, room: Room) -> tuple[np.ndarray, np.ndarray]:
    """Convolve dry speech with the room.

    Shape: dry ``(T,)`` → ``(reverberant, reference)``, both ``(T + direct_index + tail,)``; the reference is the
    dry speech delayed to line up with the direct path.
    """
    n_out = dry.size + room.direct_index + int(TAIL_SECONDS * SAMPLE_RATE)
    wet = fftconvolve(dry.astype(np.float64), room.rir.astype(np.float64))[:n_out]
    if wet.size < n_out:
        wet = np.pad(wet, (0, n_out - wet.size))
    ref = np.zeros(n_out, dtype=np.float64)
    ref[room.direct_index : room.direct_index + dry.size] = dry
    return wet.astype(np.float32), ref.astype(np.float32)
