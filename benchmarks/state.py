"""Task state transitions per second on the state database: SQLite and PostgreSQL.

N tasks (quick: 200; full: 2,000) of N cataloged files are recorded with
``State.record_plan`` (setup, not timed). Then, as the coordinator does for
each task it runs, ``State.claim`` (a conditional UPDATE with a lease; older
versions: ``State.mark_running``) and ``State.tasks.finish`` (state
``done`` with a result folder, provenance hash and times): two transitions,
each its own transaction on a WAL-mode SQLite file (``synchronous=NORMAL``), then
on a throwaway local PostgreSQL cluster (``wearflow.testing``; fsync off, as
for tests: a production server with fsync is bound by its disk's flush time).
A second pass on fresh tasks adds the audit entries ``run_study`` appends per
task (``task.started``; ``task.finished`` and ``result.written``), which are
also per-task transactions on the same database.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from benchmarks._common import Figure, fmt_s

FULL_TASKS, QUICK_TASKS = 2_000, 200
LEASE_S = 600.0


def run(quick: bool) -> Iterator[Figure]:
    from wearflow.testing import create_database, throwaway_postgres

    n = QUICK_TASKS if quick else FULL_TASKS
    with tempfile.TemporaryDirectory(prefix="wearflow-bench-state-") as tmp:
        yield from _measure("sqlite", f"sqlite:///{Path(tmp) / 'wearflow.db'}", n)
    with throwaway_postgres() as server:
        yield from _measure("postgresql", create_database(server), n)


def _measure(backend: str, url: str, n: int) -> Iterator[Figure]:
    from wearflow.catalog import SensorFile
    from wearflow.clock import utc_now
    from wearflow.state import State
    from wearflow.state.audit import AuditEvent, AuditTrail
    from wearflow.task import TaskOutcome, TaskRecord, TaskState

    state = State(url)
    try:
        def plan(tag: str) -> list[str]:
            """Catalog n files and record one pending task each; return the task keys."""
            files = [SensorFile(
                uri=f"file:///bench/{tag}/P{k:05d}_L.cwa", location=f"file:///bench/{tag}",
                path=f"P{k:05d}_L.cwa", size_bytes=1, mtime="0",
                sha256=hashlib.sha256(f"{tag}{k}".encode()).hexdigest(),
                fields={"participant": f"P{k:05d}", "side": "left"},
            ) for k in range(n)]
            state.files.sync(files, [f"file:///bench/{tag}"])
            ids = {f.uri: f.id for f in state.files.current()}
            records = [TaskRecord(hashlib.sha256(f.sha256.encode()).hexdigest(),
                                  ids[f.uri], "wrist", "v", "fp", f.participant, f.side,
                                  "pending") for f in files]
            state.tasks.record_plan(records)
            return [r.key for r in records]

        # A task starts with a claim (a conditional UPDATE with a lease).
        starting = "claim"

        def start(key: str, started: str) -> None:
            if not state.tasks.claim(key, "bench-run", LEASE_S, ()):
                raise RuntimeError(f"task {key} could not be claimed")

        def transitions(keys: Sequence[str], trail: AuditTrail | None) -> float:
            began = time.perf_counter()
            for key in keys:
                started = utc_now()
                start(key, started)
                if trail is not None:
                    trail.record("bench", "task.started", key, after={"uri": key})
                folder = f"single-wrist-processed/wrist/P/x/{key}"
                state.tasks.finish(TaskOutcome(key, TaskState.DONE, started, utc_now(),
                                               result_dir=folder, provenance_sha256=key))
                if trail is not None:
                    trail.record_many([
                        AuditEvent("bench", "task.finished", key, after={"state": "done"}),
                        AuditEvent("bench", "result.written", folder,
                                   after={"task": key, "provenance_sha256": key})])
            return time.perf_counter() - began

        bare_s = transitions(plan("a"), None)
        yield Figure(
            f"state_transitions_{backend}",
            f"{2 * n / bare_s:.0f} transitions/s ({fmt_s(bare_s / n)} per task for "
            f"{starting} + finish_task; {n} tasks, {fmt_s(bare_s)})",
        )
        audited_s = transitions(plan("b"), AuditTrail(state.engine))
        yield Figure(
            f"state_transitions_{backend}_with_audit",
            f"{n / audited_s:.0f} tasks/s ({fmt_s(audited_s / n)} per task: the 2 "
            f"transitions and 3 audit entries, 4 transactions, as run_study does; {n} tasks, "
            f"{fmt_s(audited_s)})",
        )
    finally:
        state.close()
