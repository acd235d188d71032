"""The facts of a CSV table that :func:`read_csv` takes from the whole file, gathered
block by block with bounded state (the survey pass of :mod:`._csv_stream`).

Order statistics around a threshold stand in for the medians (:class:`Threshold`), a
table of the distinct time steps for the rate (:class:`Steps`), and every way the time
column may be read is followed at once (:class:`Timing` per time unit, :class:`Clock`
for the column's kind and time zone). Where a fact cannot be had exactly,
:class:`NotStreamable` is raised and the file is read whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from wearflow.readers import csv_reader as cr
from wearflow.readers._common import zone_offset_s
from wearflow.recording import FloatArray

MAX_DISTINCT_STEPS = 1 << 16
"""Distinct positive time steps kept for the rate (16 bytes each)."""
RATE_REL_ERROR = 1e-12
"""Bound on the relative error of numpy's pairwise mean of the regular steps (about
log2(n) + 20 roundings of 1.1e-16) and of ours: a rate whose two bounds round to the
same 6 decimals is the whole-file rate."""
DIVISORS = (1.0, 1e3, 1e6, 1e9)
UNITS = ("m/s^2", "mg")  # read_csv converts these without a median


class NotStreamable(Exception):
    """The file is read whole instead (see :mod:`._csv_stream`)."""


class Threshold:
    """Where the median of a stream of values lies against ``limit`` (np.median's)."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.below = self.equal = self.above = 0
        self.max_below = -math.inf
        self.min_above = math.inf

    def add(self, values: FloatArray) -> None:
        below = values[values < self.limit]
        above = values[values > self.limit]
        self.below += below.size
        self.above += above.size
        self.equal += values.size - below.size - above.size
        if below.size:
            self.max_below = max(self.max_below, float(below.max()))
        if above.size:
            self.min_above = min(self.min_above, float(above.min()))

    def compare(self) -> int:
        """The sign of (median - limit); 0 for no value."""
        n = self.below + self.equal + self.above
        if n == 0:
            return 0

        def stat(k: int) -> tuple[int, float]:
            if k < self.below:
                return -1, self.max_below  # the value only when k is the class's last
            if k < self.below + self.equal:
                return 0, self.limit
            return 1, self.min_above  # the value only when k is the class's first

        if n % 2:
            return stat(n // 2)[0]
        (low_side, low), (high_side, high) = stat(n // 2 - 1), stat(n // 2)
        if low_side == high_side:
            return low_side
        # neighbours in different classes: the last of one, the first of the next
        median = float(np.median(np.array([low, high])))
        return (median > self.limit) - (median < self.limit)


class Steps:
    """The kept times of one timing: in order or not, and their distinct positive steps."""

    def __init__(self) -> None:
        self.last: float | None = None
        self.in_order = True
        self.values = np.empty(0, np.float64)
        self.counts = np.empty(0, np.int64)

    def add(self, time_s: FloatArray) -> None:
        if time_s.size == 0 or not self.in_order:
            return
        steps = np.diff(time_s) if self.last is None else np.diff(time_s, prepend=self.last)
        self.last = float(time_s[-1])
        if np.any(steps < 0):
            self.in_order = False  # read_csv sorts the times: left to it
            return
        steps = steps[steps > 0]
        if steps.size:
            values, inverse = np.unique(np.concatenate([self.values, steps]),
                                        return_inverse=True)
            counts = np.zeros(values.size, np.int64)
            np.add.at(counts, inverse,
                      np.concatenate([self.counts, np.ones(steps.size, np.int64)]))
            self.values, self.counts = values, counts
        if self.values.size > MAX_DISTINCT_STEPS:
            raise NotStreamable("too many distinct time steps")

    def rate_hz(self) -> float:
        """read_csv's ``_rate`` of these times, or NotStreamable."""
        if not self.in_order:
            raise NotStreamable("times out of order")
        total = int(self.counts.sum())
        if total == 0:
            raise NotStreamable("no positive step")  # refused by read_csv
        ends = np.cumsum(self.counts)

        def stat(k: int) -> float:
            return float(self.values[int(np.searchsorted(ends, k, side="right"))])

        half = total // 2
        pair = [stat(half)] if total % 2 else [stat(half - 1), stat(half)]
        median = np.median(np.array(pair))
        regular = (self.values > 0.5 * median) & (self.values < 1.5 * median)
        if not np.any(regular):
            return round(float(1.0 / median), 6)
        values, counts = self.values[regular], self.counts[regular]
        mean = math.fsum((values * counts).tolist()) / int(counts.sum())
        low = round(1.0 / (mean * (1 + RATE_REL_ERROR)), 6)
        high = round(1.0 / (mean * (1 - RATE_REL_ERROR)), 6)
        if low != high:
            raise NotStreamable("rate next to a rounding boundary")
        return low


@dataclass
class Timing:
    """One way of timing the rows: the rows it keeps and the whole-file facts on them."""

    divisors: tuple[float, ...] = (1.0,)
    unit: str = ""
    dropped: int = 0
    kept: int = 0
    steps: dict[float, Steps] = field(default_factory=dict)
    above_4: Threshold = field(default_factory=lambda: Threshold(4.0))
    above_20: Threshold = field(default_factory=lambda: Threshold(20.0))

    def add(self, time_s: FloatArray, accel: FloatArray, temperature: FloatArray | None
            ) -> None:
        keep = finite_rows(time_s, accel, temperature)
        self.dropped += int(keep.size - np.count_nonzero(keep))
        self.kept += int(np.count_nonzero(keep))
        kept_s = time_s[keep]
        for divisor in self.divisors:
            self.steps.setdefault(divisor, Steps()).add(kept_s / divisor)
        if self.unit not in UNITS:
            a = accel[keep]
            magnitude = np.hypot(np.hypot(a[:, 0], a[:, 1]), a[:, 2])
            moving = magnitude[magnitude > 0]
            self.above_4.add(moving)
            self.above_20.add(moving)

    def plan(self, divisor: float, zone_flags: list[str]) -> Plan:
        """What the delivery pass needs, or NotStreamable where read_csv refuses."""
        if self.kept < 2:
            raise NotStreamable("fewer than two valid rows")
        flags = list(zone_flags)
        if self.dropped:
            flags.append(f"rows_with_missing_values_dropped={self.dropped}")
        scale = 1.0
        if self.unit == "m/s^2":
            scale = cr.STANDARD_GRAVITY
        elif self.unit == "mg":
            scale = 1000.0
        elif self.above_4.below + self.above_4.equal + self.above_4.above:
            above_4, below_20 = self.above_4.compare() > 0, self.above_20.compare() < 0
            if above_4 and below_20:
                scale = cr.STANDARD_GRAVITY
            elif not below_20:
                raise NotStreamable("acceleration in an unknown unit")  # refused by read_csv
        if scale == cr.STANDARD_GRAVITY:
            flags.append("converted_m_s2_to_g")
        elif scale == 1000.0:
            flags.append("converted_mg_to_g")
        rate = self.steps.setdefault(divisor, Steps()).rate_hz()
        return Plan(divisor, scale, rate, flags)


@dataclass(frozen=True)
class Plan:
    divisor: float
    scale: float  # acceleration divided by this (1 when in g)
    rate_hz: float
    flags: list[str]


def finite_rows(time_s: FloatArray, accel: FloatArray, temperature: FloatArray | None
                 ) -> np.ndarray:
    finite: np.ndarray = np.isfinite(time_s) & np.all(np.isfinite(accel), axis=1)
    if temperature is not None:
        finite &= np.isfinite(temperature)
    return finite


@dataclass
class Clock:
    """The time column read as read_csv's ``_parse_times`` reads the whole column."""

    uri: str
    zone: str
    numeric: bool | None = None  # decided on the first block
    aware: bool | None = None  # ISO: from the first stamp present
    offset_s: float | None = None  # naive ISO: the zone's offset at the first time
    any_time: bool = False
    low_local: float = math.inf
    high_local: float = -math.inf
    magnitude: dict[float, Threshold] = field(default_factory=lambda: {
        limit: Threshold(limit) for limit in (1e11, 1e14, 1e17)})

    def read(self, column: pd.Series, signature: list[str]) -> FloatArray:
        """The block's times: raw numbers (unit not yet known) or UTC seconds."""
        if self.numeric is None:
            sample = pd.to_numeric(column.head(100), errors="coerce")
            self.numeric = bool(pd.api.types.is_numeric_dtype(column)
                                or sample.notna().mean() > 0.99)
        if self.numeric:
            converted = pd.to_numeric(column, errors="coerce")
            signature.append(str(converted.dtype))
            values = converted.to_numpy(np.float64)
            present = values[~np.isnan(values)]
            self.any_time |= bool(present.size)
            for threshold in self.magnitude.values():
                threshold.add(np.abs(present))
            return values
        strings = column.astype("string").str.strip()
        if self.aware is None and strings.notna().any():
            self.aware = bool(cr._OFFSET.search(str(strings.dropna().iloc[0])))
        aware = bool(self.aware)
        zoned = strings.str.contains(cr._OFFSET, na=False)
        strings = strings.where(zoned == aware)
        parsed = pd.to_datetime(strings, format="ISO8601", errors="coerce", utc=aware)
        if aware:
            parsed = parsed.dt.tz_localize(None)
        signature.append(str(parsed.dtype))
        stamps = parsed.to_numpy("datetime64[us]")
        micros = stamps.astype(np.int64).astype(np.float64)
        seconds: FloatArray = np.where(np.isnat(stamps), np.nan, micros / 1e6)
        finite = seconds[np.isfinite(seconds)]
        if finite.size:
            self.any_time = True
            self.low_local = min(self.low_local, float(finite.min()))
            self.high_local = max(self.high_local, float(finite.max()))
        if aware:
            return seconds
        if self.offset_s is None:
            known = seconds[~np.isnan(seconds)]
            if not known.size:
                return seconds
            self.offset_s = zone_offset_s(self.zone, float(known[0]), self.uri)
        out: FloatArray = seconds - self.offset_s
        return out

    def divisor(self) -> float:
        if not self.numeric:
            return 1.0
        for limit, divisor in zip((1e11, 1e14, 1e17), DIVISORS, strict=False):
            if self.magnitude[limit].compare() < 0:
                return divisor
        return DIVISORS[-1]

    def zone_flags(self) -> list[str]:
        if self.numeric or self.aware or self.offset_s is None:
            return []
        return dst_flag(self.zone, self.offset_s, self.low_local, self.high_local, self.uri)


def dst_flag(zone: str, offset_s: float, low: float, high: float, uri: str) -> list[str]:
    """local_to_utc's flag, from the first and last finite local times."""
    if not math.isfinite(low):
        return []
    first, last = zone_offset_s(zone, low, uri), zone_offset_s(zone, high, uri)
    return ["dst_change_not_applied"] if first != offset_s or last != offset_s else []
