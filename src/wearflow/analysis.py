"""Pure: participant tables -> analysis-ready tables, and the registry of their columns.

Three tables, over participant results (each: its context, such as solution and
participant, and its combined tables from :mod:`wearflow.aggregate`):

* ``participant_visit_day``: one row per solution, participant, visit and local day;
* ``participant_visit_night``: one row per night (12:00-12:00 window);
* ``participant_visit``: one row per solution, participant and visit.

Every column is declared once, in :data:`TABLES`: name, dtype, unit, definition,
where it comes from (a participant-result table and column, the state database or
a provenance.json) and which step computed it. :func:`build_tables` builds the
tables from these declarations and :func:`data_dictionary` prints them, so the
tables and their dictionary cannot disagree. ``wearflow export`` and
``wearflow.load_results`` (:mod:`wearflow.services.export`) read and write them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from wearflow.aggregate import KEY
from wearflow.qc import DAY_TABLE, QC_TABLE

DAY = "participant_visit_day"
NIGHT = "participant_visit_night"
VISIT = "participant_visit"
DICTIONARY = "data_dictionary"
SLEEP_TABLE = "sleep"

Dtype = Literal["string", "int64", "float64"]
# derive(frame of the source columns, as "<table>.<column>", and the result's context)
Derive = Callable[[pd.DataFrame, Mapping[str, str]], Any]
BoolArray = np.ndarray[Any, np.dtype[np.bool_]]
# reduce(one result's rows of a day or night table, their validity) -> one value
Reduce = Callable[[pd.Series, BoolArray], Any]

_ALC_STEP = ("skdh.activity.ActivityLevelClassification (wearflow.solutions.skdh_steps."
             "ActivityLevels); builtin:wrist: ENMO of 5 s epochs, migueles wrist cut-points")
_SLEEP_STEP = "skdh.sleep.Sleep (12:00-12:00 windows, local time)"
_COMBINED = " Both wrists combined by combined_rule."
_WAKE = ("during waking wear time (worn, outside the night's total sleep opportunity) this "
         "local day, from 5 s epochs")


@dataclass(frozen=True)
class Column:
    """One exported column and where it comes from.

    A column is taken from the result's context (``source_table`` is
    ``participant_results`` or a ``provenance.json``), copied from a participant-result
    table (``source_table`` and ``source_column``), computed from such columns
    (``derive``; ``source_column`` lists them, comma-separated) or, in
    ``participant_visit``, reduced over the result's day or night rows (``reduce``).
    """

    name: str
    dtype: Dtype
    unit: str
    definition: str
    source_table: str
    source_column: str
    step: str
    derive: Derive | None = None
    reduce: Reduce | None = None
    mean_over_valid: bool = False  # participant_visit gets valid_<days|nights>_mean_<name>
    # a participant_visit reduction over only the weekdays (Mon-Fri) or weekend days
    # (Sat, Sun) of the local calendar
    days: Literal["weekday", "weekend"] | None = None

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(c.strip() for c in self.source_column.split(","))


# --------------------------------------------------------------------------- context

_RESULTS = "participant_results"
_PROVENANCE = "provenance.json"
_WRIST_PROVENANCE = "provenance.json (per-wrist result)"
CONTEXT_SOURCES = (_RESULTS, _PROVENANCE, _WRIST_PROVENANCE)

IDENTITY = (
    Column("solution", "string", "", "The solution's name in the study file.", _RESULTS,
           "solution", "wearflow.stages.participants"),
    Column("solution_version", "string", "",
           "The solution's version: pipeline (name@sha256 prefix) and package versions.",
           _PROVENANCE, "solution.version", "wearflow.solutions.solution_ref"),
    Column("participant", "string", "", "Participant id, from the file names.", _RESULTS,
           "participant", "wearflow.catalog (files: sensor name patterns, {participant})"),
    Column("visit", "string", "", "Visit, from the file names; empty when they give none.",
           _RESULTS, "visit", "wearflow.catalog (files: sensor name patterns, {visit})"),
)


# --------------------------------------------------------------------------- per day

def _date_column(table: str, definition: str, step: str) -> Column:
    return Column(KEY, "string", "", definition, table, KEY, step)


DAY_COLUMNS = (
    *IDENTITY,
    _date_column(QC_TABLE, "Local calendar date (YYYY-MM-DD) in the participant's time zone.",
                 "skdh.preprocessing.GetDayWindowIndices (00:00-24:00 local)"),
    Column("wear_hours", "float64", "h",
           "Hours the device was worn this local day (the first and last day of a recording "
           "are partial)." + _COMBINED, QC_TABLE, "wear_hours",
           "skdh.preprocessing.DETACH wear detection, per day window as "
           "activity_level_classification.n_wear_hours; wearflow.qc.day_validity",
           mean_over_valid=True),
    Column("valid_day", "int64", "",
           "1 when at least one wrist was worn at least the study's qc: min_wear_hours "
           "(default 16 h) this day, else 0.", QC_TABLE, "valid_day",
           "wearflow.qc.day_validity; wearflow.aggregate.combine_wrists"),
    Column("exclusion_reason", "string", "", "Why the day is not valid; empty when it is.",
           QC_TABLE, "exclusion_reason", "wearflow.qc.day_validity"),
    Column("wake_sed_5s_epoch_min", "float64", "min",
           f"Minutes sedentary (ENMO < 50 mg in builtin:wrist) {_WAKE}." + _COMBINED,
           DAY_TABLE, "wake_sed_5s_epoch_min", _ALC_STEP, mean_over_valid=True),
    Column("wake_light_5s_epoch_min", "float64", "min",
           f"Minutes of light activity (ENMO 50-110 mg in builtin:wrist) {_WAKE}." + _COMBINED,
           DAY_TABLE, "wake_light_5s_epoch_min", _ALC_STEP, mean_over_valid=True),
    Column("wake_mvpa_5s_epoch_min", "float64", "min",
           "Minutes of moderate-to-vigorous activity (ENMO >= 110 mg in builtin:wrist) "
           f"{_WAKE}." + _COMBINED, DAY_TABLE, "wake_mvpa_5s_epoch_min", _ALC_STEP,
           mean_over_valid=True),
    Column("combined_rule", "string", "",
           "How the wrists were combined: mean, non_dominant_left, non_dominant_right, "
           "left_only or right_only.", QC_TABLE, "combined_rule",
           "wearflow.aggregate.combine_wrists"),
)


# --------------------------------------------------------------------------- per night

def _local_time(seconds: pd.Series, time_zone: str) -> pd.Series:
    """UTC seconds -> local ISO 8601 time with its UTC offset, to the second; empty for
    a missing time or an unknown zone."""
    stamps = pd.to_datetime(pd.to_numeric(seconds, errors="coerce"), unit="s",
                            utc=True).dt.round("s")
    if not time_zone:
        return pd.Series(pd.NA, index=seconds.index, dtype="string")
    local = stamps.dt.tz_convert(time_zone)
    return pd.Series([t.isoformat() if not pd.isna(t) else pd.NA for t in local],
                     index=seconds.index, dtype="string")


def _tso_start(frame: pd.DataFrame, context: Mapping[str, str]) -> pd.Series:
    return _local_time(frame[f"{SLEEP_TABLE}.tso_start_timestamp"], context["time_zone"])


def _tso_end(frame: pd.DataFrame, context: Mapping[str, str]) -> pd.Series:
    # numbers whatever the table's column types (an empty table read back from
    # Parquet can type them as text)
    end = (pd.to_numeric(frame[f"{SLEEP_TABLE}.tso_start_timestamp"], errors="coerce")
           + 60.0 * pd.to_numeric(frame[f"{SLEEP_TABLE}.tso_duration_min"], errors="coerce"))
    return _local_time(end, context["time_zone"])


def _night_found(frame: pd.DataFrame) -> pd.Series:
    return (frame[f"{SLEEP_TABLE}.tso_start_timestamp"].notna()
            & frame[f"{SLEEP_TABLE}.total_sleep_time_min"].notna())


def _valid_night(frame: pd.DataFrame, _context: Mapping[str, str]) -> pd.Series:
    return _night_found(frame).astype("int64")


def _night_reason(frame: pd.DataFrame, _context: Mapping[str, str]) -> pd.Series:
    worn_h = frame[f"{SLEEP_TABLE}.wear_minutes"] / 60.0
    window_h = frame[f"{SLEEP_TABLE}.total_minutes"] / 60.0
    reasons = [pd.NA if found else f"no sleep period found (worn {w:.1f} h of {t:.1f} h)"
               for found, w, t in zip(_night_found(frame), worn_h, window_h, strict=True)]
    return pd.Series(reasons, index=frame.index, dtype="string")


_TSO = "total sleep opportunity (TSO: the night's main rest period)"
_NIGHT_INPUTS = "tso_start_timestamp, total_sleep_time_min, wear_minutes, total_minutes"

NIGHT_COLUMNS = (
    *IDENTITY,
    _date_column(SLEEP_TABLE, "Local date (YYYY-MM-DD) on which the night's 12:00-12:00 "
                 "window starts.", _SLEEP_STEP),
    Column("time_zone", "string", "",
           "IANA time zone the days and nights were cut in (tso_*_local are in it).",
           _WRIST_PROVENANCE, "task_inputs.time_zone",
           "wearflow.plan (metadata time_zone, else the study's time_zone)"),
    Column("tso_start_local", "string", "local ISO 8601 time",
           f"Start of the {_TSO}, local time with UTC offset, to the second." + _COMBINED,
           SLEEP_TABLE, "tso_start_timestamp", _SLEEP_STEP, derive=_tso_start),
    Column("tso_end_local", "string", "local ISO 8601 time",
           f"End of the {_TSO} (start + tso_duration_min), local time with UTC offset.",
           SLEEP_TABLE, "tso_start_timestamp, tso_duration_min", _SLEEP_STEP,
           derive=_tso_end),
    Column("tso_duration_min", "float64", "min", f"Length of the {_TSO}." + _COMBINED,
           SLEEP_TABLE, "tso_duration_min", _SLEEP_STEP),
    Column("total_sleep_time_min", "float64", "min",
           "Minutes asleep within the TSO." + _COMBINED, SLEEP_TABLE, "total_sleep_time_min",
           _SLEEP_STEP, mean_over_valid=True),
    Column("sleep_onset_latency_min", "float64", "min",
           "Minutes from the TSO start to the first sleep." + _COMBINED, SLEEP_TABLE,
           "sleep_onset_latency_min", _SLEEP_STEP),
    Column("wake_after_sleep_onset_min", "float64", "min",
           "Minutes awake within the TSO after the first sleep." + _COMBINED, SLEEP_TABLE,
           "wake_after_sleep_onset_min", _SLEEP_STEP),
    Column("percent_time_asleep_pct", "float64", "%",
           "Sleep efficiency: total_sleep_time_min / tso_duration_min x 100." + _COMBINED,
           SLEEP_TABLE, "percent_time_asleep_pct", _SLEEP_STEP),
    Column("number_of_wake_bouts", "float64", "count",
           "Wake bouts within the TSO (a mean of the wrists may be fractional)." + _COMBINED,
           SLEEP_TABLE, "number_of_wake_bouts", _SLEEP_STEP),
    Column("valid_night", "int64", "",
           "1 when the sleep step found a TSO and a total sleep time in this window, else 0.",
           SLEEP_TABLE, _NIGHT_INPUTS, "wearflow.services.export", derive=_valid_night),
    Column("exclusion_reason", "string", "",
           "Why the night is not valid (with the hours worn in its window); empty when it is.",
           SLEEP_TABLE, _NIGHT_INPUTS, "wearflow.services.export", derive=_night_reason),
    Column("combined_rule", "string", "",
           "How the wrists were combined: mean, non_dominant_left, non_dominant_right, "
           "left_only or right_only.", SLEEP_TABLE, "combined_rule",
           "wearflow.aggregate.combine_wrists"),
)


# --------------------------------------------------------------------------- per visit

def _count(values: pd.Series, _valid: BoolArray) -> int:
    return len(values)


def _n_valid(_values: pd.Series, valid: BoolArray) -> int:
    return int(valid.sum())


def _any_valid(_values: pd.Series, valid: BoolArray) -> int:
    return int(valid.any())


def _why_no_valid_day(values: pd.Series, valid: BoolArray
                      ) -> str | None:
    return None if valid.any() else f"no valid day among {len(values)} days"


def _mean_valid(values: pd.Series, valid: BoolArray) -> float:
    chosen = values.to_numpy(dtype="float64", na_value=np.nan)[valid]
    chosen = chosen[~np.isnan(chosen)]
    return float(chosen.mean()) if chosen.size else math.nan


_EXPORT = "wearflow.services.export"
VALIDITY = {DAY: "valid_day", NIGHT: "valid_night"}


def _means(table: str, columns: Sequence[Column], what: str) -> tuple[Column, ...]:
    return tuple(
        Column(f"valid_{what}s_mean_{c.name}", "float64", c.unit,
               f"Mean of {table}.{c.name} over the {what}s with {VALIDITY[table]} = 1; "
               f"empty when there is none.", table, c.name, _EXPORT, reduce=_mean_valid)
        for c in columns if c.mean_over_valid)


_KINDS: tuple[tuple[Literal["weekday", "weekend"], str, str], ...] = (
    ("weekday", "weekdays", "Monday to Friday"), ("weekend", "weekend_days", "Saturday and "
                                                  "Sunday"))


def _by_kind_of_day(columns: Sequence[Column]) -> tuple[Column, ...]:
    """Counts and means of valid days split into weekdays and weekend days (local dates)."""
    out: list[Column] = []
    for kind, plural, which in _KINDS:
        out.append(Column(f"n_valid_{plural}", "int64", "days",
                          f"Valid days that are a {which} (local date).", DAY, "valid_day",
                          _EXPORT, reduce=_n_valid, days=kind))
        out.extend(Column(f"valid_{plural}_mean_{c.name}", "float64", c.unit,
                          f"Mean of {DAY}.{c.name} over the valid days that are a {which} "
                          "(local date); empty when there is none.", DAY, c.name, _EXPORT,
                          reduce=_mean_valid, days=kind)
                   for c in columns if c.mean_over_valid)
    return tuple(out)


VISIT_COLUMNS = (
    *IDENTITY,
    Column("result_flags", "string", "",
           "Flags of the participant result, ';'-separated (single_wrist:<side>: one wrist "
           "only); empty when none.", _RESULTS, "flags_json", "wearflow.stages.participants"),
    Column("n_days", "int64", "days", "Days in participant_visit_day.", DAY, KEY, _EXPORT,
           reduce=_count),
    Column("n_valid_days", "int64", "days", "Days with valid_day = 1.", DAY, "valid_day",
           _EXPORT, reduce=_n_valid),
    Column("has_valid_day", "int64", "",
           "1 when at least one day is valid, else 0 (apply a protocol's minimum of valid "
           "days with n_valid_days).", DAY, "valid_day", _EXPORT, reduce=_any_valid),
    Column("exclusion_reason", "string", "", "Why no day is valid; empty when one is.", DAY,
           "valid_day", _EXPORT, reduce=_why_no_valid_day),
    *_means(DAY, DAY_COLUMNS, "day"),
    *_by_kind_of_day(DAY_COLUMNS),
    Column("n_nights", "int64", "nights", "Nights in participant_visit_night.", NIGHT, KEY,
           _EXPORT, reduce=_count),
    Column("n_valid_nights", "int64", "nights", "Nights with valid_night = 1.", NIGHT,
           "valid_night", _EXPORT, reduce=_n_valid),
    *_means(NIGHT, NIGHT_COLUMNS, "night"),
)

TABLES: Mapping[str, tuple[Column, ...]] = {DAY: DAY_COLUMNS, NIGHT: NIGHT_COLUMNS,
                                            VISIT: VISIT_COLUMNS}
ROW_KEYS = ("solution", "participant", "visit")

DICTIONARY_COLUMNS = ("table", "column", "dtype", "unit", "definition", "source_table",
                      "source_column", "source_step")


def data_dictionary() -> pd.DataFrame:
    """One row per exported column: table, column, dtype, unit, definition, and its
    source (table, column, step); from :data:`TABLES`, in table and column order."""
    rows = [(table, c.name, c.dtype, c.unit, c.definition, c.source_table, c.source_column,
             c.step) for table, columns in TABLES.items() for c in columns]
    frame = pd.DataFrame(rows, columns=list(DICTIONARY_COLUMNS))
    return frame.astype("string")


def source_columns() -> dict[str, list[str]]:
    """What :func:`build_tables` reads: participant-table name -> its columns."""
    wanted: dict[str, set[str]] = {}
    for c in (*DAY_COLUMNS, *NIGHT_COLUMNS):
        if c.source_table not in CONTEXT_SOURCES:
            wanted.setdefault(c.source_table, {KEY}).update(c.inputs)
    return {table: sorted(columns) for table, columns in sorted(wanted.items())}


# --------------------------------------------------------------------------- building

def _typed(values: Any, dtype: Dtype, n: int) -> pd.Series:
    """``values`` (a column, a list, or one value for all ``n`` rows) as ``dtype``; a
    missing int64 (a 0/1 flag no wrist has) is 0."""
    series = values if isinstance(values, pd.Series) else pd.Series(
        [values] * n if np.ndim(values) == 0 else list(values))
    series = series.reset_index(drop=True)
    if dtype == "string":
        return series.astype("string")
    if dtype == "int64":
        return pd.to_numeric(series).fillna(0).astype("int64")
    return pd.to_numeric(series).astype("float64")


def _empty(columns: Sequence[Column]) -> pd.DataFrame:
    return pd.DataFrame({c.name: pd.Series([], dtype=c.dtype) for c in columns})


def _source_frame(columns: Sequence[Column], tables: Mapping[str, pd.DataFrame]
                  ) -> pd.DataFrame:
    """The source columns of one result, as ``<table>.<column>``, outer-joined on date."""
    merged: pd.DataFrame | None = None
    for table in dict.fromkeys(c.source_table for c in columns
                               if c.source_table not in CONTEXT_SOURCES):
        found = tables.get(table)
        wanted = sorted({i for c in columns if c.source_table == table for i in c.inputs}
                        - {KEY})
        part = pd.DataFrame({KEY: pd.Series([], dtype="string")})
        if found is not None and KEY in found.columns:
            part = found[[KEY, *[w for w in wanted if w in found.columns]]].copy()
            part[KEY] = part[KEY].astype("string")
            for w in wanted:
                # a column without a value has no type to keep (an empty table read back
                # from Parquet or CSV types its columns as text): missing numbers
                if w in part.columns and bool(part[w].isna().all()):
                    part[w] = np.nan
        part = part.rename(columns={w: f"{table}.{w}" for w in wanted})
        for w in wanted:
            if f"{table}.{w}" not in part.columns:
                part[f"{table}.{w}"] = np.nan
        merged = part if merged is None else merged.merge(part, on=KEY, how="outer")
    if merged is None:
        return pd.DataFrame({KEY: pd.Series([], dtype="string")})
    return merged.sort_values(KEY, kind="stable").reset_index(drop=True)


def _rows(columns: Sequence[Column], tables: Mapping[str, pd.DataFrame],
          context: Mapping[str, str]) -> pd.DataFrame:
    """One result's rows of a day or night table."""
    frame = _source_frame(columns, tables)
    n = len(frame)
    out: dict[str, pd.Series] = {}
    for c in columns:
        if c.source_table in CONTEXT_SOURCES:
            values: Any = context[c.name]
        elif c.derive is not None:
            values = c.derive(frame, context)
        elif c.source_column == KEY:
            values = frame[KEY]
        else:
            values = frame[f"{c.source_table}.{c.source_column}"]
        out[c.name] = _typed(values, c.dtype, n)
    return pd.DataFrame(out, columns=[c.name for c in columns])


