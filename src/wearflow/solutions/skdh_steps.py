"""scikit-digital-health steps that wearflow's built-in pipelines use.

Pipeline files name them like any SKDH step (``package: wearflow``,
``module: solutions.skdh_steps``), so the same file runs under plain
``skdh.Pipeline`` once wearflow is installed.
"""

from __future__ import annotations

from typing import Any

from skdh.activity import ActivityLevelClassification


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
