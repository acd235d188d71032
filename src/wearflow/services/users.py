"""``wearflow users``: the study's users and their roles, each change audited.

Who may manage users: an admin (with their token), or whoever can open the state
database without one (the unauthenticated OS user: the first admin is added so).
A token is returned once, when it is made; the audit trail never holds one.
"""

from __future__ import annotations

from wearflow.config import Study
from wearflow.errors import StateError
from wearflow.identity import Role, Signer, User, os_signer
from wearflow.provenance import current_user, declared_user
from wearflow.state import State


def _admin(study: Study, signer: Signer | None) -> Signer:
    signer = signer or os_signer(declared_user(study.identity), current_user())
    if signer.authenticated and signer.role is not Role.ADMIN:
        raise StateError(f"{signer.name} is a {signer.role}: managing users needs an admin",
                         subject="users")
    return signer


def add_user(study: Study, name: str, role: Role, signer: Signer | None = None) -> str:
    """Add a user with ``role``; return their token (shown once)."""
    who = _admin(study, signer)
    with State(study.state_url) as state:
        token = state.users.add(name, role, who.actor)
        state.audit.record(who.actor, "user.added", f"user {name.strip()}",
                           after={"role": role.value}, reason=f"added as {role.value}")
    return token


def list_users(study: Study) -> list[User]:
    with State(study.state_url) as state:
        return state.users.all()


def set_role(study: Study, name: str, role: Role, signer: Signer | None = None) -> User:
    who = _admin(study, signer)
    with State(study.state_url) as state:
        before = state.users.set_role(name, role)
        state.audit.record(who.actor, "user.role", f"user {name}",
                           before={"role": before.role.value}, after={"role": role.value},
                           reason=f"role set to {role.value}")
    return before


def disable_user(study: Study, name: str, signer: Signer | None = None) -> User:
    who = _admin(study, signer)
    with State(study.state_url) as state:
        before = state.users.disable(name)
        state.audit.record(who.actor, "user.disabled", f"user {name}",
                           before={"active": before.active}, after={"active": False},
                           reason="disabled")
    return before


def new_token(study: Study, name: str, signer: Signer | None = None) -> str:
    """Replace a user's token; return the new one (the old one stops working)."""
    who = _admin(study, signer)
    with State(study.state_url) as state:
        token = state.users.new_token(name)
        state.audit.record(who.actor, "user.token", f"user {name}",
                           after={"token": "replaced"}, reason="new token")
    return token
