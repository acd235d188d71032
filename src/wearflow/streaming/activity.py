"""Minutes per activity level per day, as SKDH's ``ActivityLevelClassification`` counts.

Mirrors ``skdh.activity.ActivityLevelClassification.predict`` (0.17.18) with
builtin:wrist's parameters: 5-s epochs of mean ENMO (negative values set to 0
before the mean, ``trim_zero``); levels sedentary < 0.05 g <= light < 0.11 g <=
moderate < 0.44 g <= vigorous, MVPA >= 0.11 g; per calendar day (0-24) the wear
hours, the wake wear (wear outside the night's TSO) and the sleep wear; a day
with fewer than ``min_wear_time`` wear hours gets no activity values; epoch
minutes per level; bout minutes by ``get_activity_bouts`` with bout metric 4
(GGIR's: 80% of the bout's epochs in the level, first and last epoch in it, no
break longer than a minute) for 1, 5 and 10-minute bouts, per wake segment; the
other wake endpoints in ``activity_endpoints.py`` and ``signal_features.py``.

Differences: epochs are on the clock's 5-s grid and an epoch counts when it lies
wholly inside a segment (SKDH starts the epochs at each segment's first sample).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from wearflow.streaming.activity_endpoints import wake_endpoints, wake_fragmentation
from wearflow.streaming.days import DayWindow
from wearflow.streaming.grid import SecondGrid, Seconds
from wearflow.streaming.signal_features import signal_feature_columns, wake_signal_features

FloatArray = npt.NDArray[np.float64]

EPOCH_S = 5
LEVEL_BOUNDS: dict[str, tuple[float, float]] = {
    "sed": (-1e5, 0.05), "light": (0.05, 0.11), "mod": (0.11, 0.44), "vig": (0.44, 1e5),
    "mvpa": (0.11, 1e5),
}
"""SKDH's ``get_level_thresholds`` with builtin:wrist's cut-points (g)."""
BOUT_LEVELS = ("mvpa", "sed", "light", "mod", "vig")
EPOCH_LEVELS = ("mvpa", "sed", "light", "mod", "vig")


@dataclass(frozen=True)
class ActivityParameters:
    """ActivityLevelClassification's parameters (the values of builtin:wrist)."""

    min_wear_time_h: float = 10.0
    bout_lens_min: tuple[int, ...] = (1, 5, 10)
    bout_criteria: float = 0.8


def activity_days(seconds: Seconds, wear_s: FloatArray, tso_s: list[tuple[float, float]],
                  windows: list[DayWindow], params: ActivityParameters = ActivityParameters()
                  ) -> list[dict[str, float | int | str]]:
    """One row per calendar day (the columns of builtin:wrist's table that are computed);
    each day reads only its own seconds."""
    rows = []
    for day in windows:
        t5, enmo, whole, _ = epochs(day_seconds(seconds, day.start_s, day.end_s))
        wear = _clip(wear_s, day.start_s, day.end_s)
        sleep = _clip(np.asarray(tso_s, dtype=np.float64).reshape(-1, 2), day.start_s,
                      day.end_s)
        wake = subtract(wear, sleep)
        asleep = subtract(wear, subtract(wear, sleep))
        row: dict[str, float | int | str] = {
            "date": day.date,
            "day_start_timestamp": day.local_start.strftime("%Y-%m-%d %H:%M:%S"),
            "day_end_timestamp": day.local_end.strftime("%Y-%m-%d %H:%M:%S"),
            "weekday": day.local_start.strftime("%A"),
            "day_n": day.day_n,
            "n_hours": round((day.end_s - day.start_s) / 3600.0, 1),
            "n_wear_hours": round(_length(wear) / 3600.0, 1),
            "n_wear_wake_hours": np.nan,
            "total_minutes": (day.end_s - day.start_s) / 60.0,
            "wear_minutes": _length(wear) / 60.0,
            "wear_wake_minutes": np.nan,
        }
        row.update(dict.fromkeys(wake_endpoints([]), np.nan))
        # builtin:wrist's column order: wake epochs, wake bouts, then sleep epochs
        for lvl in EPOCH_LEVELS:
            row[f"wake_{lvl}_5s_epoch_min"] = np.nan
        for lvl in BOUT_LEVELS:
            for b in params.bout_lens_min:
                row[f"wake_{lvl}_{b}min_bout_min"] = np.nan
        row.update(dict.fromkeys(wake_fragmentation([]), np.nan))
        row.update(dict.fromkeys(signal_feature_columns(), np.nan))
        for lvl in EPOCH_LEVELS:
            row[f"sleep_{lvl}_5s_epoch_min"] = np.nan
        if float(row["n_wear_hours"]) >= params.min_wear_time_h:
            row["n_wear_wake_hours"] = round(_length(wake) / 3600.0, 1)
            row["wear_wake_minutes"] = _length(wake) / 60.0
            for state, segs in (("wake", wake), ("sleep", asleep)):
                # SKDH skips wake segments of a minute or less (its endpoints need 60 s)
                segs = segs[(segs[:, 1] - segs[:, 0]) > 60.0] if state == "wake" else segs
                parts = [enmo[(t5 >= a) & (t5 + EPOCH_S <= b) & whole] for a, b in segs]
                for lvl in EPOCH_LEVELS:
                    lo, hi = LEVEL_BOUNDS[lvl]
                    n = sum(int(np.sum((p >= lo) & (p < hi))) for p in parts)
                    row[f"{state}_{lvl}_5s_epoch_min"] = n * EPOCH_S / 60.0
                if state == "wake":
                    row.update(wake_endpoints(parts))
                    row.update(wake_fragmentation(parts))
                    row.update(wake_signal_features(parts))
                    for lvl in BOUT_LEVELS:
                        lo, hi = LEVEL_BOUNDS[lvl]
                        for b in params.bout_lens_min:
                            row[f"wake_{lvl}_{b}min_bout_min"] = sum(
                                bout_minutes(p, lo, hi, b, params.bout_criteria) for p in parts)
        rows.append(row)
    return rows


