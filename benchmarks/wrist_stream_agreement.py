"""Agreement of the streaming wrist kernels with builtin:wrist and with planted truth,
and their speed and memory.

    .venv/bin/python -m benchmarks.wrist_stream_agreement [--seeds 3 8 13 21 34 55]
        [--days 3] [--rates 25 50 100] [--hard-seeds 101 ... 112]
        [--hard-days 3 4 3 4] [--hard-rates 25 50 100 25] [--no-real] [--no-speed]
        [--speed-days 7]

Data: the demo generator's recordings (``synthetic``), the harder ones of
:mod:`wearflow.demo.hard` (``hard``: restless nights, naps, day and night non-wear,
drifts, calibration errors, gaps) and the real files. Prints, per quantity, n, the
mean difference (stream - reference), the 95% limits of agreement (mean +- 1.96 SD)
and the share within the stated tolerance; then hours of data per CPU-second of the
kernels and the peak RSS of a child process that streams a generated recording
(``--speed-days`` days at 100 Hz, never held in memory).
"""

from __future__ import annotations

import argparse
import math
import resource
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wearflow.config import SolutionConfig
from wearflow.demo.hard import HardTruth, generate_hard_recording
from wearflow.demo.synthetic import GroundTruth, generate_recording
from wearflow.readers import read_recording
from wearflow.recording import Recording
from wearflow.streaming import SampleChunk, recording_chunks, run_wrist_stream

REAL = Path("/work/shared/data/real")
REAL_CANDIDATES = ("cwa", "geneactiv_bin", "gt3x", "agdc", "actigraph_raw_csv", "generic_csv")
LEVELS = ("sed", "light", "mod", "vig", "mvpa")
# (quantity, tolerance, unit): the starting tolerances
TOLERANCE = {"wear_h": 0.25, "tso_onset_min": 15.0, "tso_wake_min": 15.0, "tst_min": 30.0}


def _bouts(table: pd.DataFrame) -> list[tuple[float, float]]:
    def sec(text: str) -> float:
        return float(pd.Timestamp(text).timestamp())
    return [(sec(a), sec(b)) for a, b in zip(table.start_utc, table.end_utc, strict=True)]


def _overlap(bouts: Sequence[tuple[float, float]], a: float, b: float) -> float:
    return sum(max(0.0, min(e, b) - max(s, a)) for s, e in bouts)


def _per_day(act: pd.DataFrame) -> pd.DataFrame:
    cols = {"wear_h": act.wear_minutes / 60.0}
    for lvl in LEVELS:
        cols[f"{lvl}_min"] = act[f"wake_{lvl}_5s_epoch_min"]
    cols["mvpa_5min_bout_min"] = act["wake_mvpa_5min_bout_min"]
    return pd.DataFrame(cols).set_index(act.date)


def _per_night(sleep: pd.DataFrame) -> pd.DataFrame:
    start = sleep.tso_start_timestamp
    return pd.DataFrame({"tso_onset_s": start, "tso_wake_s": start + 60 * sleep.tso_duration_min,
                         "tst_min": sleep.total_sleep_time_min}).set_index(sleep.date)


def compare(stream: dict[str, pd.DataFrame], ref: dict[str, pd.DataFrame], label: str,
            rows: list[dict[str, Any]]) -> None:
    """Per-day and per-night differences stream - builtin:wrist into ``rows``."""
    if "activity_level_classification" in ref:
        a = _per_day(stream["activity_level_classification"])
        b = _per_day(ref["activity_level_classification"])
        for day in a.index.intersection(b.index):
            for q in a.columns:
                rows.append({"vs": "builtin", "file": label, "key": day, "quantity": q,
                             "stream": a.loc[day, q], "ref": b.loc[day, q]})
    if "sleep" in ref and len(ref["sleep"]):
        a, b = _per_night(stream["sleep"]), _per_night(ref["sleep"])
        for day in a.index.intersection(b.index):
            for q in ("tso_onset_s", "tso_wake_s", "tst_min"):
                scale = 60.0 if q.endswith("_s") else 1.0
                name = q.replace("_s", "_min") if q.endswith("_s") else q
                rows.append({"vs": "builtin", "file": label, "key": day, "quantity": name,
                             "stream": a.loc[day, q] / scale, "ref": b.loc[day, q] / scale})


