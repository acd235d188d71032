"""Participant metadata files -> cleaned, validated values (one per participant and field).

Sites upload metadata as CSV or XLSX. Columns are mapped to canonical fields
by the study file (``metadata: columns:``); a column already named like a
canonical field (``participant``, ``height_cm``, ``height_m``, ...) needs no
mapping. Values are cleaned (whitespace, case, decimal commas, ids written as
``1001.0``), converted (height in cm or m -> ``height_m``) and validated
against plausible ranges. An implausible value is returned with its problem,
never as a valid value.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from wearflow.bounds import count_lines, widest_line, xml_parts_problem, zip_problem
from wearflow.errors import DataError, one_line
from wearflow.storage import Store

CANONICAL_FIELDS = ("participant", "height_m", "weight_kg", "age_years", "sex",
                    "dominant_hand", "time_zone", "device_left", "device_right", "visit",
                    "protocol_start", "protocol_end", "bed_time", "wake_time")
# the participant's monitoring period (local dates, both included): days outside it are
# not valid days, with that reason
PROTOCOL_FIELDS = ("protocol_start", "protocol_end")
# A sleep diary: a metadata file with a row per night (participant, bed_time, wake_time,
# local times) gives each participant one value, ``sleep_diary``: the nights as a JSON
# list of [bed, wake] ISO local times, sorted. The sleep step uses a night's diary window
# instead of its own guess.
DIARY_FIELDS = ("bed_time", "wake_time")
DIARY = "sleep_diary"
MAX_NIGHT_H = 24.0
_ALIASES = {"bedtime": "bed_time", "bed": "bed_time", "lights_off": "bed_time",
            "in_bed": "bed_time", "wake": "wake_time", "waketime": "wake_time",
            "rise_time": "wake_time", "out_of_bed": "wake_time", "lights_on": "wake_time",
            "height_cm": "height_m", "height": "height_m", "weight": "weight_kg",
            "age": "age_years", "handedness": "dominant_hand", "timezone": "time_zone",
            "tz": "time_zone", "subject": "participant", "participant_id": "participant",
            "subject_id": "participant", "id": "participant"}
_RANGES = {"height_m": (0.5, 2.5), "weight_kg": (20.0, 350.0), "age_years": (0.0, 120.0)}
_SEX = {"f": "female", "female": "female", "w": "female", "woman": "female",
        "m": "male", "male": "male", "man": "male", "other": "other", "x": "other"}
_HAND = {"l": "left", "left": "left", "r": "right", "right": "right",
         "ambidextrous": "ambidextrous", "both": "ambidextrous"}


@dataclass(frozen=True)
class MetadataValue:
    """One cleaned value from one row of one metadata file."""

    participant: str
    field: str
    value: str | None  # canonical text form; None when invalid
    raw: str
    row: int  # 1-based data row in the file (header excluded)
    problem: str | None = None



@dataclass(frozen=True)
class MetaCell:
    """The value in force for one participant and field, and where it came from."""

    value: str
    source_uri: str
    row: int
    added_utc: str


# (participant, field, value, raw, row, problem) of one stored metadata value
MetadataTuple = tuple[str | None, str, str | None, str, int, str | None]
Metadata = Mapping[str, Mapping[str, MetaCell]]  # participant -> field -> value in force

def _clean_id(text: str) -> str:
    text = text.strip()
    return re.sub(r"^(\d+)\.0+$", r"\1", text)


def _number(text: str) -> float:
    return float(text.strip().replace(",", "."))


def clean_value(field: str, raw: str, unit: str | None = None) -> tuple[str | None, str | None]:
    """Return (canonical value, problem); exactly one of them is None.

    ``unit`` is the height unit the column declares ("cm" or "m"); without
    one, a height above 3 is taken as centimetres.
    """
    text = raw.strip()
    try:
        if field == "height_m":
            value = _number(text)
            if unit == "cm" or (unit is None and value > 3.0):
                value /= 100.0
            return _in_range(field, round(value, 4))
        if field in ("weight_kg", "age_years"):
            return _in_range(field, _number(text))
    except ValueError:
        return None, f"{field}: {raw!r} is not a number"
    if field == "sex":
        sex = _SEX.get(text.lower())
        return (sex, None) if sex else (None, f"sex: {raw!r} is not female/male/other")
    if field == "dominant_hand":
        hand = _HAND.get(text.lower())
        return (hand, None) if hand else (None, f"dominant_hand: {raw!r} is not left/right")
    if field == "time_zone":
        try:
            ZoneInfo(text)
        except (ZoneInfoNotFoundError, ValueError):
            return None, f"time_zone: {raw!r} is not an IANA time-zone name"
        return text, None
    if field in ("device_left", "device_right", "visit"):
        return (_clean_id(text), None) if text else (None, f"{field}: empty")
    if field in PROTOCOL_FIELDS:
        try:
            return date.fromisoformat(text[:10]).isoformat(), None
        except ValueError:
            return None, f"{field}: {raw!r} is not a date (YYYY-MM-DD)"
    return text, None


def _in_range(field: str, value: float) -> tuple[str | None, str | None]:
    low, high = _RANGES[field]
    if not (low <= value <= high):
        return None, f"{field}: {value:g} is outside the plausible range {low:g}-{high:g}"
    return f"{value:g}", None


def _canonical(column: str, mapping: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(canonical field, declared height unit) of a column, or (None, None) to ignore it."""
    key = mapping.get(column) or re.sub(r"[^0-9a-z]+", "_", column.strip().lower()).strip("_")
    unit = "cm" if key.endswith("_cm") or "(cm)" in column.lower() else (
        "m" if key == "height_m" else None)
    if key in CANONICAL_FIELDS:
        return key, unit
    return _ALIASES.get(key), unit


