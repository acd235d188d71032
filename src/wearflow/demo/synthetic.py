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

The timeline is planned in :mod:`wearflow.demo._timeline`, the signal rendered
in :mod:`wearflow.demo._signal`; this module puts them together.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt

from wearflow.demo import _signal as sig
from wearflow.demo import _timeline as tl
from wearflow.demo._timeline import Interval, Side
from wearflow.demo.cwa_writer import write_cwa
from wearflow.errors import ConfigError
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

DEFAULT_START_DATE = date(2026, 3, 2)
"""Local date on which recordings start unless ``start_utc`` is given."""
DEFAULT_START_LOCAL_HOUR = 8.0
"""Local hour at which recordings start unless ``start_utc`` is given."""

_TRUTH_FORMAT = "wearflow-synthetic-truth/1"
_SUBJECT = "wearflow.demo.synthetic"


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
    start_s = _start_s(days, sampling_rate_hz, start_utc, tz, side)
    n = round(days * 86400.0 * sampling_rate_hz)
    t = np.arange(n, dtype=np.float64)
    t /= sampling_rate_hz
    t += start_s
    end_s = start_s + n / sampling_rate_hz

    first_day = datetime.fromtimestamp(start_s, tz).date() - timedelta(days=1)
    last_day = datetime.fromtimestamp(end_s, tz).date()
    plan = tl.plan_timeline(seed, first_day, last_day, tz)

    rng = np.random.default_rng((seed, 1 if side == "left" else 2))
    n_ctrl = math.ceil(n / sampling_rate_hz * sig.CTRL_HZ) + 2
    t_ctrl = start_s + np.arange(n_ctrl, dtype=np.float64) / sig.CTRL_HZ
    state = tl.state_grid(plan, t_ctrl)
    runs = tl.runs(state)

    g_ctrl, pitch, roll = _arm_gravity(rng, plan, state, runs, t_ctrl)
    rot = sig.mount_rotation(rng, side)
    # the device's own calibration error; linear, so it commutes with interpolation
    gain = rng.uniform(0.985, 1.015, 3)
    offset = rng.uniform(-0.02, 0.02, 3)
    g_ctrl = sig.rotate(g_ctrl, rot) * gain + offset
    temp_ctrl = sig.near_body_temperature(rng, runs, t_ctrl)
    accel, temperature = sig.render(rng, t, t_ctrl, g_ctrl, temp_ctrl)

    _add_walking(rng, plan, t, t_ctrl, accel, pitch, roll, rot, gain)

    recording = Recording(
        time_s=t,
        accel_g=accel,
        sampling_rate_hz=float(sampling_rate_hz),
        device=DeviceInfo(format="synthetic", model="wearflow-synthetic-wrist"),
        temperature_c=temperature,
    )
    truth = GroundTruth(
        non_wear=tl.clip(plan.non_wear, start_s, end_s),
        sleep=tl.clip(plan.sleep, start_s, end_s),
        walking=tl.clip(plan.walking, start_s, end_s),
        time_zone=time_zone,
        sampling_rate_hz=float(sampling_rate_hz),
        start_utc_s=float(start_s),
        duration_s=float(n / sampling_rate_hz),
        seed=seed,
        side=side,
    )
    return recording, truth


def _start_s(days: float, sampling_rate_hz: float, start_utc: datetime | None,
             tz: ZoneInfo, side: str) -> float:
    """Check :func:`generate_recording`'s arguments; return the first time (UTC s)."""
    if not (days > 0.0 and math.isfinite(days)):
        raise ConfigError(f"days must be positive, got {days}", subject=_SUBJECT)
    if not (0.0 < sampling_rate_hz <= 1000.0):
        raise ConfigError(f"implausible sampling rate {sampling_rate_hz} Hz", subject=_SUBJECT)
    if side not in ("left", "right"):
        raise ConfigError(f"side must be 'left' or 'right', got {side!r}", subject=_SUBJECT)
    if start_utc is None:
        return tl.local_s(DEFAULT_START_DATE, DEFAULT_START_LOCAL_HOUR, tz)
    elif start_utc.tzinfo is None or start_utc.utcoffset() is None:
        raise ConfigError("start_utc must be time-zone aware", subject=_SUBJECT)
    return start_utc.timestamp()


