"""Per-day wake activity endpoints over the 5-s ENMO epochs of each wake segment.

Mirrors, from ``skdh.activity.endpoints`` (0.17.18), as ActivityLevelClassification
runs them for builtin:wrist (values start at 0.0 each day, segments accumulate):

- ``IntensityGradient``: histogram of the epochs in 25 mg bins up to 4 g (and one to
  8 g), in minutes, summed over the day's segments; a straight-line fit of
  log(minutes) on log(bin middle in mg) over the non-empty bins: slope, intercept, r²;
- ``MaxAcceleration`` (6, 15, 60 min; and 300, 600 min) and ``MinAcceleration``
  (300 min): the max/min of the moving mean over that many minutes of epochs within a
  segment, over the day's segments; a segment shorter than the window contributes
  nothing for it and the longer ones. The day's value starts at 0.0, so the minimum
  is never above 0 (as SKDH reports).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

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
