"""Day windows in local time, as SKDH's ``GetDayWindowIndices`` lays them.

A window of ``base`` hours and 24 h: from the local ``base`` o'clock before the
first sample (clipped to the first sample) to the next one, and so on to the last
sample. builtin:wrist uses base 0 (activity, calendar days) and base 12 (sleep,
noon to noon).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class DayWindow:
    """One window: ``day_n`` from 1, UTC seconds [start_s, end_s), its local start date
    of the base day (``date``) and the local start and end as datetimes."""

    day_n: int
    start_s: float
    end_s: float
    date: str
    local_start: datetime
    local_end: datetime


def day_windows(first_s: float, last_s: float, base_h: int, time_zone: str
                ) -> list[DayWindow]:
    """The windows covering [first_s, last_s]."""
    zone = ZoneInfo(time_zone)
    first = datetime.fromtimestamp(first_s, zone)
    day = first.date() if first.hour >= base_h else first.date() - timedelta(days=1)
    out: list[DayWindow] = []
    while True:
        begin = datetime(day.year, day.month, day.day, base_h, tzinfo=zone).timestamp()
        nxt = day + timedelta(days=1)
        end = datetime(nxt.year, nxt.month, nxt.day, base_h, tzinfo=zone).timestamp()
        if begin > last_s:
            return out
        a, b = max(begin, first_s), min(end, last_s)
        if b > a:
            out.append(DayWindow(len(out) + 1, a, b, datetime.fromtimestamp(a, zone).date()
                                 .isoformat(), datetime.fromtimestamp(a, zone),
                                 datetime.fromtimestamp(b, zone)))
        day = nxt
