"""``wearflow report``: participant, study and run reports, written like any output.

Drawn only from stored results (the current participant result of each
solution, participant and visit, and its per-wrist results) and the state
database; never from a re-computation. Each page is written once under
``reports/`` in a folder named by the hash of its bytes, with a provenance.json
naming every result it was drawn from (:func:`wearflow.results.write_report`).
Participant reports of a large study are built on a process pool.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import posixpath
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from importlib.metadata import version

import pyarrow as pa

from wearflow.clock import utc_now
from wearflow.config import Study
from wearflow.errors import ConfigError, WearflowError, one_line
from wearflow.provenance import ReportProvenance, ReportSource, default_actor, software
from wearflow.reports.participant import ParticipantResult, WristResult, render_participant
from wearflow.reports.run import render_run
from wearflow.reports.study import ParticipantEntry, StudyOverview, render_study
from wearflow.results import read_json, read_tables, report_dir, write_report
from wearflow.services.runs import list_runs, run_detail
from wearflow.services.status import current_participant_results, study_status
from wearflow.state import State
from wearflow.state.tables import ParticipantResultRow
from wearflow.storage import Store

PARALLEL_FROM = 16  # participant reports: a process pool from this many on
PARTICIPANT_TABLES = {"qc_days": None, "activity_level_classification": None, "sleep": None}
WRIST_TABLES = {"minute_series": None, "detach_wear": None, "sleep": None}


@dataclass(frozen=True)
class BuiltReport:
    """One report written (or found already written: same page, same folder)."""

    kind: str  # participant | study | run
    subject: str
    path: str  # output-relative path of report.html
    uri: str
    sha256: str


@dataclass(frozen=True)
class ReportProblem:
    """A report that could not be drawn (its results unreadable), and why."""

    subject: str
    message: str


@dataclass(frozen=True)
class Reports:
    """What a build wrote, and what it could not."""

    built: tuple[BuiltReport, ...]
    problems: tuple[ReportProblem, ...] = ()


@dataclass(frozen=True)
class _Wrist:
    side: str
    uri: str
    result_dir: str
    task_key: str


@dataclass(frozen=True)
class _Item:
    """One participant report to build: what the state knows of it."""

    row: ParticipantResultRow
    wrists: tuple[_Wrist, ...]



def _items(study: Study, participant: str | None) -> list[_Item]:
    with State(study.state_url) as state:
        current, _stale = current_participant_results(state)
        tasks = {t.key: (t, f) for t, f in state.tasks.for_current_files()}
    items = []
    for row in current:
        if participant is not None and row.participant != participant:
            continue
        wrists = []
        for key in sorted(json.loads(row.task_keys_json)):
            if key in tasks and tasks[key][0].result_dir:
                task, f = tasks[key]
                wrists.append(_Wrist(f.side or "", f.uri, task.result_dir or "", key))
        wrists.sort(key=lambda w: (w.side != "left", w.side, w.uri))
        items.append(_Item(row, tuple(wrists)))
    if participant is not None and not items:
        raise ConfigError(f"participant {participant!r} has no current result in study "
                          f"{study.study} (see `wearflow status`)", subject=study.source)
    return items


def _participant_result(study: Study, item: _Item) -> tuple[ParticipantResult, list[ReportSource]]:
    out = Store(study.output, study.storage_options)
    row = item.row
    prov = read_json(out, f"{row.result_dir}/provenance.json")
    sources = [ReportSource(kind="participant", path=row.result_dir,
                            provenance_sha256=row.provenance_sha256)]
    wrists = []
    time_zone = study.time_zone
    for w in item.wrists:
        wprov = read_json(out, f"{w.result_dir}/provenance.json")
        time_zone = str((wprov.get("task_inputs") or {}).get("time_zone") or time_zone)
        qc = read_json(out, f"{w.result_dir}/qc.json", missing_ok=True)
        wrists.append(WristResult(side=w.side, file_name=posixpath.basename(w.uri),
                                  result_dir=w.result_dir, qc=qc,
                                  tables=read_tables(out, w.result_dir, WRIST_TABLES)))
        sources.append(ReportSource(kind="single-wrist", path=w.result_dir))
    result = ParticipantResult(
        study=study.study, solution=row.solution,
        solution_version=str((prov.get("solution") or {}).get("version", "")),
        participant=row.participant, visit=row.visit or "", time_zone=time_zone,
        result_dir=row.result_dir, tables=read_tables(out, row.result_dir, PARTICIPANT_TABLES),
        wrists=tuple(wrists), flags=tuple(json.loads(row.flags_json or "[]")),
        software_version=version("wearflow"))
    return result, sources


Built = tuple[BuiltReport, ParticipantEntry]


def _build_participant(study: Study, item: _Item) -> Built | ReportProblem:
    """One participant report; a result that cannot be read is a problem naming its
    folder, and the other reports are still written."""
    row = item.row
    subject = f"{row.participant}{'/' + row.visit if row.visit else ''}"
    try:
        result, sources = _participant_result(study, item)
        html = render_participant(result).encode()
        folder = report_dir("participants", html, row.solution, row.participant,
                            row.visit or "")
        built = _write(study, "participant", subject, folder, html, sources)
    except WearflowError as exc:
        return ReportProblem(subject, one_line(f"{exc.message} ({exc.subject})"))
    except (OSError, ValueError, KeyError, pa.ArrowException) as exc:
        return ReportProblem(subject, one_line(
            f"{row.result_dir}: unreadable result ({type(exc).__name__}: {exc})"))
    return built, ParticipantEntry.from_result(result, built.path)


def _write(study: Study, kind: str, subject: str, folder: str, html: bytes,
           sources: Sequence[ReportSource]) -> BuiltReport:
    out = Store(study.output, study.storage_options)
    prov = ReportProvenance(report=kind, study=study.study,
                            study_fingerprint=study.fingerprint(), subject=subject,
                            user=default_actor(study.identity), software=software(),
                            created_utc=utc_now(), sources=list(sources))
    path, digest = write_report(out, folder, html, prov)
    return BuiltReport(kind, subject, path, out.uri(path), digest)


def _workers(study: Study, n_items: int) -> int:
    if n_items < PARALLEL_FROM or study.executor == "inline":
        return 1
    return max(1, min(study.workers or os.cpu_count() or 1, n_items))


def participant_reports(study: Study, participant: str | None = None,
                        workers: int | None = None) -> list[Built | ReportProblem]:
    """Write the report of every current participant result (or one participant's), on
    ``workers`` processes (default: the study's workers from :data:`PARALLEL_FROM` reports
    on, else this process)."""
    items = _items(study, participant)
    workers = workers or _workers(study, len(items))
    if workers == 1:
        return [_build_participant(study, item) for item in items]
    # spawned, not forked: the caller may hold threads (a watcher, a Dask client)
    with ProcessPoolExecutor(max_workers=workers,
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(_build_participant, [study] * len(items), items))


def study_report(study: Study, entries: Iterable[Built],
                 problems: Sequence[ReportProblem] = ()) -> BuiltReport:
    """Write the study's data-quality report, linking the participant reports given."""
    status = study_status(study)
    # links relative to the study report's folder (reports/study/<hash>/)
    here = report_dir("study", b"")
    listed = [entry.with_link(posixpath.relpath(built.path, here)) for built, entry in entries]
    overview = StudyOverview(study=study.study, files_by_state=status["files"]["by_state"],
                             issues=status["issues"], participants=tuple(listed),
                             unreported=tuple((p.subject, p.message) for p in problems),
                             software_version=version("wearflow"))
    html = render_study(overview).encode()
    sources = [ReportSource(kind="participant", path=e.result_dir) for e in listed]
    return _write(study, "study", study.study, report_dir("study", html), html, sources)


def run_report(study: Study, run_id: str) -> BuiltReport:
    """Write the report of one run (``run_id``: the id or its first 6+ characters)."""
    detail = run_detail(study, run_id)
    html = render_run(detail.to_json(), version("wearflow")).encode()
    rid = detail.run.run_id
    return _write(study, "run", rid, report_dir("runs", html, rid), html,
                  [ReportSource(kind="run", path=rid)])


def build_reports(study: Study, participant: str | None = None, run: str | None = None,
                  latest_run: str | None = None, workers: int | None = None) -> Reports:
    """Write reports; what ``wearflow report`` does.

    ``run``: only that run's report. ``participant``: only that participant's reports.
    Otherwise every current participant result's report, the study report and the
    report of ``latest_run`` (default: the study's newest run).
    """
    if not study.has_state():
        raise ConfigError(f"study {study.study} has not been run yet: nothing to report "
                          "(run `wearflow run` first)", subject=study.source)
    if run is not None:
        return Reports((run_report(study, run),))
    outcomes = participant_reports(study, participant, workers)
    entries = [o for o in outcomes if not isinstance(o, ReportProblem)]
    problems = tuple(o for o in outcomes if isinstance(o, ReportProblem))
    built = [b for b, _ in entries]
    if participant is None:
        built.append(study_report(study, entries, problems))
        newest = latest_run or next((r.run_id for r in list_runs(study)), None)
        if newest is not None:
            built.append(run_report(study, newest))
    return Reports(tuple(built), problems)
