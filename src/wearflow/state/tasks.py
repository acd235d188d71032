"""Tasks: the plan recorded, claims and leases, outcomes, retries."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any

from sqlalchemy import bindparam, case, func, select, update
from sqlalchemy.engine import Engine

from wearflow._gc import gc_paused
from wearflow.catalog import StoredFile
from wearflow.clock import iso, utc_now
from wearflow.errors import StateError
from wearflow.state.bulk import insert_many
from wearflow.state.engine import chunks, retry_on_conflict
from wearflow.state.files import FILE_COLUMNS, FileRepository
from wearflow.state.tables import FileRow, TaskRow
from wearflow.task import SETTLED_STATES, TaskOutcome, TaskRecord, TaskState

TASK_COLUMNS = tuple(TaskRow.__table__.c[name] for name in TaskRecord._fields)
_SETTLED = tuple(s.value for s in SETTLED_STATES)
# One state per file, the most pressing of its tasks' first.
_FILE_STATE_ORDER = {"failed": 0, "waiting": 1, "running": 2, "pending": 3, "done": 4}

TaskWithFile = tuple[TaskRecord, StoredFile]


class TaskRepository:
    """The ``tasks`` table: one row per task key, one current task per (file, solution)."""

    def __init__(self, engine: Engine, files: FileRepository) -> None:
        self._engine = engine
        self._files = files

    @gc_paused()
    def states(self) -> dict[str, str]:
        """Task key -> state, for every task ever planned."""
        with self._engine.connect() as conn:
            return dict(conn.execute(select(TaskRow.key, TaskRow.state)).all())

    @gc_paused()
    def created(self) -> dict[str, str]:
        """Task key -> when it was first planned (UTC)."""
        with self._engine.connect() as conn:
            return dict(conn.execute(select(TaskRow.key, TaskRow.created_utc)).all())

    @retry_on_conflict
    @gc_paused()
    def record_plan(self, tasks: Sequence[TaskRecord]) -> None:
        """Make ``tasks`` the current task of their (file, solution).

        New keys are inserted; ``waiting`` and ``pending`` are (re)set on keys
        that are not finished; any other task of the same file and solution
        stops being current (its results stay, listed in its row). Written in
        bulk: one multi-row INSERT, UPDATEs of only the rows that change.
        """
        now = utc_now()
        planned = {(t.file_id, t.solution): t.key for t in tasks}
        file_ids = {t.file_id for t in tasks}
        with self._engine.begin() as conn:
            stored: dict[str, tuple[str, str | None, str | None]] = {}
            flips: dict[bool, list[str]] = {True: [], False: []}  # new current flag: keys
            # The tasks of the planned files: one range scan of the file_id index, not
            # an IN list of 100,000 ids; rows of other files in the range are skipped.
            rows = conn.execute(
                select(TaskRow.key, TaskRow.file_id, TaskRow.solution, TaskRow.state,
                       TaskRow.tag, TaskRow.message, TaskRow.current)
                .where(TaskRow.file_id.between(min(file_ids), max(file_ids)))
            ).all() if file_ids else []
            for key, file_id, solution, state, tag, message, is_current in rows:
                if file_id not in file_ids:
                    continue
                stored[key] = (state, tag, message)
                keep = planned.get((file_id, solution))
                if (keep is None or keep == key) != is_current:
                    flips[not is_current].append(key)
            new: list[dict[str, Any]] = []
            restated: list[dict[str, Any]] = []
            for t in tasks:
                old = stored.get(t.key)
                if old is None:
                    new.append({
                        "key": t.key, "file_id": t.file_id, "solution": t.solution,
                        "solution_version": t.solution_version,
                        "solution_fingerprint": t.solution_fingerprint,
                        "participant": t.participant, "side": t.side, "state": str(t.state),
                        "tag": t.tag, "message": t.message, "current": True, "attempts": 0,
                        "inputs_json": t.inputs_json, "flags_json": "[]", "created_utc": now,
                        "parts_json": t.parts_json})
                elif old[0] not in _SETTLED and old != (t.state, t.tag, t.message):
                    restated.append({"b_key": t.key, "b_state": str(t.state), "b_tag": t.tag,
                                     "b_message": t.message})
            for flag, keys in flips.items():
                for chunk in chunks(keys):
                    conn.execute(update(TaskRow).where(TaskRow.key.in_(chunk))
                                 .values(current=flag))
            if restated:
                # A running task belongs to whoever claimed it (see claim), also one
                # claimed since the read above.
                conn.execute(update(TaskRow)
                             .where(TaskRow.key == bindparam("b_key"),
                                    *(TaskRow.state != settled for settled in _SETTLED))
                             .values(state=bindparam("b_state"), tag=bindparam("b_tag"),
                                     message=bindparam("b_message")), restated)
            new = _move_renamed(conn, new)
            # in key order: the primary-key index grows at its end, not at random pages
            insert_many(conn, TaskRow, sorted(new, key=itemgetter("key")))

    def claim(self, key: str, run_id: str, lease_s: float,
              dead_runs: Iterable[str] = ()) -> bool:
        """Take a task for this run: True when it was pending (and its retry time, if
        any, has come), or running under an expired lease or for a run whose process
        died. One conditional UPDATE: on PostgreSQL the row lock makes a second
        coordinator's UPDATE wait and then find the task taken; SQLite serialises
        writers. Either way two coordinators never both get it."""
        now = datetime.now(UTC)
        stamp = iso(now)
        with self._engine.begin() as conn:
            result = conn.execute(
                update(TaskRow)
                .where(TaskRow.key == key,
                       ((TaskRow.state == TaskState.PENDING)
                        & (TaskRow.retry_after_utc.is_(None)
                           | (TaskRow.retry_after_utc <= stamp)))
                       | ((TaskRow.state == TaskState.RUNNING)
                          & (TaskRow.lease_until_utc.is_(None)
                             | (TaskRow.lease_until_utc < stamp)
                             | TaskRow.run_id.in_(list(dead_runs)))))
                .values(state=TaskState.RUNNING.value, run_id=run_id, started_utc=stamp,
                        attempts=TaskRow.attempts + 1,
                        lease_until_utc=iso(now + timedelta(seconds=lease_s))))
        return bool(result.rowcount == 1)

    def renew_leases(self, run_id: str, lease_s: float) -> None:
        """Extend the leases of every task this run is running."""
        until = iso(datetime.now(UTC) + timedelta(seconds=lease_s))
        with self._engine.begin() as conn:
            conn.execute(update(TaskRow).where(TaskRow.run_id == run_id,
                                               TaskRow.state == TaskState.RUNNING)
                         .values(lease_until_utc=until))

    def finish(self, outcome: TaskOutcome) -> None:
        """Record a task's final outcome (done with its result, or failed with why)."""
        values: dict[str, Any] = {
            "state": outcome.state, "tag": outcome.tag, "message": outcome.message,
            "result_dir": outcome.result_dir, "provenance_sha256": outcome.provenance_sha256,
            "flags_json": json.dumps(list(outcome.flags)),
            "finished_utc": outcome.finished_utc or utc_now()}
        if outcome.started_utc:
            values["started_utc"] = outcome.started_utc
        with self._engine.begin() as conn:
            result = conn.execute(update(TaskRow).where(TaskRow.key == outcome.key)
                                  .values(**values))
            if result.rowcount != 1:
                raise StateError("unknown task", subject=outcome.key)

    def attempts(self, key: str) -> int:
        with self._engine.connect() as conn:
            return int(conn.scalar(select(TaskRow.attempts).where(TaskRow.key == key)) or 0)

    def requeue(self, key: str, *, retry_after_utc: str, tag: str | None,
                message: str) -> None:
        """A transient failure: back to pending, to be claimed again after
        ``retry_after_utc`` (the attempt count stays; the next claim adds one)."""
        with self._engine.begin() as conn:
            conn.execute(update(TaskRow).where(TaskRow.key == key).values(
                state=TaskState.PENDING.value, tag=tag, message=message,
                retry_after_utc=retry_after_utc, lease_until_utc=None))

    def retry_failed(self, file_id: int) -> list[str]:
        """Failed current tasks of a file back to pending, with a fresh set of attempts;
        returns their keys."""
        with self._engine.begin() as conn:
            keys = list(conn.scalars(select(TaskRow.key).where(
                TaskRow.file_id == file_id, TaskRow.current,
                TaskRow.state == TaskState.FAILED).order_by(TaskRow.key)))
            if keys:
                conn.execute(update(TaskRow).where(TaskRow.key.in_(keys)).values(
                    state=TaskState.PENDING.value, tag=None, message=None, attempts=0,
                    retry_after_utc=None))
        return keys

    def retry_done(self, keys: Sequence[str]) -> list[str]:
        """Done tasks ``keys`` back to pending with a fresh set of attempts (their result
        folder is gone: the next run writes it again); returns the keys moved, sorted."""
        moved: list[str] = []
        with self._engine.begin() as conn:
            for chunk in chunks(sorted(set(keys))):
                done = (TaskRow.key.in_(chunk), TaskRow.state == TaskState.DONE)
                moved += conn.scalars(select(TaskRow.key).where(*done))
                conn.execute(update(TaskRow).where(*done).values(
                    state=TaskState.PENDING.value, tag=None, message=None, attempts=0,
                    retry_after_utc=None))
        return sorted(moved)

    @gc_paused()
    def for_current_files(self) -> list[TaskWithFile]:
        """The current tasks of the current, present, not excluded files, with their file,
        sorted by URI and solution."""
        n_task = len(TASK_COLUMNS)
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(*TASK_COLUMNS, *FILE_COLUMNS)
                .join_from(TaskRow, FileRow, TaskRow.file_id == FileRow.id)
                .where(FileRow.current, FileRow.present, TaskRow.current,
                       FileRow.excluded_reason.is_(None))
                .order_by(FileRow.uri, TaskRow.solution)).all()
        return [(TaskRecord._make(r[:n_task]), StoredFile._make(r[n_task:])) for r in rows]

    def outstanding(self) -> tuple[int, str | None]:
        """The current tasks of current, present, included files that are pending or
        running: how many, and when the oldest of them was planned."""
        with self._engine.connect() as conn:
            n, oldest = conn.execute(
                select(func.count(), func.min(TaskRow.created_utc))
                .join_from(TaskRow, FileRow, TaskRow.file_id == FileRow.id)
                .where(TaskRow.current, FileRow.current, FileRow.present,
                       FileRow.excluded_reason.is_(None),
                       TaskRow.state.in_([TaskState.PENDING.value,
                                          TaskState.RUNNING.value]))).one()
        return int(n), oldest

    def busy_groups(self, dead_runs: Iterable[str] = ()) -> set[tuple[str, str, str]]:
        """(solution, participant, visit or "") of every group with a task in
        :meth:`for_current_files` that is pending, or running under a claim that holds (a
        lease not run out, of a run not in ``dead_runs``): a wrist still to be written."""
        stamp = iso(datetime.now(UTC))
        held = ((TaskRow.state == TaskState.RUNNING.value)
                & (TaskRow.lease_until_utc >= stamp)
                & TaskRow.run_id.not_in(sorted(dead_runs)))
        with self._engine.connect() as conn:
            return {(solution, participant or "", visit) for solution, participant, visit in
                    conn.execute(select(TaskRow.solution, FileRow.participant,
                                        func.coalesce(FileRow.visit, "")).distinct()
                                 .join_from(TaskRow, FileRow, TaskRow.file_id == FileRow.id)
                                 .where(*_LIVE_TASK, _truthy(FileRow.participant),
                                        (TaskRow.state == TaskState.PENDING.value) | held))}

    def done_for_current_files(self) -> list[TaskWithFile]:
        """The done current tasks of files whose name gave a participant."""
        return [(t, f) for t, f in self.for_current_files()
                if t.state == TaskState.DONE and f.participant]

    def file_state_counts(self) -> Counter[str]:
        """One state per current sensor file: the most pressing of its tasks' (failed >
        waiting > running > pending > done), a task combining several recordings counting
        for each of them (``parts_json``); a file excluded by hand is ``excluded``; one
        without a task is ``failed`` when held (its name does not parse, or its bytes
        copy another file's) and ``pending`` otherwise.

        The tasks counted are those of :meth:`for_current_files` (current tasks of the
        current, present files not excluded). Counted in the database: one GROUP BY over
        the files, then, for the few files that are parts of another file's task, a
        correction read by id. A task state outside :class:`TaskState` counts as failed.
        """
        worst: dict[int, int] = {}  # file id -> rank of the worst task combining it as a part
        with self._engine.connect() as conn:
            for state, parts_json in conn.execute(
                    select(TaskRow.state, TaskRow.parts_json)
                    .join_from(TaskRow, FileRow, TaskRow.file_id == FileRow.id)
                    .where(*_LIVE_TASK, TaskRow.parts_json.is_not(None),
                           TaskRow.parts_json != "")):
                part_rank = _FILE_STATE_ORDER.get(state, 0)
                for file_id in json.loads(parts_json or "[]"):
                    worst[file_id] = min(worst.get(file_id, part_rank), part_rank)
            own = (select(TaskRow.file_id, func.min(_RANK).label("rank"))
                   .where(TaskRow.current).group_by(TaskRow.file_id).subquery())
            rank = case((_truthy(FileRow.excluded_reason), _EXCLUDED_RANK),
                        ((FileRow.excluded_reason.is_(None)) & own.c.rank.is_not(None),
                         own.c.rank),
                        (_truthy(FileRow.parse_error) | _truthy(FileRow.duplicate_of),
                         _FILE_STATE_ORDER["failed"]),
                        else_=_FILE_STATE_ORDER["pending"])
            counts: dict[int, int] = dict(conn.execute(
                select(rank, func.count())
                .select_from(FileRow).outerjoin(own, own.c.file_id == FileRow.id)
                .where(*_COUNTED_FILE).group_by(rank)).all())
            for chunk in chunks(sorted(worst)):
                mine: dict[int, int] = dict(conn.execute(
                    select(TaskRow.file_id, func.min(_RANK)).where(
                        TaskRow.current, TaskRow.file_id.in_(chunk))
                    .group_by(TaskRow.file_id)).all())
                for file_id, excluded, held, live in conn.execute(
                        select(FileRow.id, FileRow.excluded_reason,
                               _truthy(FileRow.parse_error) | _truthy(FileRow.duplicate_of),
                               FileRow.excluded_reason.is_(None))
                        .where(*_COUNTED_FILE, FileRow.id.in_(chunk))):
                    if excluded:
                        continue
                    own_rank = mine.get(file_id) if live else None
                    before = (own_rank if own_rank is not None
                              else _FILE_STATE_ORDER["failed" if held else "pending"])
                    after = worst[file_id] if own_rank is None else min(own_rank,
                                                                        worst[file_id])
                    counts[before] -= 1
                    counts[after] = counts.get(after, 0) + 1
        return Counter({_RANK_STATE[r]: n for r, n in sorted(counts.items()) if n > 0})

    @gc_paused()
    def done_keys_by_group(self) -> dict[tuple[str, str, str], set[str]]:
        """(solution, participant, visit or "") -> the keys of its done tasks, for every
        group with a task in :meth:`for_current_files` whose file names a participant
        (an empty set when none is done yet). Only these columns are read."""
        done = case((TaskRow.state == TaskState.DONE.value, TaskRow.key))
        groups: dict[tuple[str, str, str], set[str]] = {}
        with self._engine.connect() as conn:
            for solution, participant, visit, key in conn.execute(
                    select(TaskRow.solution, FileRow.participant,
                           func.coalesce(FileRow.visit, ""), done)
                    .join_from(TaskRow, FileRow, TaskRow.file_id == FileRow.id)
                    .where(*_LIVE_TASK, _truthy(FileRow.participant))):
                keys = groups.setdefault((solution, participant, visit), set())
                if key is not None:
                    keys.add(key)
        return groups


