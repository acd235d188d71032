"""The study report: the study's data quality on one page.

Files by state, participants by completeness (valid days, and a participant x
day heat map), open problems by tag with their latest messages, the
distribution of the main biomarkers with outliers named, and a link to each
participant report.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from wearflow.reports import svg
from wearflow.reports.page import clean, render
from wearflow.reports.participant import ParticipantResult, day_records, night_records

# biomarker -> (label, unit, where it comes from); one value per participant-visit: the
# mean over its valid days (wear, activity) or its nights (sleep)
BIOMARKERS: tuple[tuple[str, str, str], ...] = (
    ("wear_hours", "wear per valid day", "h"),
    ("wake_mvpa_5s_epoch_min", "MVPA per valid day", "min"),
    ("total_sleep_time_min", "total sleep per night", "min"),
)
TOP_MESSAGES = 3


@dataclass(frozen=True)
class ParticipantEntry:
    """One participant-visit as the study report shows it."""

    solution: str
    participant: str
    visit: str
    result_dir: str
    days: tuple[tuple[str, int | None, str], ...]  # date, valid_day, exclusion reason
    biomarkers: Mapping[str, float | None]
    link: str = ""

    @classmethod
    def from_result(cls, result: ParticipantResult, report_path: str) -> ParticipantEntry:
        days = day_records(result)
        valid = [d for d in days if d.get("valid_day") == 1]
        values: dict[str, float | None] = {}
        for key, _, _ in BIOMARKERS[:2]:
            vals = [float(d[key]) for d in valid if d.get(key) is not None]
            values[key] = sum(vals) / len(vals) if vals else None
        nights = [float(n["total_sleep_time_min"]) for n in night_records(result)
                  if n.get("total_sleep_time_min") is not None]
        values["total_sleep_time_min"] = sum(nights) / len(nights) if nights else None
        return cls(result.solution, result.participant, result.visit, result.result_dir,
                   tuple((d["date"], d.get("valid_day"), d.get("exclusion_reason") or "")
                         for d in days), values, report_path)

    def with_link(self, link: str) -> ParticipantEntry:
        return dataclasses.replace(self, link=link)

    @property
    def label(self) -> str:
        return f"{self.participant} {self.visit}".strip()

    @property
    def valid_days(self) -> int:
        return sum(1 for _, v, _ in self.days if v == 1)


@dataclass(frozen=True)
class StudyOverview:
    """What the study report is drawn from."""

    study: str
    files_by_state: Mapping[str, int]
    issues: Sequence[Mapping[str, Any]]
    participants: tuple[ParticipantEntry, ...]
    unreported: tuple[tuple[str, str], ...] = ()  # participant-visits without a report, why
    software_version: str = ""


def _state_bar(counts: Mapping[str, int]) -> str:
    colours = {"done": "#1a7f37", "running": "#0b5cad", "pending": "#9aa5ad",
               "waiting": "#e0a526", "failed": "#b42318", "held": "#8250df"}
    total = sum(counts.values()) or 1
    body, x = [], 0.0
    for state, n in counts.items():
        if not n:
            continue
        w = 1000.0 * n / total
        body.append(svg.rect(x, 0, w, 26, fill=colours.get(state, "#6e7781"),
                             class_=f"state-{state}", data_count=n))
        if w > 60:
            body.append(svg.text(x + 6, 17, f"{state} {n}", fill="#ffffff", font_size=12))
        x += w
    return svg.svg(1000, 26, body, class_="files-by-state",
                   aria_label="files by state")


def _heat_map(entries: Sequence[ParticipantEntry]) -> str:
    n_days = max((len(e.days) for e in entries), default=0)
    cell, left, top = 22.0, 130.0, 18.0
    width = left + cell * max(n_days, 1) + 10
    body = [svg.text(left + cell * i + cell / 2, 11, str(i + 1), font_size=9,
                     text_anchor="middle", fill="#5f6b73") for i in range(n_days)]
    for r, e in enumerate(entries):
        y = top + r * cell
        body.append(svg.text(left - 6, y + cell - 4, e.label, font_size=11,
                             text_anchor="end"))
        for i, (day, valid, reason) in enumerate(e.days):
            colour = "#2da44e" if valid == 1 else "#f3a59b"
            tip = f"{e.label} {day}: " + ("valid" if valid == 1 else f"excluded: {reason}")
            body.append(f"<g><title>{svg.escape(tip)}</title>" + svg.rect(
                left + cell * i + 1, y + 1, cell - 2, cell - 2, fill=colour,
                class_="valid" if valid == 1 else "excluded", data_date=day) + "</g>")
    return svg.svg(width, top + cell * len(entries) + 4, body, fit=False, class_="heat-map",
                   aria_label="valid days per participant and day of recording")


def _quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    q1, med, q3 = np.percentile(np.asarray(values), [25, 50, 75])
    return float(q1), float(med), float(q3)


def distribution(key: str, entries: Sequence[ParticipantEntry]
                 ) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """A strip plot with its box (quartiles), and the outliers (beyond 1.5 IQR) named."""
    points = [(e.label, float(v)) for e in entries
              if (v := e.biomarkers.get(key)) is not None and math.isfinite(v)]
    if not points:
        return "", [], {}
    values = [v for _, v in points]
    q1, med, q3 = _quartiles(values)
    lo_fence, hi_fence = q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    left, width = 40.0, 920.0

    def x(v: float) -> float:
        return left + width * (v - lo) / span

    body = [svg.rect(x(q1), 14, max(x(q3) - x(q1), 1), 26, fill="#dbe9f6", stroke="#6b8fb5"),
            svg.line(x(med), 12, x(med), 42, stroke="#0b5cad", stroke_width="2")]
    outliers = []
    for i, (label, v) in enumerate(points):
        out = v < lo_fence or v > hi_fence
        y = 20 + (i * 7) % 14
        body.append(svg.rect(x(v) - 3, y - 3, 6, 6, fill="#b42318" if out else "#1d2327",
                             class_="outlier" if out else "point",
                             data_participant=label))
        if out:
            outliers.append({"participant": label, "value": v})
            body.append(svg.text(x(v), 56, label, font_size=10, text_anchor="middle",
                                 fill="#b42318"))
    body += [svg.text(left, 72, f"{lo:.1f}", font_size=10, fill="#5f6b73"),
             svg.text(left + width, 72, f"{hi:.1f}", font_size=10, text_anchor="end",
                      fill="#5f6b73")]
    stats = {"n": len(values), "q1": q1, "median": med, "q3": q3, "min": lo, "max": hi}
    return svg.svg(1000, 78, body, class_="distribution", data_biomarker=key), outliers, stats


def _problems(issues: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    by_tag: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for issue in issues:
        by_tag[str(issue["tag"])].append(issue)
    out = []
    for tag in sorted(by_tag):
        latest = sorted(by_tag[tag], key=lambda i: (str(i.get("last_seen_utc") or ""),
                                                    int(i.get("id") or 0)), reverse=True)
        out.append({"tag": tag, "count": len(latest),
                    "latest": [{"message": i["message"],
                                "where": (i.get("uri") or "").rsplit("/", 1)[-1]
                                or i.get("participant") or "",
                                "last_seen_utc": i.get("last_seen_utc")}
                               for i in latest[:TOP_MESSAGES]]})
    return out


def render_study(overview: StudyOverview) -> str:
    """The study report's HTML (deterministic)."""
    entries = sorted(overview.participants,
                     key=lambda e: (e.solution, e.participant, e.visit))
    plots = []
    for key, label, unit in BIOMARKERS:
        picture, outliers, stats = distribution(key, entries)
        plots.append({"key": key, "label": label, "unit": unit, "svg": picture,
                      "outliers": outliers, "stats": stats})
    problems = _problems(overview.issues)
    data = {"kind": "study", "study": overview.study,
            "files_by_state": dict(overview.files_by_state),
            "participants": [{"solution": e.solution, "participant": e.participant,
                              "visit": e.visit, "days": len(e.days),
                              "valid_days": e.valid_days, "biomarkers": dict(e.biomarkers),
                              "report": e.link} for e in entries],
            "problems": problems,
            "unreported": [{"subject": s, "reason": r} for s, r in overview.unreported],
            "biomarkers": {p["key"]: {"stats": p["stats"], "outliers": p["outliers"]}
                           for p in plots}}
    return render("study.html.j2", data=clean(data), title=f"Study {overview.study}",
                  overview=overview, entries=entries, plots=plots, problems=problems,
                  state_bar=_state_bar(overview.files_by_state),
                  heat_map=_heat_map(entries) if entries else "",
                  total_files=sum(overview.files_by_state.values()),
                  software_version=overview.software_version,
                  footer=f"wearflow {overview.software_version}")
