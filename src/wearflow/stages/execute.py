"""Execute: run a plan's tasks on an executor, claim each under a lease this run renews,
retry transient failures with backoff, record every outcome (and every attempt, a
requeued one included, in ``state.attempts``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import replace

from wearflow.clock import iso_utc
from wearflow.errors import Tag
from wearflow.executors import Executor
from wearflow.stages.context import RunContext
from wearflow.state import State
from wearflow.state.audit import AuditEvent
from wearflow.task import TaskOutcome, TaskSpec, TaskState

LEASE_S = 300.0  # a claimed task whose coordinator stops renewing is free again after this
MAX_IN_RUN_WAIT_S = 120.0  # a retry due later than this is left pending for the next run


def execute_plan(ctx: RunContext, tasks: Sequence[TaskSpec], executor: Executor) -> None:
    """Run ``tasks``; transient failures come back after their backoff within this run
    when the wait is short, later ones stay pending for the next run. Fills the report's
    executed, done and failed counts."""
    if ctx.progress:
        ctx.progress("process", 0, len(tasks))
    renewing = threading.Event()
    renewer = threading.Thread(target=_renew_leases, args=(ctx.state, ctx.run_id, renewing),
                               name="wearflow-leases", daemon=True)
    renewer.start()
    try:
        todo = list(tasks)
        while todo:
            retry = _consume(ctx, todo, executor)
            soon = [(t, at) for t, at in retry if at <= time.time() + MAX_IN_RUN_WAIT_S]
            todo = [t for t, _ in soon]
            if todo and not _sleep_until(max(at for _, at in soon), ctx.stop):
                break
    finally:
        renewing.set()
        renewer.join()
    counts = ctx.state.tasks.file_state_counts()
    ctx.report.done = counts.get(TaskState.DONE, 0)
    ctx.report.failed = counts.get(TaskState.FAILED, 0)


def _renew_leases(state: State, run_id: str, done: threading.Event) -> None:
    while not done.wait(LEASE_S / 4):
        state.tasks.renew_leases(run_id, LEASE_S)


def _sleep_until(moment: float, stop: threading.Event | None) -> bool:
    """Wait until ``moment`` (epoch seconds); False when ``stop`` was set meanwhile."""
    delay = max(0.0, moment - time.time())
    if stop is None:
        time.sleep(delay)
        return True
    return not stop.wait(delay)


def _consume(ctx: RunContext, tasks: Sequence[TaskSpec], executor: Executor
             ) -> list[tuple[TaskSpec, float]]:
    """Run ``tasks``; return those that failed transiently with the time (epoch seconds)
    each may be retried."""
    by_key = {t.key: t for t in tasks}
    finished = 0
    retry: list[tuple[TaskSpec, float]] = []
    # A task is claimed (with a lease this run renews) just before it starts, so
    # two coordinators on one study never run the same task.
    dead = ctx.state.runs.dead()

    def claim(task: TaskSpec) -> bool:
        return ctx.state.tasks.claim(task.key, ctx.run_id, LEASE_S, dead)

    for event in executor.run(tasks, ctx.run_id, ctx.stop, claim):
        task = by_key[event.key]
        if event.kind == "started":
            ctx.audit.record(ctx.actor, "task.started", event.key,
                             after={"uri": task.uri, "solution": task.solution.name})
            continue
        if event.outcome is None:
            continue
        outcome = event.outcome
        if outcome.state == TaskState.FAILED and outcome.transient:
            at = _retry_at(ctx, task, outcome)
            if at is not None:
                retry.append((task, at))
                continue
            attempts = ctx.state.tasks.attempts(outcome.key)
            outcome = replace(outcome,
                              message=f"failed after {attempts} attempts: {outcome.message}")
        _record(ctx, task, outcome)
        finished += 1
        if ctx.progress:
            ctx.progress("process", finished, len(tasks))
    return retry


def _retry_at(ctx: RunContext, task: TaskSpec, outcome: TaskOutcome) -> float | None:
    """Requeue a transient failure with backoff, record the attempt, and return when it
    may run again; None when its attempts are used up."""
    policy = ctx.study.retries
    attempts = ctx.state.tasks.attempts(outcome.key)
    if attempts >= policy.max_attempts:
        return None
    at = time.time() + policy.backoff_s * float(2 ** max(0, attempts - 1))
    message = (f"attempt {attempts} of {policy.max_attempts} failed, "
               f"retrying at {iso_utc(at)}: {outcome.message}")
    ctx.state.tasks.requeue(outcome.key, retry_after_utc=iso_utc(at), tag=outcome.tag,
                            message=message)
    ctx.state.attempts.record(ctx.run_id, task, outcome, requeued=True)
    ctx.audit.record(ctx.actor, "task.failed", outcome.key, after={
        "tag": outcome.tag, "message": outcome.message, "attempt": attempts,
        "retry_after_utc": iso_utc(at)})
    ctx.log(outcome.tag or Tag.ERROR.value, message, level=logging.WARNING, uri=task.uri,
            solution=task.solution.name, task=task.key[:16])
    return at


def _record(ctx: RunContext, task: TaskSpec, outcome: TaskOutcome) -> None:
    """A task's final outcome: state, attempt, report, audit trail and log."""
    ctx.state.tasks.finish(outcome)
    ctx.state.attempts.record(ctx.run_id, task, outcome)
    report = ctx.report
    report.executed += 1
    for totals, stages in ((report.task_stage_s, outcome.stage_s),
                           (report.task_stage_cpu_s, outcome.stage_cpu_s)):
        for stage, seconds in stages:
            totals[stage] = totals.get(stage, 0.0) + seconds
    ctx.audit.record_many(_task_events(ctx.actor, outcome))
    if outcome.state == TaskState.DONE:
        ctx.log("INFO", "processed", uri=task.uri, solution=task.solution.name,
                task=task.key[:16], seconds=",".join(f"{k}:{v:.2f}" for k, v in outcome.stage_s))
    else:
        ctx.log(outcome.tag or Tag.ERROR.value, outcome.message or "failed",
                level=logging.ERROR, uri=task.uri, solution=task.solution.name,
                task=task.key[:16])


def _task_events(actor: str, outcome: TaskOutcome) -> list[AuditEvent]:
    if outcome.state != TaskState.DONE:
        return [AuditEvent(actor, "task.failed", outcome.key,
                           after={"tag": outcome.tag, "message": outcome.message})]
    return [AuditEvent(actor, "task.finished", outcome.key, after={"state": "done"}),
            AuditEvent(actor, "result.written", outcome.result_dir or "",
                       after={"task": outcome.key,
                              "provenance_sha256": outcome.provenance_sha256})]
