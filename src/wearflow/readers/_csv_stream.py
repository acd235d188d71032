"""CSV tables (generic and ActiLife RAW) read in row blocks: two passes over the content.

:func:`read_csv` decides several things from the whole file: the text encoding, each
column's type, the time unit (median of the time column), m/s^2 (median vector
magnitude), the ``dst_change_not_applied`` flag (first and last time) and the sampling
rate (the mean of the regular steps around the median step of the sorted times). So:

1. :func:`survey_csv` parses the table a block of :data:`BLOCK_ROWS` rows at a time with
   the same pandas call (``chunksize`` added) and gathers those facts with a few
   counters each: order statistics around a threshold for the medians, a table of the
   distinct time steps (few: a sampled clock) for the rate. Every way the time column
   may be read (the four time units, the ActiLife header clock) is followed in
   parallel, since which one is used is only known at the end.
2. :func:`stream_csv` parses the same blocks again and hands them out, cleaned by the
   whole-file rules (:class:`~wearflow.readers._stream_finish.StreamFinisher`).

Bit for bit or not at all: the survey returns None -- and the caller reads the file
whole -- whenever a whole-file fact cannot be reproduced exactly with bounded state:
the file is not UTF-8, a column's type differs between blocks (pandas infers it per
block), the times are not in order (the rate sorts them), there are more than
:data:`~wearflow.readers._csv_survey.MAX_DISTINCT_STEPS` distinct steps, the rounded
rate lies too near a rounding boundary for the sum's error bound, or the whole-file
read would fail (it then gives the exact error). The line-width guard of
:func:`read_csv` (at most 256 fields) runs on the bytes before pandas sees them.
"""

from __future__ import annotations

import codecs
import io
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from wearflow.bounds import widest_line
from wearflow.readers import csv_reader as cr
from wearflow.readers._common import check_sampling_rate, zone_offset_s
from wearflow.readers._csv_survey import (
    DIVISORS,
    Clock,
    NotStreamable,
    Plan,
    Timing,
    dst_flag,
    finite_rows,
)
from wearflow.readers._cwa_stream import Readable
from wearflow.readers._stream_finish import StreamFinisher
from wearflow.readers.chunks import Chunk, StreamHeader
from wearflow.recording import DeviceInfo, FloatArray

BLOCK_ROWS = 1 << 16
"""Rows pandas parses at once (both passes: a column's type is inferred per block)."""
MAX_OPEN_LINE_BYTES = 16 << 20
"""A line longer than this (no line break) is left to the whole-file read."""
HEAD_CHARS = 1 << 16
_READ_BYTES = 1 << 20

Opener = Callable[[], Readable]


class _Text(io.TextIOBase):
    """The content decoded as UTF-8 (a BOM dropped), lines checked for width first."""

    def __init__(self, content: Readable) -> None:
        self._content = content
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self._buffer = ""
        self._eof = False
        self._open_line = b""  # the bytes of the line not yet ended

    def readable(self) -> bool:
        return True

    def unread(self, text: str) -> None:
        self._buffer = text + self._buffer

    def read(self, size: int | None = -1) -> str:
        want = math.inf if size is None or size < 0 else size
        while len(self._buffer) < want and not self._eof:
            piece = self._content.read(_READ_BYTES)
            self._check_widths(piece)
            try:
                self._buffer += self._decoder.decode(piece, final=not piece)
            except UnicodeDecodeError as exc:  # read_csv then decodes latin-1
                raise NotStreamable("not UTF-8") from exc
            self._eof = not piece
        cut = len(self._buffer) if want == math.inf else int(want)
        out, self._buffer = self._buffer[:cut], self._buffer[cut:]
        return out

    def _check_widths(self, piece: bytes) -> None:
        data = self._open_line + piece
        end = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1 if piece else len(data)
        if end:
            _, fields = widest_line(data[:end], cr._SEPARATORS, stop_above=cr.MAX_COLUMNS)
            if fields > cr.MAX_COLUMNS:
                raise NotStreamable("a line too wide")  # refused by read_csv, line named
        self._open_line = data[end:]
        if len(self._open_line) > MAX_OPEN_LINE_BYTES:
            raise NotStreamable("a line too long")


@dataclass(frozen=True)
class _Layout:
    """How the table is laid out: what read_csv decides from the first lines."""

    sep: str
    header: int | None
    actilife: bool
    device: DeviceInfo
    rate_hz: float = math.nan  # ActiLife header
    start_s: float = math.nan  # ActiLife header clock (naive local)


