"""Acceleration-only wear detection, for recordings without temperature.

builtin:wrist replaces DETACH by SKDH's ``AccelThresholdWearDetection`` (default
parameters) when a recording has no temperature (``skdh_core._substitute``). This
mirrors ``AccelThresholdWearDetection.predict`` and ``_modify_wear_times`` (0.17.18)
on 1-s blocks: 60-minute windows every 15 minutes; a window is non-wear when at
least 2 axes have SD < 0.013 g and range < 0.067 g; windows past the last full one
take its value; then the GGIR/van Hees rescoring (3 iterations: short wear between
long non-wear dropped, setup criterion at the start). Windows are on the grid of
seconds from the first one (SKDH: samples from the first one).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from wearflow.streaming.grid import Seconds

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

WINDOW_S = 3600
SKIP_S = 900
SD_CRIT_G = 0.013
RANGE_CRIT_G = 0.067


def accel_threshold_wear(seconds: Seconds, last_time_s: float) -> FloatArray:
    """Wear bouts as (k, 2) UTC seconds [start, end), ends clipped to the last sample.
    ``seconds`` needs the per-second max (columns 8-10) and min (11-13) of each axis;
    they are read one 60-minute window at a time. A window without samples (a gap) is
    not non-wear (its SD is undefined)."""
    n = seconds.n
    n2 = (n - 1) // SKIP_S + 1 if n else 0
    n1 = (n - WINDOW_S) // SKIP_S + 1 if n >= WINDOW_S else 0
    nonwear = np.zeros(n2, dtype=bool)
    for k in range(n1):
        grid = seconds.window(k * SKIP_S, k * SKIP_S + WINDOW_S)
        has = grid.count > 0
        if not has.any():
            continue
        c = grid.count.sum()
        s, q = grid.sums[:, 0:3].sum(axis=0), grid.sums[:, 3:6].sum(axis=0)
        rng = grid.sums[has, 8:11].max(axis=0) - grid.sums[has, 11:14].min(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            sd = np.sqrt(np.maximum((q - s * s / c) / (c - 1.0), 0.0))
        nonwear[k] = int(np.sum((sd < SD_CRIT_G) & (rng < RANGE_CRIT_G))) >= 2
    if n2:
        nonwear[n1:n2] = nonwear[n1 - 1]  # SKDH: n1 - 1 is -1 (the last) when n1 == 0
    starts, stops = modify_wear_times(nonwear, SKIP_S // 60, True, (0, 0))
    bouts = seconds.first_s + np.column_stack((starts, stops)).astype(np.float64) * SKIP_S
    out: FloatArray = np.minimum(bouts, last_time_s)
    return out


def modify_wear_times(nonwear: npt.NDArray[np.bool_], wskip_min: int, apply_setup_rule: bool,
                      shipping_crit: tuple[int, int]) -> tuple[IntArray, IntArray]:
    """SKDH's ``AccelThresholdWearDetection._modify_wear_times``, line for line."""
    nph = int(60 / wskip_min)
    ch = np.flatnonzero(np.diff(nonwear.astype(np.int64))) + 1
    ch = np.insert(ch, [0, ch.size], [0, nonwear.size])
    if not nonwear[0]:
        ch = np.insert(ch, 0, 0)
    if not nonwear[-1]:
        ch = np.append(ch, nonwear.size)
    for _ in range(3):
        nw_times = (ch[1::2] - ch[0::2]) / nph
        w_times = (ch[2:-1:2] - ch[1:-1:2]) / nph
        with np.errstate(invalid="ignore", divide="ignore"):
            pct = w_times / (nw_times[0:-1] + nw_times[1:])
        thresh6 = np.flatnonzero((w_times <= 6) & (w_times > 3))
        thresh3 = np.flatnonzero(w_times <= 3)
        pct_thresh6 = thresh6[pct[thresh6] < 0.3]
        pct_thresh3 = thresh3[pct[thresh3] < 0.8]
        ship_start = np.flatnonzero((w_times <= 3) & (ch[2:-1:2] <= (shipping_crit[0] * nph)))
        ship_end = np.flatnonzero((w_times <= 3)
                                  & (ch[1:-1:2] >= ch[-1] - (shipping_crit[1] * nph)))
        ship_start = ship_start[nw_times[ship_start + 1] >= 1]
        ship_end = ship_end[nw_times[ship_end] >= 1]
        switch = np.concatenate((pct_thresh6 * 2 + 1, pct_thresh6 * 2 + 2,
                                 pct_thresh3 * 2 + 1, pct_thresh3 * 2 + 2,
                                 ship_start * 2 + 1, ship_start * 2 + 2,
                                 ship_end * 2 + 1, ship_end * 2 + 2))
        ch = np.delete(ch, switch)
    w_starts, w_stops = ch[1:-1:2], ch[2:-1:2]
    if apply_setup_rule and w_starts.size > 0 and w_starts[0] == 0 and w_stops[0] <= 3 * nph:
        w_starts, w_stops = w_starts[1:], w_stops[1:]
    return w_starts.astype(np.int64), w_stops.astype(np.int64)
