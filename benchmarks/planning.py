"""Cataloging and planning a large study: 100,000 files (quick: 5,000), no bytes read.

The listing is a generated one (``P00001_L.cwa``, ``P00001_R.cwa``, ... for
50,000 participants) served by a real :class:`wearflow.storage.Store` whose
filesystem is a stand-in that answers ``find`` instantly, as an object-store
listing would after its round trips: wearflow's own listing code (sorting,
temporary-name filter, entries) runs, the network does not. The catalog gets an
injected ``inspector`` returning a precomputed (sha256, serial) per file, so
what is measured is listing, name parsing and cataloging, not hashing.

Stages, in the order ``run_study`` runs them, each timed alone (wall seconds):

* catalog: ``State.known_files`` + ``catalog.scan``;
* state sync: ``State.sync_files`` into a fresh SQLite file;
* plan: reading files, tasks and metadata back from the state, ``plan.make_plan``
  with ``builtin:wrist``, ``State.record_plan``;
* re-plan: after every task is marked done (one SQL UPDATE, as if the study
  had been processed), the same catalog + sync + plan of the unchanged study:
  everything is known, nothing is inspected, nothing is to run.

The project's target is under 10 s to plan 100,000 files (catalog + sync + plan).
The audit entries ``run_study`` appends for newly cataloged files are timed on a
line of their own.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from fsspec import AbstractFileSystem

from benchmarks._common import Figure, fmt_s, make_study

FULL_FILES, QUICK_FILES = 100_000, 5_000
TARGET_S = 10.0
T = TypeVar("T")


class _InstantListing(AbstractFileSystem):  # type: ignore[misc]
    """An fsspec filesystem holding one generated listing; ``find`` answers from memory."""

    cachable = False  # fsspec would otherwise reuse one instance per arguments

    def __init__(self, root: str, n_files: int) -> None:
        super().__init__()
        self._found: dict[str, dict[str, Any]] = {}
        for k in range(n_files // 2):
            for side in ("L", "R"):
                self._found[f"{root}/P{k + 1:05d}_{side}.cwa"] = {
                    "type": "file", "size": 300_000_000 + k, "mtime": 1_767_225_600.0 + k}

    def exists(self, _path: str, **_kwargs: Any) -> bool:
        return True

    def isdir(self, _path: str) -> bool:
        return True

    def invalidate_cache(self, _path: str | None = None) -> None:
        return None

    def find(self, _path: str, *_args: Any, **_kwargs: Any) -> dict[str, dict[str, Any]]:
        return dict(self._found)


def run(quick: bool) -> Iterator[Figure]:
    from sqlalchemy import update

    from wearflow import catalog
    from wearflow.plan import make_plan
    from wearflow.solutions import load_solution
    from wearflow.state import State
    from wearflow.state.audit import AuditEvent, AuditTrail
    from wearflow.state.tables import TaskRow
    from wearflow.storage import Store

    n_files = QUICK_FILES if quick else FULL_FILES
    with tempfile.TemporaryDirectory(prefix="wearflow-bench-planning-") as tmp:
        root = Path(tmp)
        study = make_study(root)
        solutions = [load_solution(c) for c in study.solutions]
        store = Store("memory://wearflow-bench/raw")
        store.fs = _InstantListing("wearflow-bench/raw", n_files)
        inspected: dict[str, tuple[str, str | None]] = {
            path.rsplit("/", 1)[-1]: (hashlib.sha256(path.encode()).hexdigest(),
                                      f"{60_000 + k}")
            for k, path in enumerate(store.fs.find(""))
        }
        calls = [0]

        def inspector(_store: Store, path: str) -> tuple[str, str | None]:
            calls[0] += 1
            return inspected[path]

        state = State(f"sqlite:///{root / 'wearflow.db'}")
        try:
            def plan_once() -> tuple[dict[str, float], int, int]:
                """catalog + sync + plan as run_study does; (seconds by stage, files, to run)."""
                s: dict[str, float] = {}
                files = _clock(s, "catalog", lambda: catalog.scan(
                    [store], study.files, known=state.files.known(), inspector=inspector))
                _clock(s, "sync", lambda: state.files.sync(files, [store.root_uri]))
                loaded = _clock(s, "load", lambda: (
                    state.metadata.current(), state.files.current(), state.tasks.states(),
                    state.tasks.created(), state.metadata.participants()))
                metadata, current, task_states, created, listed = loaded
                plan = _clock(s, "make_plan", lambda: make_plan(
                    study, current, solutions, task_states, metadata, created, listed))
                _clock(s, "record_plan", lambda: state.tasks.record_plan(plan.records))
                return s, len(files), len(plan.to_run)

            first, n_cataloged, to_run = plan_once()
            if n_cataloged != n_files or calls[0] != n_files:
                raise RuntimeError(f"cataloged {n_cataloged}, inspected {calls[0]}, "
                                   f"of {n_files} files")
            yield _figure(f"planning_first_{n_files}_files", first, n_files,
                          f"{to_run} tasks to run")

            events = [AuditEvent("bench", "file.cataloged", f.uri, before=None,
                                 after={"sha256": f.sha256, "size_bytes": f.size_bytes,
                                        "kind": f.kind})
                      for f in catalog.scan([store], study.files, inspector=inspector)]
            began = time.perf_counter()
            AuditTrail(state.engine).record_many(events)
            audit_s = time.perf_counter() - began
            yield Figure(f"planning_audit_{n_files}_files",
                         f"{fmt_s(audit_s)} to append the {len(events)} 'file.cataloged' "
                         "audit entries run_study writes after a first catalog")

            with state.engine.begin() as conn:
                conn.execute(update(TaskRow).values(state="done"))
            calls[0] = 0
            again, _, to_run = plan_once()
            if calls[0] or to_run:
                raise RuntimeError(f"re-plan inspected {calls[0]} files, planned {to_run} tasks")
            yield _figure(f"planning_replan_{n_files}_files", again, n_files,
                          "all known and done, 0 inspected, 0 to run")
        finally:
            state.close()


def _clock(seconds: dict[str, float], stage: str, fn: Callable[[], T]) -> T:
    began = time.perf_counter()
    out = fn()
    seconds[stage] = time.perf_counter() - began
    return out


def _figure(name: str, seconds: dict[str, float], n_files: int, what: str) -> Figure:
    total = sum(seconds.values())
    plan = seconds["load"] + seconds["make_plan"] + seconds["record_plan"]
    at_full = total * FULL_FILES / n_files
    verdict = "within" if at_full < TARGET_S else "OVER"
    scaled = "" if n_files == FULL_FILES else f" (extrapolated linearly: {fmt_s(at_full)})"
    return Figure(
        name,
        f"{fmt_s(total)} total: catalog {fmt_s(seconds['catalog'])}, state sync "
        f"{fmt_s(seconds['sync'])}, plan {fmt_s(plan)} (state reads {fmt_s(seconds['load'])}, "
        f"make_plan {fmt_s(seconds['make_plan'])}, record_plan "
        f"{fmt_s(seconds['record_plan'])}); {1e6 * total / n_files:.0f} us/file, {verdict} the "
        f"{TARGET_S:g} s target for {FULL_FILES:,} files{scaled}; {what}",
    )
