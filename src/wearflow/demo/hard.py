"""Harder seeded multi-day wrist recordings with planted truth (issue 17's agreement data).

:mod:`wearflow.demo.synthetic` makes recordings that read like a tidy participant:
that is what the demo needs, and its bytes are pinned by tests, so it stays as is.
:func:`generate_hard_recording` reuses its pieces (the timeline's behaviour codes, the
signal renderer, the arm model, walking) on a plan built to stress what a wrist
solution decides:

- restless nights: a posture change every 20-90 minutes and 2-5 brief awakenings of
  2-10 minutes with arm movement (skin temperature stays as asleep);
- a daytime nap (25-90 minutes, afternoon) on about three days in four;
- a 2-4 h daytime non-wear every day and, on one night, a 1-2.5 h non-wear in the
  middle of the night: the device lies flat on a table and cools to room
  temperature;
- slow temperature drift (up to 1.5 degC a day, plus a daily room cycle);
- a per-recording calibration error: offsets up to 0.05 g, gains 0.97-1.03;
- one or two logging gaps of 5-60 minutes during daytime wake;
- any rate from 25 to 100 Hz; the start hour is drawn from 09:00-13:00 local.

The truth (:class:`HardTruth`) is intervals in UTC seconds plus per-day and
per-night summaries in local time. Worn time excludes non-wear and gaps (no data).
Everything depends only on ``seed`` (and the arguments): the same call gives the
same arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from wearflow.demo import _signal as sig
from wearflow.demo import _timeline as tl
from wearflow.demo._timeline import Interval
from wearflow.demo.synthetic import _add_walking, _arm_gravity
from wearflow.errors import ConfigError
from wearflow.recording import DeviceInfo, FloatArray, Recording

__all__ = ["DayTruth", "HardTruth", "NightTruth", "generate_hard_recording"]

_SUBJECT = "wearflow.demo.hard"
MIN_RATE_HZ = 25.0
MAX_RATE_HZ = 100.0


@dataclass(frozen=True)
class DayTruth:
    """One local calendar day (0-24 h) of a hard recording, clipped to the recording."""

    date: date
    span_h: float  # hours of the day inside the recording (gaps included)
    worn_h: float  # hours worn with data: span minus non-wear minus gaps
    mvpa_min: float  # planted walking minutes
    nap_min: float  # planted nap minutes (daytime sleep)


@dataclass(frozen=True)
class NightTruth:
    """One planted night: the sleep window and what happened in it (UTC seconds)."""

    onset_utc_s: float
    wake_utc_s: float
    awakenings: tuple[Interval, ...]
    non_wear: tuple[Interval, ...]  # the device off during this night


@dataclass(frozen=True)
class HardTruth:
    """What was planted in a hard recording; intervals sorted, clipped to the recording.

    ``sleep`` holds the night sleep windows (onset to wake, awakenings included),
    ``naps`` the daytime sleep; ``gaps`` the logging gaps (no samples).
    """

    sleep: tuple[Interval, ...]
    awakenings: tuple[Interval, ...]
    naps: tuple[Interval, ...]
    non_wear: tuple[Interval, ...]
    walking: tuple[Interval, ...]
    gaps: tuple[Interval, ...]
    days: tuple[DayTruth, ...]
    nights: tuple[NightTruth, ...]
    time_zone: str
    sampling_rate_hz: float
    start_utc_s: float
    end_utc_s: float
    offset_g: tuple[float, float, float]
    gain: tuple[float, float, float]
    seed: int


def _overlap(intervals: tuple[Interval, ...] | list[Interval], a: float, b: float) -> float:
    return sum(max(0.0, min(e, b) - max(s, a)) for s, e in intervals)


def _free(bout: Interval, taken: list[Interval], margin_s: float) -> bool:
    return not any(bout[0] < b + margin_s and a < bout[1] + margin_s for a, b in taken)


@dataclass(frozen=True)
class _HardPlan:
    plan: tl.Plan
    naps: tuple[Interval, ...]
    gaps: tuple[Interval, ...]


def _plan(seed: int, first_day: date, last_day: date, tz: ZoneInfo, start_s: float,
          end_s: float) -> _HardPlan:
    """Plan every local day from ``first_day`` to ``last_day``; the same number of
    draws per day, so a day's plan does not depend on how many follow it."""
    rng = np.random.default_rng((seed, 7))
    sleep: list[Interval] = []
    non_wear: list[Interval] = []
    walking: list[Interval] = []
    step_hz: list[float] = []
    restless: list[Interval] = []
    postures: list[float] = []
    naps: list[Interval] = []
    n_days = (last_day - first_day).days + 1
    night_off = int(rng.integers(1, max(n_days - 1, 2)))  # which night loses the device
    wake_s = tl.local_s(first_day, 7.0, tz)
    day = first_day
    for k_day in range(n_days):
        u = rng.random(40)
        onset_s = tl.local_s(day, 22.0 + 2.5 * u[0], tz)  # 22:00-00:30
        next_wake_s = tl.local_s(day + timedelta(days=1), 6.0 + 2.5 * u[1], tz)  # 06:00-08:30
        taken: list[Interval] = []
        # daytime non-wear of 2-4 h, in the morning (09:00-10:00 start) or the late
        # afternoon (16:30-17:30 start); a nap of 25-90 min on about 3 days in 4
        morning = u[2] < 0.5
        s = (9.0 if morning else 16.5) + u[3]
        nw = (tl.local_s(day, s, tz), tl.local_s(day, s + 2.0 + 2.0 * u[4], tz))
        non_wear.append(nw)
        taken.append(nw)
        s = (14.5 + 1.5 * u[5]) if morning else (13.0 + 2.0 * u[5])
        nap = (tl.local_s(day, s, tz), tl.local_s(day, s + (25.0 + 65.0 * u[6]) / 60.0, tz))
        if u[37] < 0.75 and _free(nap, taken, 1800.0):
            naps.append(nap)
            taken.append(nap)
        # walks: morning, midday, evening, late evening
        for k, (lo, width) in enumerate(((8.75, 0.5), (12.0, 1.0), (17.5, 1.0), (19.5, 1.0))):
            a = lo + width * u[7 + k]
            bout = (tl.local_s(day, a, tz), tl.local_s(day, a + (8.0 + 17.0 * u[11 + k]) / 60, tz))
            awake = bout[0] >= wake_s + 900.0 and bout[1] <= onset_s - 1800.0
            if u[15 + k] < 0.85 and awake and _free(bout, taken, 900.0):
                walking.append(bout)
                step_hz.append(1.8 + 0.25 * u[19 + k])
                taken.append(bout)
        # the night: posture changes every 20-90 min, 2-5 awakenings of 2-10 min
        sleep.append((onset_s, next_wake_s))
        night_s = next_wake_s - onset_s
        changes = onset_s + 60.0 * np.cumsum(20.0 + 70.0 * rng.random(40))
        postures.extend(float(round(c)) for c in changes[changes < next_wake_s - 60.0])
        n_wake = 2 + int(u[23] * 4.0)
        slots = np.sort(u[24:24 + n_wake])  # spread over the night, kept apart
        for j in range(n_wake):
            a = onset_s + 2400.0 + (night_s - 4800.0) * (j + slots[j]) / n_wake
            restless.append((float(round(a)), float(round(a + 120.0 + 480.0 * u[30 + j]))))
        if k_day == night_off:
            a = onset_s + 0.3 * night_s + 0.2 * night_s * u[35]
            nw = (float(round(a)), float(round(a + 3600.0 * (1.0 + 1.5 * u[36]))))
            non_wear.append(nw)
        wake_s = next_wake_s
        day += timedelta(days=1)

    # gaps: 1-2 of 5-60 min during daytime wake, clear of everything else
    gaps: list[Interval] = []
    busy = [*sleep, *naps, *non_wear, *walking]
    for _ in range(1 + int(rng.random() < 0.5)):
        for _try in range(200):
            a = float(round(rng.uniform(start_s + 3600.0, end_s - 7200.0)))
            gap = (a, a + 60.0 * float(round(rng.uniform(5.0, 60.0))))
            if _free(gap, busy + gaps, 1800.0):
                gaps.append(gap)
                break
    plan = tl.Plan(sleep=tuple(sleep + naps), non_wear=tuple(non_wear), walking=tuple(walking),
                   step_hz=tuple(step_hz), restless=tuple(sorted(restless)),
                   posture_changes_s=tuple(sorted(postures)))
    return _HardPlan(plan=plan, naps=tuple(naps), gaps=tuple(sorted(gaps)))


