"""Manual actions on a study, each with a mandatory reason and an audit-trail entry.

``retry`` puts a file's failed tasks back in the queue, ``exclude`` keeps a file
out of processing and aggregation (``undo`` includes it again), ``resolve`` closes an
issue by hand. They change the state database only; the next ``run`` (or the
watcher) acts on them.

Each is signed (:class:`wearflow.identity.Signer`): by an authenticated operator (a
token, from the CLI or the dashboard) or by the unauthenticated OS user; the audit
entry carries the signer, their role, how they were identified, the time and the
reason (the meaning of the signature).
"""

from __future__ import annotations

from typing import Any

from wearflow.config import Study
from wearflow.errors import StateError
from wearflow.identity import Role, Signer, os_signer
from wearflow.provenance import current_user, declared_user
from wearflow.state import State


def _require(reason: str, action: str) -> str:
    if not reason.strip():
        raise StateError("a reason is required for manual actions", subject=action)
    return reason.strip()


def _signer(study: Study, signer: Signer | None, action: str) -> Signer:
    signer = signer or os_signer(declared_user(study.identity), current_user())
    if signer.authenticated and (signer.role is None or not signer.role.allows(Role.OPERATOR)):
        raise StateError(f"{signer.name} is a {signer.role}: {action} needs an operator",
                         subject=action)
    return signer


def _signed(after: dict[str, Any], signer: Signer, why: str) -> dict[str, Any]:
    return {**after, "signature": signer.signature(why)}


def retry(study: Study, target: str, reason: str, signer: Signer | None = None) -> list[str]:
    """Failed tasks of file ``target`` (URI, path or name) back to pending; returns their keys."""
    why = _require(reason, "retry")
    who = _signer(study, signer, "retry")
    with State(study.state_url) as state:
        f = state.files.find_current(target)
        keys = state.tasks.retry_failed(f.id)
        if not keys:
            raise StateError("the file has no failed task to retry", subject=f.uri)
        state.audit.record(who.actor, "manual.retry", f.uri,
                           before={"state": "failed"},
                           after=_signed({"state": "pending", "tasks": keys}, who, why),
                           reason=why)
        return keys


def exclude(study: Study, target: str, reason: str, *, undo: bool = False,
            signer: Signer | None = None) -> str:
    """Exclude file ``target`` from processing and aggregation (or include it again)."""
    action = "include" if undo else "exclude"
    why = _require(reason, action)
    who = _signer(study, signer, action)
    with State(study.state_url) as state:
        f = state.files.find_current(target)
        previous = state.files.set_excluded(f.id, None if undo else why)
        state.audit.record(
            who.actor, f"manual.{action}", f.uri, before={"excluded": previous},
            after=_signed({"excluded": None if undo else why}, who, why), reason=why)
        return f.uri


def resolve(study: Study, issue_id: int, reason: str, signer: Signer | None = None) -> str:
    """Close issue ``issue_id`` by hand; it stays closed while its cause persists."""
    why = _require(reason, "resolve")
    who = _signer(study, signer, "resolve")
    with State(study.state_url) as state:
        row = state.issues.resolve(issue_id, why)
        state.audit.record(
            who.actor, "manual.resolve", f"issue {issue_id}",
            before={"open": True, "tag": row.tag, "message": row.message},
            after=_signed({"open": False}, who, why), reason=why)
        return row.message


def authenticate(study: Study, token: str) -> Signer:
    """The signer a token names in ``study`` (an active user), or a StateError."""
    with State(study.state_url) as state:
        user = state.users.authenticate(token)
    if user is None:
        raise StateError(f"the token is not an active user's of study {study.study}",
                         subject="token")
    return Signer(user.name, user.role, "token")