def compare_truth(tables: dict[str, pd.DataFrame], truth: GroundTruth | HardTruth,
                  rec: Recording, label: str, who: str, rows: list[dict[str, Any]]) -> None:
    """Per-day wear and MVPA (walking) and per-night sleep against the planted truth.

    Planted wear is the day's span minus non-wear and, for hard recordings, minus the
    logging gaps (no data, so no wear to find)."""
    absent = truth.gaps if isinstance(truth, HardTruth) else ()
    act = tables.get("activity_level_classification")
    if act is not None:
        t0, t1 = float(rec.time_s[0]), float(rec.time_s[-1])
        for _, day in act.iterrows():
            a = pd.Timestamp(day.day_start_timestamp, tz=truth.time_zone).timestamp()
            b = pd.Timestamp(day.day_end_timestamp, tz=truth.time_zone).timestamp()
            a, b = max(a, t0), min(b, t1)
            planted = (b - a) - _overlap(truth.non_wear, a, b) - _overlap(absent, a, b)
            rows.append({"vs": f"truth:{who}", "file": label, "key": day.date,
                         "quantity": "wear_h", "stream": day.wear_minutes / 60.0,
                         "ref": planted / 3600.0})
            if not math.isnan(day.wake_mvpa_5s_epoch_min):
                rows.append({"vs": f"truth:{who}", "file": label, "key": day.date,
                             "quantity": "mvpa_min", "stream": day.wake_mvpa_5s_epoch_min,
                             "ref": _overlap(truth.walking, a, b) / 60.0})
    nights = _per_night(tables["sleep"]) if "sleep" in tables else pd.DataFrame()
    for bed, wake in truth.sleep:
        near = nights[(nights.tso_onset_s - bed).abs() < 3 * 3600] if len(nights) else nights
        if len(near) != 1:
            continue
        night = near.iloc[0]
        for q, value, planted in (("tso_onset_min", night.tso_onset_s / 60, bed / 60),
                                  ("tso_wake_min", night.tso_wake_s / 60, wake / 60),
                                  ("tst_min", night.tst_min, (wake - bed) / 60)):
            rows.append({"vs": f"truth:{who}", "file": label, "key": str(bed), "quantity": q,
                         "stream": value, "ref": planted})


def summarise(rows: Sequence[Mapping[Any, Any]]) -> pd.DataFrame:
    """n, mean difference, 95% limits of agreement, share within tolerance per quantity."""
    df = pd.DataFrame(rows).dropna(subset=["stream", "ref"])
    df["diff"] = df.stream.astype(float) - df.ref.astype(float)
    df["data"] = np.select([df.file.str.startswith("synthetic"), df.file.str.startswith("hard")],
                           ["synthetic", "hard"], "real")
    out = []
    for (vs, data, q), g in df.groupby(["vs", "data", "quantity"], sort=True):
        d = g["diff"].to_numpy()
        sd = float(np.std(d, ddof=1)) if d.size > 1 else 0.0
        tol = TOLERANCE.get(str(q))
        if str(q).endswith("_min") and tol is None and str(q) != "tst_min":
            within = np.abs(d) <= np.maximum(5.0, 0.1 * np.abs(g.ref.to_numpy(float)))
            rule = "5 min or 10%"
        else:
            within = np.abs(d) <= (tol if tol is not None else np.inf)
            rule = f"{tol}" if tol is not None else "-"
        out.append({"vs": vs, "data": data, "quantity": q, "n": d.size,
                    "mean_diff": round(float(d.mean()), 3),
                    "loa_low": round(float(d.mean()) - 1.96 * sd, 3),
                    "loa_high": round(float(d.mean()) + 1.96 * sd, 3),
                    "within": f"{int(within.sum())}/{d.size}", "tolerance": rule})
    return pd.DataFrame(out)


def _builtin() -> Any:
    from wearflow.solutions.skdh import SkdhSolution
    return SkdhSolution.from_config(SolutionConfig(name="wrist", pipeline="builtin:wrist"))


