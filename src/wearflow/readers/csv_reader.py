"""CSV reader: generic ``time, x, y, z[, temperature]`` tables and ActiLife RAW exports.

Generic tables: the time column holds ISO 8601 strings (with an offset they
are converted to UTC; naive ones are in ``device_time_zone``) or unix
seconds (milli-, micro- or nanoseconds are recognised by magnitude).
Acceleration is taken as g unless the column names say m/s^2 or mg, or the
median vector magnitude is near 9.8 (then m/s^2 is converted and flagged).

ActiLife RAW exports have a 10-line header ("Start Time", "Start Date",
"... at 30 Hz ...") and ``Accelerometer X/Y/Z`` columns, with or without a
``Timestamp`` column; without one, times are start + sample / rate.
"""

from __future__ import annotations

import io
import math
import re
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from wearflow.bounds import widest_line
from wearflow.errors import ReaderError, one_line
from wearflow.readers._common import check_sampling_rate, finish, local_to_utc
from wearflow.recording import DeviceInfo, FloatArray, Recording

STANDARD_GRAVITY = 9.80665
ACTILIFE_HEADER_LINES = 10
MAX_COLUMNS = 256
"""More fields than this on any line is not an accelerometer table (and would cost memory
per field): refused before parsing. Rows are bounded by the file's size (and a gzip
file's by the decompression cap)."""
_SEPARATORS = b",;\t"  # those a table's separator is chosen from
MAX_NAME_CHARS = 100
"""Column names are matched on their first characters only (keeps the regexes linear)."""

_AXIS_STEMS = ("", "a", "acc", "accel", "acceleration", "accelerometer")
_TIME_KEYS = {
    "time",
    "timestamp",
    "datetime",
    "t",
    "times",
    "unixtime",
    "unixtimestamp",
    "timeutc",
    "timestamputc",
    "utctime",
    "dateandtime",
}
_TEMPERATURE_KEYS = {
    "temperature",
    "temperaturec",
    "temp",
    "tempc",
    "temperaturedegc",
    "temperaturecelsius",
}
# Units written after the axis name or in brackets; "ms" is "m/s²" with its superscript
# dropped by the normalisation.
_UNIT_SUFFIXES = {
    "ms2": "m/s^2",
    "mps2": "m/s^2",
    "mss": "m/s^2",
    "ms": "m/s^2",
    "mg": "mg",
    "g": "g",
}
_OFFSET = re.compile(r"(?:Z|[+-]\d\d:?\d\d)\s*$")


def read_csv(data: bytes, uri: str, *, device_time_zone: str = "UTC") -> Recording:
    """Decode a CSV accelerometer table (generic or ActiLife RAW export).

    Parameters
    ----------
    data
        The whole (already decompressed) file.
    uri
        Where the bytes came from; named in every error.
    device_time_zone
        IANA zone of naive timestamps (and of the ActiLife start time).

    Returns
    -------
    Recording
        Validated recording; rows whose time does not increase are dropped.

    Raises
    ------
    ReaderError
        When no time/x/y/z columns are found or the values do not parse.
    """
    # Measured before pandas sees it: a line wider than the header becomes index levels
    # (a MultiIndex of ten million levels from one 20 MB line), so no line may be wide.
    line, fields = widest_line(data, _SEPARATORS, stop_above=MAX_COLUMNS)
    if fields > MAX_COLUMNS:
        raise ReaderError(
            f"CSV line {line} has more than {MAX_COLUMNS} fields; an accelerometer table "
            "has fewer",
            subject=uri,
        )
    text = _decode(data)
    first_line = _first_line(text)
    if "ActiGraph" in first_line and first_line.lstrip().startswith("---"):
        return _read_actilife(text, uri, device_time_zone)
    frame = _frame(text, uri, header=0)
    columns = _match_columns(frame.columns)
    missing = [role for role in ("time", "x", "y", "z") if role not in columns]
    if missing:
        found = ", ".join(str(c)[:40] for c in frame.columns[:8])
        listed = ", ".join(missing[:-1]) + " or " * (len(missing) > 1) + missing[-1]
        what = "time and x/y/z columns" if len(missing) == 4 else f"{listed} column"
        raise ReaderError(f"CSV has no {what} (found: {found})", subject=uri)
    time_s, zone_flags = _parse_times(frame[columns["time"]], uri, device_time_zone)
    return _build(frame, columns, time_s, uri, zone_flags, DeviceInfo("csv"))


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _first_line(text: str) -> str:
    end = text.find("\n")  # not text.split: that copies the rest of the file
    return text if end < 0 else text[:end]


def _frame(text: str, uri: str, *, header: int | None) -> pd.DataFrame:
    sample = _first_line(text)
    sep = max((",", ";", "\t"), key=sample.count)
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=sep,
            header=header,
            skipinitialspace=True,
            low_memory=False,
        )
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        reason = " ".join(str(exc).split())[:160]
        raise ReaderError(f"CSV does not parse ({reason})", subject=uri) from exc
    if frame.empty:
        raise ReaderError("CSV has no data rows", subject=uri)
    return frame


