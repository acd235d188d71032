"""The participant report: one HTML page per participant and visit.

A timeline row per local day of the whole recording (every day, however many),
one lane per wrist, drawn from the per-minute series the solution classified;
beside each row the day's wear, validity (and why a day was excluded), sleep and
activity; then the per-day and per-night tables of the participant result and
each file's quality in words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from wearflow.reports import timeline, words
from wearflow.reports.page import clean, render

DAY_TABLE = "activity_level_classification"
NIGHT_TABLE = "sleep"
QC_TABLE = "qc_days"
WEAR_TABLE = "detach_wear"
# per-day columns shown (participant result -> label, unit); missing ones are left out
DAY_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("wake_sed_5s_epoch_min", "sedentary", "min"),
    ("wake_light_5s_epoch_min", "light", "min"),
    ("wake_mod_5s_epoch_min", "moderate", "min"),
    ("wake_vig_5s_epoch_min", "vigorous", "min"),
    ("wake_mvpa_5s_epoch_min", "MVPA", "min"),
    ("wake_intensity_gradient", "intensity gradient", ""),
)
NIGHT_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("tso_duration_min", "sleep window", "min"),
    ("total_sleep_time_min", "total sleep", "min"),
    ("sleep_onset_latency_min", "onset latency", "min"),
    ("wake_after_sleep_onset_min", "WASO", "min"),
    ("number_of_wake_bouts", "wake bouts", ""),
    ("percent_time_asleep_pct", "asleep", "%"),
)


@dataclass(frozen=True)
class WristResult:
    """One wrist's per-file result, as stored."""

    side: str
    file_name: str
    result_dir: str
    qc: Mapping[str, Any]
    tables: Mapping[str, pd.DataFrame]


@dataclass(frozen=True)
class ParticipantResult:
    """What a participant report is drawn from."""

    study: str
    solution: str
    solution_version: str
    participant: str
    visit: str
    time_zone: str
    result_dir: str
    tables: Mapping[str, pd.DataFrame]
    wrists: tuple[WristResult, ...]
    flags: tuple[str, ...] = ()
    software_version: str = ""
    links: Mapping[str, str] = field(default_factory=dict)


def _lane(w: WristResult, time_zone: str) -> timeline.Lane | None:
    minutes = w.tables.get(timeline.MINUTE_TABLE)
    if minutes is not None:
        return timeline.lane_from_minutes(w.side, minutes, time_zone)
    if "start_utc" not in w.qc:
        return None
    return timeline.lane_from_bouts(w.side, str(w.qc["start_utc"]), str(w.qc["end_utc"]),
                                    w.tables.get(WEAR_TABLE), w.tables.get(NIGHT_TABLE),
                                    time_zone)


def _rows(table: pd.DataFrame | None) -> dict[str, dict[str, Any]]:
    if table is None or "date" not in table.columns:
        return {}
    return {str(r["date"]): {str(k): v for k, v in r.items()} for r in table.to_dict("records")}


def _clock(stamp: Any, time_zone: str) -> str | None:
    """A UTC epoch second -> local ``YYYY-MM-DD HH:MM``."""
    if stamp is None or stamp != stamp:
        return None
    local = pd.Timestamp(float(stamp), unit="s", tz="UTC").tz_convert(time_zone)
    return local.strftime("%Y-%m-%d %H:%M")


def day_records(result: ParticipantResult) -> list[dict[str, Any]]:
    """The per-day rows the report shows (also its data block), from the stored tables."""
    qc = _rows(result.tables.get(QC_TABLE))
    act = _rows(result.tables.get(DAY_TABLE))
    out = []
    for day in sorted(set(qc) | set(act)):
        q, a = qc.get(day, {}), act.get(day, {})
        rec: dict[str, Any] = {"date": day,
                               "wear_hours": q.get("wear_hours", a.get("n_wear_hours")),
                               "valid_day": q.get("valid_day"),
                               "exclusion_reason": q.get("exclusion_reason") or None}
        for side in ("left", "right"):
            if f"wear_hours_{side}" in q:
                rec[f"wear_hours_{side}"] = q[f"wear_hours_{side}"]
        for col, _, _ in DAY_COLUMNS:
            if col in a:
                rec[col] = a[col]
        out.append(clean(rec))
    return out


def night_records(result: ParticipantResult) -> list[dict[str, Any]]:
    """The per-night rows (the night that starts on ``date``)."""
    out = []
    for night, row in sorted(_rows(result.tables.get(NIGHT_TABLE)).items()):
        start = row.get("tso_start_timestamp")
        duration = row.get("tso_duration_min")
        end = (None if start is None or start != start or duration is None
               or duration != duration else float(start) + 60.0 * float(duration))
        rec: dict[str, Any] = {"date": night,
                               "onset_local": _clock(start, result.time_zone),
                               "wake_local": _clock(end, result.time_zone),
                               "source": row.get("tso_source")}
        for col, _, _ in NIGHT_COLUMNS:
            if col in row:
                rec[col] = row[col]
        out.append(clean(rec))
    return out


def render_participant(result: ParticipantResult) -> str:
    """The participant report's HTML (deterministic: the same result, the same bytes)."""
    lanes = [lane for w in result.wrists if (lane := _lane(w, result.time_zone)) is not None]
    days = day_records(result)
    nights = night_records(result)
    by_day = {d["date"]: d for d in days}
    by_night = {n["date"]: n for n in nights}
    timeline_days = timeline.all_days(lanes)
    rows = []
    for day in timeline_days:
        key = day.isoformat()
        rows.append({"date": key, "weekday": day.strftime("%A"),
                     "svg": timeline.day_svg(lanes, day, timeline_days[0]),
                     "facts": by_day.get(key), "night": by_night.get(key)})
    files = [{"side": w.side, "file": w.file_name, "result_dir": w.result_dir,
              "device": w.qc.get("device", {}), "start_utc": w.qc.get("start_utc"),
              "end_utc": w.qc.get("end_utc"), "duration_h": w.qc.get("duration_h"),
              "rate_hz": w.qc.get("sampling_rate_hz"),
              "quality": words.qc_sentences(w.qc),
              "problems": words.file_problems(list(w.qc.get("flags", []))),
              "has_minutes": timeline.MINUTE_TABLE in w.tables} for w in result.wrists]
    data = {"kind": "participant", "study": result.study, "solution": result.solution,
            "participant": result.participant, "visit": result.visit,
            "time_zone": result.time_zone, "days": days, "nights": nights,
            "timeline": {"days": [d.isoformat() for d in timeline_days],
                         "sleep_windows": [{"side": lane.side, "start_utc": s, "end_utc": e}
                                           for lane in lanes for s, e in lane.windows]},
            "files": [{k: f[k] for k in ("side", "file", "start_utc", "end_utc")}
                      for f in files], "result_dir": result.result_dir}
    visit = f" visit {result.visit}" if result.visit else ""
    return render(
        "participant.html.j2", data=data, title=f"{result.participant}{visit}: {result.study}",
        result=result, rows=rows, days=days, nights=nights, files=files,
        day_columns=[c for c in DAY_COLUMNS if any(c[0] in d for d in days)],
        night_columns=[c for c in NIGHT_COLUMNS if any(c[0] in n for n in nights)],
        legend=timeline.legend(), enmo_top_mg=int(timeline.ENMO_TOP_G * 1000),
        excluded=[d for d in days if d.get("valid_day") == 0],
        software_version=result.software_version,
        footer=f"wearflow {result.software_version} - drawn from {result.result_dir}")