MAX_METADATA_BYTES = 32 * 1024**2
"""A metadata file larger than this is refused unread (a table of 10,000 participants
and 100 columns is a few MB)."""
MAX_METADATA_COLUMNS = 1000
MAX_METADATA_ROWS = 500_000
"""Lines of a CSV, rows of a sheet (as far as its last row), the header included."""
MAX_METADATA_CELLS = 2_000_000
"""Rows x the widest row: a reader pads every row to the widest, so a sheet whose one
cell sits at row 1,048,576 and column 16,384 would be a grid of 17 billion cells."""
MAX_XLSX_UNZIPPED_BYTES = 64 * 1024**2
MAX_XLSX_PARTS = 1000
_XLSX_REQUIRED = ("[Content_Types].xml",)
_CSV_SEPARATORS = b",;\t|"  # what the CSV sniffer may choose


def read_table(data: bytes, uri: str) -> pd.DataFrame:
    """A metadata file (CSV or XLSX, by content) as a table of strings.

    The file is measured before any parser sees it (bytes; lines, fields and cells of a
    CSV; parts, unzipped bytes, XML document types and the sheet's grid of a workbook),
    so that a hostile file costs bounded memory and time; any file that cannot be read
    is a :class:`DataError` naming it, whatever the parser raised.
    """
    problem = _size_problem(len(data))
    if problem is None:
        try:
            if data[:4] == b"PK\x03\x04":  # XLSX is a zip container
                problem = _xlsx_problem(data)
                if problem is None:
                    return pd.read_excel(io.BytesIO(data), dtype=str, keep_default_na=False)
            else:
                problem = _csv_problem(data)
                if problem is None:
                    return pd.read_csv(io.StringIO(data.decode("utf-8-sig")), dtype=str,
                                       keep_default_na=False, sep=None, engine="python")
        except Exception as exc:  # any parser error, MemoryError included: the file's issue
            problem = f"cannot be read as CSV or XLSX ({type(exc).__name__}: {exc})"
    raise DataError(one_line(f"metadata file {problem}"), subject=uri)


def _size_problem(size_bytes: int) -> str | None:
    if size_bytes > MAX_METADATA_BYTES:
        return f"is {size_bytes} bytes, more than {MAX_METADATA_BYTES}"
    return None


def read_metadata_file(store: Store, path: str, uri: str, size_bytes: int,
                       mapping: Mapping[str, str]) -> list[MetadataValue]:
    """:func:`parse_metadata` of a stored file of ``size_bytes`` (as cataloged); one
    larger than ``MAX_METADATA_BYTES`` is refused unread."""
    problem = _size_problem(size_bytes)
    if problem is not None:
        raise DataError(f"metadata file {problem}", subject=uri)
    return parse_metadata(store.read_bytes(path), uri, mapping)


def _grid_problem(rows: int, columns: int, where: str) -> str | None:
    if columns > MAX_METADATA_COLUMNS:
        return f"{where} has more than {MAX_METADATA_COLUMNS} columns ({columns})"
    if rows > MAX_METADATA_ROWS:
        return f"{where} has more than {MAX_METADATA_ROWS} rows ({rows})"
    if rows * columns > MAX_METADATA_CELLS:
        return (f"{where} spans {rows} rows x {columns} columns, more than "
                f"{MAX_METADATA_CELLS} cells")
    return None


def _csv_problem(data: bytes) -> str | None:
    line, fields = widest_line(data, _CSV_SEPARATORS, stop_above=MAX_METADATA_COLUMNS)
    if fields > MAX_METADATA_COLUMNS:
        return f"line {line} has more than {MAX_METADATA_COLUMNS} fields ({fields} at least)"
    return _grid_problem(count_lines(data), fields, "the CSV")


