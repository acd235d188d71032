"""The streaming wrist pipeline: two passes over chunks -> builtin:wrist's tables.

Table and column names, units and day/night definitions are builtin:wrist's
(``detach_wear``, ``sleep``, ``activity_level_classification``); the columns
this pipeline does not compute yet (sleep fragmentation, intensity gradient,
max/min acceleration, entropies, fragmentation) are left out rather than filled
with something else. See docs/wrist-stream.md for what agrees and what is left.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from wearflow._heap import release_free_heap
from wearflow.streaming.activity import activity_days
from wearflow.streaming.calibrate import CalibrationResult, calibration_error_g, fit_calibration
from wearflow.streaming.chunks import ChunkLike
from wearflow.streaming.days import day_windows
from wearflow.streaming.features import epoch_pass
from wearflow.streaming.fragmentation import sleep_fragmentation
from wearflow.streaming.grid import Seconds
from wearflow.streaming.minutes import minute_series
from wearflow.streaming.single_read import read_once
from wearflow.streaming.sleep import NightResult, nights
from wearflow.streaming.wear import DETACH_MIN_S, detach_wear, never_moved
from wearflow.streaming.wear_accel import accel_threshold_wear

ChunkFactory = Callable[[], Iterable[ChunkLike]]
"""Gives a fresh iteration over the recording's chunks (called once per pass)."""


@dataclass(frozen=True)
class StreamResult:
    """The tables, the calibration found and QC flags; the calibration error before and
    after it as builtin:wrist measures it for qc.json (None: no still window)."""

    tables: dict[str, pd.DataFrame]
    calibration: CalibrationResult
    flags: tuple[str, ...]
    error_before_g: float | None = None
    error_after_g: float | None = None


def run_wrist_stream(chunks: ChunkFactory, sampling_rate_hz: float, time_zone: str = "UTC"
                     ) -> StreamResult:
    """Run both passes and every algorithm: pass 2 within pass 1's read once the
    calibration is accepted, so the file is decoded once and its head again
    (:mod:`wearflow.streaming.single_read`; otherwise twice); the 1-s table on disk,
    read a day at a time (:mod:`wearflow.streaming.spill`), so memory does not grow with
    the recording."""
    flags: list[str] = []
    first = read_once(chunks, sampling_rate_hz)  # pass 2 too, once the fit is accepted
    still, first_features = first.still, first.features
    cal = first.calibration or fit_calibration(still, sampling_rate_hz)
    if not cal.applied:
        flags.append(f"warning:CalibrateAccelerometer:{cal.message}")
    before = calibration_error_g(still, sampling_rate_hz)
    errors = (before, calibration_error_g(still, sampling_rate_hz, cal.calibration)
              if cal.applied else before)
    has_temperature = still.has_temperature
    del still, first
    release_free_heap()  # each step's freed arrays, so they do not add to the next's peak
    features = first_features or epoch_pass(chunks(), cal.calibration,
                                            extremes=not has_temperature)
    release_free_heap()
    with features.grid as grid:  # on disk, read a day at a time
        if features.n_samples == 0:
            return StreamResult({}, cal, tuple(flags), *errors)
        tables = _tables(grid, features.n_samples, features.last_time_s,
                         features.has_temperature, sampling_rate_hz, time_zone, flags)
    return StreamResult(tables, cal, tuple(flags), *errors)


def _tables(grid: Seconds, n_samples: int, last: float, has_temperature: bool,
            sampling_rate_hz: float, time_zone: str, flags: list[str]
            ) -> dict[str, pd.DataFrame]:
    """Every algorithm on the recording's seconds; QC flags are added to ``flags``."""
    wear_table = True
    if n_samples < int(DETACH_MIN_S * sampling_rate_hz):
        # DETACH raises on a recording shorter than its 5-minute windows; builtin:wrist
        # then gives a never-moved device zero wear, and skips the step otherwise
        # (skdh_core.run_steps): later steps assume wear throughout
        if never_moved(grid):
            wear = np.empty((0, 2))
            flags.append("never_worn:DETACH:no movement in the whole recording, zero wear")
        else:
            wear, wear_table = np.array([[grid.first_s, last]]), False
            flags.append("skipped:DETACH:recording too short")
    elif has_temperature:
        wear = detach_wear(grid, last)
    else:
        wear = accel_threshold_wear(grid, last)
        flags.append("substituted:DETACH:no temperature, used AccelThresholdWearDetection")
    release_free_heap()
    first = float(grid.first_s)
    found = nights(grid, wear, day_windows(first, last, 12, time_zone),
                   sampling_rate_hz=sampling_rate_hz)
    release_free_heap()
    tso = [n.tso_s for n in found if n.tso_s is not None]
    calendar = day_windows(first, last, 0, time_zone)
    days = activity_days(grid, wear, tso, calendar)
    release_free_heap()
    classified = np.array([[w.start_s, w.end_s] for w, row in zip(calendar, days, strict=True)
                           if row["n_wear_wake_hours"] == row["n_wear_wake_hours"]]
                          ).reshape(-1, 2)
    tables = {
        "sleep": _sleep_table(found),
        "activity_level_classification": pd.DataFrame(days),
        "minute_series": minute_series(grid, last, wear, found, classified),
    }
    if wear_table:
        tables["detach_wear"] = _wear_table(wear)
    release_free_heap()
    return tables


