"""User and API-token use cases (access control, issue 9).

Passwords are hashed with argon2 (argon2-cffi); API tokens are shown once and stored as
their SHA-256 (core.access.token_digest). Every function takes its unit-of-work factory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from core.access import ROLE_VALUES, Role, new_password, new_token, token_digest
from core.errors import UserFacingError
from db.user_models import ApiToken, User

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
MIN_PASSWORD = 10
_hasher = PasswordHasher()
# Verified against when the user does not exist, so a login takes as long either way.
_DUMMY_HASH = _hasher.hash("not a password of anyone")


class InvalidUser(UserFacingError):
    pass


@dataclass(frozen=True)
class Caller:
    """Who is asking, as the web and the CLI see a user (detached from any session)."""

    id: int
    username: str
    role: str
    active: bool = True

    @classmethod
    def of(cls, user: User) -> "Caller":
        return cls(id=user.id, username=user.username, role=user.role, active=user.active)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def add_user(username: str, role: str, *, uow, password: str | None = None) -> tuple[Caller, str]:
    """Create a user; returns it and the password (generated when none is given: shown once)."""
    username = (username or "").strip()
    if not USERNAME.match(username):
        raise InvalidUser("A username is 1-100 letters, digits, '.', '_', '@' or '-', starting with a letter or digit.")
    if role not in ROLE_VALUES:
        raise InvalidUser(f"Unknown role {role!r}; one of: {', '.join(ROLE_VALUES)}.")
    if password is None:
        password = new_password()
    elif len(password) < MIN_PASSWORD:
        raise InvalidUser(f"A password has at least {MIN_PASSWORD} characters.")
    with uow() as work:
        if work.users.get_by_username(username) is not None:
            raise InvalidUser(f"There is already a user {username!r}.")
        user = work.users.add(User(username=username, role=role, password_hash=hash_password(password)))
        work.commit()
        return Caller.of(user), password


def authenticate(username: str, password: str, *, uow) -> Caller | None:
    """The active user with this username and password, or None (the same for any failure)."""
    with uow() as work:
        user = work.users.get_by_username((username or "").strip()[:100])
        stored = user.password_hash if user is not None and user.password_hash else _DUMMY_HASH
        try:
            _hasher.verify(stored, password or "")
        except (VerificationError, InvalidHashError):
            return None
        if user is None or not user.active or not user.password_hash:
            return None
        if _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
        user.last_login_at = utcnow()
        work.commit()
        return Caller.of(user)


def get_user(user_id: int, *, uow) -> Caller | None:
    """The active user with this id (a session's user), or None."""
    with uow() as work:
        user = work.users.get(user_id)
        return Caller.of(user) if user is not None and user.active else None


def create_token(username: str, *, uow, label: str | None = None) -> tuple[int, str]:
    """A new API token for the user: (token id, the token). The token is shown only now."""
    token = new_token()
    with uow() as work:
        user = _user_or_error(work, username)
        if not user.active:
            raise InvalidUser(f"The user {username!r} is disabled.")
        row = work.tokens.add(ApiToken(user_id=user.id, token_hash=token_digest(token), label=(label or None) and label[:100]))
        work.commit()
        return row.id, token


def user_for_token(token: str, *, uow) -> Caller | None:
    """The active user holding this (unrevoked) token, or None."""
    if not token or len(token) > 200:
        return None
    with uow() as work:
        row = work.tokens.by_hash(token_digest(token))
        if row is None or row.revoked_at is not None or not row.user.active:
            return None
        return Caller.of(row.user)


def revoke_token(token_id: int, *, uow) -> None:
    with uow() as work:
        row = work.tokens.get(token_id)
        if row is None:
            raise InvalidUser(f"There is no token {token_id}.")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
        work.commit()


def disable_user(username: str, *, uow) -> None:
    """Disable a user: their sessions and tokens stop working at the next request."""
    with uow() as work:
        _user_or_error(work, username).active = False
        work.commit()


def list_users(*, uow) -> list[dict]:
    with uow() as work:
        return [
            {"id": u.id, "username": u.username, "role": u.role, "active": u.active,
             "created_at": u.created_at, "last_login_at": u.last_login_at,
             "tokens": sum(1 for t in work.tokens.for_user(u.id) if t.revoked_at is None)}
            for u in work.users.all()
        ]


def ensure_admin(*, uow, username: str = "admin") -> str | None:
    """On first start (no users at all) create an administrator and return its one-time
    password; None when users exist already."""
    with uow() as work:
        if work.users.count():
            return None
    _caller, password = add_user(username, Role.ADMIN, uow=uow)
    return password


def _user_or_error(work, username: str) -> User:
    user = work.users.get_by_username((username or "").strip())
    if user is None:
        raise InvalidUser(f"There is no user {username!r}.")
    return user
