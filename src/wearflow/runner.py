"""Run a study once: the only place that wires the stages together.

config -> catalog -> plan -> execute -> per-wrist results -> aggregate -> processed/

Exit codes of :func:`run_study` (and ``wearflow run``):
0 every current file is done; 1 some files failed or could not be parsed
(the rest completed); 2 the study could not run at all (configuration,
storage or state problem, reported before any file is touched).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from wearflow import aggregate, catalog
from wearflow.audit import AuditEvent, AuditTrail, default_actor
from wearflow.audit import diff as audit_diff
from wearflow.config import Study, strip_file_scheme
from wearflow.errors import ConfigError, StorageError, Tag, WearflowError
from wearflow.executors import Executor, LocalExecutor
from wearflow.issues import flush as flush_issues
from wearflow.issues import publish_issues
from wearflow.logs import add_file_handler, log_event, remove_handler
from wearflow.metadata import parse_metadata
from wearflow.plan import Metadata, Plan, TaskSpec, make_plan
from wearflow.provenance import (
    InputRef,
    Provenance,
    SolutionRef,
    iso_utc,
    software,
    utc_now,
)
from wearflow.results import participant_dir, read_tables, summary_dir, write_result
from wearflow.solutions import Solution, load_solution
from wearflow.state import DoneTask, IssueSpec, MetadataTuple, State
from wearflow.storage import Store
from wearflow.worker import TaskOutcome

EXIT_OK, EXIT_SOME_FAILED, EXIT_CANNOT_RUN = 0, 1, 2
LEASE_S = 300.0  # a claimed task whose coordinator stops renewing is free again after this
MAX_IN_RUN_WAIT_S = 120.0  # a retry due later than this is left pending for the next run


@dataclass
class RunReport:
    """What one run did."""

    run_id: str
    files_total: int = 0
    executed: int = 0
    done: int = 0
    failed: int = 0  # files failed, including those held before processing
    unparsable: int = 0  # files held: name does not parse, or duplicate bytes
    participants_aggregated: int = 0
    summary_dirs: list[str] = field(default_factory=list)
    output: str = ""
    # seconds the workers spent per stage, summed over this run's finished tasks: wall
    # time, and CPU time of the threads that ran them
    task_stage_s: dict[str, float] = field(default_factory=dict)
    task_stage_cpu_s: dict[str, float] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return EXIT_SOME_FAILED if (self.failed or self.unparsable) else EXIT_OK


ProgressCallback = Callable[[str, int, int], None]  # (phase, completed, total)


def run_study(
    study: Study,
    *,
    executor: Executor | None = None,
    progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
) -> RunReport:
    """Catalog, plan, execute and aggregate a study once.

    When ``stop`` is set during the run, no new task starts; running tasks
    finish and are recorded, the rest stay pending for the next run.

    Raises
    ------
    WearflowError
        The study cannot run (unreachable storage, unusable state database,
        invalid solution): nothing was processed.
    """
    run_id = f"{utc_now().replace(':', '').replace('-', '')[:15]}-{uuid.uuid4().hex[:8]}"
    report = RunReport(run_id=run_id, output=study.output)
    state = State(study.state_url)
    handler = _log_to_output(study)
    try:
        solutions = [load_solution(c) for c in study.solutions]  # before any file is touched
        _refuse_identical(study, solutions)
        inputs = [Store(loc, study.storage_options) for loc in study.input]
        for store in inputs:
            store.check_reachable()
        actor = default_actor(study.identity)
        trail = AuditTrail(state.engine)
        config = study.public_dump()
        previous = state.begin_run(run_id, study.study, study.fingerprint(), actor, config)
        _audit_config(trail, actor, study, previous, config)
        known = state.known_files()
        unreadable: list[StorageError] = []
        files = catalog.scan(inputs, study.files, known=known, unreadable=unreadable)
        for unread in unreadable:
            log_event(unread.tag.value, f"{unread.message}; tried again at the next run",
                      level=logging.WARNING, study=study.study, uri=unread.subject)
        state.sync_files(files, [s.root_uri for s in inputs])
        trail.record_many([
            AuditEvent(actor, "file.cataloged", f.uri, before=None if f.uri not in known else
                       {"sha256": known[f.uri][2]},
                       after={"sha256": f.sha256, "size_bytes": f.size_bytes, "kind": f.kind})
            for f in files if known.get(f.uri, (0, "", ""))[2] != f.sha256])
        _ingest_metadata(study, state, trail, actor)
        metadata = state.current_metadata()
        current = state.current_files()
        listed = state.metadata_participants()
        plan = make_plan(study, current, solutions, state.task_states(), metadata,
                         state.task_created(), listed)
        state.record_plan(plan.records)
        report.files_total = len(current)
        report.unparsable = sum(1 for f in current if f.parse_error or f.duplicate_of)
        _execute(study, state, plan, executor or LocalExecutor(
                     study.workers, memory_limit_gb=study.memory_limit_gb), run_id,
                 report, progress, trail, actor, stop)
        _aggregate(study, state, solutions, metadata, run_id, report, trail, actor)
        _sync_issues(study, state, plan, listed, [
            IssueSpec(p.tag.value, f"cannot be read now: {p.message}", uri=p.subject,
                      resolution="check the storage; the file is read again at the next run")
            for p in unreadable])
        flush_issues()
        state.finish_run(run_id, {"executed": report.executed, "done": report.done,
                                  "failed": report.failed})
        log_event("INFO", f"run finished: {report.executed} executed, {report.failed} failed, "
                  f"{report.participants_aggregated} participants aggregated",
                  study=study.study, run=run_id)
        return report
    except WearflowError as exc:
        log_event(exc.tag.value, exc.message, level=logging.ERROR, study=study.study,
                  uri=exc.subject)
        # The study could not run: say so in the issues queue too; the next run that
        # gets past this point closes it.
        problem = IssueSpec(exc.tag.value, f"the study could not run: {exc.message}",
                            uri=exc.subject, resolution="fix the study file or storage")
        publish_issues(study, state.sync_issues(study.study, [problem], close_missing=False))
        flush_issues()
        raise
    finally:
        state.close()
        if handler is not None:
            remove_handler(handler)


def _refuse_identical(study: Study, solutions: Sequence[Solution]) -> None:
    """Two solutions with one fingerprint would be one task per file under two names."""
    seen: dict[str, str] = {}
    for sol in solutions:
        other = seen.setdefault(sol.fingerprint, sol.name)
        if other != sol.name:
            raise ConfigError(f"solutions {other!r} and {sol.name!r} are the same pipeline "
                              "with the same settings; keep one", subject=study.source)


def _log_to_output(study: Study) -> logging.Handler | None:
    if "://" in study.output and not study.output.startswith("file://"):
        return None
    return add_file_handler(Path(strip_file_scheme(study.output)) / "logs" / "wearflow.log")


def _audit_config(trail: AuditTrail, actor: str, study: Study,
                  previous: dict[str, object] | None, config: dict[str, object]) -> None:
    after = {"fingerprint": study.fingerprint()}
    if previous is None:
        trail.record(actor, "study.loaded", study.source, after=after)
    elif previous != config:
        trail.record(actor, "study.changed", study.source, before=None,
                     after={**after, "diff": audit_diff(previous, config)})


def _ingest_metadata(study: Study, state: State, trail: AuditTrail, actor: str) -> None:
    """Parse every metadata file version not seen before; values are appended, never replaced."""
    parsed = state.parsed_metadata_file_ids()
    for f in state.current_files(kind="metadata"):
        if f.id in parsed:
            continue
        try:
            data = Store(f.location, study.storage_options).read_bytes(f.path)
            values = parse_metadata(data, f.uri, study.metadata.columns)
            rows: list[MetadataTuple] = [(v.participant, v.field, v.value, v.raw, v.row,
                                          v.problem) for v in values]
        except WearflowError as exc:
            rows = [(None, "__file__", None, "", 0, exc.message)]
        state.add_metadata(f.id, rows or [(None, "__file__", None, "", 0, None)])
        trail.record(actor, "metadata.added", f.uri, after={
            "sha256": f.sha256, "values": sum(1 for r in rows if r[2] is not None),
            "problems": sum(1 for r in rows if r[5] is not None)})
        log_event("INFO", f"metadata file version added ({len(rows)} values)",
                  study=study.study, uri=f.uri)


def _execute(study: Study, state: State, plan: Plan, executor: Executor, run_id: str,
             report: RunReport, progress: ProgressCallback | None, trail: AuditTrail,
             actor: str, stop: threading.Event | None = None) -> None:
    if progress:
        progress("process", 0, len(plan.to_run))
    renewing = threading.Event()
    renewer = threading.Thread(target=_renew_leases, args=(state, run_id, renewing),
                               name="wearflow-leases", daemon=True)
    renewer.start()
    try:
        tasks = list(plan.to_run)
        while tasks:
            retry = _consume(study, state, tasks, executor, run_id, report, progress, trail,
                             actor, stop)
            # transient failures come back after their backoff, within this run when the
            # wait is short; longer waits are left pending for the next run
            soon = [(t, at) for t, at in retry if at <= time.time() + MAX_IN_RUN_WAIT_S]
            tasks = [t for t, _ in soon]
            if tasks and not _sleep_until(max(at for _, at in soon), stop):
                break
    finally:
        renewing.set()
        renewer.join()
    counts = state.file_state_counts()
    report.done, report.failed = counts.get("done", 0), counts.get("failed", 0)


def _renew_leases(state: State, run_id: str, done: threading.Event) -> None:
    while not done.wait(LEASE_S / 4):
        state.renew_leases(run_id, LEASE_S)


def _sleep_until(moment: float, stop: threading.Event | None) -> bool:
    """Wait until ``moment`` (epoch seconds); False when ``stop`` was set meanwhile."""
    delay = max(0.0, moment - time.time())
    if stop is None:
        time.sleep(delay)
        return True
    return not stop.wait(delay)


def _consume(study: Study, state: State, tasks: Sequence[TaskSpec], executor: Executor,
             run_id: str, report: RunReport, progress: ProgressCallback | None,
             trail: AuditTrail, actor: str, stop: threading.Event | None
             ) -> list[tuple[TaskSpec, float]]:
    """Run ``tasks``; return those that failed transiently with the time (epoch seconds)
    each may be retried."""
    by_key = {t.key: t for t in tasks}
    total = len(tasks)
    finished = 0
    retry: list[tuple[TaskSpec, float]] = []
    # A task is claimed (with a lease this run renews) just before it starts, so
    # two coordinators on one study never run the same task.
    dead = state.dead_runs()

    def claim(task: TaskSpec) -> bool:
        return state.claim(task.key, run_id, LEASE_S, dead)

    for event in executor.run(tasks, run_id, stop, claim):
        task = by_key[event.key]
        if event.kind == "started":
            trail.record(actor, "task.started", event.key,
                         after={"uri": task.uri, "solution": task.solution.name})
            continue
        outcome = event.outcome
        if outcome is None:
            continue
        if outcome.state == "failed" and outcome.transient:
            attempts = state.attempts(outcome.key)
            if attempts < study.retries.max_attempts:
                at = time.time() + study.retries.backoff_s * 2 ** max(0, attempts - 1)
                message = (f"attempt {attempts} of {study.retries.max_attempts} failed, "
                           f"retrying at {iso_utc(at)}: {outcome.message}")
                state.requeue(outcome.key, retry_after_utc=iso_utc(at), tag=outcome.tag,
                              message=message)
                trail.record(actor, "task.failed", outcome.key, after={
                    "tag": outcome.tag, "message": outcome.message, "attempt": attempts,
                    "retry_after_utc": iso_utc(at)})
                log_event(outcome.tag or Tag.ERROR.value, message, level=logging.WARNING,
                          study=study.study, uri=task.uri, solution=task.solution.name,
                          task=task.key[:16])
                retry.append((task, at))
                continue
            outcome = replace(outcome, message=f"failed after {attempts} attempts: "
                                               f"{outcome.message}")
        state.finish_task(outcome.key, state=outcome.state, tag=outcome.tag,
                          message=outcome.message, result_dir=outcome.result_dir,
                          provenance_sha256=outcome.provenance_sha256,
                          flags=outcome.flags, started_utc=outcome.started_utc,
                          finished_utc=outcome.finished_utc)
        report.executed += 1
        for totals, stages in ((report.task_stage_s, outcome.stage_s),
                               (report.task_stage_cpu_s, outcome.stage_cpu_s)):
            for stage, seconds in stages:
                totals[stage] = totals.get(stage, 0.0) + seconds
        trail.record_many(_task_events(actor, outcome))
        if outcome.state == "done":
            log_event("INFO", "processed", study=study.study, uri=task.uri,
                      solution=task.solution.name, task=task.key[:16],
                      seconds=",".join(f"{k}:{v:.2f}" for k, v in outcome.stage_s))
        else:
            log_event(outcome.tag or Tag.ERROR.value, outcome.message or "failed",
                      level=logging.ERROR, study=study.study, uri=task.uri,
                      solution=task.solution.name, task=task.key[:16])
        finished += 1
        if progress:
            progress("process", finished, total)
    return retry


def _grace_over(task: DoneTask, grace_h: float) -> bool:
    if grace_h <= 0:
        return True
    finished = datetime.fromisoformat(task.finished_utc.replace("Z", "+00:00"))
    return datetime.now(UTC) - finished >= timedelta(hours=grace_h)


def _task_events(actor: str, outcome: TaskOutcome) -> list[AuditEvent]:
    if outcome.state != "done":
        return [AuditEvent(actor, "task.failed", outcome.key,
                           after={"tag": outcome.tag, "message": outcome.message})]
    return [AuditEvent(actor, "task.finished", outcome.key, after={"state": "done"}),
            AuditEvent(actor, "result.written", outcome.result_dir or "",
                       after={"task": outcome.key,
                              "provenance_sha256": outcome.provenance_sha256})]


def _aggregate(study: Study, state: State, solutions: Sequence[Solution], metadata: Metadata,
               run_id: str, report: RunReport, trail: AuditTrail, actor: str) -> None:
    out = Store(study.output, study.storage_options)
    existing = state.participant_result_keys()
    by_name = {s.name: s for s in solutions}
    groups: dict[tuple[str, str], list[DoneTask]] = defaultdict(list)
    for task in state.done_tasks():
        if task.solution in by_name:
            groups[(task.solution, task.participant)].append(task)
    for (sol_name, participant), tasks in sorted(groups.items()):
        sides: dict[str, list[DoneTask]] = defaultdict(list)
        for t in tasks:
            sides[t.side].append(t)
        if any(len(v) > 1 for v in sides.values()):
            continue  # reported as an issue; never silently aggregate two files of one wrist
        chosen = sorted((v[0] for v in sides.values()), key=lambda t: t.side)
        if len(chosen) == 1 and not _grace_over(chosen[0], study.single_wrist_grace_h):
            continue  # the other wrist may still arrive
        hand_cell = metadata.get(participant, {}).get("dominant_hand")
        hand = hand_cell.value if hand_cell else None
        key = hashlib.sha256("|".join([aggregate.AGGREGATOR_VERSION, sol_name, participant,
                                       f"dominant={hand}", *(t.key for t in chosen)])
                             .encode()).hexdigest()
        if key in existing:
            continue
        started = utc_now()
        wrist = {t.side: read_tables(out, t.result_dir) for t in chosen}
        tables = aggregate.combine_wrists(wrist.get("left"), wrist.get("right"), hand)
        flags = [] if len(chosen) == 2 else [f"single_wrist:{chosen[0].side}"]
        sol = by_name[sol_name]
        folder = participant_dir(sol_name, participant, key)
        prov = Provenance(
            kind="participant", study=study.study, study_fingerprint=study.fingerprint(),
            task_key=key, run_id=run_id, user=default_actor(study.identity),
            input=[InputRef(uri=t.uri, sha256=t.sha256, size_bytes=t.size_bytes,
                            participant=t.participant, side=t.side, task_key=t.key)
                   for t in chosen],
            solution=_solution_ref(sol), software=software(), started_utc=started,
            finished_utc=utc_now(), flags=flags,
        )
        _, prov_sha = write_result(out, folder, tables, {}, prov)
        trail.record(actor, "result.written", folder,
                     after={"participant": participant, "provenance_sha256": prov_sha})
        state.add_participant_result(key=key, solution=sol_name, participant=participant,
                                     task_keys=[t.key for t in chosen], result_dir=folder,
                                     provenance_sha256=prov_sha, flags=flags, run_id=run_id)
        report.participants_aggregated += 1
    _write_summaries(study, state, by_name, out, run_id, report, trail, actor)


def _write_summaries(study: Study, state: State, solutions: dict[str, Solution], out: Store,
                     run_id: str, report: RunReport, trail: AuditTrail, actor: str) -> None:
    latest = state.latest_participant_results()
    for sol_name in sorted(solutions):
        rows = [r for r in latest if r.solution == sol_name]
        if not rows:
            continue
        key = hashlib.sha256("|".join(["summary", aggregate.AGGREGATOR_VERSION,
                                       *(r.key for r in rows)]).encode()).hexdigest()
        folder = summary_dir(sol_name, key)
        report.summary_dirs.append(folder)
        if out.exists(f"{folder}/provenance.json"):
            continue
        started = utc_now()
        summary = aggregate.study_summary(
            {r.participant: read_tables(out, r.result_dir, aggregate.SUMMARY_INPUTS)
             for r in rows})
        prov = Provenance(
            kind="study-summary", study=study.study, study_fingerprint=study.fingerprint(),
            task_key=key, run_id=run_id, user=default_actor(study.identity),
            input=[InputRef(uri=out.uri(r.result_dir), sha256=r.key, size_bytes=0,
                            participant=r.participant, task_key=r.key) for r in rows],
            solution=_solution_ref(solutions[sol_name]), software=software(),
            started_utc=started, finished_utc=utc_now(),
        )
        _, prov_sha = write_result(out, folder, {"summary": summary}, {}, prov)
        state.add_summary(key=key, solution=sol_name, result_dir=folder,
                          provenance_sha256=prov_sha, run_id=run_id)
        trail.record(actor, "result.written", folder, after={"provenance_sha256": prov_sha})


def _solution_ref(sol: Solution) -> SolutionRef:
    return SolutionRef(name=sol.name, version=sol.version, fingerprint=sol.fingerprint,
                       pipeline_sha256=sol.pipeline_sha256, parameters=dict(sol.parameters))


def _sync_issues(study: Study, state: State, plan: Plan, listed: set[str],
                 extra: Sequence[IssueSpec] = ()) -> None:
    issues = [IssueSpec(h.tag, h.message, uri=h.uri, participant=h.participant,
                        resolution=h.resolution) for h in plan.held]
    issues.extend(extra)
    per_side: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    sensor_participants: set[str] = set()
    for task, f in state.tasks_for_current_files():
        if task.state == "failed":
            issues.append(IssueSpec(task.tag or Tag.ERROR.value, task.message or "failed",
                                    uri=f.uri, participant=f.participant,
                                    resolution="replace the file or fix the solution; "
                                               "a new version is processed automatically"))
        if f.participant and f.side:
            sensor_participants.add(f.participant)
            per_side[(task.solution, f.participant, f.side)].append(f.uri)
    for (sol, pid, side), uris in sorted(per_side.items()):
        if len(set(uris)) > 1:
            issues.append(IssueSpec(
                Tag.DATA_ISSUE.value,
                f"{len(uris)} files for participant {pid} {side} wrist "
                f"({', '.join(sorted(uris))}); not aggregated for solution {sol}",
                participant=pid, resolution="remove or rename the wrong file"))
    for meta_uri, participant, problem in state.metadata_problems():
        issues.append(IssueSpec(Tag.METADATA_ISSUE.value, problem, uri=meta_uri,
                                participant=participant,
                                resolution="upload a corrected metadata file"))
    if state.current_files(kind="metadata"):
        for p in sorted(sensor_participants - listed):
            issues.append(IssueSpec(Tag.METADATA_ISSUE.value,
                                    f"participant {p} has sensor files but no metadata",
                                    participant=p, resolution=f"add {p} to the metadata"))
        for p in sorted(listed - sensor_participants):
            issues.append(IssueSpec(Tag.METADATA_ISSUE.value,
                                    f"participant {p} is in the metadata but has no sensor "
                                    "files", participant=p,
                                    resolution="upload the sensor files or correct the id"))
    new = state.sync_issues(study.study, issues)
    for issue in new:
        log_event(issue.tag, issue.message, level=logging.WARNING, study=study.study,
                  uri=issue.uri, participant=issue.participant)
    publish_issues(study, new)