def _iso(seconds: np.ndarray) -> list[str]:
    stamps = pd.to_datetime(np.round(seconds, 3), unit="s", utc=True)
    return [t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" for t in stamps]


def _wear_table(wear: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({
        "start_utc": pd.array(_iso(wear[:, 0]), dtype="string"),
        "end_utc": pd.array(_iso(wear[:, 1]), dtype="string"),
        "duration_h": np.round((wear[:, 1] - wear[:, 0]) / 3600.0, 6),
    })


SLEEP_COLUMNS = ("day_n", "date", "day_start_timestamp", "day_end_timestamp", "total_minutes",
                 "wear_minutes", "tso_start_timestamp", "tso_start", "tso_duration_min",
                 "total_sleep_time_min", "percent_time_asleep_pct", "number_of_wake_bouts",
                 "sleep_onset_latency_min", "wake_after_sleep_onset_min",
                 "average_sleep_duration_min", "average_wake_duration_min",
                 "sleep_wake_transition_probability", "wake_sleep_transition_probability",
                 "sleep_gini_index", "wake_gini_index", "sleep_average_hazard",
                 "wake_average_hazard", "sleep_power_law_distribution",
                 "wake_power_law_distribution", "tso_source")
"""The columns of builtin:wrist's ``sleep`` table this pipeline computes, in its order."""
SLEEP_TEXT_COLUMNS = frozenset({"date", "day_start_timestamp", "day_end_timestamp", "tso_start",
                                "tso_source"})


def _sleep_table(found: list[NightResult]) -> pd.DataFrame:
    rows: list[dict[str, object]] = []
    for night in found:
        day = night.day
        row: dict[str, object] = {
            "day_n": day.day_n, "date": day.date,
            "day_start_timestamp": day.local_start.strftime("%Y-%m-%d %H:%M:%S.%f"),
            "day_end_timestamp": day.local_end.strftime("%Y-%m-%d %H:%M:%S.%f"),
            "total_minutes": round((day.end_s - day.start_s) / 60.0, 1),
            "wear_minutes": night.wear_minutes,
            "tso_start_timestamp": np.nan, "tso_start": None, "tso_duration_min": np.nan,
            "total_sleep_time_min": np.nan, "percent_time_asleep_pct": np.nan,
            "number_of_wake_bouts": np.nan, "sleep_onset_latency_min": np.nan,
            "wake_after_sleep_onset_min": np.nan, "tso_source": None,
        }
        if night.tso_s is not None and night.tso_minutes is not None:
            start, end = night.tso_s
            local = pd.Timestamp(start, unit="s", tz="UTC").tz_convert(day.local_start.tzinfo)
            row.update(tso_start_timestamp=start, tso_duration_min=(end - start) / 60.0,
                       tso_start=local.strftime("%Y-%m-%d %H:%M:%S.%f"),
                       tso_source="algorithm")
            pred = night.predictions[night.tso_minutes[0]:night.tso_minutes[1]]
            if pred.size:
                row.update(_sleep_endpoints(pred))
                row.update(sleep_fragmentation(pred))
        rows.append(row)
    table = pd.DataFrame(rows, columns=list(SLEEP_COLUMNS))
    # typed even without a night (an empty table's columns would be untyped objects,
    # read back from Parquet as text)
    return table.astype({c: ("int64" if c == "day_n" else "string" if c in SLEEP_TEXT_COLUMNS
                             else "float64") for c in SLEEP_COLUMNS})


def _sleep_endpoints(pred: np.ndarray) -> dict[str, float]:
    """SKDH's TotalSleepTime, PercentTimeAsleep, NumberWakeBouts, SleepOnsetLatency,
    WakeAfterSleepOnset (``skdh.sleep.endpoints``)."""
    out: dict[str, float] = {
        "total_sleep_time_min": float(pred.sum()),
        "percent_time_asleep_pct": round(100.0 * float(pred.sum()) / pred.size, 3),
        "number_of_wake_bouts": float(max(np.flatnonzero(np.diff(pred) == -1).size - 1, 0)),
    }
    if pred.any():
        first, last = np.flatnonzero(pred)[[0, -1]]
        out["sleep_onset_latency_min"] = float(np.argmax(pred))
        out["wake_after_sleep_onset_min"] = float((last - first) - pred[first:last].sum())
    return out
