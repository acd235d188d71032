"""scikit-digital-health steps that wearflow's built-in pipelines use.

Pipeline files name them like any SKDH step (``package: wearflow``,
``module: solutions.skdh_steps``), so the same file runs under plain
``skdh.Pipeline`` once wearflow is installed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from skdh.activity import ActivityLevelClassification
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
