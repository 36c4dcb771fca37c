"""POST /api/v1/dicom/tags reads a DICOM file's sex, dates and age for the form, and
stores nothing: no row, no file, no queued task (issue 11)."""

from __future__ import annotations

import io

import pytest

from helpers import authed_client, database_rows, make_dicom, make_png, read_queued_tasks, stored_files
from openapi_contract import contract_checked
from web import create_app

URL = "/api/v1/dicom/tags"


@pytest.fixture
def app(embedded_settings):
    return contract_checked(create_app(embedded_settings))


@pytest.fixture
def client(app):
    return authed_client(app, "submitter")


def _post(client, data: bytes, name: str = "hand.dcm"):
    return client.post(URL, data={"image": (io.BytesIO(data), name)}, content_type="multipart/form-data")


def _state(settings) -> tuple:
    rows = database_rows(settings.database_url)
    rows.pop("api_tokens", None)  # its last_used_at changes with every request
    return rows, stored_files(settings.files_dir), read_queued_tasks(settings)


def test_the_tags_are_read_and_nothing_is_stored(app, client, embedded_settings):
    before = _state(embedded_settings)
    response = _post(client, make_dicom(photometric="MONOCHROME1", modality="CR", PatientName="Doe^Jane",
                                        PatientID="MRN-4711", PatientSex="F", PatientBirthDate="20140327",
                                        StudyDate="20241103"))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body == {"sex": "F", "birth_date": "2014-03-27", "study_date": "2024-11-03",
                    "chronological_age_months": 127.28, "modality": "CR", "photometric_interpretation": "MONOCHROME1"}
    assert "Doe" not in response.get_data(as_text=True) and "MRN-4711" not in response.get_data(as_text=True)
    after = _state(embedded_settings)
    assert after == before  # no row, no file, no task
    assert after[1] == {} and after[2] == [] and after[0]["assessments"] == []


def test_missing_tags_are_nulls(client):
    response = _post(client, make_dicom())
    assert response.status_code == 200
    body = response.get_json()
    assert body["sex"] is None and body["birth_date"] is None and body["study_date"] is None
    assert body["chronological_age_months"] is None and body["modality"] == "DX"


@pytest.mark.parametrize("data, message", [
    (make_png(), "not a DICOM file"),
    (make_dicom(frames=2, PatientSex="F"), "2 frames"),
    (make_dicom(photometric="PALETTE COLOR"), "colour"),
    (b"", "Choose a DICOM file"),
])
def test_a_file_that_cannot_be_assessed_gets_a_400_with_the_reason_and_nothing_is_stored(
        client, embedded_settings, data, message):
    before = _state(embedded_settings)
    response = _post(client, data)
    assert response.status_code == 400
    assert message in response.get_json()["fields"]["image"]
    assert _state(embedded_settings) == before


def test_it_needs_a_login_and_is_in_the_openapi_document(app, client):
    anonymous = app.test_client().post(URL, data={"image": (io.BytesIO(make_dicom()), "x.dcm")},
                                       content_type="multipart/form-data")
    assert anonymous.status_code == 401
    document = client.get("/api/v1/openapi.json").get_json()
    operation = document["paths"][URL]["post"]
    assert operation["operationId"] == "readDicomTags"
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/DicomTags"}
