"""Wear by the DETACH rules on 1-s blocks.

Mirrors ``skdh.preprocessing.DETACH.predict`` (0.17.18, ``window_size=1``): the
acceleration SD of the 60 s after (forward) and before (backward) each second,
the share of the next/previous 5 minutes with at least ``n_axes`` axes under
``sd_thresh``, the 1-s mean temperature low-passed (2nd-order Butterworth,
0.005 Hz, zero phase) and its rate of change, 5-minute rolling max/min/mean of
those; then the same candidate starts, stops and bout loop.

Differences, all from working on 1-s blocks instead of samples: the 60-s SDs are
taken at each second (SKDH: at every sample, then sampled each second); the
5-minute shares count the 300 one-second values (SKDH: every sample's); the
backward window is the 60 blocks before the second (SKDH's is one sample later);
seconds without samples (gaps) take their temperature by linear interpolation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.signal import butter, sosfiltfilt

from wearflow.streaming.grid import DAY_S, SecondGrid, Seconds, window_sums

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_MINUTE = 60
_FIVE_MINUTES = 300
_MARGIN_S = 3_600  # read on either side of a window (the rules need 6 minutes)
DETACH_MIN_S = 300.0  # DETACH needs one 5-minute window of samples (wlen_5min)
STILL_SD_G = 0.013  # skdh_core.STILL_SD_G: a motionless device's noise


def never_moved(seconds: Seconds) -> bool:
    """skdh_core.never_moved on 1-s blocks: no consecutive-minute window with an axis
    SD of 0.013 g or more (the whole recording when shorter than a minute)."""
    n = seconds.n
    if n < _MINUTE:
        grid = seconds.window(0, n)
        c = float(grid.count.sum())
        if c < 2:
            return True
        s, q = grid.sums[:, 0:3].sum(axis=0), grid.sums[:, 3:6].sum(axis=0)
        sd = np.sqrt(np.maximum(q / c - (s / c) ** 2, 0.0))
        return bool(np.all(sd < STILL_SD_G))
    end = n // _MINUTE * _MINUTE
    for lo in range(0, end, DAY_S):
        grid = seconds.window(lo, min(lo + DAY_S, end))
        count, sums = grid.coarse(_MINUTE)
        per = count[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = sums[:, 0:3] / per
            sd = np.sqrt(np.maximum(sums[:, 3:6] / per - mean ** 2, 0.0))
        if not np.all(np.nan_to_num(sd) < STILL_SD_G):
            return False
    return True


@dataclass(frozen=True)
class DetachParameters:
    """DETACH's parameters (the values of builtin:wrist)."""

    sd_thresh_g: float = 0.008
    low_temperature_c: float = 26.0
    high_temperature_c: float = 30.0
    decrease_threshold_c_per_min: float = -0.2
    increase_threshold_c_per_min: float = 0.1
    n_axes_threshold: int = 2


def detach_wear(seconds: Seconds, last_time_s: float,
                params: DetachParameters = DetachParameters(), window_s: int = DAY_S,
                margin_s: int = _MARGIN_S) -> FloatArray:
    """Wear bouts as (k, 2) UTC seconds [start, end); the last bout ends at the last
    sample, as SKDH's does.

    The rules look at most 6 minutes ahead and 1 behind each second, and the low-passed
    temperature forgets its start within minutes (time constant 45 s), so the
    recording is read ``window_s`` at a time with ``margin_s`` on either side and only
    two marks per second are kept (where a non-wear bout may start, where one may stop):
    the same bouts as from the whole recording at once (``window_s`` >= its length),
    in memory that does not grow with it."""
    n = seconds.n
    if n == 0:
        return np.empty((0, 2))
    may_start = np.zeros(n, dtype=bool)
    may_stop = np.zeros(n, dtype=bool)
    for lo in range(0, n, window_s):
        hi = min(lo + window_s, n)
        grid = seconds.window(lo - margin_s, hi + margin_s)
        starts, stops = _marks(grid, params)
        skip = lo - max(lo - margin_s, 0)
        may_start[lo:hi] = starts[skip:skip + hi - lo]
        may_stop[lo:hi] = stops[skip:skip + hi - lo]
    nonwear: list[tuple[int, int]] = []
    prev_end = 0
    for index in np.flatnonzero(may_start):
        start = int(index)
        if start < prev_end:
            continue
        later = may_stop[start + _FIVE_MINUTES + 1:]  # the first stop 5 minutes on
        first = int(later.argmax()) if later.size else 0
        end = start + _FIVE_MINUTES + 1 + first if later.size and bool(later[first]) else n
        nonwear.append((start, end))
        prev_end = end
    return _wear_from_nonwear(nonwear, n, seconds.first_s, last_time_s)


