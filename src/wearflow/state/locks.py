"""The solution environments' locks of a study: stored the first time each is resolved,
read by every later run (and handed to every worker with its tasks), never replaced."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from wearflow.clock import utc_now
from wearflow.errors import StateError
from wearflow.state.tables import EnvironmentLockRow


@dataclass(frozen=True)
class StoredLock:
    """One stored lock: its key (requirements and Python), text, sha256, when and by
    which run it was first resolved."""

    key: str
    requirements: str
    lock_text: str
    lock_sha256: str
    resolved_utc: str
    run_id: str


class LockRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def get(self, key: str) -> StoredLock | None:
        """The lock stored under ``key``, or None when none was resolved yet."""
        row = EnvironmentLockRow
        with self._engine.connect() as conn:
            found = conn.execute(select(
                row.key, row.requirements, row.lock_text, row.lock_sha256, row.resolved_utc,
                row.run_id).where(row.key == key)).first()
        return None if found is None else StoredLock(*found)

    def keep_first(self, key: str, requirements: str, lock_text: str, run_id: str
                   ) -> StoredLock:
        """Store ``lock_text`` under ``key`` unless a lock is stored there already (an
        earlier run, or another coordinator first); return the lock stored there."""
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(EnvironmentLockRow).values(
                    key=key, requirements=requirements, lock_text=lock_text,
                    lock_sha256=hashlib.sha256(lock_text.encode()).hexdigest(),
                    resolved_utc=utc_now(), run_id=run_id))
        except IntegrityError:
            pass
        stored = self.get(key)
        if stored is None:  # rows are never deleted: a database changed under us
            raise StateError("the environment lock just stored is gone", subject=key)
        return stored
