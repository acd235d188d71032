"""The night's sleep window (TSO) and sleep/wake within it, as SKDH's ``Sleep`` does.

Mirrors ``skdh.sleep.Sleep.predict`` with ``get_total_sleep_opportunity`` (the
HDCZA approach) and ``compute_sleep_predictions`` (Cole-Kripke with Webster's
rescoring), 0.17.18, on the noon-to-noon windows:

- 5-s arm z-angle; its absolute change; a 5-minute rolling median; threshold
  ``clip(P10 * tso_factor, tso_min_thresh, tso_max_thresh)``;
- candidate rest only during wear (DETACH's bouts), not where the 5-minute median
  temperature is below ``internal_wear_temp`` nor where the 30-minute SD of the 5-s
  means of running 5-s medians is below ``internal_wear_move`` on some axis (both
  read through the DC gain of SKDH's 20 Hz resampling: ``downsample_gain``);
- rest blocks shorter than ``min_rest_block`` minutes dropped, then active breaks
  shorter than ``max_activity_break`` minutes filled; the longest rest block is the
  TSO, shifted by half the 5-minute median window;
- Cole-Kripke on the 1-minute activity index, scored within the TSO.

Differences: the 5-s angle is that of the 5-s mean vector (SKDH: the mean angle of
a 5-s rolling median of the 20 Hz resampled signal: the same when the arm is
still, which is what TSO detection looks for); the activity index is the pooled
within-second variance (SKDH: the variance after a 0.25 Hz high-pass, both keep
movement and drop posture); windows are on the local clock's 5-s grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.signal import cheby1, sosfreqz

from wearflow.streaming.days import DayWindow
from wearflow.streaming.grid import SecondGrid, Seconds, window_sums

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class SleepParameters:
    """Sleep's parameters (the values of builtin:wrist)."""

    min_day_hours: float = 6.0
    min_rest_block_min: int = 30
    max_activity_break_min: int = 60
    tso_min_thresh_deg: float = 0.1
    tso_max_thresh_deg: float = 1.0
    tso_perc: float = 10.0
    tso_factor: float = 15.0
    internal_wear_temp_c: float = 25.0
    internal_wear_move_g: float = 0.001
    min_wear_time_h: float = 0.0


SLEEP_HZ = 20.0  # SKDH's Sleep resamples to 20 Hz (``downsample=True``)


@dataclass(frozen=True)
class NightResult:
    """One noon-to-noon window: its TSO in UTC seconds (None: none found), its
    1-minute sleep (1) / wake (0) predictions and the TSO in minutes of the day."""

    day: DayWindow
    wear_minutes: float
    tso_s: tuple[float, float] | None
    minute_start_s: float
    predictions: IntArray
    tso_minutes: tuple[int, int] | None


def nights(seconds: Seconds, wear_s: FloatArray, windows: list[DayWindow],
           params: SleepParameters = SleepParameters(), sampling_rate_hz: float = SLEEP_HZ
           ) -> list[NightResult]:
    """The nights of ``windows`` (noon-to-noon) long enough to analyse, of a recording
    sampled at ``sampling_rate_hz``; each night reads only its own seconds."""
    out = []
    gain = downsample_gain(sampling_rate_hz)
    for day in windows:
        if (day.end_s - day.start_s) / 3600.0 < params.min_day_hours:
            continue
        grid = seconds.window(int(np.floor(day.start_s - seconds.first_s)),
                              int(np.ceil(day.end_s - seconds.first_s)))
        out.append(_night(grid, wear_s, day, params, gain))
    return out


