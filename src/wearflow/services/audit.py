"""The audit trail of a study, for people: verify its chain, export it for an inspector."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import IO, Any, Literal

from wearflow.config import Study
from wearflow.state import State
from wearflow.state.audit import VerifyReport


@dataclass(frozen=True)
class AuditCheck:
    """The outcome of re-computing a study's audit chain."""

    study: str
    report: VerifyReport

    @property
    def ok(self) -> bool:
        return self.report.ok

    def to_json(self) -> dict[str, Any]:
        r = self.report
        return {"study": self.study, "ok": r.ok, "entries": r.entries,
                "first_bad_seq": r.first_bad_seq, "reason": r.reason,
                "head_seq": r.head_seq, "head_hash": r.head_hash}


def verify_audit(study: Study, anchor: tuple[int, str] | None = None) -> AuditCheck:
    """Re-compute the chain; name the first edited, deleted, inserted or moved entry."""
    with State(study.state_url) as state:
        return AuditCheck(study.study, state.audit.verify(anchor))


def export_audit(study: Study, dest: str | os.PathLike[str] | IO[str],
                 fmt: Literal["csv", "json"]) -> None:
    """Write the whole trail, in order, as CSV or JSON to a file or stream."""
    with State(study.state_url) as state:
        state.audit.export(dest, fmt)
