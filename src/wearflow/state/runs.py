"""Runs: who started which run of a study, with what configuration, and how it ended.

A configuration is read back with its credentials masked (:func:`wearflow.redact.
redact_config`): one recorded whole, before wearflow masked them, is shown and compared
as one recorded since.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from typing import NamedTuple

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine

from wearflow.clock import utc_now
from wearflow.redact import redact_config
from wearflow.state.engine import retry_on_conflict
from wearflow.state.tables import RunRow


class RunRecord(NamedTuple):
    """One run as stored: the columns of the ``runs`` table."""

    id: str
    study: str
    study_fingerprint: str
    config_json: str
    host: str
    pid: int
    user: str
    started_utc: str
    finished_utc: str | None  # None: still running, or its coordinator died
    counts_json: str

    @property
    def config(self) -> dict[str, object]:
        """The study's configuration the run used (its public dump, credentials masked)."""
        return dict(redact_config(json.loads(self.config_json or "{}")))

    @property
    def counts(self) -> dict[str, int]:
        """What the run recorded when it finished (empty before): tasks ``executed``,
        and the study's files ``done`` and ``failed`` at its end."""
        return {k: int(v) for k, v in json.loads(self.counts_json or "{}").items()}


RUN_COLUMNS = tuple(RunRow.__table__.c[name] for name in RunRecord._fields)


class RunRepository:
    """The ``runs`` table."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @retry_on_conflict
    def begin(self, run_id: str, study: str, fingerprint: str, user: str,
              config: Mapping[str, object]) -> tuple[str, dict[str, object]] | None:
        """Record a run; return the fingerprint and configuration (credentials masked) of
        the previous run (None if first)."""
        with self._engine.begin() as conn:
            last = conn.execute(select(RunRow.study_fingerprint, RunRow.config_json)
                                .where(RunRow.study == study)
                                .order_by(RunRow.started_utc.desc(), RunRow.id.desc())
                                .limit(1)).first()
            conn.execute(insert(RunRow).values(
                id=run_id, study=study, study_fingerprint=fingerprint, user=user,
                config_json=json.dumps(config, sort_keys=True), host=socket.gethostname(),
                pid=os.getpid(), started_utc=utc_now(), counts_json="{}"))
        if last is None:
            return None
        return last[0], dict(redact_config(json.loads(last[1] or "{}")))

    def finish(self, run_id: str, counts: Mapping[str, int]) -> None:
        with self._engine.begin() as conn:
            conn.execute(update(RunRow).where(RunRow.id == run_id).values(
                finished_utc=utc_now(), counts_json=json.dumps(dict(counts), sort_keys=True)))

    def for_study(self, study: str) -> list[RunRecord]:
        """Every run of ``study``, newest first."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(*RUN_COLUMNS).where(RunRow.study == study)
                                .order_by(RunRow.started_utc.desc(), RunRow.id.desc())).all()
        return [RunRecord._make(r) for r in rows]

    def newest(self, study: str, limit: int) -> list[RunRecord]:
        """The ``limit`` newest runs of ``study``, newest first."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(*RUN_COLUMNS).where(RunRow.study == study)
                                .order_by(RunRow.started_utc.desc(), RunRow.id.desc())
                                .limit(limit)).all()
        return [RunRecord._make(r) for r in rows]

    def starting_with(self, study: str, prefix: str) -> list[RunRecord]:
        """The runs of ``study`` whose id starts with ``prefix``, newest first."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(*RUN_COLUMNS).where(
                RunRow.study == study, RunRow.id.startswith(prefix, autoescape=True))
                .order_by(RunRow.started_utc.desc(), RunRow.id.desc())).all()
        return [RunRecord._make(r) for r in rows]

    def dead(self) -> set[str]:
        """Unfinished runs whose coordinator process on this host no longer exists."""
        host = socket.gethostname()
        with self._engine.connect() as conn:
            rows = conn.execute(select(RunRow.id, RunRow.pid).where(
                RunRow.finished_utc.is_(None), RunRow.host == host)).all()
        return {run for run, pid in rows if pid and not _alive(pid)}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