def downsample_gain(sampling_rate_hz: float) -> float:
    """What SKDH's Sleep multiplies a constant signal by when it resamples to 20 Hz.

    ``apply_resample`` low-passes a recording sampled faster than 20 Hz with
    ``cheby1(8, 0.05, wn)`` forwards and backwards (``sosfiltfilt``) before taking
    20 Hz samples. An even-order Chebyshev type I filter passes 0 Hz at the bottom of
    its 0.05 dB ripple, so twice through it a constant comes out 0.9886 of itself: the
    temperature Sleep compares with its 25 degC internal non-wear threshold reads
    about 0.3 degC low, and the acceleration whose spread it compares with 0.001 g and
    turns into the activity index about 1.1% low. The arm angle, a ratio, does not
    change. Mirrored (builtin:wrist reports it); 1.0 at 20 Hz or slower (no filter)."""
    if sampling_rate_hz <= SLEEP_HZ:
        return 1.0
    ratio = sampling_rate_hz / SLEEP_HZ
    wn = 0.8 / ratio if int(ratio) == ratio else SLEEP_HZ / sampling_rate_hz
    sos = cheby1(8, 0.05, wn, output="sos")
    _, response = sosfreqz(sos, worN=[0.0])
    return float(np.abs(response[0]) ** 2)


