"""Per-day wake activity endpoints over the 5-s ENMO epochs of each wake segment.

Mirrors, from ``skdh.activity.endpoints`` (0.17.18), as ActivityLevelClassification
runs them for builtin:wrist (values start at 0.0 each day, segments accumulate):

- ``IntensityGradient``: histogram of the epochs in 25 mg bins up to 4 g (and one to
  8 g), in minutes, summed over the day's segments; a straight-line fit of
  log(minutes) on log(bin middle in mg) over the non-empty bins: slope, intercept, r²;
- ``FragmentationEndpoints`` (sed, SLPA, MVPA) and ``EqualAverageDurationThreshold``
  on the segments' 1-minute ENMO;
- ``MaxAcceleration`` (6, 15, 60 min; and 300, 600 min) and ``MinAcceleration``
  (300 min): the max/min of the moving mean over that many minutes of epochs within a
  segment, over the day's segments; a segment shorter than the window contributes
  nothing for it and the longer ones. The day's value starts at 0.0, so the minimum
  is never above 0 (as SKDH reports).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from wearflow.streaming.fragmentation import (
    average_duration,
    average_hazard,
    gini_index,
    power_law,
    transition_probability,
)

FloatArray = npt.NDArray[np.float64]

IG_LEVELS_G = np.array([*range(0, 4001, 25), 8000], dtype=np.float64) / 1000
IG_MIDDLES_G = (IG_LEVELS_G[1:] + IG_LEVELS_G[:-1]) / 2
MAX_ACC_MIN = (6, 15, 60, 300, 600)
MIN_ACC_MIN = (300,)


def wake_endpoints(segments: list[FloatArray], epochs_per_min: int = 12
                   ) -> dict[str, float]:
    """The day's ``wake_intensity_gradient`` ... ``wake_min_acc_300min_g`` columns from the
    5-s ENMO epochs (g) of each wake segment."""
    out: dict[str, float] = {"wake_intensity_gradient": 0.0, "wake_ig_intercept": 0.0,
                             "wake_ig_r_squared": 0.0}
    out.update({f"wake_max_acc_{m}min_g": 0.0 for m in MAX_ACC_MIN})
    out.update({f"wake_min_acc_{m}min_g": 0.0 for m in MIN_ACC_MIN})
    if not segments:
        return out
    hist = np.zeros(IG_MIDDLES_G.size)
    for metric in segments:
        hist += np.histogram(metric, bins=IG_LEVELS_G)[0] / epochs_per_min
        _extreme(out, metric, epochs_per_min, "max", MAX_ACC_MIN)
        _extreme(out, metric, epochs_per_min, "min", MIN_ACC_MIN)
    lx = np.log(IG_MIDDLES_G[hist > 0] * 1000)
    ly = np.log(hist[hist > 0])
    if ly.size <= 1:
        slope = intercept = r2 = float("nan")
    else:
        slope, intercept = (float(v) for v in np.polyfit(lx, ly, 1))
        r2 = float(np.corrcoef(lx, ly)[0, 1] ** 2)
    out.update(wake_intensity_gradient=slope, wake_ig_intercept=intercept,
               wake_ig_r_squared=r2)
    return out


def _extreme(out: dict[str, float], metric: FloatArray, epochs_per_min: int, kind: str,
             minutes: tuple[int, ...]) -> None:
    for m in minutes:
        n = m * epochs_per_min
        if metric.size < n:
            return  # SKDH returns on the first window too long for the segment
        means = np.lib.stride_tricks.sliding_window_view(metric, n).mean(axis=1)
        key = f"wake_{kind}_acc_{m}min_g"
        out[key] = (float(np.nanmax([means.max(), out[key]])) if kind == "max"
                    else float(np.nanmin([means.min(), out[key]])))


FRAGMENTATION_LEVELS: dict[str, tuple[float, float]] = {
    "sed": (-1e5, 0.05), "slpa": (-1e5, 0.11), "mvpa": (0.11, 1e5)}
"""``FragmentationEndpoints`` levels with builtin:wrist's cut-points (g)."""
EQUAL_DURATION_THRESHOLDS_G = np.arange(0.0001, 0.1, 0.0001)


