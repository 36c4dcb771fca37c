"""The upload checks (core.submission), without the web app around them."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from core.submission import MAX_AGE_YEARS, InvalidSubmission, parse_submission
from helpers import make_png


def errors_of(form, image=b"use-png"):
    with pytest.raises(InvalidSubmission) as caught:
        parse_submission(form, make_png() if image == b"use-png" else image)
    return caught.value.errors


def test_a_valid_submission_with_years_and_months():
    s = parse_submission({"sex": "female", "age_years": "10", "age_months": "3", "reference": "S-1"}, make_png())
    assert (s.sex, s.chronological_age_months, s.reference) == ("F", 123.0, "S-1")


def test_the_age_from_dates_in_months():
    s = parse_submission({"sex": "M", "birth_date": "2014-01-01", "study_date": "2024-01-01"}, make_png())
    assert s.chronological_age_months == pytest.approx(3652 / (365.25 / 12), abs=0.01)


def test_no_age_is_allowed_and_blank_fields_count_as_missing():
    s = parse_submission({"sex": "M", "age_years": " ", "reference": ""}, make_png())
    assert s.chronological_age_months is None and s.reference is None


@pytest.mark.parametrize(
    "form, field, message",
    [
        ({}, "sex", "Choose the patient's sex"),
        ({"sex": "X"}, "sex", "Sex must be M or F"),
        ({"sex": "M", "age_years": "ten"}, "age", "whole number"),
        ({"sex": "M", "age_years": "-1"}, "age", "cannot be negative"),
        ({"sex": "M", "age_years": "3", "age_months": "12"}, "age", "between 0 and 11"),
        ({"sex": "M", "age_years": str(MAX_AGE_YEARS), "age_months": "1"}, "age", f"at most {MAX_AGE_YEARS} years"),
        ({"sex": "M", "age_years": "3", "birth_date": "2020-01-01"}, "age", "not both"),
        ({"sex": "M", "birth_date": "2020-01-01"}, "age", "both the date of birth and the study date"),
        ({"sex": "M", "birth_date": "2020-01-01", "study_date": "2019-01-01"}, "age", "before the date of birth"),
        ({"sex": "M", "birth_date": "2020-13-01", "study_date": "2021-01-01"}, "age", "like 2014-03-27"),
        ({"sex": "M", "reference": "Jane <Doe>"}, "reference", "pseudonymous"),
    ],
)
def test_each_invalid_field_gets_its_own_message(form, field, message):
    errors = errors_of(form)
    assert list(errors) == [field] and message in errors[field]


def test_a_study_date_in_the_future_is_refused():
    tomorrow_plus = (date.today() + timedelta(days=3)).isoformat()
    assert "in the future" in errors_of({"sex": "F", "birth_date": "2020-01-01", "study_date": tomorrow_plus})["age"]


@pytest.mark.parametrize(
    "image, message",
    [(None, "Choose a radiograph"), (b"", "is empty"), (b"not an image at all", "not a readable radiograph")],
)
def test_the_image_is_checked_before_anything_is_stored(image, message):
    assert message in errors_of({"sex": "F"}, image)["image"]


def test_all_problems_are_reported_at_once():
    assert set(errors_of({"sex": "", "age_months": "13"}, None)) == {"image", "sex", "age"}
