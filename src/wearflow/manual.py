"""Manual actions on a study, each with a mandatory reason and an audit-trail entry.

``retry`` puts a file's failed tasks back in the queue, ``exclude`` keeps a file
out of processing and aggregation (``include`` undoes it), ``resolve`` closes an
issue by hand. They change the state database only; the next ``run`` (or the
watcher) acts on them.
"""

from __future__ import annotations

from wearflow.audit import AuditTrail, default_actor
from wearflow.config import Study
from wearflow.errors import StateError
from wearflow.state import State


def _require(reason: str, action: str) -> str:
    if not reason.strip():
        raise StateError("a reason is required for manual actions", subject=action)
    return reason.strip()


def retry(study: Study, target: str, reason: str) -> list[str]:
    """Failed tasks of file ``target`` (URI, path or name) back to pending; returns their keys."""
    why = _require(reason, "retry")
    state = State(study.state_url)
    try:
        f = state.find_current_file(target)
        keys = state.retry_file(f.id)
        if not keys:
            raise StateError("the file has no failed task to retry", subject=f.uri)
        AuditTrail(state.engine).record(default_actor(study.identity), "manual.retry", f.uri,
                                        before={"state": "failed"},
                                        after={"state": "pending", "tasks": keys}, reason=why)
        return keys
    finally:
        state.close()


def exclude(study: Study, target: str, reason: str, *, undo: bool = False) -> str:
    """Exclude file ``target`` from processing and aggregation (or include it again)."""
    why = _require(reason, "include" if undo else "exclude")
    state = State(study.state_url)
    try:
        f = state.find_current_file(target)
        previous = state.set_excluded(f.id, None if undo else why)
        AuditTrail(state.engine).record(
            default_actor(study.identity), "manual.include" if undo else "manual.exclude",
            f.uri, before={"excluded": previous}, after={"excluded": None if undo else why},
            reason=why)
        return f.uri
    finally:
        state.close()


def resolve(study: Study, issue_id: int, reason: str) -> str:
    """Close issue ``issue_id`` by hand; it stays closed while its cause persists."""
    why = _require(reason, "resolve")
    state = State(study.state_url)
    try:
        row = state.resolve_issue(issue_id, why)
        AuditTrail(state.engine).record(
            default_actor(study.identity), "manual.resolve", f"issue {issue_id}",
            before={"open": True, "tag": row.tag, "message": row.message},
            after={"open": False}, reason=why)
        return row.message
    finally:
        state.close()
