"""Helpers shared by the readers: device-clock time zones and the final clean-up.

Every reader ends in :func:`finish`, so that all formats obey the same rules:
samples with a non-finite time or acceleration are dropped and counted,
samples whose time does not increase are dropped (never reordered) and
counted, gaps are flagged, an implausible sampling rate or a start before 1990
or in the future is refused, and the result is checked by ``Recording.validate``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt

from wearflow.errors import ReaderError, one_line
from wearflow.recording import (
    AccelExtremes,
    DeviceInfo,
    FloatArray,
    Recording,
    accel_extremes,
)

BoolArray = npt.NDArray[np.bool_]

MAX_GAP_FLAGS = 10
"""Gaps listed one by one in the flags; the rest are only counted."""

MIN_SAMPLING_RATE_HZ = 0.05
"""Slower than one sample per 20 s is epoch summaries, not samples (the slowest rate an
AX3 rate code can state is 3200 / 2**15 = 0.098 Hz)."""
MAX_SAMPLING_RATE_HZ = 10_000.0
"""Above this, timestamps are in the wrong unit (the AX3's fastest rate is 3200 Hz)."""
EARLIEST_START_S = 631152000.0
"""1990-01-01T00:00:00Z: earlier starts come from a clock that was never set."""
FUTURE_TOLERANCE_S = 86400.0
"""A start this far after the reading machine's clock is a wrong device clock."""


def describe_time(time_s: float) -> str:
    """ISO 8601 UTC for a time in seconds, or the number itself when out of range."""
    try:
        return datetime.fromtimestamp(time_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError, OSError):
        return f"{time_s:.6g} s since 1970"


def zone_offset_s(zone: str, local_s: float, uri: str) -> float:
    """UTC offset (seconds) of IANA ``zone`` at the naive local time ``local_s``.

    ``local_s`` is a wall-clock reading expressed as if it were UTC seconds.
    """
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ReaderError(f"unknown device time zone {zone!r}", subject=uri) from exc
    try:
        offset = datetime.fromtimestamp(local_s, UTC).replace(tzinfo=tz).utcoffset()
    except (ValueError, OverflowError, OSError) as exc:
        raise ReaderError(
            f"timestamp {local_s:.6g} s since 1970 is outside the years 1 to 9999", subject=uri
        ) from exc
    return 0.0 if offset is None else offset.total_seconds()


def local_to_utc(
    local_s: FloatArray, zone: str, reference_local_s: float, uri: str
) -> tuple[FloatArray, list[str]]:
    """Convert naive device-clock seconds to UTC with one fixed offset.

    A device clock is set once, at configuration, and does not follow daylight
    saving time afterwards. So the offset in force at ``reference_local_s``
    (the configuration time, or the first sample) applies to the whole file;
    this also keeps time increasing across a DST change. When the zone's
    offset does change within the recording we say so in a flag.
    """
    offset = zone_offset_s(zone, reference_local_s, uri)
    flags: list[str] = []
    known = local_s[np.isfinite(local_s)]
    if known.size:
        first = zone_offset_s(zone, float(known.min()), uri)
        last = zone_offset_s(zone, float(known.max()), uri)
        if first != offset or last != offset:
            flags.append("dst_change_not_applied")
    return local_s - offset, flags


def increasing_mask(time_s: FloatArray) -> BoolArray:
    """True for samples later than every sample before them (file order kept)."""
    keep = np.ones(time_s.shape, dtype=bool)
    if time_s.size > 1:
        running_max = np.fmax.accumulate(time_s)
        keep[1:] = time_s[1:] > running_max[:-1]
    return keep


def gap_flags(time_s: FloatArray, sampling_rate_hz: float) -> list[str]:
    """``gap_s=...`` for every interval longer than 1 s and 3 sample periods."""
    if time_s.size < 2:
        return []
    threshold = max(1.0, 3.0 / sampling_rate_hz)
    steps = np.diff(time_s)
    where = np.flatnonzero(steps > threshold)
    flags = [f"gap_s={steps[i]:.1f}" for i in where[:MAX_GAP_FLAGS]]
    if where.size > MAX_GAP_FLAGS:
        flags.append(f"gaps_not_listed={where.size - MAX_GAP_FLAGS}")
    return flags


def finish(
    uri: str,
    *,
    time_s: FloatArray,
    accel_g: FloatArray,
    temperature_c: FloatArray | None,
    sampling_rate_hz: float,
    device: DeviceInfo,
    flags: list[str],
) -> Recording:
    """Drop non-finite and non-increasing samples, flag gaps, check, build and validate.

    Raises
    ------
    ReaderError
        No samples, an implausible sampling rate, or a start before 1990 (clock
        not set) or more than a day in the future (clock wrong).
    """
    if time_s.size == 0:
        raise ReaderError("no samples could be decoded", subject=uri)
    flags = list(flags)
    # per-chunk min/max: a NaN or infinity shows there, so the row mask is only built
    # (a 10x costlier pass) for a file that has one
    checked = accel_extremes(accel_g)
    extremes: AccelExtremes | None = checked
    if not (checked.all_finite
            and np.isfinite(time_s.min()) and np.isfinite(time_s.max())):
        extremes = None  # computed again on the samples kept
        finite = np.isfinite(time_s) & np.all(np.isfinite(accel_g), axis=1)
        if not np.any(finite):
            raise ReaderError("no sample has a finite time and acceleration", subject=uri)
        time_s, accel_g = time_s[finite], accel_g[finite]
        temperature_c = None if temperature_c is None else temperature_c[finite]
        flags.append(f"non_finite_samples_dropped={finite.size - np.count_nonzero(finite)}")
    check_sampling_rate(sampling_rate_hz, uri)
    check_start(float(time_s[0]), uri)
    keep = increasing_mask(time_s)
    dropped = int(keep.size - np.count_nonzero(keep))
    if dropped:
        time_s, accel_g = time_s[keep], accel_g[keep]
        temperature_c = None if temperature_c is None else temperature_c[keep]
        flags.append(f"trimmed_samples={dropped}")
        extremes = None
    flags.extend(gap_flags(time_s, sampling_rate_hz))
    accel_g = np.ascontiguousarray(accel_g, dtype=np.float64)
    recording = Recording(
        time_s=np.ascontiguousarray(time_s, dtype=np.float64),
        accel_g=accel_g,
        extremes=extremes if extremes is not None else accel_extremes(accel_g),
        sampling_rate_hz=float(sampling_rate_hz),
        device=device,
        temperature_c=(
            None if temperature_c is None else np.ascontiguousarray(temperature_c, np.float64)
        ),
        flags=tuple(flags),
    )
    return recording.validate(uri)


def check_sampling_rate(sampling_rate_hz: float, uri: str) -> None:
    """Refuse a rate no raw accelerometer records at (epoch data, wrong time unit)."""
    if not MIN_SAMPLING_RATE_HZ <= sampling_rate_hz <= MAX_SAMPLING_RATE_HZ:
        raise ReaderError(
            f"implausible sampling rate {sampling_rate_hz:.6g} Hz (raw accelerometry is "
            f"{MIN_SAMPLING_RATE_HZ:g} Hz to {MAX_SAMPLING_RATE_HZ:g} Hz: epoch data, or "
            "timestamps in the wrong unit?)",
            subject=uri,
        )


def check_start(start_s: float, uri: str) -> None:
    """Refuse a start from an unset (before 1990) or wrong (in the future) device clock.

    A future start is an error rather than a flag: every day and night cut from
    this recording would carry a wrong date, and nothing downstream can tell.
    """
    if start_s < EARLIEST_START_S:
        raise ReaderError(
            f"recording starts before 1990 ({describe_time(start_s)}): "
            "the device clock was not set",
            subject=uri,
        )
    if start_s > time.time() + FUTURE_TOLERANCE_S:
        raise ReaderError(
            f"recording starts more than a day in the future ({describe_time(start_s)}): "
            "the device clock was set wrong",
            subject=uri,
        )


def reader_error(exc: Exception, uri: str) -> ReaderError:
    """The one-line ReaderError naming ``uri`` that a read raises for ``exc`` (``exc`` itself
    when it already is one).

    A reason quoting the file's own bytes may hold line breaks: it is made one line.
    Any other exception is a reader bug or an unforeseen defect, still a data issue:
    ``cannot decode (TypeName: reason)``.
    """
    if isinstance(exc, ReaderError):
        message = one_line(exc.message)
        if message == exc.message and exc.subject == uri:
            return exc
        return ReaderError(message, subject=uri)
    reason = one_line(str(exc), 200)
    return ReaderError(f"cannot decode ({type(exc).__name__}: {reason})", subject=uri)