def _open_table(open_content: Opener, uri: str) -> tuple[_Layout, Iterator[pd.DataFrame]]:
    """The layout and the blocks of rows, as read_csv would parse the whole table."""
    text = _Text(open_content())
    head = text.read(HEAD_CHARS)
    first_end = head.find("\n")
    if first_end < 0 and len(head) == HEAD_CHARS:
        raise NotStreamable("first line too long")
    first_line = cr._first_line(head)
    if "ActiGraph" in first_line and first_line.lstrip().startswith("---"):
        layout, body = _actilife_layout(head, uri)
    else:
        layout, body = _Layout(_separator(first_line), 0, False, DeviceInfo("csv")), head
    text.unread(body)
    reader = pd.read_csv(text, sep=layout.sep, header=layout.header, skipinitialspace=True,
                         low_memory=False, chunksize=BLOCK_ROWS)
    return layout, _renamed(reader, layout)


def _separator(first_line: str) -> str:
    return max((",", ";", "\t"), key=first_line.count)


def _renamed(reader: Iterator[pd.DataFrame], layout: _Layout) -> Iterator[pd.DataFrame]:
    with reader:  # type: ignore[attr-defined]
        for frame in reader:
            if layout.actilife and layout.header is None:
                frame.columns = [
                    "Accelerometer X", "Accelerometer Y", "Accelerometer Z",
                    *[f"extra_{i}" for i in range(frame.shape[1] - 3)],
                ][: frame.shape[1]]
            yield frame


def _actilife_layout(head: str, uri: str) -> tuple[_Layout, str]:
    """read_csv's ``_read_actilife`` up to its table: the header's facts, the body's start."""
    parts = head.split("\n", cr.ACTILIFE_HEADER_LINES)
    if len(parts) <= cr.ACTILIFE_HEADER_LINES or "\n" not in parts[-1]:
        raise NotStreamable("ActiLife header or first row beyond the head")
    lines = [line.strip().rstrip(",").strip() for line in parts[:cr.ACTILIFE_HEADER_LINES]]
    text = " ".join(lines)
    rate, start_time, start_date, date_format = cr.actilife_header_fields(text)
    if not (rate and start_time and start_date):
        raise NotStreamable("header refused")
    rate_hz = float(rate.group(1))
    check_sampling_rate(rate_hz if math.isfinite(rate_hz) else math.nan, uri)
    pattern = cr._strptime_format(date_format.group(1) if date_format else "M/d/yyyy")
    try:
        start = (datetime.strptime(f"{start_date.group(1)} {start_time.group(1)}",
                                   f"{pattern} %H:%M:%S").replace(tzinfo=UTC).timestamp())
    except ValueError:
        start = math.nan  # refused by read_csv only if the header clock is needed
    body = parts[-1]
    has_names = bool(re.match(r"\s*[A-Za-z]", body))
    device = cr.actilife_device(text)
    sep = _separator(cr._first_line(body))
    return _Layout(sep, 0 if has_names else None, True, device, rate_hz, start), body


@dataclass(frozen=True)
class CsvPlan:
    """The survey's outcome: how to time, scale and flag the rows, and the rate."""

    layout: _Layout
    columns: dict[str, str]
    header_clock: bool
    clock_offset_s: float
    plan: Plan


def survey_csv(open_content: Opener, uri: str, device_time_zone: str) -> CsvPlan | None:
    """The first pass: the whole-file facts, or None when the file is to be read whole."""
    try:
        return _survey(open_content, uri, device_time_zone)
    except Exception:
        return None


def _columns(frame: pd.DataFrame, layout: _Layout) -> dict[str, str]:
    columns = cr._match_columns(frame.columns)
    needed = ("x", "y", "z") if layout.actilife else ("time", "x", "y", "z")
    if not set(needed) <= columns.keys():
        raise NotStreamable("columns missing")  # refused by read_csv
    return columns


def _values(frame: pd.DataFrame, columns: dict[str, str], signature: list[str]
            ) -> tuple[FloatArray, FloatArray | None]:
    """The block's acceleration (as written) and temperature, as read_csv converts them."""
    axes = []
    for axis in "xyz":
        converted = pd.to_numeric(frame[columns[axis]], errors="coerce")
        signature.append(str(converted.dtype))
        axes.append(converted.to_numpy(np.float64))
    accel = np.column_stack(axes)
    temperature: FloatArray | None = None
    if "temperature" in columns:
        converted = pd.to_numeric(frame[columns["temperature"]], errors="coerce")
        signature.append(str(converted.dtype))
        temperature = np.asarray(converted.to_numpy(np.float64), dtype=np.float64)
    return accel, temperature


