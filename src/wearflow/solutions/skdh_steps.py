"""scikit-digital-health steps that wearflow's built-in pipelines use.

Pipeline files name them like any SKDH step (``package: wearflow``,
``module: solutions.skdh_steps``), so the same file runs under plain
``skdh.Pipeline`` once wearflow is installed.

The wrist's last step, :class:`MinuteSeries`, tabulates per minute what the steps
before it classified (wear, sleep window, sleep/wake, arm angle, activity
intensity), so that a report draws exactly that: :class:`DiarySleep` and
:class:`ActivityLevels` hand on what SKDH computed as it computed it
(:data:`SLEEP_DAYS`, :data:`ACTIVITY_EPOCHS`), nothing is computed again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from skdh.activity import ActivityLevelClassification
from skdh.base import BaseProcess, handle_process_returns
from skdh.sleep import Sleep
from skdh.sleep import sleep as skdh_sleep_module

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.integer[Any]]

SLEEP_DAYS = "wearflow_sleep_days"
"""Pipeline input DiarySleep adds for later steps: what Sleep computed, per day window."""
ACTIVITY_EPOCHS = "wearflow_activity_epochs"
"""Pipeline input ActivityLevels adds for later steps: the epochs it classified."""
LEVELS = ("sedentary", "light", "moderate", "vigorous")
"""SKDH's names of the intensity of an epoch (``_handle_epoch_data``), in order."""
# The SKDH methods the steps below listen on (a solution environment may pin an SKDH
# without them: then nothing is handed on, and the minute series leaves those columns empty)
_SKDH_HAS_EPOCHS = hasattr(ActivityLevelClassification, "_handle_epoch_data")
_SKDH_HAS_SLEEP_DAYS = all(hasattr(Sleep, name) for name in ("_plot_arm_angle",
                                                             "_store_sleep_aux"))


@dataclass(frozen=True)
class ActivityEpochs:
    """The epochs ActivityLevelClassification classified, wake and sleep alike.

    ``start_s``: UTC seconds of each epoch's first sample; ``epoch_s``: the length SKDH
    counts for every epoch (its ``short_wlen``); ``metric``: the value classified (ENMO,
    g, for the built-in cut-points); ``level``: index into :data:`LEVELS` (-1: a name
    this module does not know).
    """

    start_s: FloatArray
    epoch_s: float
    metric: FloatArray
    level: IntArray


