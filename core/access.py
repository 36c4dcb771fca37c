"""Roles and what each may do (torch-free; used by services and the web).

- submitter: submits studies and sees only their own;
- reader: sees the department's studies and records readings;
- admin: everything (models, datasets, training, users, audits).
"""

from __future__ import annotations

import enum
import hashlib
import secrets


class Role(str, enum.Enum):
    SUBMITTER = "submitter"
    READER = "reader"
    ADMIN = "admin"

    def __str__(self) -> str:
        return self.value


ROLE_VALUES = tuple(r.value for r in Role)
TOKEN_PREFIX = "bat_"  # "boneage access token": recognisable in logs and secret scanners


def sees_all_studies(role: str) -> bool:
    """Readers and admins see the department's studies; a submitter only their own."""
    return role in (Role.READER, Role.ADMIN)


def records_readings(role: str) -> bool:
    return role in (Role.READER, Role.ADMIN)


def is_admin(role: str) -> bool:
    return role == Role.ADMIN


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """What is stored for a token: its SHA-256 (a token is 256 random bits, so a fast hash
    is enough; only the holder ever sees the token itself)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_password() -> str:
    return secrets.token_urlsafe(15)