def run_stream(rec: Recording, tz: str) -> tuple[dict[str, pd.DataFrame], float]:
    t = time.process_time()
    out = run_wrist_stream(lambda: recording_chunks(rec, 1 << 18), rec.sampling_rate_hz, tz)
    return out.tables, time.process_time() - t


def with_gap(rec: Recording, start_s: float, length_s: float) -> Recording:
    """``rec`` without its samples in [start_s, start_s + length_s): a logging gap."""
    keep = (rec.time_s < start_s) | (rec.time_s >= start_s + length_s)
    temp = None if rec.temperature_c is None else rec.temperature_c[keep]
    return replace(rec, time_s=rec.time_s[keep], accel_g=rec.accel_g[keep], temperature_c=temp,
                   extremes=None, flags=(*rec.flags, f"gap_s={length_s:.1f}"))


def compare_both(solution: Any, rec: Recording, truth: GroundTruth | HardTruth, label: str,
                 rows: list[dict[str, Any]]) -> None:
    """Both solutions on ``rec``: against each other and each against the truth; their
    CPU on stderr."""
    stream, cpu = run_stream(rec, truth.time_zone)
    t = time.process_time()
    ref = dict(solution.run(rec, {"time_zone": truth.time_zone}).tables)
    ref_cpu = time.process_time() - t
    hours = rec.duration_s / 3600
    print(f"# {label}: stream {hours / cpu:.1f} h/CPU-s, builtin {hours / ref_cpu:.1f} "
          "h/CPU-s (in process)", file=sys.stderr)
    compare(stream, ref, label, rows)
    compare_truth(stream, truth, rec, label, "stream", rows)
    compare_truth(ref, truth, rec, label, "builtin", rows)


def synthetic(seeds: Sequence[int], days: float, rates: Sequence[float],
              rows: list[dict[str, Any]]) -> None:
    """Seed i at ``rates[i % len(rates)]``; every other seed with a 30-minute gap in the
    afternoon of its second day."""
    solution = _builtin()
    for i, seed in enumerate(seeds):
        rate = rates[i % len(rates)]
        rec, truth = generate_recording(seed=seed, days=days, sampling_rate_hz=rate,
                                        time_zone="Europe/Berlin")
        label = f"synthetic seed={seed} {days} d {rate:g} Hz"
        if i % 2 == 1:
            gap_at = float(rec.time_s[0]) + 86400.0 + 6 * 3600.0
            rec = with_gap(rec, gap_at, 1800.0)
            label += " gap 30 min"
        compare_both(solution, rec, truth, label, rows)


def hard(seeds: Sequence[int], days: Sequence[float], rates: Sequence[float],
         rows: list[dict[str, Any]]) -> None:
    """Seed i of :func:`generate_hard_recording` for ``days[i % ...]`` at ``rates[i % ...]``."""
    solution = _builtin()
    for i, seed in enumerate(seeds):
        n_days, rate = days[i % len(days)], rates[i % len(rates)]
        rec, truth = generate_hard_recording(seed=seed, days=n_days, sampling_rate_hz=rate)
        label = f"hard seed={seed} {n_days:g} d {rate:g} Hz"
        compare_both(solution, rec, truth, label, rows)


def real(rows: list[dict[str, Any]], min_hours: float = 2.5) -> None:
    solution = _builtin()
    for folder in REAL_CANDIDATES:
        for path in sorted((REAL / folder).glob("*")):
            try:
                rec = read_recording(path.read_bytes(), str(path))
            except Exception as exc:  # a file this reader refuses is not part of the figure
                print(f"# skipped {path.name}: {type(exc).__name__}", file=sys.stderr)
                continue
            if rec.duration_s < min_hours * 3600:
                continue
            label = f"{folder}/{path.name}"
            stream, _ = run_stream(rec, "UTC")
            try:
                ref = dict(solution.run(rec, {"time_zone": "UTC"}).tables)
            except Exception as exc:  # builtin:wrist fails on some real files (field notes)
                print(f"# builtin:wrist failed on {label}: {exc}", file=sys.stderr)
                continue
            print(f"# real {label}: {rec.duration_s / 3600:.2f} h, tables "
                  f"{sorted(ref)}", file=sys.stderr)
            compare(stream, ref, label, rows)


# ---------------------------------------------------------------- speed and memory

