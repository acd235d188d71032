"""Run a study once: the only place that wires the stages together.

study -> ingest (catalog, metadata) -> plan -> execute -> participants -> issues -> anchor

Exit codes of :func:`run_study` (and ``wearflow run``):
0 every current file is done; 1 some files failed or could not be parsed
(the rest completed); 2 the study could not run at all (configuration,
storage or state problem, reported before any file is touched).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from wearflow.anchors import audit_key
from wearflow.clock import utc_now
from wearflow.config import Study
from wearflow.errors import (
    EXIT_CANNOT_RUN,
    EXIT_OK,
    EXIT_SOME_FAILED,
    ConfigError,
    WearflowError,
)
from wearflow.executors import Executor, make_executor
from wearflow.issue import IssueSpec
from wearflow.logs import log_event
from wearflow.notify import Outbox, publish_issues, send_pending, study_log, webhook_deadline
from wearflow.plan import make_plan
from wearflow.provenance import default_actor
from wearflow.solutions import Solution, load_study_solutions
from wearflow.stages.anchor import anchor_trail
from wearflow.stages.context import ProgressCallback, RunContext, RunReport
from wearflow.stages.environments import pin_locks, stored_locks
from wearflow.stages.execute import execute_plan
from wearflow.stages.ingest import catalog_files, ingest_metadata
from wearflow.stages.issues import sync_issues
from wearflow.stages.participants import aggregate_participants
from wearflow.state import State
from wearflow.state.audit import diff as audit_diff
from wearflow.storage import Store, input_stores

__all__ = ["EXIT_CANNOT_RUN", "EXIT_OK", "EXIT_SOME_FAILED", "ProgressCallback", "RunReport",
           "run_study"]


def run_study(
    study: Study,
    *,
    executor: Executor | None = None,
    progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
) -> RunReport:
    """Catalog, plan, execute and aggregate a study once.

    ``executor``: where tasks run (default: the study file's ``executor:``, with its
    ``workers`` and ``memory_limit_gb``). When ``stop`` is set during the run, no new
    task starts; running tasks finish and are recorded, the rest stay pending for the
    next run.

    Raises
    ------
    WearflowError
        The study cannot run (unreachable storage, unusable state database,
        invalid solution): nothing was processed.
    """
    run_id = f"{utc_now().replace(':', '').replace('-', '')[:15]}-{uuid.uuid4().hex[:8]}"
    report = RunReport(run_id=run_id, output=study.output)
    try:  # before any file is touched or written: a study that cannot run leaves nothing
        audit_key(study)  # a key file the study names and cannot be read stops it here
        # built from the locks the study stored when it first resolved them
        solutions = load_study_solutions(study, stored_locks(study))
        _refuse_identical(study, solutions)
        inputs = input_stores(study.input, study.storage_options, study.source)
    except WearflowError as exc:
        if study.has_state():  # say so in the queue of a study that has one
            with State(study.state_url) as state:
                _could_not_run(study, state, exc)
            send_pending(study, lambda: _issues_outbox(study))
        raise
    try:
        with study_log(study, run_id), State(study.state_url) as state:
            try:
                _run(RunContext(study, state, run_id, default_actor(study.identity),
                                solutions, report, progress, stop), inputs, executor)
            except WearflowError as exc:
                _could_not_run(study, state, exc)
                raise
    finally:
        # the new issues owed to the webhook, posted on a thread that never holds the run
        # (it logs to the study's log itself: the run's handler is gone)
        send_pending(study, lambda: _issues_outbox(study))
    return report


def _run(ctx: RunContext, inputs: Sequence[Store], executor: Executor | None) -> None:
    study, state, report, run_id = ctx.study, ctx.state, ctx.report, ctx.run_id
    solutions = ctx.solutions
    _begin(ctx)
    pin_locks(ctx)
    ctx.stage("cataloging")
    unreadable = catalog_files(ctx, inputs)
    ingest_metadata(ctx)
    ctx.stage("planning")
    metadata = state.metadata.current()
    current = state.files.current()
    listed = state.metadata.participants()
    plan = make_plan(study, current, solutions, state.tasks.states(), metadata,
                     state.tasks.created(), listed)
    state.tasks.record_plan(plan.records)
    report.files_total = len(current)
    report.unparsable = sum(1 for f in current if f.parse_error or f.duplicate_of) + len(
        plan.unassigned)
    own = executor is None
    pool = executor or make_executor(study.executor, study.workers,
                                     memory_limit_gb=study.memory_limit_gb, slurm=study.slurm)
    try:
        execute_plan(ctx, plan.to_run, pool)
    finally:
        if own:
            pool.close()
    ctx.stage("aggregating participants")
    not_combined = aggregate_participants(ctx, metadata)
    sync_issues(ctx, plan.held, listed, [
        *not_combined,
        *(IssueSpec(p.tag.value, f"cannot be read now: {p.message}", uri=p.subject,
                    resolution="check the storage; the file is read again at the next run")
          for p in unreadable)])
    state.runs.finish(run_id, {"executed": report.executed, "done": report.done,
                               "failed": report.failed})
    ctx.log("INFO", f"run finished: {report.executed} executed, {report.failed} failed, "
            f"{report.participants_aggregated} participants aggregated", run=run_id)
    anchor_trail(study, state, run_id)


def _begin(ctx: RunContext) -> None:
    """Record the run, and in the audit trail the study's configuration when it is new
    or changed since the previous run (both with their credentials masked: a rotated
    password is no change). A fingerprint changed with no change of the configuration
    (credentials left out of it since the previous run) is a change with an empty diff."""
    study = ctx.study
    config, fingerprint = study.public_dump(), study.fingerprint()
    previous = ctx.state.runs.begin(ctx.run_id, study.study, fingerprint, ctx.actor, config)
    after = {"fingerprint": fingerprint}
    if previous is None:
        ctx.audit.record(ctx.actor, "study.loaded", study.source, after=after)
    elif previous != (fingerprint, config):
        ctx.audit.record(ctx.actor, "study.changed", study.source, before=None,
                         after={**after, "diff": audit_diff(previous[1], config)})


def _could_not_run(study: Study, state: State, exc: WearflowError) -> None:
    """Say in the log and the issues queue that the study could not run; the next run
    that gets past this point closes the issue."""
    log_event(exc.tag.value, exc.message, level=logging.ERROR, study=study.study,
              uri=exc.subject)
    problem = IssueSpec(exc.tag.value, f"the study could not run: {exc.message}",
                        uri=exc.subject, resolution="fix the study file or storage")
    publish_issues(study, state.issues.sync(
        study.study, [problem], close_missing=False,
        webhook_deadline_utc=webhook_deadline() if study.webhook else None))


@contextmanager
def _issues_outbox(study: Study) -> Iterator[Outbox]:
    """The issues table, for a webhook sender on its own thread (its own connection)."""
    with State(study.state_url) as state:
        yield state.issues


def _refuse_identical(study: Study, solutions: Sequence[Solution]) -> None:
    """Two solutions with one fingerprint would be one task per file under two names."""
    seen: dict[str, str] = {}
    for sol in solutions:
        other = seen.setdefault(sol.fingerprint, sol.name)
        if other != sol.name:
            raise ConfigError(f"solutions {other!r} and {sol.name!r} are the same pipeline "
                              "with the same settings; keep one", subject=study.source)
