"""Metric cost per file and scoring throughput, serial vs a 2-worker process pool.

1. Cost of each metric on 3 s clips (warm models, one thread), so a pipeline can budget an evaluation
   (~10 systems × ~300 files × all metrics).
2. Throughput of :func:`mal.metrics.score_many` in audio seconds scored per wall-clock second, serial and with
   two workers, on the same files in the same run (target ≥ 1.8×). Worker start-up (spawn, imports, model loads)
   is reported on its own: it is paid once per evaluation, not per file. The two tables must be identical.

Signals are speech-like test signals mixed with white noise at 0–15 dB (tests/speech_signals.py), so the
benchmark needs no corpus.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

import mal.metrics as M
from mal.metrics import loizou, nonintrusive
from mal.metrics.batch import single_threaded

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from speech_signals import mix_at_snr, speech_like  # noqa: E402

SR = 16000


def make_pairs(n: int, seconds: float, seed: int = 0) -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    pairs = []
    for i in range(n):
        clean = speech_like(seconds, SR, seed=seed + i)
        noisy = mix_at_snr(clean, rng.standard_normal(clean.size), float(rng.choice([0.0, 5.0, 10.0, 15.0])))
        pairs.append((f"f{i:03d}", clean.astype(np.float32), (0.9 * noisy / np.max(np.abs(noisy))).astype(np.float32)))
    return pairs


def per_metric_cost(pairs: list, repeats: int) -> list[tuple[str, float]]:
    """Median milliseconds per file of each metric (models warmed up first)."""
    M.preload(M.default_metrics(SR))
    pesq_of = {fid: M.pesq(c.astype(float), e.astype(float), SR, "wb") for fid, c, e in pairs}
    jobs = {
        "pesq_wb": lambda c, e, fid: M.score(c, e, SR, ["pesq_wb"]),
        "stoi": lambda c, e, fid: M.score(c, e, SR, ["stoi"]),
        "estoi": lambda c, e, fid: M.score(c, e, SR, ["estoi"]),
        "si_sdr": lambda c, e, fid: M.score(c, e, SR, ["si_sdr"]),
        "ssnr": lambda c, e, fid: M.score(c, e, SR, ["ssnr"]),
        "composite (PESQ reused)": lambda c, e, fid: loizou.composite(c, e, SR, pesq_score=pesq_of[fid]),
        "csig+cbak+covl (with PESQ)": lambda c, e, fid: M.score(c, e, SR, ["csig", "cbak", "covl"]),
        "dnsmos (4 outputs)": lambda c, e, fid: nonintrusive.dnsmos(e.astype(float), SR),
        "distillmos": lambda c, e, fid: nonintrusive.distillmos(e.astype(float), SR),
        "score(): all defaults": lambda c, e, fid: M.score(c, e, SR),
    }
    rows = []
    with single_threaded():
        for name, fn in jobs.items():
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                for fid, c, e in pairs:
                    fn(c.astype(np.float64), e.astype(np.float64), fid)
                times.append((time.perf_counter() - start) / len(pairs))
            rows.append((name, 1000 * statistics.median(times)))
    return rows


def _burn(n: int) -> float:
    start = time.perf_counter()
    acc = 0
    for i in range(n):
        acc += i * i
    return time.perf_counter() - start


def machine_parallelism(workers: int, n: int = 6_000_000) -> float:
    """Speed-up the machine itself gives right now: ``workers`` pure-Python CPU jobs, serial vs in a pool.

    On an idle machine with ``workers`` free cores this is ≈ ``workers``; on a shared machine it shows how much
    parallel capacity was actually available, i.e. the ceiling for the scoring speed-up measured next to it.
    """
    import concurrent.futures as cf
    import multiprocessing as mp

    with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        list(pool.map(_burn, [1000] * workers))  # start the workers
        start = time.perf_counter()
        for _ in range(workers):
            _burn(n)
        serial = time.perf_counter() - start
        start = time.perf_counter()
        list(pool.map(_burn, [n] * workers))
        return serial / (time.perf_counter() - start)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def throughput(pairs: list, workers: int, metrics: list[str], rounds: int) -> dict:
    """Serial and pooled scoring take turns on the same slices of ``pairs`` (one slice per round), so bursts of
    load from other processes on a shared machine hit both alike; the median per-round speed-up is reported."""
    with single_threaded():
        M.preload(metrics)
    children_before = _children_cpu()
    serial_cpu = 0.0
    start = time.perf_counter()
    with M.metric_pool(workers, metrics) as pool:
        startup = time.perf_counter() - start
        serial_tables, parallel_tables, t_serial, t_parallel, ratios = [], [], 0.0, 0.0, []
        for r in range(rounds):
            chunk = pairs[r::rounds]
            t0, c0 = time.perf_counter(), time.process_time()
            serial_tables.append(M.score_many(chunk, metrics, workers=1, progress=False))
            t1 = time.perf_counter()
            serial_cpu += time.process_time() - c0
            parallel_tables.append(M.score_many(chunk, metrics, progress=False, pool=pool))
            t2 = time.perf_counter()
            t_serial += t1 - t0
            t_parallel += t2 - t1
            ratios.append((t1 - t0) / (t2 - t1))
    workers_cpu = _children_cpu() - children_before  # the pool has exited: its workers' CPU time, start-up included
    return {
        "serial_cpu_share": serial_cpu / t_serial,
        "workers_cpu_s": workers_cpu,
        "audio_s": sum(c.size for _, c, _ in pairs) / SR,
        "serial_s": t_serial,
        "parallel_s": t_parallel,
        "startup_s": startup,
        "median_ratio": statistics.median(ratios),
        "ratios": ratios,
        "identical": all(a.equals(b) for a, b in zip(serial_tables, parallel_tables, strict=True)),
        "nan": int(sum(t["value"].isna().sum() for t in serial_tables)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=24, help="files for the throughput comparison")
    parser.add_argument("--seconds", type=float, default=3.0, help="clip length")
    parser.add_argument("--cost-files", type=int, default=6, help="files for the per-metric cost table")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="serial/parallel turns (files split between them)")
    parser.add_argument("--metrics", default="", help="comma-separated; default: every default metric")
    args = parser.parse_args(argv if argv is not None else [])
    torch.set_num_threads(1)

    pairs = make_pairs(args.cost_files, args.seconds, seed=100)
    print(f"Per-file cost on {args.seconds:g} s clips (1 thread, median of {args.repeats}):")
    print(f"  {'metric':28s} {'ms/file':>9s} {'x real time':>12s}")
    for name, ms in per_metric_cost(pairs, args.repeats):
        print(f"  {name:28s} {ms:9.1f} {ms / 1000 / args.seconds:12.4f}")

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] or M.default_metrics(SR)
    pairs = make_pairs(args.files, args.seconds)
    load_before = os.getloadavg()[0]
    control_before = machine_parallelism(args.workers)
    r = throughput(pairs, args.workers, metrics, args.rounds)
    control_after = machine_parallelism(args.workers)
    rate_s, rate_p = r["audio_s"] / r["serial_s"], r["audio_s"] / r["parallel_s"]
    print(f"\nThroughput, {args.files} files × {args.seconds:g} s, {len(metrics)} metrics:")
    print(f"  serial      {r['serial_s']:7.1f} s  {rate_s:6.2f} audio-s/s")
    startup = r["startup_s"]
    print(f"  {args.workers} workers   {r['parallel_s']:7.1f} s  {rate_p:6.2f} audio-s/s  (+{startup:.1f} s start-up)")
    print(f"  speed-up    {rate_p / rate_s:.2f}x overall, per round {', '.join(f'{x:.2f}' for x in r['ratios'])} "
          f"(median {r['median_ratio']:.2f}x; target >= 1.8x)")  # fmt: skip
    control = (control_before + control_after) / 2
    print(f"  control: {args.workers} pure-CPU jobs ran {control_before:.2f}x / {control_after:.2f}x faster in a pool "
          f"than serially (before / after): scoring reached {r['median_ratio'] / control:.0%} of what the machine "
          "gave")  # fmt: skip
    print(f"  identical tables: {r['identical']}; NaN values: {r['nan']}")
    print(f"  CPU obtained: serial {r['serial_cpu_share']:.2f} of a core; workers "
          f"{r['workers_cpu_s'] / (r['parallel_s'] + startup):.2f} cores on average (start-up included)")  # fmt: skip
    print(f"  1-min load average before/after: {load_before:.2f} / {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    end_to_end = r["serial_s"] / (r["parallel_s"] + r["startup_s"])
    print(f"  speed-up including worker start-up: {end_to_end:.2f}x")
    per_file = r["serial_s"] / args.files
    print(f"  projected: 10 systems × 300 files × these metrics ≈ {3000 * per_file / 60:.0f} min on one core, "
          f"{3000 * per_file / 60 / args.workers:.0f} min on {args.workers} free cores")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
