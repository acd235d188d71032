"""The state database's tables, all on one metadata object (``Base.metadata``).

Rows are never deleted: a changed file is a new row (a new version of the same
URI), a file that disappeared is marked absent, an issue whose cause is gone is
closed. The schema is kept by Alembic migrations (:mod:`wearflow.state.schema`);
a change here needs a revision there.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class FileRow(Base):
    __tablename__ = "files"
    __table_args__ = (UniqueConstraint("uri", "sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uri: Mapped[str] = mapped_column(String(2048), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    mtime: Mapped[str] = mapped_column(String(64))
    location: Mapped[str] = mapped_column(String(2048))
    path: Mapped[str] = mapped_column(String(2048))
    kind: Mapped[str] = mapped_column(String(16))
    participant: Mapped[str | None] = mapped_column(String(256), index=True)
    side: Mapped[str | None] = mapped_column(String(8))
    fields_json: Mapped[str] = mapped_column(Text, default="{}")
    parse_error: Mapped[str | None] = mapped_column(Text)
    duplicate_of: Mapped[str | None] = mapped_column(String(2048))
    device_serial: Mapped[str | None] = mapped_column(String(128))
    excluded_reason: Mapped[str | None] = mapped_column(Text)
    first_seen_utc: Mapped[str] = mapped_column(String(32))
    last_seen_utc: Mapped[str] = mapped_column(String(32))
    current: Mapped[bool] = mapped_column(Boolean, default=True)
    present: Mapped[bool] = mapped_column(Boolean, default=True)
    # schema revision 0003: the visit and body location ({location}) the name gives
    visit: Mapped[str | None] = mapped_column(String(256))
    body_location: Mapped[str | None] = mapped_column(String(256))


class TaskRow(Base):
    __tablename__ = "tasks"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("files.id"), index=True)
    solution: Mapped[str] = mapped_column(String(256))
    solution_version: Mapped[str] = mapped_column(String(256))
    solution_fingerprint: Mapped[str] = mapped_column(String(64))
    participant: Mapped[str | None] = mapped_column(String(256))
    side: Mapped[str | None] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(16), index=True)
    current: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    lease_until_utc: Mapped[str | None] = mapped_column(String(32))
    tag: Mapped[str | None] = mapped_column(String(32))
    message: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # a transient failure is retried, not before this time (schema revision 0002)
    retry_after_utc: Mapped[str | None] = mapped_column(String(32))
    run_id: Mapped[str | None] = mapped_column(String(64))
    result_dir: Mapped[str | None] = mapped_column(String(2048))
    provenance_sha256: Mapped[str | None] = mapped_column(String(64))
    inputs_json: Mapped[str] = mapped_column(Text, default="{}")
    flags_json: Mapped[str] = mapped_column(Text, default="[]")
    created_utc: Mapped[str] = mapped_column(String(32))
    started_utc: Mapped[str | None] = mapped_column(String(32))
    finished_utc: Mapped[str | None] = mapped_column(String(32))
    # schema revision 0003: the other files combined with this task's own (JSON list of
    # file ids), when one wrist has several recordings in one visit
    parts_json: Mapped[str | None] = mapped_column(Text)


class MetadataRow(Base):
    """One cleaned value from one version of one metadata file (never updated)."""

    __tablename__ = "metadata_values"
    __table_args__ = (UniqueConstraint("file_id", "participant", "field", "row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("files.id"), index=True)
    participant: Mapped[str | None] = mapped_column(String(256), index=True)
    field: Mapped[str] = mapped_column(String(64))
    value: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[str] = mapped_column(Text, default="")
    row: Mapped[int] = mapped_column(Integer, default=0)
    problem: Mapped[str | None] = mapped_column(Text)
    added_utc: Mapped[str] = mapped_column(String(32))


class ParticipantResultRow(Base):
    __tablename__ = "participant_results"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    solution: Mapped[str] = mapped_column(String(256))
    participant: Mapped[str] = mapped_column(String(256), index=True)
    task_keys_json: Mapped[str] = mapped_column(Text)
    result_dir: Mapped[str] = mapped_column(String(2048))
    provenance_sha256: Mapped[str] = mapped_column(String(64), default="")
    flags_json: Mapped[str] = mapped_column(Text, default="[]")
    run_id: Mapped[str] = mapped_column(String(64))
    created_utc: Mapped[str] = mapped_column(String(32))
    visit: Mapped[str] = mapped_column(String(256), default="", server_default="")


class SummaryRow(Base):
    __tablename__ = "study_summaries"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    solution: Mapped[str] = mapped_column(String(256))
    result_dir: Mapped[str] = mapped_column(String(2048))
    provenance_sha256: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str] = mapped_column(String(64))
    created_utc: Mapped[str] = mapped_column(String(32))


class RunRow(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    study: Mapped[str] = mapped_column(String(256))
    study_fingerprint: Mapped[str] = mapped_column(String(64))
    config_json: Mapped[str] = mapped_column(Text, default="{}")
    host: Mapped[str] = mapped_column(String(256), default="")
    pid: Mapped[int] = mapped_column(Integer, default=0)
    user: Mapped[str] = mapped_column(String(256))
    started_utc: Mapped[str] = mapped_column(String(32))
    finished_utc: Mapped[str | None] = mapped_column(String(32))
    counts_json: Mapped[str] = mapped_column(Text, default="{}")


class AttemptRow(Base):
    """One attempt at one task (schema revision 0004): where and when it ran, how it ended
    and what it cost. Appended for every outcome a run records, a transient failure
    requeued for another attempt included; never updated."""

    __tablename__ = "task_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(String(64), index=True)
    task_key: Mapped[str] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(Integer)  # the task's claims so far, this one's
    uri: Mapped[str] = mapped_column(String(2048))
    solution: Mapped[str] = mapped_column(String(256))
    participant: Mapped[str] = mapped_column(String(256))
    visit: Mapped[str] = mapped_column(String(256), default="")
    worker: Mapped[str] = mapped_column(String(256), default="")  # "<hostname>:<pid>"
    started_utc: Mapped[str] = mapped_column(String(32))
    # indexed in schema revision 0006: the alert rules read the latest attempts
    finished_utc: Mapped[str] = mapped_column(String(32), index=True)
    state: Mapped[str] = mapped_column(String(16))  # done or failed
    transient: Mapped[bool] = mapped_column(Boolean, default=False)  # requeued for retry
    tag: Mapped[str | None] = mapped_column(String(32))
    message: Mapped[str | None] = mapped_column(Text)
    cpu_s: Mapped[float] = mapped_column(Float, default=0.0)
    peak_rss_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    # seconds per stage: {"wall": {stage: s}, "cpu": {stage: s}}
    stage_json: Mapped[str] = mapped_column(Text, default="{}")
    # schema revision 0005: seconds of recording a done attempt processed
    data_s: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")


class IssueRow(Base):
    __tablename__ = "issues"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(64), unique=True)
    tag: Mapped[str] = mapped_column(String(32), index=True)
    study: Mapped[str] = mapped_column(String(256))
    participant: Mapped[str | None] = mapped_column(String(256))
    uri: Mapped[str | None] = mapped_column(String(2048))
    message: Mapped[str] = mapped_column(Text)
    resolution: Mapped[str] = mapped_column(Text, default="")
    first_seen_utc: Mapped[str] = mapped_column(String(32))
    last_seen_utc: Mapped[str] = mapped_column(String(32))
    open: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    resolved_reason: Mapped[str | None] = mapped_column(Text)  # closed by hand, and why
    # schema revision 0007: posting the issue to the study's webhook (an outbox). Pending
    # while owed; tried at each run from queued on, not before next (a claim's lease),
    # given up after the deadline; delivered is the flag; error the last failure.
    webhook_pending: Mapped[bool] = mapped_column(Boolean, default=False,
                                                  server_default=false(), index=True)
    webhook_queued_utc: Mapped[str | None] = mapped_column(String(32))
    webhook_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    webhook_next_utc: Mapped[str | None] = mapped_column(String(32))
    webhook_deadline_utc: Mapped[str | None] = mapped_column(String(32))
    webhook_delivered_utc: Mapped[str | None] = mapped_column(String(32))
    webhook_error: Mapped[str | None] = mapped_column(Text)


class UserRow(Base):
    """A user of the study (schema revision 0005); only the sha256 of their token."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_utc: Mapped[str] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(Text)
    disabled_utc: Mapped[str | None] = mapped_column(String(32))


