"""builtin:wrist's ``minute_series`` table from the streaming results.

The columns and their meaning are those of
``wearflow.solutions.skdh_steps.minute_series``: per UTC minute from the first
sample's to the last's, ``wear_fraction`` (of the minute inside wear bouts),
``sleep_window`` and ``asleep`` (the night's TSO and the Cole-Kripke sleep
minutes within it), ``angle_deg`` (mean 5-s arm angle over the sleep windows'
days), ``enmo_g`` (mean ENMO of the classified 5-s epochs) and ``<level>_s``
(seconds of classified epochs per intensity level). Here every quantity is on the
clock grid already, so each minute is a sum of whole 5-s epochs.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from wearflow.streaming.activity import EPOCH_S, LEVEL_BOUNDS, epochs, subtract
from wearflow.streaming.grid import DAY_S, SecondGrid, Seconds
from wearflow.streaming.sleep import NightResult

FloatArray = npt.NDArray[np.float64]
LEVEL_NAMES = (("sedentary", "sed"), ("light", "light"), ("moderate", "mod"),
               ("vigorous", "vig"))


def minute_series(seconds: Seconds, last_time_s: float, wear_s: FloatArray,
                  found: list[NightResult], activity_days_s: FloatArray,
                  window_s: int = DAY_S) -> pd.DataFrame:
    """The ``minute_series`` table (see the module docstring). ``activity_days_s``: the
    (k, 2) calendar days whose epochs were classified (enough wear); the arm angle is
    kept only over the nights' noon-to-noon windows, as Sleep computes it only there.
    The seconds are read ``window_s`` (a multiple of 60) at a time, on whole minutes."""
    first_min = int(np.floor(seconds.first_s / 60.0))
    n = int(np.floor(last_time_s / 60.0)) - first_min + 1
    edges = 60.0 * (first_min + np.arange(n + 1, dtype=np.float64))
    stamps = np.datetime_as_string(edges[:-1].astype(np.int64).astype("datetime64[s]"),
                                   unit="ms")
    window = np.zeros(n, dtype=np.int64)
    asleep = np.zeros(n, dtype=np.int64)
    tso = []
    for night in found:
        if night.tso_minutes is None or night.tso_s is None:
            continue
        tso.append(night.tso_s)
        k0, k1 = night.tso_minutes
        k = np.arange(k0, min(k1, night.predictions.size))
        idx = ((night.minute_start_s + 60.0 * k) // 60.0).astype(np.int64) - first_min
        ok = (idx >= 0) & (idx < n)
        window[idx[ok]] = 1
        asleep[idx[ok]] |= night.predictions[k[ok]] == 1
    tso_arr = np.asarray(tso, dtype=np.float64).reshape(-1, 2)
    segments = (_long(subtract(wear_s, tso_arr)), subtract(wear_s, subtract(wear_s, tso_arr)))
    sums = np.zeros((3 + len(LEVEL_NAMES), n))  # angle, its count, ENMO, level epochs
    count = np.zeros(n)
    # windows start on whole minutes of the clock: each 5-s epoch falls in one
    lo = 0
    while lo < seconds.n:
        hi = lo + window_s - int(seconds.first_s + lo) % 60
        _add_epochs(seconds.window(lo, hi), first_min, n, found, segments,
                    activity_days_s, sums, count)
        lo = hi
    out: dict[str, object] = {
        "minute_utc": np.char.add(stamps, "Z"),
        "wear_fraction": _fraction(wear_s, edges),
        "sleep_window": window,
        "asleep": asleep,
        "angle_deg": _ratio(sums[0], sums[1]),
        "enmo_g": _ratio(sums[2], count),
    }
    for j, (name, _) in enumerate(LEVEL_NAMES):
        out[f"{name}_s"] = EPOCH_S * sums[3 + j]
    return pd.DataFrame(out)


def _add_epochs(grid: SecondGrid, first_min: int, n: int, found: list[NightResult],
                segments: tuple[FloatArray, FloatArray], activity_days_s: FloatArray,
                sums: FloatArray, count: FloatArray) -> None:
    """Add the 5-s epochs of ``grid`` to the per-minute ``sums`` (angle sum and count,
    ENMO sum, epochs per level) and ``count`` (classified epochs)."""
    t5, enmo, whole, angle = epochs(grid)
    minute = ((t5 // 60.0).astype(np.int64) - first_min)
    inside = (minute >= 0) & (minute < n)
    in_night = np.zeros(t5.size, dtype=bool)
    for night in found:
        in_night |= (t5 >= night.day.start_s) & (t5 < night.day.end_s)
    angle = np.where(in_night, angle, np.nan)
    has = inside & ~np.isnan(angle)
    sums[0] += np.bincount(minute[has], weights=angle[has], minlength=n)
    sums[1] += np.bincount(minute[has], minlength=n)
    classified = np.zeros(t5.size, dtype=bool)
    for segs in segments:
        for a, b in segs:
            classified |= (t5 >= a) & (t5 + EPOCH_S <= b)
    in_day = np.zeros(t5.size, dtype=bool)
    for a, b in activity_days_s:
        in_day |= (t5 >= a) & (t5 + EPOCH_S <= b)
    classified &= whole & inside & in_day
    m = minute[classified]
    count += np.bincount(m, minlength=n)
    sums[2] += np.bincount(m, weights=enmo[classified], minlength=n)
    for j, (_, key) in enumerate(LEVEL_NAMES):
        lo, hi = LEVEL_BOUNDS[key]
        sel = classified & (enmo >= lo) & (enmo < hi)
        sums[3 + j] += np.bincount(minute[sel], minlength=n)


def _long(segs: FloatArray) -> FloatArray:
    long: FloatArray = segs[(segs[:, 1] - segs[:, 0]) > 60.0]
    return long


def _ratio(num: FloatArray, den: FloatArray) -> FloatArray:
    out = np.full(num.size, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _fraction(bouts: FloatArray, edges: FloatArray) -> FloatArray:
    """Fraction of each minute [edges[i], edges[i+1]) inside the bouts."""
    covered = np.zeros(edges.size - 1)
    for a, b in bouts:
        lo = np.clip(edges[:-1], a, b)
        hi = np.clip(edges[1:], a, b)
        covered += hi - lo
    out: FloatArray = np.clip(covered / 60.0, 0.0, 1.0)
    return out