def generate_hard_recording(*, seed: int, days: float = 3.0, sampling_rate_hz: float = 25.0,
                            time_zone: str = "Europe/Berlin",
                            start_date: date = date(2026, 3, 9)) -> tuple[Recording, HardTruth]:
    """Simulate one hard multi-day left-wrist recording and return it with its truth.

    Parameters
    ----------
    seed
        Seeds everything: the same arguments give the same arrays.
    days
        Length in days (at least 0.5).
    sampling_rate_hz
        25-100 Hz; accelerometer and temperature share it.
    time_zone
        IANA name of the participant's local time.
    start_date
        Local date of the first sample; the hour is drawn from 09:00-13:00.

    Raises
    ------
    ConfigError
        On an unknown time zone, a rate outside 25-100 Hz or fewer than 0.5 days.
    """
    try:
        tz = ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"unknown time zone {time_zone!r}", subject=_SUBJECT) from exc
    if not MIN_RATE_HZ <= sampling_rate_hz <= MAX_RATE_HZ:
        raise ConfigError(f"sampling rate must be 25-100 Hz, got {sampling_rate_hz}",
                          subject=_SUBJECT)
    if not (days >= 0.5 and math.isfinite(days)):
        raise ConfigError(f"days must be at least 0.5, got {days}", subject=_SUBJECT)
    rng = np.random.default_rng((seed, 8))
    start_s = tl.local_s(start_date, 9.0 + 4.0 * float(rng.random()), tz)
    n = round(days * 86400.0 * sampling_rate_hz)
    t = start_s + np.arange(n, dtype=np.float64) / sampling_rate_hz
    end_s = start_s + n / sampling_rate_hz
    first_day = start_date - timedelta(days=1)
    last_day = datetime.fromtimestamp(end_s, tz).date()
    hp = _plan(seed, first_day, last_day, tz, start_s, end_s)

    n_ctrl = math.ceil(n / sampling_rate_hz * sig.CTRL_HZ) + 2
    t_ctrl = start_s + np.arange(n_ctrl, dtype=np.float64) / sig.CTRL_HZ
    state = tl.state_grid(hp.plan, t_ctrl)
    runs = tl.runs(state)
    g_ctrl, pitch, roll = _arm_gravity(rng, hp.plan, state, runs, t_ctrl)
    rot = sig.mount_rotation(rng, "left")
    gain = rng.uniform(0.97, 1.03, 3)
    offset = rng.uniform(-0.05, 0.05, 3)
    g_ctrl = sig.rotate(g_ctrl, rot) * gain + offset
    temp_ctrl = sig.near_body_temperature(rng, runs, t_ctrl)
    # drift: the sensor's own slow drift plus a daily room cycle felt through the strap
    drift_c_per_day = rng.uniform(-1.5, 1.5)
    phase = rng.uniform(0.0, 2.0 * np.pi)
    temp_ctrl += drift_c_per_day * (t_ctrl - start_s) / 86400.0
    temp_ctrl += 0.6 * np.sin(2.0 * np.pi * (t_ctrl - start_s) / 86400.0 + phase)
    accel, temperature = sig.render(rng, t, t_ctrl, g_ctrl, temp_ctrl)
    _add_walking(rng, hp.plan, t, t_ctrl, accel, pitch, roll, rot, gain)

    keep = np.ones(n, dtype=bool)
    for a, b in hp.gaps:
        i0, i1 = np.searchsorted(t, (a, b))
        keep[i0:i1] = False
    recording = Recording(
        time_s=t[keep], accel_g=accel[keep], sampling_rate_hz=float(sampling_rate_hz),
        device=DeviceInfo(format="synthetic", model="wearflow-synthetic-wrist-hard"),
        temperature_c=temperature[keep])
    return recording, _truth(hp, seed, tz, time_zone, float(sampling_rate_hz), start_s, end_s,
                             offset, gain)