def _survey(open_content: Opener, uri: str, zone: str) -> CsvPlan:
    layout, frames = _open_table(open_content, uri)
    clock_offset = (zone_offset_s(zone, layout.start_s, uri) if layout.actilife
                    and math.isfinite(layout.start_s) else math.nan)
    columns: dict[str, str] | None = None
    clock = Clock(uri, zone)
    timed = Timing()
    by_header = Timing()
    signatures: set[tuple[str, ...]] = set()
    rows = 0
    for frame in frames:
        if columns is None:
            columns = _columns(frame, layout)
            unit = columns.get("unit", "")
            timed.unit = by_header.unit = unit
        signature = [str(frame[name].dtype) for name in columns.values()
                     if name in frame.columns]
        accel, temperature = _values(frame, columns, signature)
        if "time" in columns:
            time_s = clock.read(frame[columns["time"]], signature)
            if clock.numeric:
                timed.divisors = DIVISORS
            timed.add(time_s, accel, temperature)
        if layout.actilife:
            local = layout.start_s + np.arange(rows, rows + len(frame),
                                               dtype=np.float64) / layout.rate_hz
            by_header.add(local - clock_offset, accel, temperature)
        signatures.add(tuple(signature))
        if len(signatures) > 1:
            raise NotStreamable("column types differ between blocks")
        rows += len(frame)
    if columns is None or rows == 0:
        raise NotStreamable("no data rows")  # refused by read_csv
    if "time" in columns and clock.any_time:
        plan = timed.plan(clock.divisor(), clock.zone_flags())
        return CsvPlan(layout, columns, False, math.nan, plan)
    if not layout.actilife or not math.isfinite(clock_offset):
        raise NotStreamable("no time")  # refused by read_csv
    last_local = layout.start_s + (rows - 1) / layout.rate_hz
    flags = dst_flag(zone, clock_offset, layout.start_s, max(layout.start_s, last_local), uri)
    columns.pop("time", None)
    return CsvPlan(layout, columns, True, clock_offset, by_header.plan(1.0, flags))


def stream_csv(plan: CsvPlan, open_content: Opener, uri: str, *, device_time_zone: str,
               chunk_s: float, on_header: Callable[[StreamHeader], None],
               on_flags: Callable[[tuple[str, ...]], None]) -> Iterator[Chunk]:
    """The second pass: the chunks of a surveyed CSV, equal when concatenated to
    :func:`~wearflow.readers.csv_reader.read_csv`."""
    _, frames = _open_table(open_content, uri)
    settings = plan.plan
    check_sampling_rate(settings.rate_hz, uri)  # finish()'s first refusal for a CSV
    finisher = StreamFinisher(uri, settings.rate_hz)
    on_header(StreamHeader(plan.layout.device, settings.rate_hz))
    clock = Clock(uri, device_time_zone)
    rows = 0
    for frame in frames:
        accel, temperature = _values(frame, plan.columns, [])
        if plan.header_clock:
            local = plan.layout.start_s + np.arange(rows, rows + len(frame),
                                                    dtype=np.float64) / plan.layout.rate_hz
            time_s = local - plan.clock_offset_s
        else:
            time_s = clock.read(frame[plan.columns["time"]], []) / settings.divisor
        rows += len(frame)
        keep = finite_rows(time_s, accel, temperature)
        if not np.all(keep):
            time_s, accel = time_s[keep], accel[keep]
            temperature = None if temperature is None else temperature[keep]
        if settings.scale != 1.0:
            accel = accel / settings.scale
        chunk = finisher.push(time_s, accel, temperature, 0)
        if chunk is not None:
            yield from _cut(chunk, chunk_s)
    on_flags(finisher.flags(settings.flags))


def _cut(chunk: Chunk, chunk_s: float) -> Iterator[Chunk]:
    """A block's chunk in pieces of less than ``chunk_s`` seconds (views)."""
    time_s = chunk.time_s
    lo, n = 0, int(time_s.size)
    if float(time_s[-1]) - float(time_s[0]) < chunk_s:
        yield chunk
        return
    while lo < n:
        hi = max(int(np.searchsorted(time_s, time_s[lo] + chunk_s, side="left")), lo + 1)
        yield Chunk(time_s[lo:hi], chunk.accel_g[lo:hi],
                    None if chunk.temperature_c is None else chunk.temperature_c[lo:hi])
        lo = hi
