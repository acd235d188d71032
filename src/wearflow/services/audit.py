"""The audit trail of a study, for people: verify its chain against the anchors kept
outside the database, export it for an inspector."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any, Literal

from wearflow.anchors import (
    Anchor,
    Signature,
    anchor_store,
    anchored_heads,
    audit_key,
    read_anchor,
)
from wearflow.config import Study
from wearflow.state import State
from wearflow.state.audit import AuditEntry, VerifyReport, verify_entries


@dataclass(frozen=True)
class AuditCheck:
    """The outcome of re-computing a study's audit chain against its anchors.

    Attributes
    ----------
    report
        The chain, checked against ``anchor`` and the other anchors' heads.
    anchor
        The anchor checked in full (the latest stored one, or the one given); None when
        there is none yet.
    signature
        How ``anchor``'s signature fared; None for an anchor given as ``SEQ:HASH``.
    anchor_problem
        Why ``anchor`` cannot be trusted (unsigned or wrongly signed while the study has a
        key, another study's); None when it can.
    anchors
        How many anchors the chain was checked against.
    """

    study: str
    report: VerifyReport
    anchor: Anchor | None = None
    signature: Signature | None = None
    anchor_problem: str | None = None
    anchors: int = 0

    @property
    def ok(self) -> bool:
        return self.report.ok and self.anchor_problem is None

    def problem(self) -> str | None:
        """What is wrong, in one line; None when nothing is."""
        if not self.report.ok:
            return f"BROKEN at entry {self.report.first_bad_seq}: {self.report.reason}"
        if self.anchor_problem is not None:
            return f"BROKEN: {self.anchor_problem}"
        return None

    def anchor_text(self) -> str:
        """The anchor checked, in words."""
        a = self.anchor
        if a is None:
            return ("no anchor yet: nothing shows the newest entries were not cut off "
                    "(each run writes one)")
        if self.signature is None:
            return f"checked against the anchor given, head {a.seq}"
        signed = {"checked": "signature checked",
                  "unsigned": "unsigned (no key: catches truncation, not a re-hashed chain "
                              "whose anchors were rewritten too)",
                  "not checked (no key)": "signature not checked (no key here)"}[self.signature]
        return (f"checked against {self.anchors} anchor{'s' if self.anchors != 1 else ''}, "
                f"the latest {a.seq} written {a.written_utc} ({a.where}), {signed}")

    def to_json(self) -> dict[str, Any]:
        r, a = self.report, self.anchor
        return {"study": self.study, "ok": self.ok, "entries": r.entries,
                "first_bad_seq": r.first_bad_seq, "reason": r.reason or self.anchor_problem,
                "head_seq": r.head_seq, "head_hash": r.head_hash,
                "anchor": None if a is None else {
                    "seq": a.seq, "entry_hash": a.entry_hash, "written_utc": a.written_utc,
                    "run_id": a.run_id, "where": a.where, "signature": self.signature,
                    "problem": self.anchor_problem},
                "anchors_checked": self.anchors}


def verify_audit(study: Study, anchor: Anchor | None = None) -> AuditCheck:
    """Re-compute the chain; name the first edited, deleted, inserted or moved entry.

    The chain is checked against ``anchor`` (given by hand), else against the study's
    latest stored anchor (its content and signature) and every other stored anchor's
    head: entries cut off or re-hashed since show.

    Raises
    ------
    ConfigError
        The study names a key file that cannot be read.
    StorageError
        The anchors location cannot be read.
    """
    with State(study.state_url) as state:
        entries = state.audit.entries()
    return check_audit(study, entries, anchor)


def check_audit(study: Study, entries: Sequence[AuditEntry],
                anchor: Anchor | None = None) -> AuditCheck:
    """:func:`verify_audit` over ``entries`` already read."""
    key = audit_key(study)
    others: list[tuple[int, str]] = []
    if anchor is None:
        store = anchor_store(study)
        heads = anchored_heads(store)
        if heads:
            anchor, others = read_anchor(store, heads[-1]), heads[:-1]
    signature: Signature | None = None
    problem = None
    if anchor is not None and anchor.where != "given":
        signature, problem = anchor.check_signature(key)
        if problem is None and anchor.study != study.study:
            problem = f"anchor {anchor.where} is of study {anchor.study!r}"
    report = verify_entries(entries, None if anchor is None else (anchor.seq, anchor.entry_hash),
                            anchors=others)
    return AuditCheck(study.study, report, anchor, signature, problem,
                      len(others) + (anchor is not None))


def export_audit(study: Study, dest: str | os.PathLike[str] | IO[str],
                 fmt: Literal["csv", "json"]) -> None:
    """Write the whole trail, in order, as CSV or JSON to a file or stream."""
    with State(study.state_url) as state:
        state.audit.export(dest, fmt)