def _xlsx_problem(data: bytes) -> str | None:
    problem = zip_problem(data, max_unzipped_bytes=MAX_XLSX_UNZIPPED_BYTES,
                          max_parts=MAX_XLSX_PARTS, required=_XLSX_REQUIRED)
    if problem is not None:
        return f"is not an XLSX workbook: {problem}"
    problem, shape = xml_parts_problem(data)
    if problem is not None:
        return f"XLSX {problem}"
    for name, size in sorted(shape.sheets.items()):
        problem = _grid_problem(size.rows, size.columns, f"XLSX sheet {name}")
        if problem is not None:
            return problem
    if shape.shared_strings > MAX_METADATA_CELLS:
        return (f"XLSX holds {shape.shared_strings} shared strings, more than "
                f"{MAX_METADATA_CELLS} (the cells a metadata table may have)")
    return None


def parse_metadata(data: bytes, uri: str, mapping: Mapping[str, str]) -> list[MetadataValue]:
    """Clean and validate every value of a metadata file.

    Raises
    ------
    DataError
        The file cannot be read or has no participant column.
    """
    table = read_table(data, uri)
    columns = {c: _canonical(str(c), mapping) for c in table.columns}
    pid_cols = [c for c, (f, _) in columns.items() if f == "participant"]
    if not pid_cols:
        raise DataError("metadata file has no participant column (map one in the study "
                        "file under metadata: columns:)", subject=uri)
    if all(any(f == name for f, _ in columns.values()) for name in DIARY_FIELDS):
        return parse_diary(table, columns, pid_cols[0], uri)
    values: list[MetadataValue] = []
    for i, row in enumerate(table.to_dict("records"), start=1):
        pid = _clean_id(str(row[pid_cols[0]]))
        if not pid:
            continue
        row_values: list[MetadataValue] = []
        for column, (field, unit) in columns.items():
            raw = str(row[column])
            if field is None or field == "participant" or not raw.strip():
                continue
            value, problem = clean_value(field, raw, unit)
            row_values.append(MetadataValue(pid, field, value, raw, i, problem))
        values.extend(_window_checked(row_values))
    return sorted(values, key=lambda v: (v.participant, v.field, v.row))


def _window_checked(row: list[MetadataValue]) -> list[MetadataValue]:
    """A protocol window that ends before it starts is a problem of both its values."""
    window = {v.field: v for v in row if v.field in PROTOCOL_FIELDS and v.value is not None}
    start, end = window.get("protocol_start"), window.get("protocol_end")
    if start is None or end is None or (start.value or "") <= (end.value or ""):
        return row
    problem = (f"protocol window of participant {start.participant} ends ({end.value}) "
               f"before it starts ({start.value})")
    return [dataclasses.replace(v, value=None, problem=f"{v.field}: {problem}")
            if v.field in PROTOCOL_FIELDS else v for v in row]


def parse_diary(table: pd.DataFrame, columns: Mapping[str, tuple[str | None, str | None]],
                pid_col: str, uri: str) -> list[MetadataValue]:
    """A sleep diary (one row per night) -> one ``sleep_diary`` value per participant,
    and a problem value per night that cannot be used (unreadable time, a wake time not
    after the bed time, a night longer than 24 h)."""
    bed_col = next(c for c, (f, _) in columns.items() if f == "bed_time")
    wake_col = next(c for c, (f, _) in columns.items() if f == "wake_time")
    nights: dict[str, list[tuple[str, str]]] = {}
    first_row: dict[str, int] = {}
    values: list[MetadataValue] = []
    for i, row in enumerate(table.to_dict("records"), start=1):
        pid = _clean_id(str(row[pid_col]))
        if not pid:
            continue
        raw = f"{row[bed_col]} -> {row[wake_col]}"
        try:
            bed = datetime.fromisoformat(str(row[bed_col]).strip())
            wake = datetime.fromisoformat(str(row[wake_col]).strip())
        except ValueError:
            values.append(MetadataValue(pid, DIARY, None, raw, i,
                                        f"sleep diary row {i}: {raw!r} are not date-times "
                                        "(YYYY-MM-DD HH:MM)"))
            continue
        hours = (wake - bed).total_seconds() / 3600.0
        if not 0 < hours <= MAX_NIGHT_H:
            what = "is not after" if hours <= 0 else f"is {hours:.0f} h after"
            values.append(MetadataValue(pid, DIARY, None, raw, i,
                                        f"sleep diary row {i}: wake time {wake:%Y-%m-%d %H:%M} "
                                        f"{what} the bed time {bed:%Y-%m-%d %H:%M}"))
            continue
        nights.setdefault(pid, []).append((bed.replace(tzinfo=None).isoformat(timespec="minutes"),
                                           wake.replace(tzinfo=None).isoformat(timespec="minutes")))
        first_row.setdefault(pid, i)
    for pid, got in nights.items():
        values.append(MetadataValue(pid, DIARY, json.dumps(sorted(got)), f"{len(got)} nights",
                                    first_row[pid]))
    return sorted(values, key=lambda v: (v.participant, v.field, v.row))