def _truthy(column: Any) -> Any:
    """SQL for Python's truthiness of a text column: neither NULL nor empty."""
    return column.is_not(None) & (column != "")


# The tasks for_current_files reads: current tasks of current, present files not excluded.
_LIVE_TASK = (TaskRow.current, FileRow.current, FileRow.present,
              FileRow.excluded_reason.is_(None))
# The files file_state_counts counts: the current, present sensor files.
_COUNTED_FILE = (FileRow.current, FileRow.present, FileRow.kind == "sensor")
_RANK = case(_FILE_STATE_ORDER, value=TaskRow.state, else_=0)
_EXCLUDED_RANK = len(_FILE_STATE_ORDER)
_RANK_STATE = {**{rank: state for state, rank in _FILE_STATE_ORDER.items()},
               _EXCLUDED_RANK: TaskState.EXCLUDED.value}


def _move_renamed(conn: Any, new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Of the ``new`` task rows, move those whose key is already stored under another file
    row and return the rest.

    The same bytes under a new name (a renamed or moved file, or a copy left after its
    original went) give the same key and the same result: the task moves to the new
    file instead of running again.
    """
    moved: dict[str, str] = {
        key: state for chunk in chunks([r["key"] for r in new])
        for key, state in conn.execute(select(TaskRow.key, TaskRow.state)
                                       .where(TaskRow.key.in_(chunk)))}
    if not moved:
        return new
    conn.execute(update(TaskRow).where(TaskRow.key == bindparam("b_key")).values(
        file_id=bindparam("b_file_id"), participant=bindparam("b_participant"),
        side=bindparam("b_side"), parts_json=bindparam("b_parts"), current=True),
        [{"b_key": r["key"], "b_file_id": r["file_id"], "b_participant": r["participant"],
          "b_side": r["side"], "b_parts": r["parts_json"]} for r in new if r["key"] in moved])
    unfinished = [{"b_key": r["key"], "b_state": r["state"], "b_tag": r["tag"],
                   "b_message": r["message"]} for r in new
                  if moved.get(r["key"], "done") not in _SETTLED]
    if unfinished:
        conn.execute(update(TaskRow).where(TaskRow.key == bindparam("b_key"))
                     .values(state=bindparam("b_state"), tag=bindparam("b_tag"),
                             message=bindparam("b_message")), unfinished)
    return [r for r in new if r["key"] not in moved]
