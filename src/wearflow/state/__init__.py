"""The state database: the only part of wearflow that talks to it.

:class:`State` opens one study's database (SQLite by default, PostgreSQL at
scale), brings its schema to the newest migration, and offers one repository
per concern::

    with State(study.state_url) as state:
        state.files      # cataloged file versions          (files.py)
        state.tasks      # the plan, claims, leases, outcomes (tasks.py)
        state.metadata   # metadata values, with history    (metadata.py)
        state.results    # participant results, summaries   (results.py)
        state.runs       # runs and their configuration     (runs.py)
        state.attempts   # attempts at tasks, their cost    (attempts.py)
        state.issues     # the issues queue                 (issues.py)
        state.audit      # the hash-chained audit trail     (audit.py)
        state.users      # users, roles, token hashes       (users.py)
        state.dashboard  # read-only aggregates for `serve`  (dashboard.py)
        state.alerts     # alerts and their deliveries      (alerts.py)
        state.locks      # solution environments' locks     (locks.py)

Tables live in ``tables.py`` on one metadata object, migrations in
``migrations/`` (applied by ``schema.py``), engine and retry helpers in
``engine.py``. Repositories return the shapes of the layers above (``TaskRecord``,
``StoredFile``, ``MetaCell``, ``IssueSpec``) or their own (``RunRecord``, ``Attempt``),
never ORM objects to mutate.
"""

from __future__ import annotations

from types import TracebackType

from wearflow.state.alerts import AlertRepository
from wearflow.state.attempts import AttemptRepository
from wearflow.state.audit import AuditTrail
from wearflow.state.dashboard import DashboardQueries
from wearflow.state.engine import open_engine
from wearflow.state.files import FileRepository
from wearflow.state.issues import IssueRepository
from wearflow.state.locks import LockRepository
from wearflow.state.metadata import MetadataRepository
from wearflow.state.results import ResultRepository
from wearflow.state.runs import RunRepository
from wearflow.state.tasks import TaskRepository
from wearflow.state.users import UserRepository

__all__ = ["State"]


class State:
    """One study's state database; a context manager that disposes of its engine.

    Raises
    ------
    StateError
        The database cannot be opened or migrated.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = open_engine(url)
        self.files = FileRepository(self.engine)
        self.tasks = TaskRepository(self.engine, self.files)
        self.metadata = MetadataRepository(self.engine)
        self.results = ResultRepository(self.engine, self.tasks)
        self.runs = RunRepository(self.engine)
        self.attempts = AttemptRepository(self.engine)
        self.issues = IssueRepository(self.engine)
        self.audit = AuditTrail(self.engine)
        self.users = UserRepository(self.engine)
        self.dashboard = DashboardQueries(self.engine)
        self.alerts = AlertRepository(self.engine)
        self.locks = LockRepository(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> State:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