def _truth(hp: _HardPlan, seed: int, tz: ZoneInfo, time_zone: str, rate_hz: float,
           start_s: float, end_s: float, offset: FloatArray, gain: FloatArray) -> HardTruth:
    """The plan clipped to the recording, with per-day and per-night summaries."""
    night_sleep = tl.clip(hp.plan.sleep[: len(hp.plan.sleep) - len(hp.naps)], start_s, end_s)
    non_wear = tl.clip(hp.plan.non_wear, start_s, end_s)
    # an awakening under the night's non-wear is not observable: not planted
    awakenings = tuple(w for w in tl.clip(hp.plan.restless, start_s, end_s)
                       if _overlap(non_wear, *w) == 0.0)
    naps = tl.clip(hp.naps, start_s, end_s)
    walking = tl.clip(hp.plan.walking, start_s, end_s)
    gaps = tl.clip(hp.gaps, start_s, end_s)
    days: list[DayTruth] = []
    day = datetime.fromtimestamp(start_s, tz).date()
    while (a := tl.local_s(day, 0.0, tz)) < end_s:
        b = tl.local_s(day + timedelta(days=1), 0.0, tz)
        a, b = max(a, start_s), min(b, end_s)
        worn = (b - a) - _overlap(non_wear, a, b) - _overlap(gaps, a, b)
        days.append(DayTruth(date=day, span_h=(b - a) / 3600.0, worn_h=worn / 3600.0,
                             mvpa_min=_overlap(walking, a, b) / 60.0,
                             nap_min=_overlap(naps, a, b) / 60.0))
        day += timedelta(days=1)
    # a night counts only when the recording holds all of it
    nights = tuple(
        NightTruth(onset_utc_s=a, wake_utc_s=b,
                   awakenings=tuple(w for w in awakenings if a <= w[0] < b),
                   non_wear=tuple(w for w in non_wear if a <= w[0] < b))
        for a, b in hp.plan.sleep[: len(hp.plan.sleep) - len(hp.naps)]
        if a >= start_s and b <= end_s)
    return HardTruth(
        sleep=night_sleep, awakenings=awakenings, naps=naps, non_wear=non_wear,
        walking=walking, gaps=gaps, days=tuple(days), nights=nights, time_zone=time_zone,
        sampling_rate_hz=rate_hz, start_utc_s=start_s, end_utc_s=end_s,
        offset_g=(float(offset[0]), float(offset[1]), float(offset[2])),
        gain=(float(gain[0]), float(gain[1]), float(gain[2])), seed=seed)
