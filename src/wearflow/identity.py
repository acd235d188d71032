"""Who acts on a study: users, their roles, their tokens, and the signer of an action.

Users live in each study's state database (:mod:`wearflow.state.users`). A user
gets a random token once (``wearflow users add``); only its sha256 is stored.
Roles are ordered: a viewer reads, an operator also acts (retry, exclude,
resolve), an admin also manages users. A manual action is signed: the signer
(authenticated user and role; or, unauthenticated, the name declared with the OS user
beside it), the time and the reason (the meaning of the signature) go into its audit
entry.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum

from wearflow.errors import ConfigError

TOKEN_PREFIX = "wf_"


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        """Whether this role may do what ``needed`` may (roles are ordered)."""
        order = list(Role)
        return order.index(self) >= order.index(needed)


def parse_role(text: str) -> Role:
    try:
        return Role(text.strip().lower())
    except ValueError:
        raise ConfigError(f"unknown role {text!r} (roles: {', '.join(Role)})",
                          subject="role") from None


def new_token() -> str:
    """A fresh token: 256 random bits, URL-safe."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_sha256(token: str) -> str:
    """What is stored of a token. A token carries 256 random bits, so a plain sha256 of
    it cannot be reversed by guessing (a password would need a slow hash; a token not)."""
    return hashlib.sha256(token.strip().encode()).hexdigest()


@dataclass(frozen=True)
class User:
    """A user of a study, as the state database keeps them (never their token)."""

    name: str
    role: Role
    created_utc: str
    created_by: str
    disabled_utc: str | None = None

    @property
    def active(self) -> bool:
        return self.disabled_utc is None


def unauthenticated_name(declared: str | None, os_user: str) -> str:
    """Someone not authenticated, in words: the name they declared, a claim, with the
    operating-system user beside it (``dr.ada (OS user root)``), or ``OS user root``."""
    if declared is None or declared == os_user:
        return f"OS user {os_user}"
    return f"{declared} (OS user {os_user})"


@dataclass(frozen=True)
class Signer:
    """Who signs a manual action, and how they were identified.

    ``method``: ``token`` (a user's token), ``proxy`` (an identity header set by a
    trusted reverse proxy) or ``os`` (no authentication: the study's ``identity`` or
    ``$WEARFLOW_USER`` as declared, else the operating-system user; ``os_user`` is the
    operating-system user, always recorded beside a declared name).
    """

    name: str
    role: Role | None
    method: str
    os_user: str | None = None

    @property
    def authenticated(self) -> bool:
        return self.method != "os"

    @property
    def actor(self) -> str:
        """The audit trail's actor."""
        if not self.authenticated:
            declared = None if self.name == self.os_user else self.name
            return "unauthenticated " + unauthenticated_name(declared,
                                                             self.os_user or self.name)
        return f"{self.name} ({self.role}, {self.method})"

    def signature(self, meaning: str) -> dict[str, str | None]:
        """What the audit entry records of the signature, besides its time."""
        signed: dict[str, str | None] = {
            "user": self.name, "role": None if self.role is None else str(self.role),
            "authenticated_by": self.method, "meaning": meaning}
        if not self.authenticated:
            signed["os_user"] = self.os_user
        return signed


def os_signer(declared: str | None, os_user: str) -> Signer:
    """The unauthenticated signer of a CLI action run without a token: the name declared
    (the study's ``identity`` or ``$WEARFLOW_USER``), else the OS user, with the OS user."""
    return Signer(declared or os_user, None, "os", os_user)
