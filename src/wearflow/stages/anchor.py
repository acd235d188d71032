"""The last stage of a run: keep the audit trail's head outside the database.

:func:`anchor_trail` writes the head as a signed anchor (:mod:`wearflow.anchors`) when the
trail grew since the latest anchor, after checking that the entries appended since extend
that anchor link by link (reading only those). A trail that no longer extends its latest
anchor, or a latest anchor that fails its signature, is never anchored over: an ERROR log
line says so, and ``wearflow audit verify`` names what is wrong.
"""

from __future__ import annotations

import logging

from wearflow.anchors import (
    Anchor,
    anchor_store,
    anchored_heads,
    audit_key,
    read_anchor,
    write_anchor,
)
from wearflow.config import Study
from wearflow.errors import Tag, WearflowError
from wearflow.logs import log_event
from wearflow.state import State


def anchor_trail(study: Study, state: State, run_id: str) -> Anchor | None:
    """Anchor the trail's head for ``run_id`` (a run, or an alerts evaluation); the anchor
    written, or None (nothing new, or not anchored: logged). Never raises: the run's work
    is done, and `audit verify` reports the rest."""
    try:
        key = audit_key(study)
        store = anchor_store(study)
        heads = anchored_heads(store)
        head = state.audit.head()
        if head[0] == 0 or (heads and heads[-1] == head):
            return None
        if heads:
            latest = read_anchor(store, heads[-1])
            _, problem = latest.check_signature(key)
            if problem is not None:
                _refuse(study, problem)
                return None
            report = state.audit.verify_since(heads[-1])
        else:
            report = state.audit.verify()
        if not report.ok:
            _refuse(study, f"the trail is broken at entry {report.first_bad_seq}: "
                           f"{report.reason}")
            return None
        return write_anchor(study, (report.head_seq, report.head_hash), run_id, key)
    except WearflowError as exc:
        log_event(Tag.PIPELINE_ISSUE.value, f"audit trail not anchored: {exc.message}",
                  level=logging.ERROR, study=study.study, uri=exc.subject)
        return None


def _refuse(study: Study, why: str) -> None:
    log_event(Tag.ERROR.value, f"audit trail not anchored: {why}; run `wearflow audit "
              "verify`", level=logging.ERROR, study=study.study)
