"""Seeded synthetic wrist recordings with planted ground truth.

Used by ``wearflow demo`` and by tests that need data whose answer is known.
:func:`generate_recording` simulates a wrist-worn accelerometer with a
near-body temperature sensor over some days of a participant's life, in the
participant's local time:

- nights asleep (about 23:00-07:00, jittered): lying still, a posture change
  every 8-28 minutes, a slow sub-degree drift, one to three restless spells
  of 2-6 minutes, skin temperature about 34 degC;
- daytime wake: arm postures held for seconds to minutes with small wandering,
  joined by quick re-orientations, plus small linear accelerations (mostly
  sedentary and light by ENMO), skin temperature about 32 degC;
- walking bouts (8-22 minutes, two to four a day): arm swing at the stride
  frequency (about 0.95 Hz) with vertical bounce and heel strikes at the step
  frequency (1.8-2.05 Hz), ENMO about 0.2-0.3 g, enough for MVPA;
- one or two non-wear intervals a day (1-3 h): the device lies flat on a table,
  only sensor noise, and its temperature decays toward room temperature
  (22-24 degC) and rises again once it is put back on.

The behaviour timeline (when the participant sleeps, walks, takes the device
off) depends only on ``seed``, so the left and right wrist of one participant
share it; orientation, movement details, noise, device calibration error and
temperature offsets come from a stream that also depends on ``side``.

The signal is tuned (see ``tests/test_synthetic.py``) so that the builtin
scikit-digital-health solution finds the planted truth: DETACH finds the
non-wear (it needs the temperature to fall while the device is still), Sleep
finds the nights, and ActivityLevelClassification reports MVPA on walking
days. The default start, 08:00 local time, makes a 2-day recording cover two
complete nights for the 12:00-12:00 sleep windows.

:func:`write_study` writes a small study of such recordings as ``.cwa`` files
with the truth beside them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import IntEnum
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt

from wearflow.errors import ConfigError
from wearflow.readers.cwa import write_cwa
from wearflow.recording import DeviceInfo, FloatArray, Recording

__all__ = [
    "DEFAULT_START_DATE",
    "DEFAULT_START_LOCAL_HOUR",
    "GroundTruth",
    "Interval",
    "Side",
    "generate_recording",
    "write_study",
]

Interval = tuple[float, float]
"""A half-open ``(start_utc_s, end_utc_s)`` interval in UTC seconds since the epoch."""

Side = Literal["left", "right"]
"""Which wrist a recording is from."""

DEFAULT_START_DATE = date(2026, 3, 2)
"""Local date on which recordings start unless ``start_utc`` is given."""
DEFAULT_START_LOCAL_HOUR = 8.0
"""Local hour at which recordings start unless ``start_utc`` is given."""

_TRUTH_FORMAT = "wearflow-synthetic-truth/1"
_SUBJECT = "wearflow.synthetic"

# Slow parts of the signal (orientation, linear acceleration, temperature) are
# built on a coarse control grid and linearly interpolated to the sampling
# rate; only sensor noise and walking are computed per sample. A 2-day 50 Hz
# recording takes about 0.6 s.
_CTRL_HZ = 5.0
_WANDER_HZ = 0.5
_G_M_S2 = 9.81

# Sensor noise (g), Gaussian; the device then quantises to 1/256 g.
_SENSOR_NOISE_G = 0.0025


class _State(IntEnum):
    AWAKE = 0
    SLEEP = 1
    NON_WEAR = 2
    WALKING = 3
    RESTLESS = 4  # brief arm movement during the night; temperature stays as asleep


@dataclass(frozen=True)
class GroundTruth:
    """What was planted in a synthetic recording.

    Intervals are ``(start_utc_s, end_utc_s)`` pairs in UTC seconds since the
    epoch, sorted and clipped to the recording.

    Attributes
    ----------
    non_wear
        The device lies on a table.
    sleep
        The participant is in bed asleep (the sleep period, including brief
        restless minutes).
    walking
        The participant walks.
    time_zone
        IANA name of the participant's local time, in which the daily
        structure was planned.
    sampling_rate_hz, start_utc_s, duration_s
        The recording's sampling rate, first timestamp and length.
    seed, side
        The arguments the recording was generated from.
    """

    non_wear: tuple[Interval, ...]
    sleep: tuple[Interval, ...]
    walking: tuple[Interval, ...]
    time_zone: str
    sampling_rate_hz: float
    start_utc_s: float
    duration_s: float
    seed: int
    side: Side

    def to_json(self) -> str:
        """Serialise to a stable JSON document, one interval per line."""
        scalars: dict[str, Any] = {
            "format": _TRUTH_FORMAT,
            "seed": self.seed,
            "side": self.side,
            "time_zone": self.time_zone,
            "sampling_rate_hz": self.sampling_rate_hz,
            "start_utc_s": self.start_utc_s,
            "duration_s": self.duration_s,
        }
        lines = [f"  {json.dumps(k)}: {json.dumps(v)}," for k, v in scalars.items()]
        lists = {"non_wear": self.non_wear, "sleep": self.sleep, "walking": self.walking}
        for i, (key, intervals) in enumerate(lists.items()):
            rows = ",\n".join(f"    [{json.dumps(a)}, {json.dumps(b)}]" for a, b in intervals)
            end = "," if i < len(lists) - 1 else ""
            body = f"[\n{rows}\n  ]" if rows else "[]"
            lines.append(f"  {json.dumps(key)}: {body}{end}")
        return "{\n" + "\n".join(lines) + "\n}\n"

    @classmethod
    def from_json(cls, text: str) -> GroundTruth:
        """Parse a document written by :meth:`to_json`.

        Raises
        ------
        ConfigError
            When the text is not such a document.
        """
        try:
            doc = json.loads(text)
            if doc.get("format") != _TRUTH_FORMAT:
                raise ValueError(f"format is {doc.get('format')!r}, expected {_TRUTH_FORMAT!r}")
            side = doc["side"]
            if side not in ("left", "right"):
                raise ValueError(f"side is {side!r}")

            def intervals(key: str) -> tuple[Interval, ...]:
                return tuple((float(a), float(b)) for a, b in doc[key])

            return cls(
                non_wear=intervals("non_wear"),
                sleep=intervals("sleep"),
                walking=intervals("walking"),
                time_zone=str(doc["time_zone"]),
                sampling_rate_hz=float(doc["sampling_rate_hz"]),
                start_utc_s=float(doc["start_utc_s"]),
                duration_s=float(doc["duration_s"]),
                seed=int(doc["seed"]),
                side=side,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"not a ground-truth document: {exc}", subject=_SUBJECT) from exc


@dataclass(frozen=True)
class _Plan:
    """The behaviour timeline of one participant, unclipped, in UTC seconds."""

    sleep: tuple[Interval, ...]
    non_wear: tuple[Interval, ...]
    walking: tuple[Interval, ...]
    step_hz: tuple[float, ...]  # one per walking bout
    restless: tuple[Interval, ...]
    posture_changes_s: tuple[float, ...]  # during sleep


# --------------------------------------------------------------------------- planning


def _local_s(day: date, hour: float, tz: ZoneInfo) -> float:
    """UTC seconds of ``hour`` hours after local midnight of ``day``, whole seconds."""
    midnight = datetime.combine(day, time(0, 0), tzinfo=tz)
    return float(round((midnight + timedelta(hours=hour)).timestamp()))


def _overlaps(a: Interval, others: Sequence[Interval], margin_s: float) -> bool:
    return any(a[0] < b[1] + margin_s and b[0] < a[1] + margin_s for b in others)


def _plan_timeline(seed: int, first_day: date, last_day: date, tz: ZoneInfo) -> _Plan:
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
    wake_s = _local_s(first_day, 7.0, tz)
    day = first_day
    while day <= last_day:
        u = rng.random(32)
        gaps_min = 8.0 + 20.0 * rng.random(96)
        onset_s = _local_s(day, 23.0 + 1.5 * u[0] - 0.75, tz)  # 22:15-23:45
        next_wake_s = _local_s(day + timedelta(days=1), 7.0 + 1.0 * u[1] - 0.75, tz)  # 06:15-07:15

        if u[2] < 0.5:  # one interval of 1-3 h
            s = 9.5 + 6.5 * u[3]
            day_nw = [(s, s + 1.0 + 2.0 * u[4])]
        else:  # two intervals of 1-2 h, late morning and afternoon
            s1, s2 = 9.5 + 1.5 * u[3], 15.0 + 2.0 * u[5]
            day_nw = [(s1, s1 + 1.0 + u[4]), (s2, s2 + 1.0 + u[6])]
        nw = [(_local_s(day, a, tz), _local_s(day, b, tz)) for a, b in day_nw]
        non_wear.extend(nw)

        for k, (lo, width) in enumerate(walk_windows):
            s = lo + width * u[7 + k]
            bout = (_local_s(day, s, tz), _local_s(day, s + (8.0 + 14.0 * u[11 + k]) / 60.0, tz))
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

    return _Plan(
        sleep=tuple(sleep),
        non_wear=tuple(non_wear),
        walking=tuple(walking),
        step_hz=tuple(step_hz),
        restless=tuple(sorted(restless)),
        posture_changes_s=tuple(postures),
    )


def _clip(intervals: Sequence[Interval], start_s: float, end_s: float) -> tuple[Interval, ...]:
    out = [(max(a, start_s), min(b, end_s)) for a, b in intervals]
    return tuple(sorted((a, b) for a, b in out if b - a >= 1.0))


# --------------------------------------------------------------------------- signal


def _state_grid(plan: _Plan, t_ctrl: FloatArray) -> npt.NDArray[np.int8]:
    state = np.full(t_ctrl.shape, _State.AWAKE, dtype=np.int8)
    for code, intervals in (
        (_State.SLEEP, plan.sleep),
        (_State.RESTLESS, plan.restless),
        (_State.WALKING, plan.walking),
        (_State.NON_WEAR, plan.non_wear),
    ):
        for a, b in intervals:
            i0, i1 = np.searchsorted(t_ctrl, (a, b))
            state[i0:i1] = code
    return state


def _runs(state: npt.NDArray[np.int8]) -> list[tuple[int, int, int]]:
    """(code, first index, end index) of each run of equal states."""
    edges = np.flatnonzero(np.diff(state)) + 1
    starts = np.concatenate(([0], edges))
    ends = np.concatenate((edges, [state.size]))
    return [(int(state[a]), int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


def _posture_knots(
    rng: np.random.Generator,
    plan: _Plan,
    runs: list[tuple[int, int, int]],
    t_ctrl: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Knot times and arm pitch/roll (degrees) of the held postures.

    Pitch is the angle of the device x axis (along the forearm, toward the
    hand) above the horizontal; roll turns the device about that axis, 0 with
    the face up. Roll accumulates instead of wrapping, so that interpolating
    between knots never spins the arm the long way round.
    """
    times: list[FloatArray] = []
    pitch: list[FloatArray] = []
    roll: list[FloatArray] = []
    roll_now = 0.0
    changes = np.asarray(plan.posture_changes_s)
    for code, i0, i1 in runs:
        t0 = float(t_ctrl[i0])
        t1 = float(t_ctrl[i1 - 1]) + 1.0 / _CTRL_HZ
        if code in (_State.AWAKE, _State.RESTLESS):
            # holds of seconds to minutes joined by quick re-orientations
            k = int((t1 - t0) / 8.0) + 8
            holds = np.clip(rng.exponential(25.0, k), 3.0, 180.0)
            moves = rng.uniform(0.8, 3.0, k)
            p = np.clip(rng.normal(-10.0, 35.0, k), -85.0, 85.0)
            r = roll_now + np.cumsum(rng.normal(0.0, 60.0, k))
            if code == _State.RESTLESS:
                holds = holds / 4.0
                p = np.clip(rng.normal(0.0, 25.0, k), -70.0, 70.0)
            arrive = t0 + np.cumsum(moves + holds) - holds  # end of each move
            leave = np.minimum(arrive + holds, t1)
            keep = arrive < t1
            tt = np.column_stack((arrive, leave))[keep].ravel()
            pp = np.repeat(p[keep], 2)
            rr = np.repeat(r[keep], 2)
        elif code == _State.SLEEP:
            inside = changes[(changes > t0) & (changes < t1)]
            k = inside.size + 1
            p = np.clip(rng.normal(0.0, 25.0, k), -70.0, 70.0)
            turn = rng.uniform(40.0, 180.0, k) * rng.choice((-1.0, 1.0), k)
            r = roll_now + np.cumsum(turn)
            settle = rng.uniform(2.0, 5.0, k)  # seconds to turn over
            arrive = np.concatenate(([t0], inside)) + settle
            leave = np.concatenate((inside, [t1]))
            tt = np.column_stack((arrive, leave)).ravel()
            pp = np.repeat(p, 2)
            rr = np.repeat(r, 2)
        elif code == _State.NON_WEAR:
            # flat on a table, face up (mostly) or down, within a degree of level
            face_down = rng.random() < 0.2
            target = 180.0 if face_down else 0.0
            roll_flat = roll_now + ((target - roll_now + 180.0) % 360.0 - 180.0)
            tt = np.array([t0 + rng.uniform(2.0, 5.0), t1])
            pp = np.full(2, rng.normal(0.0, 0.5))
            rr = np.full(2, roll_flat + rng.normal(0.0, 0.5))
        else:  # walking: the arm hangs; the swing is added per sample
            tt = np.array([t0 + rng.uniform(1.0, 3.0), t1])
            pp = np.full(2, rng.uniform(-75.0, -60.0))
            rr = np.full(2, roll_now + ((90.0 - roll_now + 180.0) % 360.0 - 180.0))
            rr += rng.normal(0.0, 15.0)
        if tt.size:
            times.append(np.maximum.accumulate(np.clip(tt, t0, t1)))
            pitch.append(pp)
            roll.append(rr)
            roll_now = float(rr[-1])
    return np.concatenate(times), np.concatenate(pitch), np.concatenate(roll)


