"""Manual actions on a study, each with a mandatory reason and an audit-trail entry.

``retry`` puts a file's failed tasks back in the queue (``retry_missing``: the tasks
and participant results whose result folders are gone from storage), ``exclude`` keeps
a file out of processing and aggregation (``undo`` includes it again), ``resolve``
closes an issue by hand. They change the state database only; the next ``run`` (or
the watcher) acts on them.

Each is signed (:class:`wearflow.identity.Signer`): by an authenticated operator (a
token, from the CLI or the dashboard) or by the unauthenticated OS user; the audit
entry carries the signer, their role, how they were identified, the time and the
reason (the meaning of the signature).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wearflow.config import Study
from wearflow.errors import StateError
from wearflow.identity import Role, Signer, os_signer
from wearflow.provenance import current_user, declared_user
from wearflow.stages.outputs import lost_participant_results, lost_task_results
from wearflow.state import State
from wearflow.storage import Store


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
            raise StateError("the file has no failed task to retry (a result folder gone "
                             "from storage: `wearflow retry STUDY --missing`)", subject=f.uri)
        state.audit.record(who.actor, "manual.retry", f.uri,
                           before={"state": "failed"},
                           after=_signed({"state": "pending", "tasks": keys}, who, why),
                           reason=why)
        return keys


@dataclass(frozen=True)
class MissingRetried:
    """What ``retry_missing`` queued: the tasks whose result folders the next run writes
    again, and the participant results it writes again once their wrists are back."""

    tasks: tuple[str, ...]
    participant_results: tuple[str, ...]
    folders: tuple[str, ...]  # the folders gone, output-relative


def retry_missing(study: Study, reason: str, signer: Signer | None = None) -> MissingRetried:
    """Have the next run write again every result folder the state records that is gone
    from storage (deleted by hand): done tasks back to pending, participant results
    marked to be written again (from both wrists, as before). One audit entry names the
    folders."""
    why = _require(reason, "retry")
    who = _signer(study, signer, "retry")
    out = Store(study.output, study.storage_options)
    with State(study.state_url) as state:
        wrists = lost_task_results(state, out)
        people = lost_participant_results(state, out)
        tasks = state.tasks.retry_done([t.key for t, _ in wrists])
        results = state.results.rewrite([r.key for r in people])
        done = set(tasks) | set(results)
        folders = sorted({*(t.result_dir or "" for t, _ in wrists if t.key in done),
                          *(r.result_dir for r in people if r.key in done)})
        if not folders:
            raise StateError("no result folder the state records is missing",
                             subject=out.root_uri)
        state.audit.record(who.actor, "manual.retry", out.root_uri,
                           before={"missing": folders},
                           after=_signed({"tasks": tasks, "participant_results": results},
                                         who, why), reason=why)
    return MissingRetried(tuple(tasks), tuple(results), tuple(folders))


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
