"""The study file's operational sections: where run-time problems and new issues go,
reports after a run, the audit trail's anchors, retries of transient failures.

None of them changes a result: they are left out of the study fingerprint
(:data:`wearflow.config.EXECUTION_FIELDS`). :class:`FrozenModel` is the base of every
model of the study file (unknown keys refused, values frozen).
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from wearflow.errors import Tag


class FrozenModel(BaseModel):
    """A section of the study file: unknown keys refused, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NotificationsConfig(FrozenModel):
    """Object-store event notifications that wake `wearflow watch` (an SQS queue)."""

    sqs_queue_url: str | None = None
    endpoint_url: str | None = None  # for S3-compatible servers; default: AWS


class ReportsConfig(FrozenModel):
    """Reports (``wearflow report``): ``after_run`` writes the participant, study and run
    reports at the end of every ``run`` (and every ``watch`` cycle that processed files)."""

    after_run: bool = False


_ADDRESS = r"^[^@\s]+@[^@\s]+$"


class EmailConfig(FrozenModel):
    """Where alerts are mailed: an SMTP server, the sender and the recipients. The
    password is never in the study file: ``password_env`` names the environment variable
    that holds it."""

    smtp_host: str = Field(min_length=1)
    smtp_port: int = Field(default=25, ge=1, le=65535)
    sender: str = Field(alias="from", pattern=_ADDRESS)
    to: tuple[str, ...] = Field(min_length=1)
    starttls: bool = False
    username: str | None = Field(default=None, min_length=1)
    password_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    @field_validator("to")
    @classmethod
    def _addresses(cls, to: tuple[str, ...]) -> tuple[str, ...]:
        bad = [a for a in to if not re.match(_ADDRESS, a)]
        if bad:
            raise ValueError(f"not an e-mail address: {bad}")
        return to

    @model_validator(mode="after")
    def _login_needs_both(self) -> EmailConfig:
        if (self.username is None) != (self.password_env is None):
            raise ValueError("username and password_env go together (the password itself "
                             "is never in the study file: password_env names the "
                             "environment variable that holds it)")
        return self


class AlertsConfig(FrozenModel):
    """Alerts about run-time problems, each rule optional (see :mod:`wearflow.alerts`).

    ``run_failed``: the latest run ended with failed files or died unfinished;
    ``stalled_minutes``: no task finished for so long while tasks are pending or running;
    ``failed_percent``: more than this share of the attempts finished in the last
    ``window_minutes`` failed; ``issue_tags``: an open issue with one of these tags.
    Each alert is sent to ``webhook`` (a JSON POST) and ``email`` once when it fires and
    once when it clears.
    """

    run_failed: bool = False
    stalled_minutes: float | None = Field(default=None, gt=0)
    failed_percent: float | None = Field(default=None, ge=0, lt=100)
    window_minutes: float = Field(default=60.0, gt=0)
    issue_tags: tuple[Tag, ...] = ()
    # may carry credentials (user:password@, a token in its path or query): never
    # printed, logged or stored whole (see public_dump and wearflow.redact.url_host)
    webhook: str | None = Field(default=None, repr=False)
    email: EmailConfig | None = None

    @field_validator("webhook")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        # the message never repeats the URL: it may hold a token
        if url is not None and not re.match(r"^https?://[^\s/?#]+[^\s]*$", url):
            raise ValueError("must be an http:// or https:// URL (no spaces)")
        return url

    @property
    def has_rules(self) -> bool:
        return bool(self.run_failed or self.stalled_minutes is not None
                    or self.failed_percent is not None or self.issue_tags)


class AuditConfig(FrozenModel):
    """Where each run writes the audit trail's head outside the state database, and the
    key it is signed with (README: the audit trail's anchors).

    ``anchors``: a folder or bucket prefix (default ``<output>/audit-anchors``; best a
    bucket with object lock, or any place the database's users cannot rewrite).
    ``key_file``: a file holding the HMAC key; else the key is the value of the
    environment variable ``key_env``. Never the key itself: the state database and the
    study file must not hold it. Without a key the anchors are unsigned.
    """

    anchors: str | None = None
    key_file: str | None = None
    key_env: str = Field(default="WEARFLOW_AUDIT_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class RetryConfig(FrozenModel):
    """Transient failures (storage unreachable, a worker that died) are retried after
    ``backoff_s`` doubling each attempt; a task stops after ``max_attempts``."""

    max_attempts: int = Field(default=3, ge=1, le=20)
    backoff_s: float = Field(default=5.0, ge=0, le=3600)
