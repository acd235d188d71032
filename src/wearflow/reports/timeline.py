"""A recording's per-minute classification, by local day, drawn as SVG rows.

The rows draw the ``minute_series`` table the solution wrote (wear fraction,
sleep window, sleep/wake, arm angle, ENMO and seconds per intensity level, per
UTC minute): exactly what was classified, never recomputed. A result without
that table (made by an earlier wearflow, or another solution) is drawn from its
wear bouts and sleep windows only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from wearflow.reports import svg

MINUTE_TABLE = "minute_series"
LEVELS = ("sedentary", "light", "moderate", "vigorous")
MINUTES_PER_DAY = 1440
ENMO_TOP_G = 0.25  # the ENMO line's scale: 0 to 250 mg, higher values drawn at the top

# geometry of one day's picture (SVG user units)
WIDTH = 1000.0
LEFT = 70.0
PLOT_W = 912.0
AXIS_H = 13.0
LANE_H = 44.0
LANE_GAP = 5.0
STRIP_H = 7.0
ASLEEP_H = 6.0
# colours (SVG presentation attributes take no CSS variables)
COLOURS = {"sedentary": "#f6ecd2", "light": "#fdd49e", "moderate": "#fc8d59",
           "vigorous": "#d7301f", "sleep window": "#9ecae1", "asleep": "#2166ac",
           "not worn": "#8c8c8c", "wear unknown": "#d4c4e6", "no data": "#eceff1"}


@dataclass(frozen=True)
class Lane:
    """One wrist's minutes, in local time: arrays per minute of the recording."""

    side: str
    local_minute: np.ndarray[Any, Any]  # minutes since local midnight of ``first_day``
    first_day: date
    wear: np.ndarray[Any, Any]  # bool (False where unknown)
    sleep_window: np.ndarray[Any, Any]  # bool
    asleep: np.ndarray[Any, Any] | None  # bool, None when not stored
    enmo_g: np.ndarray[Any, Any] | None
    angle_deg: np.ndarray[Any, Any] | None
    level: np.ndarray[Any, Any] | None  # 0 none, 1..4 LEVELS
    windows: tuple[tuple[str, str], ...] = field(default=())  # sleep windows, UTC ISO
    # bool per minute: whether wear was classified (None: everywhere). A result whose
    # wear step was skipped or failed has no wear classification: drawn as unknown, not
    # as not worn
    wear_known: np.ndarray[Any, Any] | None = None

    def days(self) -> list[date]:
        if self.local_minute.size == 0:
            return []
        last = int(self.local_minute.max()) // MINUTES_PER_DAY
        first = int(self.local_minute.min()) // MINUTES_PER_DAY
        return [self.first_day + timedelta(days=d) for d in range(first, last + 1)]