def _visit_row(context: Mapping[str, str], per_table: Mapping[str, pd.DataFrame]
               ) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for c in VISIT_COLUMNS:
        if c.reduce is None:
            row[c.name] = context[c.name]
            continue
        rows = per_table[c.source_table]
        valid = rows[VALIDITY[c.source_table]].to_numpy(dtype="int64") == 1
        if c.days is not None:
            weekend = pd.to_datetime(rows[KEY].astype("string")).dt.day_of_week.to_numpy() >= 5
            valid = valid & (weekend if c.days == "weekend" else ~weekend)
        row[c.name] = c.reduce(rows[c.source_column], valid)
    return row


def build_tables(results: Sequence[tuple[Mapping[str, str], Mapping[str, pd.DataFrame]]]
                 ) -> dict[str, pd.DataFrame]:
    """The three tables from ``results``: per participant result, its context (the
    values of the context columns) and its participant tables by name. Pure."""
    days: list[pd.DataFrame] = []
    nights: list[pd.DataFrame] = []
    visits: list[dict[str, Any]] = []
    for context, tables in results:
        per_table = {DAY: _rows(DAY_COLUMNS, tables, context),
                     NIGHT: _rows(NIGHT_COLUMNS, tables, context)}
        days.append(per_table[DAY])
        nights.append(per_table[NIGHT])
        visits.append(_visit_row(context, per_table))
    visit = pd.DataFrame({c.name: _typed([v[c.name] for v in visits], c.dtype, len(visits))
                          for c in VISIT_COLUMNS}) if visits else _empty(VISIT_COLUMNS)
    out = {DAY: _concat(days, DAY_COLUMNS), NIGHT: _concat(nights, NIGHT_COLUMNS),
           VISIT: visit}
    return {name: _sorted(table, (*ROW_KEYS, KEY) if name != VISIT else ROW_KEYS)
            for name, table in out.items()}


def _concat(frames: Sequence[pd.DataFrame], columns: Sequence[Column]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return _empty(columns)
    return pd.concat(frames, ignore_index=True)


def _sorted(table: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    return table.sort_values(list(keys), kind="stable").reset_index(drop=True)