class ActivityLevels(ActivityLevelClassification):  # type: ignore[misc]
    """SKDH's ActivityLevelClassification without the endpoints named in ``exclude``.

    The built-in wrist solution excludes ``ActivityDFA`` (detrended
    fluctuation analysis, marked experimental in SKDH): it is about 70% of the
    pipeline's CPU time (tens of thousands of ``scipy.stats.linregress``
    calls per day) and none of the summary biomarkers use it.

    In a pipeline it also hands the 5-s epochs it classified (SKDH's own epoch data,
    ``save_epoch_data``) to later steps as :data:`ACTIVITY_EPOCHS`; the lists SKDH keeps
    for them are emptied as they are taken unless ``save_epoch_data`` was asked for.
    """

    def __init__(self, exclude: list[str] | tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._kw["exclude"] = list(exclude)
        names = set(exclude)
        wake: list[Any] = getattr(self, "wake_endpoints")  # noqa: B009 - untyped base
        sleep: list[Any] = getattr(self, "sleep_endpoints")  # noqa: B009 - untyped base
        self.wake_endpoints = [e for e in wake if type(e).__name__ not in names]
        self.sleep_endpoints = [e for e in sleep if type(e).__name__ not in names]
        self._epoch_parts: list[tuple[FloatArray, FloatArray, IntArray]] = []

    def predict(self, **kwargs: Any) -> Any:
        # One object runs every file of a worker: nothing of the previous file may remain.
        requested = bool(self._kw.get("save_epoch_data", False))
        self._epoch_parts = []
        self.epoch_data: dict[str, list[Any]] = {"time": [], "state": [], "metric": [],
                                                 "intensity": []}
        self.save_epochs = True
        try:
            out = super().predict(**kwargs)
        finally:
            self.save_epochs = requested
            parts, self._epoch_parts = self._epoch_parts, []
        if isinstance(out, tuple) and _SKDH_HAS_EPOCHS:  # in a pipeline: (inputs, results)
            out[0][ACTIVITY_EPOCHS] = ActivityEpochs(
                start_s=_joined([p[0] for p in parts], np.float64),
                epoch_s=float(self.wlen),
                metric=_joined([p[1] for p in parts], np.float64),
                level=_joined([p[2] for p in parts], np.int8))
        return out

    def _handle_epoch_data(self, wlen: int, fs: float, time: Any, metric: Any, state: str
                           ) -> None:
        data = self.epoch_data
        n_time, n_metric = len(data["time"]), len(data["metric"])
        super()._handle_epoch_data(wlen, fs, time, metric, state)
        values = np.asarray(metric, dtype=np.float64)
        starts = np.asarray(data["time"][n_time:], dtype=np.float64)
        if starts.size != values.size:
            # SKDH takes time[:-wlen + 1:wlen], empty for 1-sample epochs: never let the
            # epochs slide against their times
            starts = np.asarray(time[::max(int(wlen), 1)][:values.size], dtype=np.float64)
        names = np.asarray(data["intensity"][n_metric:], dtype=str)
        level = np.full(names.size, -1, dtype=np.int8)
        for i, name in enumerate(LEVELS):
            level[names == name] = i
        n = min(starts.size, values.size, level.size)
        self._epoch_parts.append((starts[:n], values[:n], level[:n]))
        if not self._kw.get("save_epoch_data", False):
            for taken in data.values():
                taken.clear()


@dataclass
class SleepDay:
    """What Sleep computed for one day window it analysed (filled while it runs).

    ``angle_start_s``/``angle_deg``: the arm z-angle of its total-sleep-opportunity
    (TSO) detection, one value per ``angle_window_s`` window (empty for a night taken
    from the diary: SKDH computes no angle then). ``minute_start_s``: UTC start of each
    of the day's 1-minute epochs; ``asleep``: SKDH's sleep (1) / wake (0) prediction for
    each; ``tso_minutes``: the epochs [start, stop) it scored as the night's TSO (None:
    no TSO found).
    """

    minute_start_s: FloatArray
    angle_start_s: FloatArray
    angle_deg: FloatArray
    angle_window_s: float
    asleep: IntArray = field(default_factory=lambda: np.empty(0, dtype=np.int8))
    tso_minutes: tuple[int, int] | None = None


class DiarySleep(Sleep):  # type: ignore[misc]
    """SKDH's Sleep, taking a night's window from the participant's sleep diary when
    there is one.

    ``sleep_diary`` (an input of the pipeline): ``[(bed_utc_s, wake_utc_s), ...]``. For
    each day window, a diary night whose bed time falls inside it replaces SKDH's
    total-sleep-opportunity (TSO) guess; the sleep/wake classification inside the
    window is SKDH's as always. The ``TSO Source`` column says, per night, ``diary`` or
    ``algorithm``. Without a diary it is SKDH's Sleep, value for value.

    In a pipeline it also hands what it computed per day (arm angle, per-minute
    predictions, the TSO in minutes) to later steps as :data:`SLEEP_DAYS`.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._captured_days: list[SleepDay] = []
        self._captured_angle: FloatArray | None = None

    def predict(self, time: Any = None, accel: Any = None, **kwargs: Any) -> Any:
        given = kwargs.get("sleep_diary")
        diary = [] if given is None else [(float(b), float(w)) for b, w in given]
        original = skdh_sleep_module.get_total_sleep_opportunity
        days: list[SleepDay] = []

        def day_tso(goal_fs: float, day_time: Any, *args: Any, **kw: Any) -> Any:
            self._captured_angle = None  # set by _plot_arm_angle when SKDH computes the angle
            tso = _diary_tso(diary, day_time)
            if tso is None:
                tso = original(goal_fs, day_time, *args, **kw)
            days.append(_sleep_day(goal_fs, day_time, self._captured_angle))
            return tso

        self._captured_days = days
        skdh_sleep_module.get_total_sleep_opportunity = day_tso
        try:
            out = super().predict(time=time, accel=accel, **kwargs)
        finally:
            skdh_sleep_module.get_total_sleep_opportunity = original
            self._captured_days, self._captured_angle = [], None
        results = out[1] if isinstance(out, tuple) else out
        beds = {bed for bed, _ in diary}
        results["TSO Source"] = [
            "diary" if _matches(start, beds) else ("algorithm" if start == start else None)
            for start in results.get("TSO Start Timestamp", [])]
        if isinstance(out, tuple) and _SKDH_HAS_SLEEP_DAYS:  # in a pipeline: (inputs, results)
            out[0][SLEEP_DAYS] = tuple(days)
        return out

    def _plot_arm_angle(self, arm_angle: Any) -> None:
        # SKDH hands its TSO detection's 5-s arm angle to this (its plot) and nowhere else
        self._captured_angle = np.array(arm_angle, dtype=np.float64)
        super()._plot_arm_angle(arm_angle)

    def _store_sleep_aux(self, start_dt: Any, day_n: int, predictions: Any, tso_start: int,
                         tso_stop: int) -> None:
        # SKDH's per-minute predictions of the day and its TSO in minutes, as it scores them
        if self._captured_days:
            self._captured_days[-1].asleep = np.array(predictions, dtype=np.int8)
            self._captured_days[-1].tso_minutes = (int(tso_start), int(tso_stop))
        super()._store_sleep_aux(start_dt, day_n, predictions, tso_start, tso_stop)


def _diary_tso(diary: list[tuple[float, float]], day_time: Any
               ) -> tuple[Any, Any, int, int] | None:
    """The day's TSO from the first diary night whose bed time falls in it, or None."""
    for bed, wake in diary:
        if day_time[0] <= bed < day_time[-1]:
            i0 = int(np.searchsorted(day_time, bed))
            i1 = int(min(np.searchsorted(day_time, wake), day_time.size - 1))
            return day_time[i0], day_time[i1], i0, i1
    return None


def _sleep_day(goal_fs: float, day_time: Any, angle: FloatArray | None) -> SleepDay:
    """A day's times as Sleep indexes them: 5-s windows (``int(5 * fs)`` samples, the TSO
    detection's) and 1-minute epochs (``int(60 * fs)``, its predictions'); copies, so that
    the day keeps nothing of the resampled recording alive."""
    n5, n60 = max(int(5 * goal_fs), 1), max(int(60 * goal_fs), 1)
    windows = np.array(day_time[::n5], dtype=np.float64)
    angle = np.empty(0) if angle is None else angle[:windows.size]
    return SleepDay(minute_start_s=np.array(day_time[::n60], dtype=np.float64),
                    angle_start_s=windows[:angle.size], angle_deg=angle,
                    angle_window_s=n5 / goal_fs)


def _matches(start: float, beds: set[float]) -> bool:
    """A TSO that starts at a diary bed time (to the sample: within 1 s)."""
    return start == start and any(abs(start - bed) < 1.0 for bed in beds)


class MinuteSeries(BaseProcess):  # type: ignore[misc]
    """The epoch-level series the steps before it classified, one row per UTC minute.

    From the minute of the first sample to the minute of the last: ``minute_utc`` (the
    minute's start), ``wear_fraction`` (of the minute inside the ``wear`` bouts; NaN
    without a wear step), ``sleep_window`` and ``asleep`` (from :data:`SLEEP_DAYS`; 0
    without), ``angle_deg`` (mean arm angle of Sleep's TSO detection), ``enmo_g`` (mean
    metric of the classified epochs) and ``<level>_s`` (seconds of the classified epochs
    in each intensity level; NaN without :data:`ACTIVITY_EPOCHS`). Nothing is computed
    again: see :func:`minute_series`.
    """

    def __init__(self) -> None:
        super().__init__()

    @handle_process_returns(results_to_kwargs=False)  # type: ignore[untyped-decorator]
    def predict(self, *, time: FloatArray, wear: Any = None, **kwargs: Any) -> dict[str, Any]:
        super().predict(expect_days=False, expect_wear=False, time=time, wear=wear, **kwargs)
        return minute_series(time, wear, kwargs.get(SLEEP_DAYS), kwargs.get(ACTIVITY_EPOCHS))


def minute_series(time_s: FloatArray, wear: Any, sleep_days: Sequence[SleepDay] | None,
                  epochs: ActivityEpochs | None) -> dict[str, Any]:
    """The columns of :class:`MinuteSeries` (equal-length 1-D arrays).

    Every value is put on the minutes by time, never by sample: the wear bouts by their
    start and end times (so a day's ``wear_fraction`` adds up to SKDH's wear minutes),
    Sleep's 1-minute epochs each on the UTC minute whose middle it covers (so the
    ``asleep`` minutes of a night add up to its total sleep time, and the
    ``sleep_window`` minutes to the minutes it scored), and 5-s values (arm angle,
    epochs) split between the minutes they overlap (so the seconds of a day add up to
    SKDH's 5-s-epoch minutes).
    """
    first_min = int(np.floor(time_s[0] / 60.0)) if time_s.size else 0
    n = int(np.floor(time_s[-1] / 60.0)) - first_min + 1 if time_s.size else 0
    first = 60.0 * first_min
    starts = first + 60.0 * np.arange(n, dtype=np.float64)
    stamps = np.datetime_as_string(starts.astype(np.int64).astype("datetime64[s]"), unit="ms")
    window, asleep = _sleep_minutes(sleep_days or (), first, n)
    angle = _MinuteSums(first, n)
    for day in sleep_days or ():
        angle.add(day.angle_start_s, day.angle_window_s, day.angle_deg)
    out: dict[str, Any] = {
        "minute_utc": np.char.add(stamps, "Z"),
        "wear_fraction": _wear_fraction(time_s, wear, first, n),
        "sleep_window": window,
        "asleep": asleep,
        "angle_deg": angle.mean(),
    }
    if epochs is None:
        out["enmo_g"] = np.full(n, np.nan)
        out.update({f"{name}_s": np.full(n, np.nan) for name in LEVELS})
        return out
    metric = _MinuteSums(first, n)
    metric.add(epochs.start_s, epochs.epoch_s, epochs.metric)
    out["enmo_g"] = metric.mean()
    for i, name in enumerate(LEVELS):
        seconds = _MinuteSums(first, n)
        mask = epochs.level == i
        seconds.add(epochs.start_s[mask], epochs.epoch_s, np.ones(int(mask.sum())))
        out[f"{name}_s"] = seconds.seconds
    return out


class _MinuteSums:
    """Values of windows of a fixed length, weighted by their seconds in each minute."""

    def __init__(self, first: float, n: int) -> None:
        self.first, self.n = first, n
        self.seconds = np.zeros(n)
        self.weighted = np.zeros(n)

    def add(self, start_s: FloatArray, length_s: float, values: FloatArray) -> None:
        ok = np.isfinite(values) & np.isfinite(start_s)
        rel = start_s[ok] - self.first
        values = values[ok]
        k = np.floor(rel / 60.0).astype(np.int64)
        inside = (k >= 0) & (k < self.n)
        k, rel, values = k[inside], rel[inside], values[inside]
        here = np.clip(60.0 * (k + 1) - rel, 0.0, length_s)
        here[k + 1 >= self.n] = length_s  # the last minute keeps what runs past the end
        for index, part in ((k, here), (np.minimum(k + 1, self.n - 1), length_s - here)):
            self.seconds += np.bincount(index, weights=part, minlength=self.n)
            self.weighted += np.bincount(index, weights=part * values, minlength=self.n)

    def mean(self) -> FloatArray:
        out = np.full(self.n, np.nan)
        np.divide(self.weighted, self.seconds, out=out, where=self.seconds > 0)
        return out


def _wear_fraction(time_s: FloatArray, wear: Any, first: float, n: int) -> FloatArray:
    """Fraction of each minute inside the wear bouts ((k, 2) sample indices [start, end),
    as times), by the running total of wear seconds at every minute boundary: no
    per-sample array."""
    if wear is None:
        return np.full(n, np.nan)
    idx = np.asarray(wear, dtype=np.int64).reshape(-1, 2)
    if idx.shape[0] == 0 or time_s.size == 0:
        return np.zeros(n)
    idx = np.clip(idx, 0, time_s.size - 1)
    start, end = time_s[idx[:, 0]], time_s[idx[:, 1]]
    order = np.argsort(start, kind="stable")
    start, end = start[order], end[order]
    # merge bouts that overlap, so that no second counts twice
    heads = np.flatnonzero(np.r_[True, start[1:] > np.maximum.accumulate(end)[:-1]])
    start, end = start[heads], np.maximum.reduceat(end, heads)
    length = np.maximum(end - start, 0.0)
    done = np.r_[0.0, np.cumsum(length)]  # wear seconds of the bouts before bout i
    edges = first + 60.0 * np.arange(n + 1, dtype=np.float64)
    last = np.maximum(np.searchsorted(start, edges, side="right") - 1, 0)  # last bout begun
    worn = done[last] + np.clip(edges - start[last], 0.0, length[last])
    fraction: FloatArray = np.clip(np.diff(worn) / 60.0, 0.0, 1.0)
    return fraction


def _sleep_minutes(days: Sequence[SleepDay], first: float, n: int
                   ) -> tuple[IntArray, IntArray]:
    """``sleep_window`` and ``asleep`` per UTC minute: each of Sleep's 1-minute epochs in
    a night's TSO on the minute whose middle it covers."""
    window = np.zeros(n, dtype=np.int64)
    asleep = np.zeros(n, dtype=np.int64)
    middles = first + 30.0 + 60.0 * np.arange(n, dtype=np.float64)
    for day in days:
        if day.tso_minutes is None:
            continue
        starts = day.minute_start_s[:day.asleep.size]
        k0, k1 = day.tso_minutes[0], min(day.tso_minutes[1], starts.size)
        if k1 <= k0:
            continue
        lo, hi = np.searchsorted(middles, (starts[k0], starts[k1 - 1] + 60.0))
        k = np.searchsorted(starts, middles[lo:hi], side="right") - 1
        inside = (k >= k0) & (k < k1) & (middles[lo:hi] < starts[k] + 60.0)
        window[lo:hi] |= inside
        asleep[lo:hi] |= inside & (day.asleep[k] == 1)  # 1: sleep (SKDH's "sleep as positive")
    return window, asleep


def _joined(parts: list[Any], dtype: type[Any]) -> Any:
    return np.concatenate(parts).astype(dtype) if parts else np.empty(0, dtype=dtype)


CLASSIFIER_WINDOW_S = 3.0  # PredictGaitLumbarLgbm scores non-overlapping 3-s windows


class LumbarGaitBouts(BaseProcess):  # type: ignore[misc]
    """Bouts of gait in lower-back acceleration, for SKDH's ``GaitLumbar`` (``gait_bouts``).

    SKDH's LightGBM gait classifier (``skdh.context.PredictGaitLumbarLgbm``) with two
    corrections, both measured on the Mobilise-D lab recordings and the GENEActiv
    walkway trial in ``shared/data/real`` (tests/test_gait.py):

    * The recording is resampled to the rate the model was trained at (50 Hz, or
      20 Hz below 50 Hz) *before* the classifier sees it. In 0.17.18 the classifier
      resamples by itself but designs its 0.25-5 Hz band-pass for the original
      rate, so on a 100 Hz recording the band becomes 0.125-2.5 Hz and most walking
      is missed.
    * Every bout is widened by ``pad_s`` on each side (default: one 3-s window).
      A walk rarely starts on a window boundary, and a window that is only partly
      walking scores below the threshold, so without padding the first and last
      steps of every walk fall outside its bout, and a short walk is shorter than
      GaitLumbar's 8-s minimum bout. What the padding adds that is not gait is
      dropped by GaitLumbar's own stride checks. Overlapping bouts are merged.

    Together (with GaitLumbar's defaults): 88 of the 190 Mobilise-D reference initial
    contacts found (35 of 36 in the straight walks), 3 of the 91 detected unmatched;
    SKDH's classifier as it is: 18 found. On the walkway trial (50 Hz): all 20 walkway
    footfalls found, none without the padding.

    The result is the bouts as (n, 2) sample indices of the recording: ``bouts``
    in the results (a table), ``gait_bouts`` for the next step.
    """

    def __init__(self, pad_s: float = CLASSIFIER_WINDOW_S, downsample_aa_filter: bool = True
                 ) -> None:
        super().__init__(pad_s=pad_s, downsample_aa_filter=downsample_aa_filter)
        if not pad_s >= 0.0:
            raise ValueError(f"pad_s must be >= 0, got {pad_s!r}")
        self.pad_s = float(pad_s)
        self.downsample_aa_filter = bool(downsample_aa_filter)

    @handle_process_returns(results_to_kwargs=False)  # type: ignore[untyped-decorator]
    def predict(self, *, time: np.ndarray[Any, Any], accel: np.ndarray[Any, Any],
                fs: float | None = None, tz_name: str | None = None, **kwargs: Any
                ) -> tuple[dict[str, Any], dict[str, Any]]:
        # imported here: a solution environment with another SKDH version loads this module
        # for the wrist's step too, and needs these only when it runs this one
        from skdh.context import PredictGaitLumbarLgbm
        from skdh.utility.internal import apply_resample

        super().predict(expect_days=False, expect_wear=False, time=time, accel=accel, fs=fs,
                        tz_name=tz_name, **kwargs)
        fs = float(1.0 / np.mean(np.diff(time))) if fs is None else float(fs)
        goal_fs = 50.0 if fs >= 50.0 else 20.0
        time_rs, accel_rs = time, accel
        if fs != goal_fs:
            time_rs, (accel_rs,), *_ = apply_resample(
                goal_fs=goal_fs, time=time, data=(accel,), indices=(),
                aa_filter=self.downsample_aa_filter, fs=fs)
        bouts = np.empty((0, 2), dtype=np.int64)
        if time_rs.size >= round(CLASSIFIER_WINDOW_S * goal_fs):  # at least one window
            classifier = PredictGaitLumbarLgbm(downsample_aa_filter=self.downsample_aa_filter)
            found = classifier.predict(time=time_rs, accel=accel_rs, fs=goal_fs,
                                       tz_name=tz_name)
            bouts = _padded_bouts(time, np.asarray(found["Gait Bout Start"], dtype=np.float64),
                                  np.asarray(found["Gait Bout Stop"], dtype=np.float64),
                                  self.pad_s)
        return {"bouts": bouts}, {"gait_bouts": bouts}


def _padded_bouts(time: np.ndarray[Any, Any], start_s: np.ndarray[Any, Any],
                  stop_s: np.ndarray[Any, Any], pad_s: float) -> np.ndarray[Any, Any]:
    """Bouts [start, stop] in seconds, widened by ``pad_s`` -> merged (n, 2) sample indices."""
    if start_s.size == 0:
        return np.empty((0, 2), dtype=np.int64)
    last = time.size - 1
    starts = np.clip(np.searchsorted(time, start_s - pad_s, side="left"), 0, last)
    stops = np.clip(np.searchsorted(time, stop_s + pad_s, side="right") - 1, 0, last)
    merged: list[list[int]] = []
    for a, b in sorted(zip(starts.tolist(), stops.tolist(), strict=True)):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return np.asarray(merged, dtype=np.int64).reshape(-1, 2)
