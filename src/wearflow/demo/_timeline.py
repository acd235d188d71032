"""The behaviour timeline of a synthetic participant: when they sleep, walk and take
the device off.

Planned in the participant's local time from the seed alone (so both wrists
share it) and laid on the coarse control grid that the signal is built on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import IntEnum
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from wearflow.recording import FloatArray

Interval = tuple[float, float]
"""A half-open ``(start_utc_s, end_utc_s)`` interval in UTC seconds since the epoch."""

Side = Literal["left", "right"]
"""Which wrist a recording is from."""


class Behaviour(IntEnum):
    """What the participant is doing, one code per control-grid step."""

    AWAKE = 0
    SLEEP = 1
    NON_WEAR = 2
    WALKING = 3
    RESTLESS = 4  # brief arm movement during the night; temperature stays as asleep


@dataclass(frozen=True)
class Plan:
    """The behaviour timeline of one participant, unclipped, in UTC seconds."""

    sleep: tuple[Interval, ...]
    non_wear: tuple[Interval, ...]
    walking: tuple[Interval, ...]
    step_hz: tuple[float, ...]  # one per walking bout
    restless: tuple[Interval, ...]
    posture_changes_s: tuple[float, ...]  # during sleep


def local_s(day: date, hour: float, tz: ZoneInfo) -> float:
    """UTC seconds of ``hour`` hours after local midnight of ``day``, whole seconds."""
    midnight = datetime.combine(day, time(0, 0), tzinfo=tz)
    return float(round((midnight + timedelta(hours=hour)).timestamp()))


def _overlaps(a: Interval, others: Sequence[Interval], margin_s: float) -> bool:
    return any(a[0] < b[1] + margin_s and b[0] < a[1] + margin_s for b in others)


def plan_timeline(seed: int, first_day: date, last_day: date, tz: ZoneInfo) -> Plan:
    """Plan the participant's days from ``first_day`` to ``last_day`` (local dates).

    Every day draws the same number of random values, so the plan of a day
    does not depend on how many days follow it.
    """
    rng = np.random.default_rng((seed, 0))
    sleep: list[Interval] = []
    non_wear: list[Interval] = []
    walking: list[Interval] = []
    step_hz: list[float] = []
    restless: list[Interval] = []
    postures: list[float] = []
    # (earliest local start hour, width of the start range in hours); the last
    # is the evening walk, which every day has.
    walk_windows = ((8.25, 0.5), (12.25, 1.0), (17.5, 1.0), (19.5, 1.0))
    wake_s = local_s(first_day, 7.0, tz)
    day = first_day
    while day <= last_day:
        u = rng.random(32)
        gaps_min = 8.0 + 20.0 * rng.random(96)
        onset_s = local_s(day, 23.0 + 1.5 * u[0] - 0.75, tz)  # 22:15-23:45
        next_wake_s = local_s(day + timedelta(days=1), 7.0 + 1.0 * u[1] - 0.75, tz)  # 06:15-07:15

        if u[2] < 0.5:  # one interval of 1-3 h
            s = 9.5 + 6.5 * u[3]
            day_nw = [(s, s + 1.0 + 2.0 * u[4])]
        else:  # two intervals of 1-2 h, late morning and afternoon
            s1, s2 = 9.5 + 1.5 * u[3], 15.0 + 2.0 * u[5]
            day_nw = [(s1, s1 + 1.0 + u[4]), (s2, s2 + 1.0 + u[6])]
        nw = [(local_s(day, a, tz), local_s(day, b, tz)) for a, b in day_nw]
        non_wear.extend(nw)

        for k, (lo, width) in enumerate(walk_windows):
            s = lo + width * u[7 + k]
            bout = (local_s(day, s, tz), local_s(day, s + (8.0 + 14.0 * u[11 + k]) / 60.0, tz))
            wanted = k == len(walk_windows) - 1 or u[15 + k] < 0.8
            awake = bout[0] >= wake_s + 900.0 and bout[1] <= onset_s - 1800.0
            if wanted and awake and not _overlaps(bout, nw, 900.0):
                walking.append(bout)
                step_hz.append(1.8 + 0.25 * u[19 + k])

        sleep.append((onset_s, next_wake_s))
        night_s = next_wake_s - onset_s
        for k in range(1 + int(u[23] * 3.0)):  # 1-3 restless episodes of 2-6 minutes
            s = onset_s + 3600.0 + (night_s - 7200.0) * u[24 + k]
            restless.append((float(round(s)), float(round(s + 120.0 + 240.0 * u[27 + k]))))
        changes = onset_s + 60.0 * np.cumsum(gaps_min)
        postures.extend(float(round(c)) for c in changes[changes < next_wake_s - 60.0])

        wake_s = next_wake_s
        day += timedelta(days=1)

    return Plan(
        sleep=tuple(sleep),
        non_wear=tuple(non_wear),
        walking=tuple(walking),
        step_hz=tuple(step_hz),
        restless=tuple(sorted(restless)),
        posture_changes_s=tuple(postures),
    )


def clip(intervals: Sequence[Interval], start_s: float, end_s: float) -> tuple[Interval, ...]:
    """The intervals cut to ``[start_s, end_s)``, sorted, dropping any shorter than 1 s."""
    out = [(max(a, start_s), min(b, end_s)) for a, b in intervals]
    return tuple(sorted((a, b) for a, b in out if b - a >= 1.0))


def state_grid(plan: Plan, t_ctrl: FloatArray) -> npt.NDArray[np.int8]:
    """The :class:`Behaviour` code at each control-grid time (later kinds win overlaps)."""
    state = np.full(t_ctrl.shape, Behaviour.AWAKE, dtype=np.int8)
    for code, intervals in (
        (Behaviour.SLEEP, plan.sleep),
        (Behaviour.RESTLESS, plan.restless),
        (Behaviour.WALKING, plan.walking),
        (Behaviour.NON_WEAR, plan.non_wear),
    ):
        for a, b in intervals:
            i0, i1 = np.searchsorted(t_ctrl, (a, b))
            state[i0:i1] = code
    return state


def runs(state: npt.NDArray[np.int8]) -> list[tuple[int, int, int]]:
    """(code, first index, end index) of each run of equal states."""
    edges = np.flatnonzero(np.diff(state)) + 1
    starts = np.concatenate(([0], edges))
    ends = np.concatenate((edges, [state.size]))
    return [(int(state[a]), int(a), int(b)) for a, b in zip(starts, ends, strict=True)]