def _slice(grid: SecondGrid, start_s: float, end_s: float, step: int
           ) -> tuple[float, FloatArray, FloatArray]:
    """Blocks of ``step`` seconds from the first grid multiple of ``step`` >= start_s."""
    t0 = np.ceil(start_s / step) * step
    i0 = int(t0 - grid.first_s)
    i1 = int(np.floor(end_s) - grid.first_s)
    i0c, i1c = max(i0, 0), min(i1, grid.n)
    n = max((i1 - i0) // step, 0)
    if i0 >= 0 and i0 + n * step <= grid.n:  # inside the grid: views, no copy
        count, sums = grid.count[i0:i0 + n * step], grid.sums[i0:i0 + n * step]
        if step == 1:
            return float(t0), count, sums
        return (float(t0), count.reshape(n, step).sum(axis=1),
                sums.reshape(n, step, -1).sum(axis=1))
    count = np.zeros(n * step)
    sums = np.zeros((n * step, grid.sums.shape[1]))
    lo, hi = i0c - i0, min(i1c - i0, n * step)
    if hi > lo:
        count[lo:hi] = grid.count[i0c:i0c + hi - lo]
        sums[lo:hi] = grid.sums[i0c:i0c + hi - lo]
    return (float(t0), count.reshape(n, step).sum(axis=1),
            sums.reshape(n, step, -1).sum(axis=1))


def _night(grid: SecondGrid, wear_s: FloatArray, day: DayWindow, params: SleepParameters,
           gain: float) -> NightResult:
    w0, w1 = np.clip(wear_s[:, 0], day.start_s, day.end_s), np.clip(wear_s[:, 1], day.start_s,
                                                                     day.end_s)
    wear_min = round(float(np.sum(w1 - w0)) / 60.0, 1)
    t5, c5, s5 = _slice(grid, day.start_s, day.end_s, 5)
    t1, c1, s1 = _slice(grid, day.start_s, day.end_s, 1)
    smooth = _median_like_means(round(t5 - t1), c1, s1, c5.size)
    tso_s, tso_idx = _tso(t5, c5, s5, w0, w1, params, gain, smooth)
    t60, predictions = _predictions(grid, day, gain)
    tso_minutes = None
    if tso_idx is not None:
        offset = round((t5 - t60) / 5.0)  # 5-s windows between the two grids
        tso_minutes = ((tso_idx[0] + offset) * 5 // 60, (tso_idx[1] + offset) * 5 // 60)
    return NightResult(day, wear_min, tso_s, t60, predictions, tso_minutes)


_MEDIAN_S = 5  # SKDH's Sleep: a running median over 5 s of samples, at every sample


def _median_like_means(offset: int, count: FloatArray, sums: FloatArray, m: int
                       ) -> FloatArray:
    """Per 5-s window, the axes as SKDH's Sleep sees them for its movement check: the
    5-s mean of running 5-s medians. Here the running median is taken over the 1-s
    means (seconds j..j+4, for each second j) and window k averages those that start in
    its own seconds: like SKDH's, a posture change reaches window k from the 2.5 s
    after it (the plain 5-s means lag one window) and a twitch of a second or two is
    not seen at all. ``count`` and ``sums`` are the 1-s blocks from ``offset`` seconds
    before the first window; NaN where no sample falls. Their 30-minute SD, below
    0.001 g, is the internal non-wear that splits a night."""
    need = offset + 5 * m + _MEDIAN_S - 1
    means = np.full((need, 3), np.nan)
    k = min(count.size, need)
    with np.errstate(invalid="ignore", divide="ignore"):
        means[:k] = sums[:k, 0:3] / count[:k, None]
    has = ~np.isnan(means[:, 0])
    if not has.any():
        return np.full((m, 3), np.nan)
    if not has.all():  # gaps: the nearest values carried over, as resampling would
        idx = np.arange(need)
        for axis in range(3):
            means[:, axis] = np.interp(idx, idx[has], means[has, axis])
    running = np.column_stack([running_median(means[:, axis], _MEDIAN_S) for axis in range(3)])
    start = running[offset:offset + 5 * m].reshape(m, 5, 3)
    out: FloatArray = start.mean(axis=1)
    return out


def _tso(t5: float, count: FloatArray, sums: FloatArray, w0: FloatArray, w1: FloatArray,
         params: SleepParameters, gain: float = 1.0, smooth: FloatArray | None = None
         ) -> tuple[tuple[float, float] | None, tuple[int, int] | None]:
    m = count.size
    has = count > 0
    if m < 360 or not has.any():  # SKDH's 30-minute movement SD needs 360 windows
        return None, None  # (a window inside a gap has no sample at all)
    mean = np.full((m, 3), np.nan)
    mean[has] = sums[has, 0:3] / count[has, None]
    idx = np.arange(m)
    for k in range(3):  # gaps: the nearest values carried over, as resampling would
        mean[:, k] = np.interp(idx, idx[has], mean[has, k])
    with np.errstate(invalid="ignore", divide="ignore"):  # an all-zero axis pair: NaN
        z = np.degrees(np.arctan(mean[:, 2] / np.sqrt(mean[:, 0] ** 2 + mean[:, 1] ** 2)))
    dz = np.abs(np.diff(z, prepend=z[0]))
    dz_med = running_median(dz, 60)
    thresh = min(max(float(np.percentile(dz_med, params.tso_perc)) * params.tso_factor,
                     params.tso_min_thresh_deg), params.tso_max_thresh_deg)
    nw = m - 59
    tso = np.zeros(nw, dtype=bool)
    for a, b in zip(w0, w1, strict=True):
        tso[max(int((a - t5) / 5), 0):max(int((b - t5) / 5), 0)] = True
    tso &= dz_med < thresh
    if params.internal_wear_temp_c > 0 and np.any(sums[:, 7] != 0):
        temp = np.interp(idx, idx[has], sums[has, 7] / count[has])
        t_med = running_median(temp, 60)
        tso[t_med * gain < params.internal_wear_temp_c] = False
    if params.internal_wear_move_g > 0:
        n30 = 360
        moved = mean if smooth is None else _filled(smooth)
        s = window_sums(moved, n30)
        q = window_sums(moved * moved, n30)
        sd = np.sqrt(np.maximum((q - s * s / n30) / (n30 - 1), 0.0))
        still = np.pad((sd * gain < params.internal_wear_move_g).any(axis=1), (150, 150),
                       constant_values=False)
        tso[still[:nw]] = False
    tso = _drop_min_blocks(tso, 12 * params.min_rest_block_min, True, False)
    tso = _drop_min_blocks(tso, 12 * params.max_activity_break_min, False, True)
    bout = _longest(tso)
    if bout is None:
        return None, None
    a, b = bout[0] + 30, bout[1] + 30
    return (t5 + 5.0 * a, t5 + 5.0 * b), (a, b)


def running_median(values: FloatArray, length: int, rows: int = 4096) -> FloatArray:
    """The median of every ``length`` consecutive values (n - length + 1 of them), a
    block of ``rows`` windows at a time: numpy's median copies the windows it is given,
    and all of a day's at once would be the night's largest array."""
    view = np.lib.stride_tricks.sliding_window_view(values, length)
    out = np.empty(view.shape[0])
    for lo in range(0, view.shape[0], rows):
        out[lo:lo + rows] = np.median(view[lo:lo + rows], axis=1)
    return out


def _filled(values: FloatArray) -> FloatArray:
    """``values`` (windows, axes) with the NaN windows interpolated from their neighbours
    (as the 5-s means are over gaps)."""
    has = ~np.isnan(values[:, 0])
    if has.all() or not has.any():
        return values
    idx = np.arange(values.shape[0])
    out = np.empty_like(values)
    for axis in range(values.shape[1]):
        out[:, axis] = np.interp(idx, idx[has], values[has, axis])
    return out


def _runs(arr: npt.NDArray[np.bool_]) -> tuple[IntArray, IntArray, npt.NDArray[np.bool_]]:
    """Run-length encoding: lengths, starts, values."""
    if arr.size == 0:
        e = np.empty(0, dtype=np.int64)
        return e, e, np.empty(0, dtype=bool)
    starts = np.flatnonzero(np.r_[True, arr[1:] != arr[:-1]])
    lengths = np.diff(np.r_[starts, arr.size])
    return lengths, starts, arr[starts]


def _drop_min_blocks(arr: npt.NDArray[np.bool_], min_size: int, drop: bool, replace: bool
                     ) -> npt.NDArray[np.bool_]:
    """SKDH's ``drop_min_blocks`` with ``skip_bounds=True``."""
    out = arr.copy()
    lengths, starts, vals = _runs(arr)
    for i, (length, start, val) in enumerate(zip(lengths, starts, vals, strict=True)):
        if i == 0 or i == lengths.size - 1:
            continue
        if val == drop and length < min_size:
            out[start:start + length] = replace
    return out


def _longest(arr: npt.NDArray[np.bool_]) -> tuple[int, int] | None:
    """SKDH's ``arg_longest_bout(arr, 1)``: the first longest run of True."""
    lengths, starts, vals = _runs(arr)
    if not np.any(vals):
        return None
    i = int(np.argmax(np.where(vals, lengths, -1)))
    return int(starts[i]), int(starts[i] + lengths[i])


def _predictions(grid: SecondGrid, day: DayWindow, gain: float = 1.0
                 ) -> tuple[float, IntArray]:
    """Cole-Kripke sleep (1) / wake (0) per minute of the day window."""
    t60, count, _ = _slice(grid, day.start_s, day.end_s, 60)
    blocks_t, bcount, bsums = _slice(grid, day.start_s, day.end_s, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        within = (bsums[:, 3:6] - bsums[:, 0:3] ** 2 / bcount[:, None])  # per-second SS
    within = np.nan_to_num(within)
    n = count.size
    offset = int(t60 - blocks_t)
    ss = within[offset:offset + n * 60].reshape(n, 60, 3).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = ss / count[:, None]
    act = np.sqrt(np.maximum(np.nan_to_num(var), 0.0).mean(axis=1))  # rounding: var >= 0
    return t60, cole_kripke(act * gain)


def cole_kripke(act_index: FloatArray, sf: float = 0.243) -> IntArray:
    """SKDH's ``compute_sleep_predictions`` (rescore=True), line for line."""
    kernel = np.array([0.0, 0.0, 4.024, 5.84, 16.19, 5.07, 3.75, 6.87, 4.64]) * sf
    if act_index.size == 0:
        return np.empty(0, dtype=np.int64)
    scores = np.convolve(act_index, kernel, "same")
    pred = (scores < 0.5).astype(np.int64)
    wake_bin = 0
    for t in range(pred.size):
        if not pred[t]:
            wake_bin += 1
        else:
            if wake_bin >= 15:
                pred[t:t + 4] = 0
            elif 10 <= wake_bin < 15:
                pred[t:t + 3] = 0
            elif 4 <= wake_bin < 10:
                pred[t] = 0
            wake_bin = 0
    lengths, starts, vals = _runs(pred.astype(bool))
    # Rule d as SKDH 0.17.18 runs it: its mask is an *integer* array (bool & int), so
    # ``starts[mask]`` picks run 0 or run 1 rather than the runs meant. In effect the
    # first run of the day is scored wake, and the second too when any run meets the
    # rule. Mirrored on purpose: builtin:wrist reports this.
    mask = ((starts >= 10) & (starts < pred.size - 10) & (lengths <= 6)
            & vals).astype(np.int64)
    for start, length in zip(starts[mask], lengths[mask], strict=True):
        pred[start:start + length] = 0
    return pred
