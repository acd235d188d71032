"""Results written: per-wrist (through their tasks), per participant, study summaries."""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from wearflow.catalog import StoredFile
from wearflow.clock import utc_now
from wearflow.state.engine import chunks, retry_on_conflict
from wearflow.state.files import FILE_COLUMNS
from wearflow.state.tables import FileRow, ParticipantResultRow, SummaryRow, TaskRow
from wearflow.state.tasks import TASK_COLUMNS, TaskRepository
from wearflow.task import TaskRecord, TaskState

# The recorded sha256 of a participant result whose folder is to be written again
# (`wearflow retry --missing`): its provenance.json is gone, and with it what the hash
# was of; the run that writes the folder again records the new one.
REWRITE = ""


class ResultRepository:
    """The ``participant_results`` and ``study_summaries`` tables, and the result folders
    of done tasks."""

    def __init__(self, engine: Engine, tasks: TaskRepository) -> None:
        self._engine = engine
        self._tasks = tasks

    def participant_keys(self) -> set[str]:
        with self._engine.connect() as conn:
            return set(conn.scalars(select(ParticipantResultRow.key)))

    def to_rewrite(self) -> set[str]:
        """The keys of the participant results to be written again (see :meth:`rewrite`)."""
        with self._engine.connect() as conn:
            return set(conn.scalars(select(ParticipantResultRow.key).where(
                ParticipantResultRow.provenance_sha256 == REWRITE)))

    def rewrite(self, keys: Sequence[str]) -> list[str]:
        """Have the next run write the folders of participant results ``keys`` again (they
        are gone from storage); returns the keys marked, sorted."""
        marked: list[str] = []
        with self._engine.begin() as conn:
            for chunk in chunks(sorted(set(keys))):
                kept = (ParticipantResultRow.key.in_(chunk),
                        ParticipantResultRow.provenance_sha256 != REWRITE)
                marked += conn.scalars(select(ParticipantResultRow.key).where(*kept))
                conn.execute(update(ParticipantResultRow).where(*kept)
                             .values(provenance_sha256=REWRITE))
        return sorted(marked)

    @retry_on_conflict
    def add_participant(self, *, key: str, solution: str, participant: str,
                        task_keys: Sequence[str], result_dir: str, provenance_sha256: str,
                        flags: Sequence[str], run_id: str, visit: str = "") -> bool:
        """Record a participant result, or the new provenance of one written again (see
        :meth:`rewrite`); False when another coordinator did first (the unique key, or the
        conditional update, settles a race: the loser finds the row recorded)."""
        with self._engine.begin() as conn:
            rewritten = conn.execute(
                update(ParticipantResultRow)
                .where(ParticipantResultRow.key == key,
                       ParticipantResultRow.provenance_sha256 == REWRITE)
                .values(provenance_sha256=provenance_sha256, run_id=run_id))
        if rewritten.rowcount == 1:
            return True
        with Session(self._engine) as s, s.begin():
            if s.get(ParticipantResultRow, key) is not None:
                return False
            s.add(ParticipantResultRow(
                key=key, solution=solution, participant=participant, visit=visit,
                task_keys_json=json.dumps(sorted(task_keys)), result_dir=result_dir,
                provenance_sha256=provenance_sha256,
                flags_json=json.dumps(list(flags)), run_id=run_id, created_utc=utc_now()))
        return True

    def latest_participants(self) -> list[ParticipantResultRow]:
        """Per (solution, participant, visit): the result made from exactly the current
        done tasks when there is one (several coordinators may each have written one),
        else the newest."""
        current = {group: keys for group, keys in self._tasks.done_keys_by_group().items()
                   if keys}
        with Session(self._engine, expire_on_commit=False) as s:
            rows = list(s.scalars(select(ParticipantResultRow)
                                  .order_by(ParticipantResultRow.created_utc,
                                            ParticipantResultRow.key)))
        chosen: dict[tuple[str, str, str], ParticipantResultRow] = {}
        for row in rows:
            group = (row.solution, row.participant, row.visit or "")
            matches = set(json.loads(row.task_keys_json)) == current.get(group)
            previous = chosen.get(group)
            previous_matches = previous is not None and set(
                json.loads(previous.task_keys_json)) == current.get(group)
            if matches or not previous_matches:
                chosen[group] = row
        return [chosen[k] for k in sorted(chosen)]

    def task_keys(self) -> list[tuple[str, str, str, str]]:
        """(solution, participant, visit or "", task_keys_json) of every participant result,
        oldest first (as :meth:`latest_participants` reads them), and nothing else."""
        r = ParticipantResultRow
        with self._engine.connect() as conn:
            return [(solution, participant, visit or "", keys) for solution, participant,
                    visit, keys in conn.execute(
                        select(r.solution, r.participant, r.visit, r.task_keys_json)
                        .order_by(r.created_utc, r.key))]

    @retry_on_conflict
    def add_summary(self, *, key: str, solution: str, result_dir: str,
                    provenance_sha256: str, run_id: str) -> bool:
        """Record a study summary, or the new provenance of one whose folder was gone and
        is written again; False when another coordinator did either first."""
        with Session(self._engine) as s, s.begin():
            row = s.get(SummaryRow, key)
            if row is None:
                s.add(SummaryRow(key=key, solution=solution, result_dir=result_dir,
                                 provenance_sha256=provenance_sha256, run_id=run_id,
                                 created_utc=utc_now()))
            elif row.provenance_sha256 != provenance_sha256:
                row.provenance_sha256, row.run_id = provenance_sha256, run_id
            else:
                return False
        return True

    def latest_summaries(self) -> dict[str, str]:
        """Solution -> the folder of its newest study summary."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(SummaryRow.solution, SummaryRow.result_dir)
                                .order_by(SummaryRow.created_utc, SummaryRow.key)).all()
        return {solution: folder for solution, folder in rows}

    def provenance_hashes(self) -> dict[str, str]:
        """Every result folder ever written, with the sha256 of its provenance.json."""
        with self._engine.connect() as conn:
            rows = [*conn.execute(select(TaskRow.result_dir, TaskRow.provenance_sha256)
                                  .where(TaskRow.state == TaskState.DONE)).all(),
                    *conn.execute(select(ParticipantResultRow.result_dir,
                                         ParticipantResultRow.provenance_sha256)).all(),
                    *conn.execute(select(SummaryRow.result_dir,
                                         SummaryRow.provenance_sha256)).all()]
        return {d: h for d, h in rows if d and h}

    def done_tasks_under(self, folders: Sequence[str], key_prefix: str = ""
                         ) -> list[tuple[TaskRecord, StoredFile]]:
        """The done tasks whose result folder is one of ``folders`` or lies under one of
        them, or (``key_prefix``) whose key starts with it; sorted by key."""
        wanted = [f.strip("/") for f in folders if f.strip("/")]
        condition = TaskRow.key.startswith(key_prefix) if key_prefix else None
        for folder in wanted:
            under = (TaskRow.result_dir == folder) | TaskRow.result_dir.startswith(folder + "/")
            condition = under if condition is None else condition | under
        if condition is None:
            return []
        n_task = len(TASK_COLUMNS)
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(*TASK_COLUMNS, *FILE_COLUMNS)
                .join_from(TaskRow, FileRow, TaskRow.file_id == FileRow.id)
                .where(TaskRow.state == TaskState.DONE, condition)
                .order_by(TaskRow.key)).all()
        return [(TaskRecord._make(r[:n_task]), StoredFile._make(r[n_task:])) for r in rows]

