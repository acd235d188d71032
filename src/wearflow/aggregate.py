"""Pure functions: per-wrist tables -> one participant's tables -> the study summary.

The rule for the combined value, per numeric column and per day (or night):

* when the participant's dominant hand is known, the combined value is the
  non-dominant wrist's value (the wrist most protocols and cut-points assume);
  when that wrist has no value for the day, the other wrist's value is used;
* otherwise the mean of the wrists that have a value;
* ``<column>_left`` and ``<column>_right`` keep both wrists' values and
  ``<column>_discordance`` is ``|left - right|`` (empty when a wrist is missing);
* ``combined_rule`` says, per row, which of these applied;
* ``valid_day`` is 1 when at least one wrist's day is valid (the wear rule of
  the study's ``qc:`` settings).

Only tables keyed by ``date`` are combined (days and nights); bout lists stay
per wrist.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import numpy as np
import pandas as pd

AGGREGATOR_VERSION = "1"
SUMMARY_VERSION = ("summary=2",)  # 2: a visit column
KEY = "date"
Tables = Mapping[str, pd.DataFrame]

# Columns of the builtin wrist solution that the study summary reports.
SUMMARY_COLUMNS = {
    "activity_level_classification": {
        "n_wear_hours": "wear_hours",
        "wake_mvpa_5s_epoch_min": "active_minutes",
    },
    "sleep": {"total_sleep_time_min": "sleep_minutes"},
    "qc_days": {"valid_day": "valid_day"},
}
# What the study summary reads of each participant result: its tables and columns.
SUMMARY_INPUTS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {table: (KEY, *cols) for table, cols in SUMMARY_COLUMNS.items()})


def combine_wrists(
    left: Tables | None, right: Tables | None, dominant_hand: str | None = None
) -> dict[str, pd.DataFrame]:
    """Combine the left and right results of one participant (either may be None)."""
    names = sorted(set(left or {}) | set(right or {}))
    out: dict[str, pd.DataFrame] = {}
    for name in names:
        lt = (left or {}).get(name)
        rt = (right or {}).get(name)
        if any(t is not None and KEY not in t.columns for t in (lt, rt)):
            continue
        out[name] = _combine_table(lt, rt, dominant_hand)
    return out


def _combine_table(
    lt: pd.DataFrame | None, rt: pd.DataFrame | None, dominant_hand: str | None
) -> pd.DataFrame:
    frames = {side: _by_date(t) for side, t in (("left", lt), ("right", rt)) if t is not None}
    dates = sorted(set().union(*(f.index for f in frames.values())))
    columns = sorted(set().union(*(f.columns for f in frames.values())) - {"day_n"})
    out: dict[str, object] = {KEY: pd.array(dates, dtype="string")}
    left = frames.get("left", pd.DataFrame(index=pd.Index([], dtype="string"))).reindex(dates)
    right = frames.get("right", pd.DataFrame(index=pd.Index([], dtype="string"))).reindex(dates)
    preferred = {"left": "right", "right": "left"}.get((dominant_hand or "").lower())
    numeric = [c for c in columns if _numeric_in(left, c) and _numeric_in(right, c)]
    # every numeric column at once: (days, columns) arrays, NaN where a wrist has no value
    lf, rf = _matrix(left, numeric, len(dates)), _matrix(right, numeric, len(dates))
    if preferred == "left":
        combined = np.where(np.isnan(lf), rf, lf)
    elif preferred == "right":
        combined = np.where(np.isnan(rf), lf, rf)
    else:
        count = (~np.isnan(lf)).astype("int64") + (~np.isnan(rf)).astype("int64")
        total = np.where(np.isnan(lf), 0.0, lf) + np.where(np.isnan(rf), 0.0, rf)
        with np.errstate(invalid="ignore", divide="ignore"):
            combined = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    valid = np.array([c.startswith("valid") for c in numeric], dtype=bool)
    # a day is valid when at least one wrist's is (fmax skips a missing wrist)
    combined[:, valid] = np.fmax(lf[:, valid], rf[:, valid])
    discordance = np.abs(lf - rf)
    position = {c: i for i, c in enumerate(numeric)}
    for col in columns:
        i = position.get(col)
        if i is None:
            lv, rv = _column(left, col), _column(right, col)
            first = lv.where(lv.notna(), rv) if preferred != "right" else rv.where(rv.notna(), lv)
            out[col] = pd.array(first.to_numpy(dtype=object), dtype="string")
            continue
        out[f"{col}_left"] = lf[:, i]
        out[f"{col}_right"] = rf[:, i]
        out[col] = combined[:, i]
        out[f"{col}_discordance"] = discordance[:, i]
    out["combined_rule"] = pd.array(_rules(left, right, preferred, len(dates)), dtype="string")
    return pd.DataFrame(out)


def _numeric_in(frame: pd.DataFrame, col: str) -> bool:
    """A column a wrist does not have counts as numeric (all missing)."""
    return col not in frame.columns or bool(pd.api.types.is_numeric_dtype(frame[col].dtype))


def _matrix(frame: pd.DataFrame, columns: list[str], n_rows: int) -> np.ndarray:
    """``columns`` of ``frame`` as one float64 (rows, columns) array; absent ones NaN."""
    out = np.full((n_rows, len(columns)), np.nan)
    present = [i for i, c in enumerate(columns) if c in frame.columns]
    if present and n_rows:
        out[:, present] = frame[[columns[i] for i in present]].to_numpy(dtype="float64")
    return out


def _by_date(table: pd.DataFrame) -> pd.DataFrame:
    t = table.copy()
    t[KEY] = t[KEY].astype("string")
    return t.drop_duplicates(KEY, keep="first").set_index(KEY).sort_index()


def _column(frame: pd.DataFrame, col: str) -> pd.Series:
    if col in frame.columns:
        return frame[col].reset_index(drop=True)
    return pd.Series([np.nan] * len(frame), dtype="float64")


def _rules(left: pd.DataFrame, right: pd.DataFrame, preferred: str | None, n: int) -> list[str]:
    has_left = not left.empty and len(left.columns) > 0
    has_right = not right.empty and len(right.columns) > 0
    if has_left and not has_right:
        return ["left_only"] * n
    if has_right and not has_left:
        return ["right_only"] * n
    return [f"non_dominant_{preferred}" if preferred else "mean"] * n


def study_summary(participants: Mapping[tuple[str, str], Tables]) -> pd.DataFrame:
    """One row per participant, visit and date: wear hours, active minutes, sleep minutes.

    ``participants`` maps (participant, visit) to that participant-visit's combined
    tables (visit ``""`` when the study's names give none). Values are the
    participants' combined values from the builtin wrist solution's columns; a night
    is listed under the date it starts.
    """
    rows: list[pd.DataFrame] = []
    for participant, visit in sorted(participants):
        tables = participants[(participant, visit)]
        merged: pd.DataFrame | None = None
        for table_name, cols in SUMMARY_COLUMNS.items():
            table = tables.get(table_name)
            if table is None or KEY not in table.columns:
                continue
            present = {c: n for c, n in cols.items() if c in table.columns}
            part = table[[KEY, *present]].rename(columns=present)
            merged = part if merged is None else merged.merge(part, on=KEY, how="outer")
        if merged is not None:
            merged.insert(0, "visit", visit)
            merged.insert(0, "participant", participant)
            rows.append(merged)
    ids = ["participant", "visit", KEY]
    names = [*ids, *[n for cols in SUMMARY_COLUMNS.values() for n in cols.values()]]
    if not rows:
        return pd.DataFrame({n: pd.Series(dtype="string" if n in ids else "float64")
                             for n in names})
    summary = pd.concat(rows, ignore_index=True)
    for n in names:
        if n not in summary.columns:
            summary[n] = np.nan
    for n in ids:
        summary[n] = summary[n].astype("string")
    return summary[names].sort_values(ids, kind="stable").reset_index(drop=True)
