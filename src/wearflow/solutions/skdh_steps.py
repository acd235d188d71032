"""scikit-digital-health steps that wearflow's built-in pipelines use.

Pipeline files name them like any SKDH step (``package: wearflow``,
``module: solutions.skdh_steps``), so the same file runs under plain
``skdh.Pipeline`` once wearflow is installed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from skdh.activity import ActivityLevelClassification
from skdh.base import BaseProcess, handle_process_returns
from skdh.sleep import Sleep
from skdh.sleep import sleep as skdh_sleep_module


class ActivityLevels(ActivityLevelClassification):  # type: ignore[misc]
    """SKDH's ActivityLevelClassification without the endpoints named in ``exclude``.

    The built-in wrist solution excludes ``ActivityDFA`` (detrended
    fluctuation analysis, marked experimental in SKDH): it is about 70% of the
    pipeline's CPU time (tens of thousands of ``scipy.stats.linregress``
    calls per day) and none of the summary biomarkers use it.
    """

    def __init__(self, exclude: list[str] | tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._kw["exclude"] = list(exclude)
        names = set(exclude)
        wake: list[Any] = getattr(self, "wake_endpoints")  # noqa: B009 - untyped base
        sleep: list[Any] = getattr(self, "sleep_endpoints")  # noqa: B009 - untyped base
        self.wake_endpoints = [e for e in wake if type(e).__name__ not in names]
        self.sleep_endpoints = [e for e in sleep if type(e).__name__ not in names]


class DiarySleep(Sleep):  # type: ignore[misc]
    """SKDH's Sleep, taking a night's window from the participant's sleep diary when
    there is one.

    ``sleep_diary`` (an input of the pipeline): ``[(bed_utc_s, wake_utc_s), ...]``. For
    each day window, a diary night whose bed time falls inside it replaces SKDH's
    total-sleep-opportunity (TSO) guess; the sleep/wake classification inside the
    window is SKDH's as always. The ``TSO Source`` column says, per night, ``diary`` or
    ``algorithm``. Without a diary it is SKDH's Sleep, value for value.
    """

    def predict(self, time: Any = None, accel: Any = None, **kwargs: Any) -> Any:
        given = kwargs.get("sleep_diary")
        diary = [] if given is None else [(float(b), float(w)) for b, w in given]
        original = skdh_sleep_module.get_total_sleep_opportunity

        def from_diary(goal_fs: float, day_time: Any, *args: Any, **kw: Any) -> Any:
            for bed, wake in diary:
                if day_time[0] <= bed < day_time[-1]:
                    i0 = int(np.searchsorted(day_time, bed))
                    i1 = int(min(np.searchsorted(day_time, wake), day_time.size - 1))
                    return day_time[i0], day_time[i1], i0, i1
            return original(goal_fs, day_time, *args, **kw)

        skdh_sleep_module.get_total_sleep_opportunity = from_diary
        try:
            out = super().predict(time=time, accel=accel, **kwargs)
        finally:
            skdh_sleep_module.get_total_sleep_opportunity = original
        results = out[1] if isinstance(out, tuple) else out
        beds = {bed for bed, _ in diary}
        results["TSO Source"] = [
            "diary" if _matches(start, beds) else ("algorithm" if start == start else None)
            for start in results.get("TSO Start Timestamp", [])]
        return out


def _matches(start: float, beds: set[float]) -> bool:
    """A TSO that starts at a diary bed time (to the sample: within 1 s)."""
    return start == start and any(abs(start - bed) < 1.0 for bed in beds)


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