def epochs(grid: SecondGrid
           ) -> tuple[FloatArray, FloatArray, npt.NDArray[np.bool_], FloatArray]:
    """5-s epochs on the clock grid: start (UTC s), mean ENMO, whether complete (every
    second has samples) and the arm z-angle of the mean vector (deg; NaN without samples)."""
    offset = int((-grid.first_s) % EPOCH_S)
    count, sums = grid.coarse(EPOCH_S, offset)
    starts = grid.first_s + offset + EPOCH_S * np.arange(count.size, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        enmo = sums[:, 6] / count
        mean = sums[:, 0:3] / count[:, None]
        angle = np.degrees(np.arctan(mean[:, 2] / np.sqrt(mean[:, 0] ** 2 + mean[:, 1] ** 2)))
    per_s = grid.count[offset:offset + count.size * EPOCH_S].reshape(-1, EPOCH_S)
    return starts, enmo, np.all(per_s > 0, axis=1), angle


def day_seconds(seconds: Seconds, start_s: float, end_s: float) -> SecondGrid:
    """The seconds from ``start_s`` to ``end_s`` (clipped to the recording) in memory."""
    return seconds.window(int(np.floor(start_s - seconds.first_s)),
                          int(np.ceil(end_s - seconds.first_s)))


def _clip(bouts: FloatArray, a: float, b: float) -> FloatArray:
    out = np.clip(bouts, a, b)
    out = out[out[:, 1] > out[:, 0]]
    return out


def _length(bouts: FloatArray) -> float:
    return float(np.sum(bouts[:, 1] - bouts[:, 0])) if bouts.size else 0.0


def subtract(bouts: FloatArray, remove: FloatArray) -> FloatArray:
    """Intervals of ``bouts`` outside every interval of ``remove``."""
    out: list[tuple[float, float]] = []
    for a, b in bouts:
        pieces = [(float(a), float(b))]
        for c, d in remove:
            nxt = []
            for x, y in pieces:
                if d <= x or c >= y:
                    nxt.append((x, y))
                    continue
                if c > x:
                    nxt.append((x, float(c)))
                if d < y:
                    nxt.append((float(d), y))
            pieces = nxt
        out.extend(pieces)
    return np.asarray(out, dtype=np.float64).reshape(-1, 2)


def bout_minutes(metric: FloatArray, lower: float, upper: float, bout_min: int,
                 criteria: float, epoch_s: float = EPOCH_S) -> float:
    """SKDH's ``get_activity_bouts`` with ``boutmetric=4`` (minutes in bouts)."""
    nbout = int(bout_min * (60 / epoch_s))
    if metric.size < nbout:
        return 0.0
    x = ((metric >= lower) & (metric < upper)).astype(np.int64)
    xt = x.astype(np.float64)
    look = np.zeros(x.size)
    n_break = int(60 / epoch_s) + 1
    i1 = int(np.floor((n_break + 1) / 2)) - 1
    i2 = int(np.ceil(x.size - n_break / 2))
    if x.size >= n_break:
        means = np.lib.stride_tricks.sliding_window_view(x, n_break).mean(axis=1)
        look[i1:i2] = means[:max(i2 - i1, 0)]
    xt[look == 0] = -(60 / epoch_s) * nbout
    rm = np.lib.stride_tricks.sliding_window_view(xt, nbout).mean(axis=1)
    p = np.flatnonzero(rm > criteria)
    p = p[(x[p] == 1) & (x[p + nbout - 1] == 1)]
    mark = np.zeros(x.size, dtype=bool)
    for gi in range(nbout):
        ind = p + gi
        mark[ind[(ind >= 0) & (ind < x.size)]] = True
    return float(np.sum(mark) * (epoch_s / 60))