def minute_metric(metric: FloatArray, epochs_per_min: int = 12) -> FloatArray:
    """A segment's 1-minute ENMO: means of consecutive minutes of epochs from its start
    (SKDH's ``acc_metric_60``, the tail dropped)."""
    n = metric.size // epochs_per_min
    out: FloatArray = metric[:n * epochs_per_min].reshape(n, epochs_per_min).mean(axis=1)
    return out


def _true_runs(mask: npt.NDArray[np.bool_]) -> tuple[list[int], list[int]]:
    """Lengths of the runs of True and of False."""
    if mask.size == 0:
        return [], []
    starts = np.flatnonzero(np.r_[True, mask[1:] != mask[:-1]])
    lengths = np.diff(np.r_[starts, mask.size])
    vals = mask[starts]
    return lengths[vals].tolist(), lengths[~vals].tolist()


def _mean_run_lengths(minutes: list[FloatArray], thresholds: FloatArray
                      ) -> tuple[FloatArray, FloatArray]:
    """Per threshold, the mean length of the runs of minutes at or below it and of those
    above it, over every segment (0.0 without such runs, as ``average_duration``): the
    total length over the number of runs, for every threshold at once."""
    n_le = np.zeros(thresholds.size, dtype=np.int64)
    n_gt = np.zeros(thresholds.size, dtype=np.int64)
    runs_le = np.zeros(thresholds.size, dtype=np.int64)
    runs_gt = np.zeros(thresholds.size, dtype=np.int64)
    for m in minutes:
        if m.size == 0:
            continue
        below = m[None, :] <= thresholds[:, None]
        n_le += below.sum(axis=1)
        n_gt += m.size - below.sum(axis=1)
        runs_le += below[:, 0] + (below[:, 1:] & ~below[:, :-1]).sum(axis=1)
        runs_gt += ~below[:, 0] + (~below[:, 1:] & below[:, :-1]).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu_le = np.where(runs_le > 0, n_le / np.maximum(runs_le, 1), 0.0)
        mu_gt = np.where(runs_gt > 0, n_gt / np.maximum(runs_gt, 1), 0.0)
    return mu_le, mu_gt


def wake_fragmentation(segments: list[FloatArray]) -> dict[str, float]:
    """The day's ``wake_<sed|slpa|mvpa>_*`` fragmentation columns and the equal average
    duration threshold (``FragmentationEndpoints``, ``EqualAverageDurationThreshold``)
    from the 5-s ENMO epochs of each wake segment; 0.0 without segments, as SKDH."""
    out: dict[str, float] = {}
    names = ("avg_duration", "transition_probability", "gini_index", "avg_hazard",
             "power_law_distribution")
    for level in FRAGMENTATION_LEVELS:
        out.update({f"wake_{level}_{n}": 0.0 for n in names})
    out["wake_threshold_equal_avg_duration_g"] = 0.0
    out["wake_duration_equal_avg_duration_min"] = 0.0
    if not segments:
        return out
    minutes = [minute_metric(m) for m in segments]
    for level, (lo, hi) in FRAGMENTATION_LEVELS.items():
        lens: list[int] = []
        for m in minutes:
            lens.extend(_true_runs((m >= lo) & (m < hi))[0])
        arr = np.asarray(lens, dtype=np.int64)
        out[f"wake_{level}_avg_duration"] = average_duration(arr)
        out[f"wake_{level}_transition_probability"] = transition_probability(arr)
        out[f"wake_{level}_gini_index"] = gini_index(arr)
        out[f"wake_{level}_avg_hazard"] = average_hazard(arr)
        out[f"wake_{level}_power_law_distribution"] = power_law(arr)
    mu_le, mu_gt = _mean_run_lengths(minutes, EQUAL_DURATION_THRESHOLDS_G)
    ok = ~(np.isnan(mu_le) | np.isnan(mu_gt))
    if np.any(ok):
        idx = int(np.argmin(np.abs(mu_le[ok] - mu_gt[ok])))
        out["wake_threshold_equal_avg_duration_g"] = float(EQUAL_DURATION_THRESHOLDS_G[ok][idx])
        out["wake_duration_equal_avg_duration_min"] = float(mu_le[ok][idx])
    return out