def _marks(grid: SecondGrid, params: DetachParameters
           ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Per second of ``grid``: whether a non-wear bout may start there (DETACH's start
    candidates that pass its temperature test) and whether one may stop there."""
    n = grid.n
    n_fwd = _axes_still_forward(grid, params.sd_thresh_g)
    n_bwd = np.zeros(n, dtype=n_fwd.dtype)
    n_bwd[_MINUTE:] = n_fwd[:n - _MINUTE]
    # each per-second array is reduced to what the rules read as soon as it can be
    moving = n_fwd >= params.n_axes_threshold
    with np.errstate(invalid="ignore"):
        starts = moving & (_forward_mean(moving.astype(np.float64), _FIVE_MINUTES) >= 0.9)
        del moving
        moved_before = n_bwd >= params.n_axes_threshold
        quiet_before = (n_bwd == 0) & (_forward_mean(moved_before.astype(np.float64),
                                                     _FIVE_MINUTES) <= 0.5)
        del moved_before, n_fwd, n_bwd
        temp_f = _filtered_temperature(grid)
        delta = np.diff(temp_f, prepend=1) * 60.0  # deg C per minute (prepend as SKDH)
        avg_delta = _forward_mean(delta, _FIVE_MINUTES)
        del delta
        stops = quiet_before & ((avg_delta > params.increase_threshold_c_per_min)
                                | (_forward_reduce(temp_f, _FIVE_MINUTES, np.min)
                                   > params.low_temperature_c))
        del quiet_before
        max_t = _forward_reduce(temp_f, _FIVE_MINUTES, np.max)
        del temp_f
        valid = (((max_t < params.high_temperature_c)
                  & (avg_delta < params.decrease_threshold_c_per_min))
                 | (max_t < params.low_temperature_c))
    return starts & valid, stops


def _axes_still_forward(grid: SecondGrid, sd_thresh_g: float) -> npt.NDArray[np.int8]:
    """Per second, how many axes have a sample SD below ``sd_thresh_g`` over the 60 s from
    it on (0 where they run past the end: NaN is not under). Axis by axis, so that
    only one axis' window sums are held at a time."""
    n = grid.n
    out = np.zeros(n, dtype=np.int8)
    count = window_sums(grid.count, _MINUTE)
    if count.size == 0:
        return out
    for axis in range(3):
        s = window_sums(grid.sums[:, axis], _MINUTE)
        q = window_sums(grid.sums[:, 3 + axis], _MINUTE)
        with np.errstate(invalid="ignore", divide="ignore"):
            var = (q - s * s / count) / (count - 1.0)
        out[:count.size] += np.sqrt(np.maximum(var, 0.0)) < sd_thresh_g
    return out


def _forward_mean(values: FloatArray, length: int) -> FloatArray:
    return _forward_reduce(values, length, np.mean)


def _forward_reduce(values: FloatArray, length: int, fn: object) -> FloatArray:
    """``fn`` over the ``length`` values from each index on; NaN where they run past the
    end (SKDH's ``trim=False``)."""
    out = np.full(values.size, np.nan)
    if values.size >= length:
        view = np.lib.stride_tricks.sliding_window_view(values, length)
        out[:view.shape[0]] = fn(view, axis=-1)  # type: ignore[operator]
    return out


def _filtered_temperature(grid: SecondGrid) -> FloatArray:
    """1-s mean temperature, gaps interpolated, low-passed as DETACH does; NaN all
    through a window without a sample (inside a gap longer than it: no rule fires)."""
    has = grid.count > 0
    if not has.any():
        return np.full(grid.n, np.nan)
    temp = np.zeros(grid.n)
    temp[has] = grid.sums[has, 7] / grid.count[has]
    if not np.all(has):
        idx = np.arange(grid.n)
        temp = np.interp(idx, idx[has], temp[has])
    sos = butter(2, 2 * 0.005 / 1.0, btype="low", output="sos")
    if temp.size <= 3 * (2 * sos.shape[0] + 1):
        return temp
    filtered: FloatArray = np.ascontiguousarray(sosfiltfilt(sos, temp))
    return filtered


def _wear_from_nonwear(nonwear: list[tuple[int, int]], n: int, first_s: float,
                       last_time_s: float) -> FloatArray:
    """SKDH's ``invert_indices`` in seconds; zero-length bouts dropped."""
    edges = [0]
    for a, b in nonwear:
        edges.extend((a, b))
    edges.append(n)
    pairs = np.asarray(edges, dtype=np.float64).reshape(-1, 2)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    out: FloatArray = first_s + pairs
    if out.size and pairs[-1, 1] == n:
        out[-1, 1] = last_time_s
    return out