def _gravity(pitch_deg: FloatArray, roll_deg: FloatArray) -> FloatArray:
    """Unit vector the accelerometer reads at rest, shape (n, 3)."""
    p = np.deg2rad(pitch_deg)
    r = np.deg2rad(roll_deg)
    cp = np.cos(p)
    return np.column_stack((np.sin(p), cp * np.sin(r), cp * np.cos(r)))


def _walking_delta(
    rng: np.random.Generator,
    t: FloatArray,
    step_hz: float,
    pitch_deg: float,
    roll_deg: float,
) -> FloatArray:
    """Acceleration of a swinging arm minus the hanging arm at rest, shape (n, 3), g.

    The forearm swings like a pendulum at the stride frequency (half the step
    frequency); the wrist, about 0.65 m from the shoulder, feels tangential and
    centripetal acceleration, and the body's vertical bounce and heel strikes
    at the step frequency arrive along gravity.
    """
    n = t.size
    stride_hz = step_hz / 2.0
    w = 2.0 * np.pi * stride_hz
    swing = np.deg2rad(rng.uniform(16.0, 24.0))
    arm_m = rng.uniform(0.6, 0.7)
    bounce_g = rng.uniform(0.1, 0.16)
    strike_g = rng.uniform(0.15, 0.3)
    # slow drift of cadence (about 2 %) and swing amplitude (10 %)
    tt = t - t[0]
    phase = w * tt + 0.3 * np.sin(2.0 * np.pi * tt / rng.uniform(40.0, 90.0)) + rng.uniform(0, 6.3)
    amp = swing * (1.0 + 0.1 * np.sin(2.0 * np.pi * tt / rng.uniform(30.0, 70.0)))
    ramp = np.minimum(1.0, np.minimum(tt, tt[-1] - tt) / 3.0) if n > 1 else np.zeros(n)
    amp *= ramp
    angle = amp * np.sin(phase)
    omega = amp * w * np.cos(phase)
    alpha = -amp * w * w * np.sin(phase)

    p0 = np.deg2rad(pitch_deg)
    r = np.deg2rad(roll_deg)
    p = p0 + angle
    cp = np.cos(p)
    g = np.column_stack((np.sin(p), cp * np.sin(r), cp * np.cos(r)))
    rest = np.array([np.sin(p0), np.cos(p0) * np.sin(r), np.cos(p0) * np.cos(r)])
    # the swing plane holds the forearm (x) and gravity; the wrist moves in it,
    # perpendicular to the forearm
    tangential = np.array([0.0, np.sin(r), np.cos(r)])
    step_phase = 2.0 * phase + rng.uniform(0, 6.3)
    vertical = bounce_g * np.sin(step_phase) + strike_g * np.maximum(np.sin(step_phase), 0.0) ** 8
    out: FloatArray = g * (1.0 + vertical * ramp)[:, None] - rest
    out += (arm_m * alpha / _G_M_S2)[:, None] * tangential
    out[:, 0] -= arm_m * omega * omega / _G_M_S2  # centripetal, toward the shoulder
    return out


