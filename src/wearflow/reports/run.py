"""The run report: what one run did, task by task, and what it cost.

A timeline with one lane per worker process and one bar per attempt at a task
(from its start to its finish; green done, orange failed and retried, red
failed), the CPU seconds and peak memory of every attempt as the worker measured
them, seconds per stage (fetch, decode, verify, solution, qc, write), the
failures and retries with their messages, and the totals.

Drawn from a run's JSON detail (:meth:`wearflow.services.runs.RunDetail.to_json`);
the study configuration the run used is not shown (it may hold credentials).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from wearflow.reports import svg, words
from wearflow.reports.page import clean, render

TABLE_ROWS = 1000  # per-task table: failures first, then the slowest, at most this many
STAGES = ("fetch", "decode", "verify", "solution", "qc", "write")
COLOURS = {"done": "#2da44e", "retried": "#e0a526", "failed": "#b42318"}
LEFT, PLOT_W, LANE_H, TOP = 150.0, 830.0, 18.0, 18.0


def _seconds(stamp: str) -> float:
    return float(pd.Timestamp(stamp).timestamp())


def _outcome(a: Mapping[str, Any]) -> str:
    if a["state"] == "done":
        return "done"
    return "retried" if a.get("transient") else "failed"


def _timeline(run: Mapping[str, Any], attempts: Sequence[Mapping[str, Any]]) -> str:
    if not attempts:
        return ""
    t0 = _seconds(run["started_utc"])
    t1 = max([_seconds(a["finished_utc"]) for a in attempts]
             + ([_seconds(run["finished_utc"])] if run.get("finished_utc") else []))
    span = max(t1 - t0, 1e-3)
    workers = sorted({a.get("worker") or "" for a in attempts})
    lane = {w: i for i, w in enumerate(workers)}

    def x(t: float) -> float:
        return LEFT + PLOT_W * (t - t0) / span

    body: list[str] = []
    for k in range(11):  # ticks: tenths of the run
        tx = LEFT + PLOT_W * k / 10
        body.append(svg.line(tx, TOP - 3, tx, TOP + LANE_H * len(workers), stroke="#e3e6e8",
                             stroke_width="0.6"))
        body.append(svg.text(tx, TOP - 5, words.duration(span * k / 10), font_size=9,
                             text_anchor="middle", fill="#5f6b73"))
    for w, i in lane.items():
        body.append(svg.text(LEFT - 6, TOP + LANE_H * i + 12, w or "(no worker)",
                             font_size=10, text_anchor="end"))
    for a in attempts:
        start, end = _seconds(a["started_utc"]), _seconds(a["finished_utc"])
        outcome = _outcome(a)
        tip = (f"{_name(a['uri'])} ({a['solution']}): {outcome}, {end - start:.1f} s, "
               f"CPU {a['cpu_s']:.1f} s, peak {a['peak_rss_bytes'] / 2**20:.0f} MiB"
               + (f": {a['message']}" if a.get("message") else ""))
        body.append(f"<g><title>{svg.escape(tip)}</title>" + svg.rect(
            x(start), TOP + LANE_H * lane[a.get("worker") or ""] + 2,
            max(x(end) - x(start), 1.0), LANE_H - 4, fill=COLOURS[outcome],
            class_=f"task {outcome}", data_task=a["task_key"][:16]) + "</g>")
    return svg.svg(1000, TOP + LANE_H * len(workers) + 4, body, class_="run-timeline",
                   aria_label="tasks per worker over the run")


def _name(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]


def _rows(attempts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = [{"file": _name(a["uri"]), "solution": a["solution"],
             "participant": a.get("participant") or "", "worker": a.get("worker") or "",
             "started_utc": a["started_utc"], "attempt": a.get("attempt", 1),
             "wall_s": _seconds(a["finished_utc"]) - _seconds(a["started_utc"]),
             "cpu_s": a["cpu_s"], "peak_mib": a["peak_rss_bytes"] / 2**20,
             "outcome": _outcome(a), "tag": a.get("tag") or "",
             "message": a.get("message") or "", "stage_s": a.get("stage_s") or {}}
            for a in attempts]
    rows.sort(key=lambda r: (r["outcome"] == "done", -r["wall_s"], r["file"]))
    return rows


def render_run(detail: Mapping[str, Any], software_version: str = "") -> str:
    """The run report's HTML (deterministic: the same recorded run, the same bytes)."""
    run = detail["run"]
    attempts = list(detail.get("attempts", ()))
    stage_s, stage_cpu = dict(detail.get("stage_s", {})), dict(detail.get("stage_cpu_s", {}))
    stage_names = [s for s in STAGES if s in stage_s] + sorted(set(stage_s) - set(STAGES))
    total_stage = sum(stage_s.values()) or 1.0
    stages = [{"stage": s, "wall_s": stage_s.get(s, 0.0), "cpu_s": stage_cpu.get(s, 0.0),
               "share_pct": 100.0 * stage_s.get(s, 0.0) / total_stage} for s in stage_names]
    every = _rows(attempts)
    rows = every[:TABLE_ROWS]
    problems = [r for r in every if r["outcome"] != "done"]
    wall = sum(r["wall_s"] for r in every)
    totals = {"attempts": len(attempts), "done": run.get("tasks_done", 0),
              "failed": run.get("tasks_failed", 0), "retried": run.get("tasks_retried", 0),
              "cpu_s": run.get("cpu_s", 0.0), "task_wall_s": wall,
              "peak_rss_mib": run.get("peak_rss_bytes", 0) / 2**20,
              "duration_s": run.get("duration_s"), "workers": len(detail.get("workers", ()))}
    data = {"kind": "run", "study": detail.get("study", ""), "run": dict(run),
            "totals": totals, "stages": stages,
            "attempts": [{k: v for k, v in a.items() if k != "stage_cpu_s"} for a in attempts]}
    return render("run.html.j2", data=clean(data), title=f"Run {run['run_id']}",
                  run=run, study=detail.get("study", ""), totals=totals, stages=stages,
                  rows=rows, shown_all=len(rows) == len(attempts), problems=problems,
                  picture=_timeline(run, attempts), colours=COLOURS,
                  software_version=software_version,
                  footer=f"wearflow {software_version} - run {run['run_id']}")
