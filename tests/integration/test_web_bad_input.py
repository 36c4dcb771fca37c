"""Bad input gets a 4xx with a message a person understands, through the API (JSON)
and the form (the form again, with the message), and leaves no row, no file and
no queued task behind."""

from __future__ import annotations

import io
from datetime import date, timedelta

import pytest

from db.session import unit_of_work_factory
from openapi_contract import contract_checked
from helpers import authed_client
from web import create_app

TOMORROW_PLUS = (date.today() + timedelta(days=10)).isoformat()


def _truncated(png: bytes) -> bytes:
    return png[: len(png) // 2]


# (id, form fields, image bytes or None for no file, filename, expected field, words in the message)
CASES = [
    ("no-file", {"sex": "F"}, None, None, "image", "choose a radiograph"),
    ("no-file-chosen", {"sex": "F"}, b"", "", "image", "choose a radiograph"),
    ("empty-file", {"sex": "F"}, b"", "hand.png", "image", "empty"),
    ("text-named-png", {"sex": "F"}, b"patient: Jane Doe\nhello\n", "hand.png", "image", "not an image we can read"),
    ("truncated-png", {"sex": "F"}, "truncated", "hand.png", "image", "damaged or truncated"),
    ("missing-sex", {}, "png", "hand.png", "sex", "choose the patient's sex"),
    ("invalid-sex", {"sex": "X"}, "png", "hand.png", "sex", "must be m or f"),
    ("negative-age", {"sex": "F", "age_years": "-2"}, "png", "hand.png", "age", "cannot be negative"),
    ("age-over-25", {"sex": "M", "age_years": "31"}, "png", "hand.png", "age", "at most 25 years"),
    ("months-over-11", {"sex": "M", "age_years": "3", "age_months": "14"}, "png", "hand.png", "age", "between 0 and 11"),
    ("age-not-a-number", {"sex": "M", "age_years": "ten"}, "png", "hand.png", "age", "whole number"),
    (
        "study-before-birth",
        {"sex": "F", "birth_date": "2015-05-01", "study_date": "2014-05-01"},
        "png", "hand.png", "age", "before the date of birth",
    ),
    (
        "dates-over-25-years",
        {"sex": "F", "birth_date": "1980-05-01", "study_date": "2020-05-01"},
        "png", "hand.png", "age", "at most 25 years",
    ),
    ("study-in-future", {"sex": "F", "birth_date": "2015-05-01", "study_date": TOMORROW_PLUS}, "png", "hand.png", "age", "future"),
    ("only-birth-date", {"sex": "F", "birth_date": "2015-05-01"}, "png", "hand.png", "age", "both the date of birth"),
    ("bad-date", {"sex": "F", "birth_date": "01/05/2015", "study_date": "2020-01-01"}, "png", "hand.png", "age", "date like"),
    (
        "age-two-ways",
        {"sex": "F", "age_years": "5", "birth_date": "2015-05-01", "study_date": "2020-05-01"},
        "png", "hand.png", "age", "not both",
    ),
    ("reference-with-newline", {"sex": "F", "reference": "a\nb"}, "png", "hand.png", "reference", "pseudonymous"),
]


@pytest.fixture
def app(embedded_settings):
    return contract_checked(create_app(embedded_settings))


def _post(client, url, fields, image, filename):
    data = dict(fields)
    if image is not None:
        data["image"] = (io.BytesIO(image), filename)
    return client.post(url, data=data, content_type="multipart/form-data")


def _resolve(image, png_bytes):
    if image == "png":
        return png_bytes()
    if image == "truncated":
        return _truncated(png_bytes(size=256))
    return image


def assert_nothing_left(settings, queued_tasks):
    with unit_of_work_factory(settings.database_url)() as uow:
        assert uow.assessments.count() == 0, "a row was left behind"
    assert [p for p in settings.files_dir.rglob("*") if p.is_file()] == [], "a file was left behind"
    assert queued_tasks(settings) == [], "a task was queued"


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_api_refuses_bad_input(case, app, embedded_settings, png_bytes, queued_tasks):
    _, fields, image, filename, field, words = case
    response = _post(authed_client(app), "/api/v1/assessments", fields, _resolve(image, png_bytes), filename)
    assert response.status_code == 400
    body = response.get_json()
    assert field in body["fields"]
    assert words in body["fields"][field].lower()
    assert "Traceback" not in response.get_data(as_text=True)
    assert_nothing_left(embedded_settings, queued_tasks)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_form_shows_bad_input_on_the_form(case, app, embedded_settings, png_bytes, queued_tasks):
    _, fields, image, filename, field, words = case
    response = _post(authed_client(app), "/assessments", fields, _resolve(image, png_bytes), filename)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'id="assessment-form"' in page and 'id="form-errors"' in page
    assert f'data-field="{field}"' in page
    assert words in page.lower().replace("&#39;", "'")
    assert_nothing_left(embedded_settings, queued_tasks)


@pytest.mark.parametrize("url, json", [("/api/v1/assessments", True), ("/assessments", False)])
def test_oversized_upload_is_a_clear_413(url, json, tmp_path, png_bytes, queued_tasks):
    import migrations
    from core.settings import Settings

    settings = Settings.from_env({"BONEAGE_VAR_DIR": str(tmp_path / "var"), "BONEAGE_MAX_UPLOAD_MB": "0.05"})
    settings.ensure_dirs()
    migrations.upgrade(settings.database_url)
    big = png_bytes(size=400)  # noise does not compress: ~160 kB > 50 kB
    assert len(big) > settings.max_upload_bytes
    response = _post(authed_client(contract_checked(create_app(settings))), url, {"sex": "F"}, big, "hand.png")
    assert response.status_code == 413
    text = response.get_data(as_text=True)
    assert "too large" in text and "0.05 MB" in text
    if json:
        assert "too large" in response.get_json()["error"]
    else:
        assert 'id="assessment-form"' in text
    assert_nothing_left(settings, queued_tasks)