def _arm_gravity(rng: np.random.Generator, plan: tl.Plan, state: npt.NDArray[np.int8],
                 runs: list[tuple[int, int, int]], t_ctrl: FloatArray
                 ) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Gravity on the control grid with the arm's postures, wander and small linear
    accelerations; also the posture pitch and roll (degrees)."""
    # orientation: held postures + a small wander whose size depends on the state
    kt, kp, kr = sig.posture_knots(rng, plan, runs, t_ctrl)
    pitch = np.interp(t_ctrl, kt, kp)
    roll = np.interp(t_ctrl, kt, kr)
    awake = (state == tl.Behaviour.AWAKE) | (state == tl.Behaviour.RESTLESS)
    # how much the arm moves while awake: still (holding), fidgeting (about
    # 60 % of the time) or busy (chores, minutes at a time, about 15 %)
    level = sig.smooth_noise(rng, t_ctrl, 1.0 / 20.0)[:, 0]
    busy = awake & (sig.smooth_noise(rng, t_ctrl, 1.0 / 300.0)[:, 0] > 0.5)
    fidget = awake & (level > -0.3)
    restless = state == tl.Behaviour.RESTLESS
    sleep = state == tl.Behaviour.SLEEP
    wander_deg = np.select([busy, restless, fidget, awake, sleep], [8.0, 6.0, 4.0, 0.5, 0.03], 0.0)
    wander = sig.smooth_noise(rng, t_ctrl, sig.WANDER_HZ, columns=2) * wander_deg[:, None]
    g_ctrl = sig.gravity(pitch + wander[:, 0], roll + wander[:, 1])

    # small linear accelerations (band-limited by the control grid)
    dyn_g = np.select([busy, restless, fidget, awake, sleep], [0.2, 0.08, 0.05, 0.004, 0.004], 0.0)
    g_ctrl += rng.standard_normal((len(t_ctrl), 3)) * dyn_g[:, None]
    return g_ctrl, pitch, roll


def _add_walking(rng: np.random.Generator, plan: tl.Plan, t: FloatArray, t_ctrl: FloatArray,
                 accel: FloatArray, pitch: FloatArray, roll: FloatArray, rot: FloatArray,
                 gain: FloatArray) -> None:
    """Add the arm swing and heel strikes of every walking bout to ``accel`` in place."""
    for (a, b), step_hz in zip(plan.walking, plan.step_hz, strict=True):
        i0, i1 = (int(i) for i in np.searchsorted(t, (a, b)))
        if i1 - i0 < 2:
            continue
        c = int(np.searchsorted(t_ctrl, t[(i0 + i1) // 2]))
        delta = sig.walking_delta(rng, t[i0:i1], step_hz, float(pitch[c]), float(roll[c]))
        accel[i0:i1] += sig.rotate(delta, rot) * gain


# --------------------------------------------------------------------------- study


SECOND_VISIT_AFTER_DAYS = 28
"""A second visit's recording starts this many days after the first's."""
SECOND_VISIT_SEED_OFFSET = 500_000
"""Added to a participant's seed for their second visit (other days, other nights)."""


def write_study(
    root: Path,
    *,
    participants: int = 4,
    days: float = 2.0,
    sampling_rate_hz: float = 50.0,
    seed: int = 0,
    time_zone: str = "UTC",
    second_visit_participants: int = 0,
) -> list[Path]:
    """Write a synthetic study: both wrists of each participant, with truth.

    Writes ``root/raw/P001_L.cwa``, ``root/raw/P001_R.cwa``, ... and beside
    them, outside ``raw/`` so that it is never cataloged as data,
    ``root/truth/P001_L.truth.json``, ... Participant ``k`` (1-based) uses
    seed ``seed * 1000 + k``. Existing files of the same names are replaced.

    With ``second_visit_participants`` > 0, the first that many participants also
    have a second visit, and every name carries its visit: ``P001_V1_L.cwa``,
    ``P001_V2_L.cwa``, ... A second visit starts ``SECOND_VISIT_AFTER_DAYS`` days
    after the first, at the same local hour, with seed ``seed * 1000 + k +
    SECOND_VISIT_SEED_OFFSET``.

    Returns
    -------
    list of Path
        The data files written, sorted.

    Raises
    ------
    ConfigError
        For fewer than 1 or more than 999 participants, a number of second visits
        outside 0..participants, or a sampling rate an AX3 cannot record at (it
        needs 3200 / 2**k Hz: 6.25, 12.5, 25, 50, 100 ...).
    """
    if participants < 1 or participants > 999:
        raise ConfigError(f"participants must be 1-999, got {participants}", subject=_SUBJECT)
    if not 0 <= second_visit_participants <= participants:
        raise ConfigError(f"second_visit_participants must be 0-{participants}, got "
                          f"{second_visit_participants}", subject=_SUBJECT)
    raw = root / "raw"
    truth_dir = root / "truth"
    raw.mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    tz = _resolve_zone(time_zone)
    written: list[Path] = []
    for k in range(1, participants + 1):
        sides: tuple[tuple[Side, str], ...] = (("left", "L"), ("right", "R"))
        for visit, k_seed, start_utc in _visits(k, seed, second_visit_participants, tz):
            for side, letter in sides:
                rec, truth = generate_recording(
                    seed=k_seed,
                    days=days,
                    sampling_rate_hz=sampling_rate_hz,
                    start_utc=start_utc,
                    time_zone=time_zone,
                    side=side,
                )
                stem = "_".join(p for p in (f"P{k:03d}", visit, letter) if p)
                serial = 50_000 + 10 * k + (0 if side == "left" else 1)
                written.append(_write_data(raw, stem, rec, serial))
                (truth_dir / f"{stem}.truth.json").write_text(truth.to_json(), encoding="utf-8")
    return sorted(written)


def _visits(k: int, seed: int, second_visits: int, tz: ZoneInfo
            ) -> list[tuple[str, int, datetime | None]]:
    """Participant ``k``'s visits: (name, seed, start); the name is empty when the
    study has no second visits (names without a visit), the start None for the default."""
    if not second_visits:
        return [("", seed * 1000 + k, None)]
    visits: list[tuple[str, int, datetime | None]] = [("V1", seed * 1000 + k, None)]
    if k <= second_visits:
        later = DEFAULT_START_DATE + timedelta(days=SECOND_VISIT_AFTER_DAYS)
        start = datetime.fromtimestamp(tl.local_s(later, DEFAULT_START_LOCAL_HOUR, tz), UTC)
        visits.append(("V2", seed * 1000 + k + SECOND_VISIT_SEED_OFFSET, start))
    return visits


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