def _key(name: object) -> tuple[str, str]:
    """Normalised column key and any unit written in brackets, e.g. 'X (m/s^2)'."""
    text = str(name)[:MAX_NAME_CHARS].strip().lower()
    unit = "".join(re.findall(r"[\(\[]([^\)\]]*)[\)\]]", text))
    bare = re.sub(r"[\(\[][^\)\]]*[\)\]]", "", text)
    return re.sub(r"[^a-z0-9]", "", bare), re.sub(r"[^a-z0-9]", "", unit.replace("^", ""))


def _match_columns(names: pd.Index) -> dict[str, str]:
    """Map 'time', 'x', 'y', 'z', 'temperature' (and 'unit') to column names."""
    found: dict[str, str] = {}
    for name in names:
        key, unit = _key(name)
        if key in _TIME_KEYS or key in {"times", "timems", "timestampms"}:
            found.setdefault("time", name)
        elif key in _TEMPERATURE_KEYS:
            found.setdefault("temperature", name)
        for axis in "xyz":
            stems = {stem + axis for stem in _AXIS_STEMS} | {axis + "axis", "axis" + axis}
            for suffix, unit_name in [("", unit), *_UNIT_SUFFIXES.items()]:
                if key.endswith(suffix) and key[: len(key) - len(suffix)] in stems:
                    found.setdefault(axis, name)
                    if unit_name:
                        found.setdefault("unit", _UNIT_SUFFIXES.get(str(unit_name), unit_name))
                    break
    return found


def _parse_times(column: pd.Series, uri: str, zone: str) -> tuple[FloatArray, list[str]]:
    """UTC seconds (NaN where unparseable) and time-zone flags."""
    # Try numbers on a sample first: coercing every ISO string is the slow part.
    sample = pd.to_numeric(column.head(100), errors="coerce")
    if pd.api.types.is_numeric_dtype(column) or sample.notna().mean() > 0.99:
        values = pd.to_numeric(column, errors="coerce").to_numpy(np.float64)
        if np.all(np.isnan(values)):
            raise ReaderError("time column is empty", subject=uri)
        scale = np.nanmedian(np.abs(values))
        divisor = 1.0 if scale < 1e11 else 1e3 if scale < 1e14 else 1e6 if scale < 1e17 else 1e9
        return values / divisor, []
    strings = column.astype("string").str.strip()
    first = strings.dropna().iloc[0] if strings.notna().any() else ""
    aware = bool(_OFFSET.search(str(first)))
    # Stamps that differ from the first in having an offset are missing values: a naive
    # and a zoned stamp in one column cannot both be right.
    zoned = strings.str.contains(_OFFSET, na=False)
    strings = strings.where(zoned == aware)
    try:
        parsed = pd.to_datetime(strings, format="ISO8601", errors="coerce", utc=aware)
    except (ValueError, OverflowError) as exc:
        reason = one_line(str(exc), 80)
        raise ReaderError(f"time column does not parse ({reason})", subject=uri) from exc
    if aware:
        parsed = parsed.dt.tz_localize(None)
    # Through microseconds, not nanoseconds: a year-0001 stamp must not overflow.
    stamps = parsed.to_numpy("datetime64[us]")
    micros = stamps.astype(np.int64).astype(np.float64)
    seconds: FloatArray = np.where(np.isnat(stamps), np.nan, micros / 1e6)
    if np.all(np.isnan(seconds)):
        raise ReaderError(
            f"time column does not parse as ISO 8601 (e.g. {str(first)[:40]!r})", subject=uri
        )
    if aware:
        return seconds, []
    return local_to_utc(seconds, zone, float(seconds[np.flatnonzero(~np.isnan(seconds))[0]]), uri)


def _build(
    frame: pd.DataFrame,
    columns: dict[str, str],
    time_s: FloatArray,
    uri: str,
    flags: list[str],
    device: DeviceInfo,
) -> Recording:
    accel = np.column_stack(
        [pd.to_numeric(frame[columns[a]], errors="coerce").to_numpy(np.float64) for a in "xyz"]
    )
    temperature: FloatArray | None = None
    if "temperature" in columns:
        values = pd.to_numeric(frame[columns["temperature"]], errors="coerce")
        temperature = np.asarray(values.to_numpy(np.float64), dtype=np.float64)
    finite = np.isfinite(time_s) & np.all(np.isfinite(accel), axis=1)
    if temperature is not None:
        finite &= np.isfinite(temperature)
    if dropped := int(finite.size - np.count_nonzero(finite)):
        flags = [*flags, f"rows_with_missing_values_dropped={dropped}"]
        time_s, accel = time_s[finite], accel[finite]
        temperature = None if temperature is None else temperature[finite]
    if time_s.size < 2:
        raise ReaderError("CSV needs at least two valid rows", subject=uri)
    accel, unit_flags = _to_g(accel, columns.get("unit", ""), uri)
    return finish(
        uri,
        time_s=time_s,
        accel_g=accel,
        temperature_c=temperature,
        sampling_rate_hz=_rate(time_s, uri),
        device=device,
        flags=flags + unit_flags,
    )