def _smooth_noise(
    rng: np.random.Generator, t_ctrl: FloatArray, rate_hz: float, columns: int = 1
) -> FloatArray:
    """Unit-variance noise with knots at ``rate_hz``, linearly interpolated, shape (n, columns)."""
    n_knots = math.ceil((t_ctrl[-1] - t_ctrl[0]) * rate_hz) + 2
    kt = t_ctrl[0] + np.arange(n_knots) / rate_hz
    kv = rng.standard_normal((n_knots, columns))
    return np.column_stack([np.interp(t_ctrl, kt, kv[:, j]) for j in range(columns)])


def _temperature(
    rng: np.random.Generator,
    runs: list[tuple[int, int, int]],
    t_ctrl: FloatArray,
) -> FloatArray:
    """Near-body temperature (degC): first-order approach to each state's target."""
    skin_day = rng.uniform(31.5, 32.5)
    skin_night = rng.uniform(33.5, 34.3)
    room = rng.uniform(22.0, 24.0)
    tau_off_s = 60.0 * rng.uniform(10.0, 16.0)
    tau_on_s = 60.0 * rng.uniform(6.0, 10.0)
    out = np.empty_like(t_ctrl)
    temp_now = skin_day
    for code, i0, i1 in runs:
        if code == _State.NON_WEAR:
            target, tau_s = room, tau_off_s
        elif code in (_State.SLEEP, _State.RESTLESS):
            target, tau_s = skin_night, 20.0 * 60.0
        else:
            target, tau_s = skin_day, tau_on_s if temp_now < skin_day - 3.0 else 25.0 * 60.0
        dt = t_ctrl[i0:i1] - t_ctrl[i0]
        out[i0:i1] = target + (temp_now - target) * np.exp(-dt / tau_s)
        temp_now = float(out[i1 - 1])
    # slow drift (room and skin both wander), plus sensor noise
    out += 0.25 * _smooth_noise(rng, t_ctrl, 1.0 / 1200.0)[:, 0]
    out += 0.06 * _smooth_noise(rng, t_ctrl, 1.0 / 180.0)[:, 0]
    out += rng.normal(0.0, 0.03, out.shape)
    return out