def lazy_chunks(days: float, rate: float, chunk: int, seed: int = 1) -> Iterator[SampleChunk]:
    """A generated recording, chunk by chunk (never whole in memory): gravity turning
    slowly, sensor noise, short movements, a skin temperature with a daily swing."""
    n = int(days * 86400 * rate)
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, 0.004, size=(chunk, 3))
    bursts = rng.normal(0.0, 0.3, size=(chunk, 3))
    t0 = 1.77e9
    for i in range(0, n, chunk):
        m = min(chunk, n - i)
        t = t0 + (i + np.arange(m)) / rate
        phase = 2 * np.pi * t / 5400.0
        g = np.column_stack((np.sin(phase), np.cos(phase) * 0.6, np.cos(phase) * 0.8))
        a = g + noise[:m]
        if (i // chunk) % 3 == 0:
            a += bursts[:m]
        temp = 32.0 + np.sin(2 * np.pi * t / 86400.0)
        yield SampleChunk(t, a, temp)


def _child(days: float, rate: float, chunk: int) -> None:
    """In a child process: CPU of generating alone, then of generating + both passes."""
    t = time.process_time()
    for _ in range(2):  # the pipeline reads the chunks twice
        for _c in lazy_chunks(days, rate, chunk):
            pass
    gen = time.process_time() - t
    t = time.process_time()
    run_wrist_stream(lambda: lazy_chunks(days, rate, chunk), rate, "UTC")
    both = time.process_time() - t
    hwm = 0
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
    if not hwm:
        hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"{gen} {both} {hwm}")


def speed(days: float, rate: float = 100.0, chunk: int = 1 << 18) -> None:
    done = subprocess.run([sys.executable, "-m", "benchmarks.wrist_stream_agreement",
                           "--child", str(days), str(rate), str(chunk)],
                          capture_output=True, text=True, check=True)
    gen, both, hwm = (float(v) for v in done.stdout.split())
    hours = days * 24
    kernels = both - gen
    print(f"speed: {hours / kernels:.1f} h/CPU-s (kernels: {kernels:.1f} CPU-s for {hours:g} h "
          f"at {rate:g} Hz; generating the chunks: {gen:.1f} CPU-s, not counted); "
          f"{hours / both:.1f} h/CPU-s with generation")
    print(f"peak_rss: {hwm / 1e9:.3f} GB (child process, chunks of {chunk} samples, "
          f"{days:g} d at {rate:g} Hz)")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "--child":
        _child(float(args[1]), float(args[2]), int(args[3]))
        return 0
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="*", default=[3, 8, 13, 21, 34, 55])
    parser.add_argument("--days", type=float, default=3.0)
    parser.add_argument("--rates", type=float, nargs="+", default=[25.0, 50.0, 100.0])
    parser.add_argument("--hard-seeds", type=int, nargs="*", default=list(range(101, 113)))
    parser.add_argument("--hard-days", type=float, nargs="+", default=[3.0, 4.0, 3.0, 4.0])
    parser.add_argument("--hard-rates", type=float, nargs="+", default=[25.0, 50.0, 100.0, 25.0])
    parser.add_argument("--no-real", action="store_true")
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--speed-days", type=float, nargs="*", default=[7.0])
    parser.add_argument("--rows", help="write every compared value to this CSV file")
    parser.add_argument("--from-rows", help="only summarise a CSV written by --rows")
    opts = parser.parse_args(args)
    if opts.from_rows:
        print(summarise(pd.read_csv(opts.from_rows).to_dict("records")).to_string(index=False))
        return 0
    rows: list[dict[str, Any]] = []
    if opts.seeds:
        synthetic(opts.seeds, opts.days, opts.rates, rows)
    if opts.hard_seeds:
        hard(opts.hard_seeds, opts.hard_days, opts.hard_rates, rows)
    if not opts.no_real:
        real(rows)
    if rows and opts.rows:
        pd.DataFrame(rows).to_csv(opts.rows, index=False)
    if rows:
        with pd.option_context("display.width", 200, "display.max_rows", 200):
            print(summarise(rows).to_string(index=False))
    if not opts.no_speed:
        for days in opts.speed_days:
            speed(days)
    return 0


if __name__ == "__main__":
    sys.exit(main())