def _local(minute_utc: pd.Series, time_zone: str) -> tuple[np.ndarray[Any, Any], date]:
    stamps = pd.to_datetime(minute_utc, utc=True, format="ISO8601").dt.tz_convert(time_zone)
    local = stamps.dt.tz_localize(None)
    first_day = local.iloc[0].date()
    origin = pd.Timestamp(first_day)
    minutes = ((local - origin) // pd.Timedelta(minutes=1)).to_numpy(dtype=np.int64)
    return minutes, first_day


def _windows(minute_utc: pd.Series, flag: np.ndarray[Any, Any]) -> tuple[tuple[str, str], ...]:
    out = []
    values = minute_utc.to_numpy()
    for start, end, value in svg.runs(flag.astype(bool)):
        if value:
            end_stamp = pd.Timestamp(values[end - 1]) + pd.Timedelta(minutes=1)
            out.append((str(values[start]), end_stamp.strftime("%Y-%m-%dT%H:%M:00.000Z")))
    return tuple(out)


def lane_from_minutes(side: str, table: pd.DataFrame, time_zone: str) -> Lane | None:
    """A lane from a ``minute_series`` table."""
    if table.empty:
        return None
    minute_utc = table["minute_utc"].astype(str)
    minutes, first_day = _local(minute_utc, time_zone)
    seconds = np.column_stack([table[f"{lv}_s"].to_numpy(dtype=float) for lv in LEVELS])
    level = np.where(seconds.sum(axis=1) > 0, np.argmax(seconds, axis=1) + 1, 0)
    sleep_window = table["sleep_window"].to_numpy(dtype=float) > 0.5
    wear_fraction = table["wear_fraction"].to_numpy(dtype=float)
    known = np.isfinite(wear_fraction)
    return Lane(
        side=side, local_minute=minutes, first_day=first_day,
        wear=known & (np.nan_to_num(wear_fraction) >= 0.5),
        wear_known=None if known.all() else known,
        sleep_window=sleep_window,
        asleep=table["asleep"].to_numpy(dtype=float) > 0.5,
        enmo_g=table["enmo_g"].to_numpy(dtype=float),
        angle_deg=table["angle_deg"].to_numpy(dtype=float),
        level=level, windows=_windows(minute_utc, sleep_window))


def lane_from_bouts(side: str, start_utc: str, end_utc: str, wear: pd.DataFrame | None,
                    sleep: pd.DataFrame | None, time_zone: str) -> Lane:
    """A lane from a result without a minute series: its wear bouts and sleep windows."""
    first = pd.Timestamp(start_utc).floor("min")
    grid = pd.date_range(first, pd.Timestamp(end_utc), freq="min")
    grid_s = grid.as_unit("s").asi8

    def mark(spans: Iterable[tuple[float, float]]) -> np.ndarray[Any, Any]:
        flag = np.zeros(grid_s.size, dtype=bool)
        for a, b in spans:
            flag[np.searchsorted(grid_s, a):np.searchsorted(grid_s, b)] = True
        return flag

    def seconds(column: pd.Series) -> np.ndarray[Any, Any]:
        stamps = pd.to_datetime(column, utc=True, format="ISO8601")
        return stamps.dt.as_unit("s").astype("int64").to_numpy()

    # a result without wear bouts (another solution) is drawn as worn throughout
    wear_flag = (np.ones(grid_s.size, dtype=bool) if wear is None else
                 mark(zip(seconds(wear["start_utc"]), seconds(wear["end_utc"]), strict=True)))
    tso: list[tuple[float, float]] = []
    if sleep is not None and {"tso_start_timestamp", "tso_duration_min"} <= set(sleep.columns):
        for s, d in zip(sleep["tso_start_timestamp"], sleep["tso_duration_min"], strict=True):
            if s == s and d == d:
                tso.append((float(s), float(s) + 60.0 * float(d)))
    sleep_flag = mark(tso)
    minute_utc = pd.Series(grid.strftime("%Y-%m-%dT%H:%M:00.000Z"))
    minutes, first_day = _local(minute_utc, time_zone)
    return Lane(side=side, local_minute=minutes, first_day=first_day, wear=wear_flag,
                sleep_window=sleep_flag, asleep=None, enmo_g=None, angle_deg=None, level=None,
                windows=_windows(minute_utc, sleep_flag))


def _index_spans(minute: np.ndarray[Any, Any], flag: np.ndarray[Any, Any]
                 ) -> Iterable[tuple[float, float, int]]:
    """Runs of consecutive minutes with ``flag`` set: (first minute, end minute, index of
    the first one in ``minute``)."""
    idx = np.flatnonzero(flag)
    if idx.size == 0:
        return
    m = minute[idx]
    breaks = np.flatnonzero(np.diff(m) != 1) + 1
    for part in np.split(np.arange(idx.size), breaks):
        yield float(m[part[0]]), float(m[part[-1]]) + 1.0, int(idx[part[0]])


def _x(minute: float) -> float:
    return LEFT + PLOT_W * minute / MINUTES_PER_DAY


def _lane_svg(lane: Lane, day_index: int, top: float) -> list[str]:
    """One wrist's lane of one day."""
    lo = day_index * MINUTES_PER_DAY
    sel = (lane.local_minute >= lo) & (lane.local_minute < lo + MINUTES_PER_DAY)
    where = np.flatnonzero(sel)
    body: list[str] = [svg.rect(LEFT, top, PLOT_W, LANE_H, fill=COLOURS["no data"]),
                       svg.text(LEFT - 6, top + LANE_H / 2 + 4, lane.side or "-",
                                text_anchor="end", font_size=11, fill="#5f6b73")]
    if where.size == 0:
        return body
    minute = lane.local_minute[where] - lo

    def spans(flag: np.ndarray[Any, Any]) -> Iterable[tuple[float, float]]:
        # consecutive minutes with the flag set -> [x0, x1)
        for a, b, _ in _index_spans(minute, flag):
            yield a, b

    for a, b in spans(np.ones(minute.size, dtype=bool)):
        body.append(svg.rect(_x(a), top, _x(b) - _x(a), LANE_H, fill="#ffffff",
                             class_="recorded"))
    window_ids = _window_ids(lane)[where]
    for a, b, first in _index_spans(minute, lane.sleep_window[where]):
        k = int(window_ids[first])
        start, end = lane.windows[k] if 0 <= k < len(lane.windows) else (None, None)
        body.append(svg.rect(_x(a), top, _x(b) - _x(a), LANE_H, fill=COLOURS["sleep window"],
                             fill_opacity="0.55", class_="sleep-window",
                             data_start_utc=start, data_end_utc=end))
    if lane.level is not None:
        levels = lane.level[where]
        for code in range(1, len(LEVELS) + 1):
            for a, b in spans(levels == code):
                body.append(svg.rect(_x(a), top, _x(b) - _x(a), STRIP_H,
                                     fill=COLOURS[LEVELS[code - 1]],
                                     class_=f"level-{LEVELS[code - 1]}"))
    plot_top, plot_h = top + STRIP_H + 2, LANE_H - STRIP_H - ASLEEP_H - 4
    if lane.angle_deg is not None:
        ys = plot_top + plot_h * (90.0 - np.clip(lane.angle_deg[where], -90, 90)) / 180.0
        body.append(svg.polyline([_x(m + 0.5) for m in minute], ys.tolist(),
                                 stroke="#8073ac", stroke_width="0.6", stroke_opacity="0.7",
                                 class_="angle"))
    if lane.enmo_g is not None:
        ys = plot_top + plot_h * (1.0 - np.clip(lane.enmo_g[where], 0, ENMO_TOP_G) / ENMO_TOP_G)
        body.append(svg.polyline([_x(m + 0.5) for m in minute], ys.tolist(), stroke="#1d2327",
                                 stroke_width="0.8", class_="enmo"))
    if lane.asleep is not None:
        for a, b in spans(lane.asleep[where]):
            body.append(svg.rect(_x(a), top + LANE_H - ASLEEP_H, _x(b) - _x(a), ASLEEP_H,
                                 fill=COLOURS["asleep"], class_="asleep"))
    known = np.ones(lane.wear.shape, dtype=bool) if lane.wear_known is None else lane.wear_known
    for a, b in spans(~lane.wear[where] & known[where]):
        body.append(svg.rect(_x(a), top, _x(b) - _x(a), LANE_H, fill=COLOURS["not worn"],
                             fill_opacity="0.6", class_="non-wear"))
    for a, b in spans(~known[where]):
        body.append(svg.rect(_x(a), top, _x(b) - _x(a), LANE_H, fill=COLOURS["wear unknown"],
                             fill_opacity="0.45", class_="wear-unknown"))
    return body


def _window_ids(lane: Lane) -> np.ndarray[Any, Any]:
    """Per minute of the lane: the index of the sleep window it lies in (-1 outside)."""
    flag = lane.sleep_window.astype(np.int8)
    starts = np.diff(np.concatenate(([0], flag))) == 1
    return np.where(lane.sleep_window, np.cumsum(starts) - 1, -1)


def day_svg(lanes: Sequence[Lane], day: date, first_day: date) -> str:
    """One day's picture: the hours axis, then one lane per wrist."""
    body: list[str] = []
    for hour in range(0, 25, 3):
        x = _x(hour * 60)
        body.append(svg.line(x, AXIS_H - 2, x, AXIS_H + len(lanes) * (LANE_H + LANE_GAP),
                             stroke="#e3e6e8", stroke_width="0.6"))
        body.append(svg.text(x, AXIS_H - 3, f"{hour:02d}:00", font_size=9, fill="#5f6b73",
                             text_anchor="middle"))
    for i, lane in enumerate(lanes):
        offset = (day - lane.first_day).days
        body.extend(_lane_svg(lane, offset, AXIS_H + i * (LANE_H + LANE_GAP)))
    height = AXIS_H + len(lanes) * (LANE_H + LANE_GAP)
    return svg.svg(WIDTH, height, body, class_="timeline", data_date=day.isoformat(),
                   aria_label=f"activity, wear and sleep on {day.isoformat()}")


def all_days(lanes: Sequence[Lane]) -> list[date]:
    """Every local date from the first recorded minute to the last (gaps included)."""
    days = sorted({d for lane in lanes for d in lane.days()})
    if not days:
        return []
    return [days[0] + timedelta(days=i) for i in range((days[-1] - days[0]).days + 1)]


def legend() -> Mapping[str, str]:
    """What each colour means (words -> colour)."""
    return dict(COLOURS)