def _mount_rotation(rng: np.random.Generator, side: Side) -> FloatArray:
    """Arm frame to device frame: a few degrees of misalignment; the right wrist mirrored."""
    a, b, c = np.deg2rad(rng.normal(0.0, 3.0, 3))
    rx = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(a), -np.sin(a)], [0.0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0.0, np.sin(b)], [0.0, 1.0, 0.0], [-np.sin(b), 0.0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0.0], [np.sin(c), np.cos(c), 0.0], [0.0, 0.0, 1.0]])
    mirror = np.diag([1.0, 1.0, 1.0]) if side == "left" else np.diag([-1.0, -1.0, 1.0])
    out: FloatArray = mirror @ rz @ ry @ rx
    return out


_CHUNK = 1 << 15  # samples per rendering step: the working set stays in cache
_NOISE_POOL = 1 << 18  # samples of Gaussian sensor noise drawn per recording


def _render(
    rng: np.random.Generator,
    t: FloatArray,
    t_ctrl: FloatArray,
    g_ctrl: FloatArray,
    temp_ctrl: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """Interpolate the control grid to the sample times and add sensor noise.

    Works through the recording in fixed-size chunks (fixed, so the output
    depends only on the seed). Each chunk's noise is a window, at a random
    offset, of one pool of Gaussian noise: copying a window costs a fraction
    of drawing every value, and nothing downstream can tell the difference.
    """
    n = t.size
    accel = np.empty((n, 3), dtype=np.float64)
    temperature = np.empty(n, dtype=np.float64)
    pool = rng.standard_normal(3 * _NOISE_POOL)
    pool *= _SENSOR_NOISE_G
    for i0 in range(0, n, _CHUNK):
        i1 = min(i0 + _CHUNK, n)
        m = i1 - i0
        tc = t[i0:i1]
        c0 = max(int(np.searchsorted(t_ctrl, tc[0])) - 1, 0)
        c1 = int(np.searchsorted(t_ctrl, tc[-1])) + 1
        xc = t_ctrl[c0:c1]
        block = accel[i0:i1]
        offset = int(rng.integers(0, pool.size - 3 * m + 1))
        block[...] = pool[offset : offset + 3 * m].reshape(m, 3)
        for j in range(3):
            block[:, j] += np.interp(tc, xc, g_ctrl[c0:c1, j])
        temperature[i0:i1] = np.interp(tc, xc, temp_ctrl[c0:c1])
    return accel, temperature


def _rotate(v: FloatArray, rot: FloatArray) -> FloatArray:
    """``v @ rot.T`` for (n, 3) ``v``, elementwise: BLAS threads cost more than they save here."""
    out = np.empty_like(v)
    for i in range(3):
        np.multiply(v[:, 0], rot[i, 0], out=out[:, i])
        out[:, i] += v[:, 1] * rot[i, 1]
        out[:, i] += v[:, 2] * rot[i, 2]
    return out


def _resolve_zone(time_zone: str) -> ZoneInfo:
    try:
        return ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"unknown time zone {time_zone!r}", subject=_SUBJECT) from exc