class EnvironmentLockRow(Base):
    """The lock (every package with its hashes) a solution environment was first resolved
    to in this study (schema revision 0009): every later run and every worker builds
    exactly it, never resolving the requirements again. ``key``: the requirements and
    Python version (:func:`wearflow.solutions.environments.lock_key`)."""

    __tablename__ = "environment_locks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    requirements: Mapped[str] = mapped_column(Text)
    lock_text: Mapped[str] = mapped_column(Text)
    lock_sha256: Mapped[str] = mapped_column(String(64))
    resolved_utc: Mapped[str] = mapped_column(String(32))
    run_id: Mapped[str] = mapped_column(String(64))


class AlertRow(Base):
    """One alert of a study, by its key (schema revision 0006): its rule, message and
    times, and how telling each target went (``deliveries_json``: a JSON list of
    :class:`wearflow.alerts.Delivery`, one per target, by target). Reused when the alert
    fires again after it cleared. Never holds a webhook URL or a password."""

    __tablename__ = "alerts"
    __table_args__ = (UniqueConstraint("study", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study: Mapped[str] = mapped_column(String(256))
    key: Mapped[str] = mapped_column(String(256))
    rule: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    since_utc: Mapped[str] = mapped_column(String(32))
    first_fired_utc: Mapped[str] = mapped_column(String(32))
    last_evaluated_utc: Mapped[str] = mapped_column(String(32))
    cleared_utc: Mapped[str | None] = mapped_column(String(32))
    deliveries_json: Mapped[str] = mapped_column(Text, default="[]")


# The hash-chained audit trail (see wearflow.state.audit): a Core table, appended to in
# bulk and read in seq order, never through the ORM.
audit_table = Table(
    "audit_trail", Base.metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("entry_utc", String(32), nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", String(64), nullable=False),
    Column("object", Text, nullable=False),
    Column("before_json", Text),
    Column("after_json", Text),
    Column("reason", Text),
    Column("prev_hash", String(64), nullable=False),
    Column("entry_hash", String(64), nullable=False),
)
