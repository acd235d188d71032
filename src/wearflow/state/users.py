"""The study's users: names, roles, the sha256 of their tokens; never a token itself."""

from __future__ import annotations

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from wearflow.clock import utc_now
from wearflow.errors import StateError
from wearflow.identity import Role, User, new_token, token_sha256
from wearflow.state.tables import UserRow

_COLUMNS = (UserRow.name, UserRow.role, UserRow.created_utc, UserRow.created_by,
            UserRow.disabled_utc)


def _user(row: tuple[str, str, str, str, str | None]) -> User:
    return User(row[0], Role(row[1]), row[2], row[3], row[4])


class UserRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, name: str, role: Role, created_by: str) -> str:
        """Add a user; return their token (shown once: only its sha256 is kept)."""
        name = name.strip()
        if not name or len(name) > 128 or any(c.isspace() and c != " " for c in name):
            raise StateError("a user name needs 1 to 128 characters and no tabs or line "
                             "breaks", subject=repr(name))
        token = new_token()
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(UserRow).values(
                    name=name, role=role.value, token_sha256=token_sha256(token),
                    created_utc=utc_now(), created_by=created_by, disabled_utc=None))
        except IntegrityError:
            raise StateError("a user of this name exists (`wearflow users list`)",
                             subject=name) from None
        return token

    def all(self) -> list[User]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(*_COLUMNS).order_by(UserRow.name)).all()
        return [_user(tuple(r)) for r in rows]  # type: ignore[arg-type]

    def get(self, name: str) -> User:
        with self._engine.connect() as conn:
            row = conn.execute(select(*_COLUMNS).where(UserRow.name == name)).first()
        if row is None:
            raise StateError("no user of this name (`wearflow users list`)", subject=name)
        return _user(tuple(row))  # type: ignore[arg-type]

    def authenticate(self, token: str) -> User | None:
        """The active user whose token this is, or None."""
        if not token.strip():
            return None
        with self._engine.connect() as conn:
            row = conn.execute(select(*_COLUMNS).where(
                UserRow.token_sha256 == token_sha256(token),
                UserRow.disabled_utc.is_(None))).first()
        return None if row is None else _user(tuple(row))  # type: ignore[arg-type]

    def by_token_sha256(self, digest: str) -> User | None:
        """The active user with this token hash (a session keeps the hash, not the token)."""
        with self._engine.connect() as conn:
            row = conn.execute(select(*_COLUMNS).where(
                UserRow.token_sha256 == digest, UserRow.disabled_utc.is_(None))).first()
        return None if row is None else _user(tuple(row))  # type: ignore[arg-type]

    def active(self, name: str) -> User | None:
        """The active user of this name, or None (an identity set by a trusted proxy)."""
        with self._engine.connect() as conn:
            row = conn.execute(select(*_COLUMNS).where(
                UserRow.name == name, UserRow.disabled_utc.is_(None))).first()
        return None if row is None else _user(tuple(row))  # type: ignore[arg-type]

    def set_role(self, name: str, role: Role) -> User:
        before = self.get(name)
        with self._engine.begin() as conn:
            conn.execute(update(UserRow).where(UserRow.name == name).values(role=role.value))
        return before

    def disable(self, name: str) -> User:
        """Disable a user (their token stops working; the row stays for the audit)."""
        before = self.get(name)
        with self._engine.begin() as conn:
            conn.execute(update(UserRow).where(UserRow.name == name, UserRow.disabled_utc.is_(None))
                         .values(disabled_utc=utc_now()))
        return before

    def new_token(self, name: str) -> str:
        """Replace a user's token (a lost or leaked one); return the new one."""
        self.get(name)
        token = new_token()
        with self._engine.begin() as conn:
            conn.execute(update(UserRow).where(UserRow.name == name)
                         .values(token_sha256=token_sha256(token)))
        return token
