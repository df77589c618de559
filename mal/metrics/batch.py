"""Scoring many pairs, serially or across processes, into one tidy table.

Every pair goes through the same function (:func:`_score_task`) in both modes, with one BLAS/torch/ONNX thread,
so a parallel run gives bit-identical numbers to a serial one. A pair that fails for any reason (unreadable
file, NaN samples, a metric library raising) gives NaN rows with the reason; the other pairs are untouched.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing as mp
import os
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mal.metrics.cache import ScoreCache
from mal.metrics.scoring import MetricOptions, resolve_metrics, score_with_reasons

COLUMNS = ("file", "metric", "value", "reason")
Audio = np.ndarray | torch.Tensor | str | Path


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Run the block with one torch and one BLAS thread (restored afterwards)."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(before)


def _init_worker(metrics: Sequence[str] = ()) -> None:
    # Workers are long-lived: fix threading once. Parallelism comes from processes, not threads.
    from threadpoolctl import threadpool_limits

    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    threadpool_limits(limits=1)
    warnings.filterwarnings("ignore", category=UserWarning)
    preload(metrics)


def preload(metrics: Sequence[str]) -> None:
    """Load (and run once) the models behind ``metrics``, so the first scored file does not pay for it."""
    from mal.metrics import nonintrusive
    from mal.metrics.scoring import DNSMOS_METRICS

    # 9.1 s: one DNSMOS window (shorter clips are tiled and cost several)
    warm = np.zeros(int(nonintrusive.MOS_SAMPLE_RATE * 9.1), dtype=np.float64)
    warm[::97] = 1e-3  # not silent
    if any(m in DNSMOS_METRICS for m in metrics):
        nonintrusive.dnsmos(warm, nonintrusive.MOS_SAMPLE_RATE)  # also compiles librosa's numba kernels
    if "distillmos" in metrics:
        nonintrusive.distillmos(warm, nonintrusive.MOS_SAMPLE_RATE)


def _ready() -> int:
    time.sleep(0.2)  # long enough that a second worker picks up the next task
    return os.getpid()


@contextlib.contextmanager
def metric_pool(workers: int, metrics: Sequence[str] | None = None, sample_rate: int = 16000):
    """A started, warmed-up process pool for :func:`score_many` (``pool=``), to reuse across many calls.

    Every worker has loaded the models behind ``metrics`` before the block starts, so timings inside it measure
    scoring only.
    """
    names = resolve_metrics(metrics, sample_rate)
    ctx = mp.get_context("spawn")
    with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(names,)) as pool:
        # One task per worker while none is idle makes the pool start all of them (each runs the initializer).
        pids: set[int] = set()
        for _ in range(10):
            pids |= {f.result() for f in [pool.submit(_ready) for _ in range(workers)]}
            if len(pids) >= workers:
                break
        yield pool


def _load(audio: Audio, sample_rate: int) -> np.ndarray | torch.Tensor:
    if isinstance(audio, (str, Path)):
        from mal.audio import read_audio

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # resampling/mixdown notices; the rule is documented in mal.audio
            wav, _ = read_audio(audio, sample_rate=sample_rate)
        return wav
    return audio


def _score_task(
    file_id: str, clean: Audio, estimate: Audio, metrics: list[str], sample_rate: int, options: dict[str, Any]
) -> list[tuple[str, str, float, str]]:
    """Score one pair; never raises (a failure becomes NaN rows that carry the error as their reason)."""
    try:
        values, reasons = score_with_reasons(
            _load(clean, sample_rate),
            _load(estimate, sample_rate),
            sample_rate,
            metrics,
            MetricOptions.from_params(options),
        )
    except Exception as err:  # one bad file must not fail the batch; the reason records what happened
        why = f"error: {type(err).__name__}: {err}"
        return [(file_id, m, float("nan"), why) for m in metrics]
    return [(file_id, m, values[m], reasons.get(m, "")) for m in metrics]


def _private_copy(audio: Audio) -> Audio:
    """A NumPy copy of a tensor about to be sent to a worker process (paths and arrays pass as they are).

    Pickling a CPU tensor for another process (torch's reducer) moves its storage into shared memory *in
    place*, from the executor's feeder thread, while the caller may still be reading the same storage: the
    ``noisy`` system's estimate is the very tensor the next system enhances. A reader caught mid-move sees
    freed memory, and one model estimate in a few hundred came back near-silent (SI-SDR −90 dB) in a
    two-worker evaluation. A NumPy copy is pickled by value and shares nothing.
    """
    if isinstance(audio, torch.Tensor):
        return audio.detach().cpu().numpy().copy()
    return audio


def _normalise(pairs: Iterable[Any]) -> Iterator[tuple[str, Audio, Audio]]:
    for i, item in enumerate(pairs):
        if len(item) == 3:
            file_id, clean, estimate = item
        elif len(item) == 2:
            (clean, estimate), file_id = item, str(i)
        else:
            raise ValueError(f"pair {i}: expected (file_id, clean, estimate) or (clean, estimate), got {len(item)}")
        yield str(file_id), clean, estimate


def score_many(
    pairs: Iterable[Sequence[Any]],
    metrics: Sequence[str] | None = None,
    workers: int = 1,
    progress: bool = True,
    sample_rate: int = 16000,
    options: MetricOptions | None = None,
    desc: str = "scoring",
    pool: cf.ProcessPoolExecutor | None = None,
    cache: ScoreCache | str | Path | None = None,
):
    """Score many (file_id, clean, estimate) pairs into a tidy table.

    Args:
        pairs: iterable of ``(file_id, clean, estimate)`` (or ``(clean, estimate)``, ids are positions); audio
            as arrays/tensors or file paths (read at ``sample_rate`` with :func:`mal.audio.read_audio`). Consumed
            lazily: at most ``4 × workers`` pairs are held in flight, so a generator that enhances files as it
            goes overlaps enhancement with scoring.
        metrics: metric names (``None`` → defaults for ``sample_rate``).
        workers: processes (1 = in this process). Pools use the ``spawn`` start method (safe with torch and
            in notebooks) and one thread per worker.
        progress: show a tqdm bar.
        pool: an executor from :func:`metric_pool` to reuse (its size replaces ``workers``).
        cache: a :class:`~mal.metrics.cache.ScoreCache` (or its SQLite path): values already computed for the
            same audio and settings are read from it, new ones are added (in-memory pairs only).

    Returns:
        ``pandas.DataFrame`` with columns ``file, metric, value, reason`` (reason ``""`` where the value is
        defined), in input order, metrics in the requested order.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from mal.metrics.cache import pair_key

    names = resolve_metrics(metrics, sample_rate)
    opts = (options or MetricOptions()).to_dict()
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    own_cache = isinstance(cache, (str, Path))
    store = ScoreCache(cache) if own_cache else cache
    total = len(pairs) if hasattr(pairs, "__len__") else None
    bar = tqdm(total=total, desc=desc, unit="file", disable=not progress)
    results: dict[int, list[tuple[str, str, float, str]]] = {}
    # index → (file id, cache key, cached metric → (value, reason)) for pairs that needed computing
    plans: dict[int, tuple[str, str | None, dict[str, tuple[float, str]]]] = {}

    def todo() -> Iterator[tuple[int, str, Audio, Audio, list[str]]]:
        """Pairs with the metrics still to compute; pairs fully answered by the cache are settled here."""
        for i, (fid, clean, est) in enumerate(_normalise(pairs)):
            key = pair_key(clean, est, sample_rate, opts) if store is not None else None
            cached = store.get(key, names) if key is not None else {}
            missing = [m for m in names if m not in cached]
            if not missing:
                results[i] = [(fid, m, *cached[m]) for m in names]
                bar.update(1)
                continue
            plans[i] = (fid, key, cached)
            yield i, fid, clean, est, missing

    def settle(i: int, rows: list[tuple[str, str, float, str]]) -> None:
        fid, key, cached = plans.pop(i)
        if key is not None:
            store.put(key, [(m, v, r) for _, m, v, r in rows])
        fresh = {m: (v, r) for _, m, v, r in rows}
        results[i] = [(fid, m, *(cached[m] if m in cached else fresh[m])) for m in names]
        bar.update(1)

    items = todo()
    if pool is not None:
        workers = max(workers, getattr(pool, "_max_workers", workers))
    try:
        if workers == 1 and pool is None:
            with single_threaded():
                for i, fid, clean, est, missing in items:
                    settle(i, _score_task(fid, clean, est, missing, sample_rate, opts))
        else:
            with contextlib.ExitStack() as stack:
                if pool is None:
                    ctx = mp.get_context("spawn")
                    pool = stack.enter_context(
                        cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker)
                    )
                pending: dict[cf.Future, int] = {}
                exhausted = False
                while pending or not exhausted:
                    while not exhausted and len(pending) < 4 * workers:
                        try:
                            i, fid, clean, est, missing = next(items)
                        except StopIteration:
                            exhausted = True
                            break
                        clean, est = _private_copy(clean), _private_copy(est)
                        pending[pool.submit(_score_task, fid, clean, est, missing, sample_rate, opts)] = i
                    if not pending:
                        break
                    done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                    for fut in done:
                        settle(pending.pop(fut), fut.result())
    finally:
        if own_cache:
            store.close()
    bar.close()
    rows = [row for i in sorted(results) for row in results[i]]
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    table["value"] = table["value"].astype(float)
    errors = table.loc[table["reason"].str.startswith("error:"), "file"].nunique()
    if errors:
        warnings.warn(f"{errors} file(s) failed to score; see the 'reason' column", stacklevel=2)
    return table
