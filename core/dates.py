"""Dates and times people type (CLI options, query parameters)."""

from __future__ import annotations

from datetime import datetime, timezone

from core.errors import UserFacingError


def parse_when(value: str | None, what: str) -> datetime | None:
    """An ISO 8601 date or time, UTC when no zone is given; None for a blank value."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise UserFacingError(
            f"{what} must be an ISO 8601 date or time, e.g. 2026-11-28 or 2026-11-28T14:00 (got {value[:40]!r})"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
