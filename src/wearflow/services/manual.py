"""Manual actions on a study, each with a mandatory reason and an audit-trail entry.

``retry`` puts a file's failed tasks back in the queue, ``exclude`` keeps a file
out of processing and aggregation (``undo`` includes it again), ``resolve`` closes an
issue by hand. They change the state database only; the next ``run`` (or the
watcher) acts on them.
"""

from __future__ import annotations

from wearflow.config import Study
from wearflow.errors import StateError
from wearflow.provenance import default_actor
from wearflow.state import State


def _require(reason: str, action: str) -> str:
    if not reason.strip():
        raise StateError("a reason is required for manual actions", subject=action)
    return reason.strip()


def retry(study: Study, target: str, reason: str) -> list[str]:
    """Failed tasks of file ``target`` (URI, path or name) back to pending; returns their keys."""
    why = _require(reason, "retry")
    with State(study.state_url) as state:
        f = state.files.find_current(target)
        keys = state.tasks.retry_failed(f.id)
        if not keys:
            raise StateError("the file has no failed task to retry", subject=f.uri)
        state.audit.record(default_actor(study.identity), "manual.retry", f.uri,
                           before={"state": "failed"},
                           after={"state": "pending", "tasks": keys}, reason=why)
        return keys


def exclude(study: Study, target: str, reason: str, *, undo: bool = False) -> str:
    """Exclude file ``target`` from processing and aggregation (or include it again)."""
    why = _require(reason, "include" if undo else "exclude")
    with State(study.state_url) as state:
        f = state.files.find_current(target)
        previous = state.files.set_excluded(f.id, None if undo else why)
        state.audit.record(
            default_actor(study.identity), "manual.include" if undo else "manual.exclude",
            f.uri, before={"excluded": previous}, after={"excluded": None if undo else why},
            reason=why)
        return f.uri


def resolve(study: Study, issue_id: int, reason: str) -> str:
    """Close issue ``issue_id`` by hand; it stays closed while its cause persists."""
    why = _require(reason, "resolve")
    with State(study.state_url) as state:
        row = state.issues.resolve(issue_id, why)
        state.audit.record(
            default_actor(study.identity), "manual.resolve", f"issue {issue_id}",
            before={"open": True, "tag": row.tag, "message": row.message},
            after={"open": False}, reason=why)
        return row.message
