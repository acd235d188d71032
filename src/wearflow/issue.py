"""An issue: a problem people can read, with its tag and what resolves it.

The planner holds files with one, the stages derive them, the state keeps them
as the issues queue (opened, refreshed, closed when the cause is gone), and
:mod:`wearflow.notify` tells the outside world about new ones.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class IssueSpec:
    """One problem as a run sees it: tag, message, the file and participant it is
    about, and what resolves it."""

    tag: str
    message: str
    uri: str | None = None
    participant: str | None = None
    resolution: str = ""

    def dedupe_key(self, study: str) -> str:
        """The same problem seen again by a later run has the same key."""
        text = "\x1f".join((study, self.tag, self.uri or "", self.participant or "", self.message))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class QueuedIssue:
    """An issue owed to the study's webhook, as a sender claimed it from the issues table.

    ``expired``: its deadline passed before it was delivered; the claim gave it up
    (the sender only logs it).
    """

    id: int
    study: str
    spec: IssueSpec
    queued_utc: str
    attempts: int
    deadline_utc: str
    expired: bool = False
    last_error: str | None = None