def generate_recording(
    *,
    seed: int,
    days: float = 2.0,
    sampling_rate_hz: float = 50.0,
    start_utc: datetime | None = None,
    time_zone: str = "UTC",
    side: Side = "left",
) -> tuple[Recording, GroundTruth]:
    """Simulate one wrist recording and return it with its planted truth.

    Parameters
    ----------
    seed
        Seeds the behaviour timeline; together with ``side`` also the signal.
        The same arguments always give the same arrays.
    days
        Length of the recording in days.
    sampling_rate_hz
        Accelerometer (and temperature) sampling rate.
    start_utc
        Time-zone-aware first timestamp. Default: ``DEFAULT_START_LOCAL_HOUR``
        (08:00) local time on ``DEFAULT_START_DATE`` in ``time_zone``, which
        makes a 2-day recording cover two whole nights.
    time_zone
        IANA name of the participant's local time; sleep, walks and non-wear
        follow the local clock.
    side
        Which wrist; the two wrists of one seed share the timeline.

    Returns
    -------
    recording, truth
        ``recording.time_s`` is UTC seconds, ``accel_g`` in g with the device's
        own small calibration error, ``temperature_c`` in degC.

    Raises
    ------
    ConfigError
        On an unknown time zone, a naive ``start_utc`` or a non-positive
        length or rate.
    """
    tz = _resolve_zone(time_zone)
    if not (days > 0.0 and math.isfinite(days)):
        raise ConfigError(f"days must be positive, got {days}", subject=_SUBJECT)
    if not (0.0 < sampling_rate_hz <= 1000.0):
        raise ConfigError(f"implausible sampling rate {sampling_rate_hz} Hz", subject=_SUBJECT)
    if side not in ("left", "right"):
        raise ConfigError(f"side must be 'left' or 'right', got {side!r}", subject=_SUBJECT)
    if start_utc is None:
        start_s = _local_s(DEFAULT_START_DATE, DEFAULT_START_LOCAL_HOUR, tz)
    elif start_utc.tzinfo is None or start_utc.utcoffset() is None:
        raise ConfigError("start_utc must be time-zone aware", subject=_SUBJECT)
    else:
        start_s = start_utc.timestamp()

    n = round(days * 86400.0 * sampling_rate_hz)
    t = np.arange(n, dtype=np.float64)
    t /= sampling_rate_hz
    t += start_s
    end_s = start_s + n / sampling_rate_hz

    first_day = datetime.fromtimestamp(start_s, tz).date() - timedelta(days=1)
    last_day = datetime.fromtimestamp(end_s, tz).date()
    plan = _plan_timeline(seed, first_day, last_day, tz)

    rng = np.random.default_rng((seed, 1 if side == "left" else 2))
    n_ctrl = math.ceil(n / sampling_rate_hz * _CTRL_HZ) + 2
    t_ctrl = start_s + np.arange(n_ctrl, dtype=np.float64) / _CTRL_HZ
    state = _state_grid(plan, t_ctrl)
    runs = _runs(state)

    # orientation: held postures + a small wander whose size depends on the state
    kt, kp, kr = _posture_knots(rng, plan, runs, t_ctrl)
    pitch = np.interp(t_ctrl, kt, kp)
    roll = np.interp(t_ctrl, kt, kr)
    awake = (state == _State.AWAKE) | (state == _State.RESTLESS)
    # how much the arm moves while awake: still (holding), fidgeting (about
    # 60 % of the time) or busy (chores, minutes at a time, about 15 %)
    level = _smooth_noise(rng, t_ctrl, 1.0 / 20.0)[:, 0]
    busy = awake & (_smooth_noise(rng, t_ctrl, 1.0 / 300.0)[:, 0] > 0.5)
    fidget = awake & (level > -0.3)
    restless = state == _State.RESTLESS
    sleep = state == _State.SLEEP
    wander_deg = np.select([busy, restless, fidget, awake, sleep], [8.0, 6.0, 4.0, 0.5, 0.03], 0.0)
    wander = _smooth_noise(rng, t_ctrl, _WANDER_HZ, columns=2) * wander_deg[:, None]
    g_ctrl = _gravity(pitch + wander[:, 0], roll + wander[:, 1])

    # small linear accelerations (band-limited by the control grid)
    dyn_g = np.select([busy, restless, fidget, awake, sleep], [0.2, 0.08, 0.05, 0.004, 0.004], 0.0)
    g_ctrl += rng.standard_normal((n_ctrl, 3)) * dyn_g[:, None]

    rot = _mount_rotation(rng, side)
    # the device's own calibration error; linear, so it commutes with interpolation
    gain = rng.uniform(0.985, 1.015, 3)
    offset = rng.uniform(-0.02, 0.02, 3)
    g_ctrl = _rotate(g_ctrl, rot) * gain + offset
    temp_ctrl = _temperature(rng, runs, t_ctrl)
    accel, temperature = _render(rng, t, t_ctrl, g_ctrl, temp_ctrl)

    for (a, b), step_hz in zip(plan.walking, plan.step_hz, strict=True):
        i0, i1 = (int(i) for i in np.searchsorted(t, (a, b)))
        if i1 - i0 < 2:
            continue
        c = int(np.searchsorted(t_ctrl, t[(i0 + i1) // 2]))
        delta = _walking_delta(rng, t[i0:i1], step_hz, float(pitch[c]), float(roll[c]))
        accel[i0:i1] += _rotate(delta, rot) * gain

    recording = Recording(
        time_s=t,
        accel_g=accel,
        sampling_rate_hz=float(sampling_rate_hz),
        device=DeviceInfo(format="synthetic", model="wearflow-synthetic-wrist"),
        temperature_c=temperature,
    )
    truth = GroundTruth(
        non_wear=_clip(plan.non_wear, start_s, end_s),
        sleep=_clip(plan.sleep, start_s, end_s),
        walking=_clip(plan.walking, start_s, end_s),
        time_zone=time_zone,
        sampling_rate_hz=float(sampling_rate_hz),
        start_utc_s=float(start_s),
        duration_s=float(n / sampling_rate_hz),
        seed=seed,
        side=side,
    )
    return recording, truth


# --------------------------------------------------------------------------- study


def write_study(
    root: Path,
    *,
    participants: int = 4,
    days: float = 2.0,
    sampling_rate_hz: float = 50.0,
    seed: int = 0,
    time_zone: str = "UTC",
) -> list[Path]:
    """Write a synthetic study: both wrists of each participant, with truth.

    Writes ``root/raw/P001_L.cwa``, ``root/raw/P001_R.cwa``, ... and beside
    them, outside ``raw/`` so that it is never cataloged as data,
    ``root/truth/P001_L.truth.json``, ... Participant ``k`` (1-based) uses
    seed ``seed * 1000 + k``. Existing files of the same names are replaced.

    Returns
    -------
    list of Path
        The data files written, sorted.

    Raises
    ------
    ConfigError
        For fewer than 1 or more than 999 participants, or a sampling rate an
        AX3 cannot record at (it needs 3200 / 2**k Hz: 6.25, 12.5, 25, 50, 100 ...).
    """
    if participants < 1 or participants > 999:
        raise ConfigError(f"participants must be 1-999, got {participants}", subject=_SUBJECT)
    raw = root / "raw"
    truth_dir = root / "truth"
    raw.mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for k in range(1, participants + 1):
        pid = f"P{k:03d}"
        sides: tuple[tuple[Side, str], ...] = (("left", "L"), ("right", "R"))
        for side, letter in sides:
            rec, truth = generate_recording(
                seed=seed * 1000 + k,
                days=days,
                sampling_rate_hz=sampling_rate_hz,
                time_zone=time_zone,
                side=side,
            )
            stem = f"{pid}_{letter}"
            serial = 50_000 + 10 * k + (0 if side == "left" else 1)
            written.append(_write_data(raw, stem, rec, serial))
            (truth_dir / f"{stem}.truth.json").write_text(truth.to_json(), encoding="utf-8")
    return sorted(written)


def _write_data(raw: Path, stem: str, rec: Recording, serial: int) -> Path:
    """Write one recording as an AX3 .cwa file."""
    path = raw / f"{stem}.cwa"
    try:
        write_cwa(
            path,
            rec.time_s,
            rec.accel_g,
            rec.temperature_c,
            rec.sampling_rate_hz,
            serial=serial,
            device_time_zone="UTC",
        )
    except ValueError as exc:  # e.g. a rate an AX3 cannot record at
        raise ConfigError(f"cannot write a synthetic .cwa: {exc}", subject=str(path)) from exc
    return path