def _to_g(accel: FloatArray, unit: str, uri: str) -> tuple[FloatArray, list[str]]:
    if unit == "m/s^2":
        return accel / STANDARD_GRAVITY, ["converted_m_s2_to_g"]
    if unit == "mg":
        return accel / 1000.0, ["converted_mg_to_g"]
    magnitude = np.hypot(np.hypot(accel[:, 0], accel[:, 1]), accel[:, 2])  # cannot overflow
    moving = magnitude[magnitude > 0]
    median = float(np.median(moving)) if moving.size else 0.0
    if 4.0 < median < 20.0:  # at rest |a| is 1 g = 9.81 m/s^2; no wrist sustains 4 g
        return accel / STANDARD_GRAVITY, ["converted_m_s2_to_g"]
    if median >= 20.0:
        raise ReaderError(
            f"acceleration is not in g or m/s^2 (median magnitude {median:.1f})", subject=uri
        )
    return accel, []


def _rate(time_s: FloatArray, uri: str) -> float:
    # 1/median(diff) is biased when times are rounded (80 Hz at 1 ms: 12/13 ms steps),
    # so average the regular steps around the median instead.
    steps = np.diff(np.sort(time_s))
    steps = steps[steps > 0]
    if steps.size == 0:
        raise ReaderError("CSV timestamps are all identical", subject=uri)
    median = np.median(steps)
    regular = steps[(steps > 0.5 * median) & (steps < 1.5 * median)]
    if regular.size == 0:  # two clusters of steps (an even count) straddle the median
        regular = np.asarray([median])
    return round(float(1.0 / np.mean(regular)), 6)  # an infinite rate is refused by finish()


def _read_actilife(text: str, uri: str, zone: str) -> Recording:
    lines = [line.strip().rstrip(",").strip() for line in text.split("\n")[:ACTILIFE_HEADER_LINES]]
    head = " ".join(lines)
    rate, start_time, start_date, date_format = actilife_header_fields(head)
    if not (rate and start_time and start_date):
        raise ReaderError("ActiLife header lacks the sample rate or start date/time", subject=uri)
    rate_hz = float(rate.group(1))
    check_sampling_rate(rate_hz if math.isfinite(rate_hz) else math.nan, uri)
    body = text.split("\n", ACTILIFE_HEADER_LINES)[-1]
    has_names = bool(re.match(r"\s*[A-Za-z]", body))
    frame = _frame(body, uri, header=0 if has_names else None)
    if not has_names:
        frame.columns = [
            "Accelerometer X",
            "Accelerometer Y",
            "Accelerometer Z",
            *[f"extra_{i}" for i in range(frame.shape[1] - 3)],
        ][: frame.shape[1]]
    columns = _match_columns(frame.columns)
    if not {"x", "y", "z"} <= columns.keys():
        raise ReaderError("ActiLife CSV has no Accelerometer X/Y/Z columns", subject=uri)
    device = actilife_device(head)
    if "time" in columns:
        try:
            time_s, flags = _parse_times(frame[columns["time"]], uri, zone)
        except ReaderError:  # e.g. "2/14/2019 08:58:00.000": the header clock still holds
            del columns["time"]
        else:
            return _build(frame, columns, time_s, uri, flags, device)
    pattern = _strptime_format(date_format.group(1) if date_format else "M/d/yyyy")
    try:
        start = (
            datetime.strptime(f"{start_date.group(1)} {start_time.group(1)}", f"{pattern} %H:%M:%S")
            .replace(tzinfo=UTC)
            .timestamp()
        )
    except ValueError as exc:
        reason = str(exc)[:80]
        raise ReaderError(f"ActiLife start date does not parse ({reason})", subject=uri) from exc
    local = start + np.arange(len(frame), dtype=np.float64) / rate_hz
    time_s, flags = local_to_utc(local, zone, start, uri)
    return _build(frame, columns, time_s, uri, flags, device)


def actilife_header_fields(header: str) -> tuple[re.Match[str] | None, ...]:
    """The ActiLife header's sample rate, start time, start date and date format (each a
    match of its one group, or None)."""
    return (re.search(r"at (\d+(?:\.\d+)?) Hz", header),
            re.search(r"Start Time (\d{1,2}:\d{2}:\d{2})", header),
            re.search(r"Start Date (\S+)", header),
            re.search(r"date format (\S+)", header))


def actilife_device(header: str) -> DeviceInfo:
    """The device an ActiLife CSV header names (serial, model, firmware)."""
    serial = re.search(r"Serial Number: (\S+)", header)
    model = re.search(r"Created By (ActiGraph [^\n]*?) ActiLife", header)
    firmware = re.search(r"Firmware (v\S+)", header)
    return DeviceInfo(
        "csv",
        serial=serial.group(1) if serial else None,
        model=model.group(1).strip() if model else "ActiGraph",
        firmware=firmware.group(1) if firmware else None,
    )


def _strptime_format(actilife: str) -> str:
    """ActiLife/.NET date pattern (M/d/yyyy, dd/MM/yyyy, yyyy-MM-dd) to strptime."""
    out = re.sub(r"y+", "%Y", actilife)
    out = re.sub(r"M+", "%m", out)
    return re.sub(r"d+", "%d", out)
