"""Who is asking: a bearer token (API, scripts), a cookie session (pages), or an identity
header set by a trusted reverse proxy (single sign-on; off unless configured).

A session keeps the sha256 of the token it was opened with, never the token, and a
CSRF token that every form must send back. Users are looked up in the study's own
state database on every request, so disabling a user takes effect at once.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from fastapi import HTTPException, Request

from wearflow.config import Study
from wearflow.identity import Role, Signer, User
from wearflow.state import State

SESSION_TOKEN = "token_sha256"
SESSION_CSRF = "csrf"


@dataclass(frozen=True)
class Settings:
    """How ``serve`` identifies people. ``proxy_header``: the header a trusted reverse
    proxy sets to the user's name (e.g. ``X-Forwarded-User``); None: not trusted."""

    proxy_header: str | None = None


@dataclass(frozen=True)
class Who:
    user: User
    method: str  # token | session | proxy

def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def identify(request: Request, study: Study, settings: Settings) -> Who | None:
    """The active user behind the request in ``study``, or None."""
    with State(study.state_url) as state:
        token = bearer(request)
        if token is not None:
            user = state.users.authenticate(token)
            return None if user is None else Who(user, "token")
        digest = request.session.get(SESSION_TOKEN)
        if isinstance(digest, str):
            user = state.users.by_token_sha256(digest)
            if user is not None:
                return Who(user, "session")
        if settings.proxy_header:
            name = request.headers.get(settings.proxy_header, "").strip()
            if name:
                user = state.users.active(name)
                return None if user is None else Who(user, "proxy")
    return None


def require(request: Request, study: Study, settings: Settings, role: Role) -> Who:
    """The user, who must hold ``role``: 401 without an identity, 403 without the role."""
    who = identify(request, study, settings)
    if who is None:
        raise HTTPException(401, "authentication required: a bearer token or a session",
                            headers={"WWW-Authenticate": "Bearer"})
    if not who.user.role.allows(role):
        raise HTTPException(403, f"{who.user.name} is a {who.user.role}; this needs {role}")
    return who


def csrf_token(request: Request) -> str:
    """The session's CSRF token (made on first use)."""
    value = request.session.get(SESSION_CSRF)
    if not isinstance(value, str):
        value = secrets.token_urlsafe(24)
        request.session[SESSION_CSRF] = value
    return value


def check_csrf(request: Request, sent: str | None) -> None:
    """403 unless ``sent`` is the session's CSRF token."""
    expected = request.session.get(SESSION_CSRF)
    if not isinstance(expected, str) or not sent or not hmac.compare_digest(expected, sent):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")


def sign(study: Study, who: Who, token: str) -> Signer:
    """A manual action asks for the token again (the electronic signature): it must be
    the acting user's own, whatever identified them for reading."""
    if not token.strip():
        raise HTTPException(403, "enter your token to sign the action")
    with State(study.state_url) as state:
        user = state.users.authenticate(token)
    if user is None or user.name != who.user.name:
        raise HTTPException(403, "that is not your token: the action was not signed")
    return Signer(user.name, user.role, "token")
