"""core.dates.parse_when: one parser for the CLI's --since/--until and the API's since/until."""

from datetime import datetime, timezone

import pytest

from core.dates import parse_when
from core.errors import UserFacingError


def test_dates_and_times_default_to_utc_and_blank_is_none():
    assert parse_when("2026-11-28", "since") == datetime(2026, 11, 28, tzinfo=timezone.utc)
    assert parse_when("2026-11-28T14:00+01:00", "since").utcoffset().total_seconds() == 3600
    assert parse_when("", "since") is None and parse_when(None, "since") is None


def test_a_bad_value_names_the_field():
    with pytest.raises(UserFacingError, match=r"--until must be an ISO 8601 date or time.*'yesterday'"):
        parse_when("yesterday", "--until")
