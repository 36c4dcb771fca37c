"""Readings through the result page's form, the JSON API and the CSV import: bad input
refused with a reason, nothing half-imported; every /api/ response checked against the
OpenAPI document."""

from __future__ import annotations

import io

import pytest

from core.status import JobStatus
from db.models import Assessment
from db.session import unit_of_work_factory
from openapi_contract import contract_checked
from helpers import authed_client
from web import create_app


@pytest.fixture
def app_and_ids(embedded_settings):
    uow = unit_of_work_factory(embedded_settings.database_url)
    ids = []
    with uow() as work:
        for index in range(3):
            ids.append(work.assessments.add(Assessment(
                image_sha256="0" * 64, image_path="uploads/x.png", sex="F", reference=f"STUDY-{index}",
                status=JobStatus.SUCCEEDED, bone_age_months=100.0 + index, stage="Child")).id)
        work.commit()
    return authed_client(contract_checked(create_app(embedded_settings))), uow, ids


def _readings(uow, assessment_id):
    with uow() as work:
        return [(r.reader, r.bone_age_months, r.method) for r in work.readings.for_assessment(assessment_id)]


def test_the_result_page_form_adds_a_reading_and_refuses_an_impossible_age(app_and_ids):
    client, uow, (first, *_) = app_and_ids
    page = client.get(f"/assessments/{first}").get_data(as_text=True)
    assert 'id="reading-form"' in page
    response = client.post(f"/assessments/{first}/readings", data={"bone_age_months": "98.5", "reader": "R1",
                                                                   "method": "TW3"})
    assert response.status_code == 303
    page = client.get(f"/assessments/{first}").get_data(as_text=True)
    assert 'id="readings-table"' in page and "98.5 months" in page and "TW3" in page

    response = client.post(f"/assessments/{first}/readings", data={"bone_age_months": "300", "reader": "R2"})
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert 'id="reading-errors"' in body and "Impossible age" in body
    response = client.post(f"/assessments/{first}/readings", data={"bone_age_months": "90", "reader": "R1"})
    assert response.status_code == 400 and "already has a reading" in response.get_data(as_text=True)
    assert _readings(uow, first) == [("R1", 98.5, "TW3")]


def test_the_api_adds_lists_and_refuses_readings(app_and_ids):
    client, uow, (first, second, _) = app_and_ids
    response = client.post(f"/api/v1/assessments/{first}/readings", json={"bone_age_months": 120, "reader": "R1"})
    assert response.status_code == 201 and response.get_json()["method"] == "GP"
    assert client.get(f"/api/v1/assessments/{first}/readings").get_json()["readings"][0]["bone_age_months"] == 120
    duplicate = client.post(f"/api/v1/assessments/{first}/readings", json={"bone_age_months": 121, "reader": "R1"})
    assert duplicate.status_code == 400 and "already has a reading" in duplicate.get_json()["fields"]["reader"]
    impossible = client.post(f"/api/v1/assessments/{second}/readings", json={"bone_age_months": -4, "reader": "R1"})
    assert impossible.status_code == 400 and "Impossible age" in impossible.get_json()["fields"]["bone_age_months"]
    unknown = client.post("/api/v1/assessments/nope/readings", json={"bone_age_months": 50, "reader": "R1"})
    assert unknown.status_code == 404
    assert _readings(uow, second) == []


def _csv(client, text):
    return client.post("/api/v1/readings/import", data={"file": (io.BytesIO(text.encode()), "readings.csv")},
                       content_type="multipart/form-data")


def test_a_csv_with_bad_rows_is_refused_row_by_row_and_nothing_is_imported(app_and_ids):
    client, uow, (first, second, third) = app_and_ids
    bad = (f"assessment,bone_age_months,reader\n{first},100,R1\nno-such-study,90,R1\n{second},999,R1\n"
           f"{third},80,R1\n{third},81,R1\n")
    response = _csv(client, bad)
    assert response.status_code == 400
    report = response.get_json()
    assert report["imported"] == 0 and report["rows"] == 5
    reasons = {e["row"]: e["error"] for e in report["errors"]}
    assert set(reasons) == {2, 3, 5}
    assert "Unknown assessment" in reasons[2] and "Impossible age" in reasons[3] and "Duplicate" in reasons[5]
    assert all(_readings(uow, i) == [] for i in (first, second, third))

    good = f"reference,bone_age_months,reader,method\nSTUDY-0,100,R1,GP\n{second},90,R2,tw3\n"
    good = good.replace("reference,", "assessment,")
    response = _csv(client, good)
    assert response.status_code == 201, response.get_json()
    assert response.get_json() == {"rows": 2, "imported": 2, "errors": []}
    assert _readings(uow, first) == [("R1", 100.0, "GP")] and _readings(uow, second) == [("R2", 90.0, "TW3")]
    again = _csv(client, good)
    assert again.status_code == 400 and len(again.get_json()["errors"]) == 2


def test_the_import_page_shows_the_reasons(app_and_ids):
    client, uow, (first, *_) = app_and_ids
    response = client.post("/readings/import", data={"file": (io.BytesIO(b"bone_age_months,reader\n1,R\n"), "x.csv")},
                           content_type="multipart/form-data")
    assert response.status_code == 400 and "Missing column" in response.get_data(as_text=True)
