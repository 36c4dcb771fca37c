"""The model's own checks shown with the result: the notes the worker stores from the
Prediction (assessments.result_notes, e.g. that a film was turned upright) on the result
page, in the printable report and in the API; the OOD score (assessments.ood_score) in the
API only. Results are written through the repository as the worker writes them (no model,
no worker), on a migrated SQLite database; every /api/ response is checked against the
OpenAPI document.
"""

from __future__ import annotations

import re

import pytest

import migrations
from core.status import JobStatus
from db.models import Assessment, ModelVersion, utcnow
from db.session import unit_of_work_factory
from helpers import authed_client, make_settings
from openapi_contract import api_document, contract_checked
from web import create_app

TURNED = "the film was upside down and was turned upright before assessment"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    settings = make_settings(tmp_path_factory.mktemp("result-notes"))
    migrations.upgrade(settings.database_url)
    uow_factory = unit_of_work_factory(settings.database_url)
    with uow_factory() as uow:
        model = uow.models.add(ModelVersion(
            name="demo-0123abcd", recipe="demo", checkpoint_path="/models/demo/model.pt",
            checkpoint_sha256="0123abcd" + "0" * 56, trained_on="synthetic", is_active=True))
        uow.commit()
        model_id = model.id

    def put(notes, ood_score) -> str:
        with uow_factory() as uow:
            assessment = uow.assessments.add(Assessment(
                image_sha256="a" * 64, image_path="uploads/aa/a.png", sex="F", chronological_age_months=120.0,
                reference="NOTES-1"))
            uow.commit()
            now = utcnow()
            attempt = uow.assessments.claim(assessment, now=now, stale_before=now)
            assert uow.assessments.transition(
                assessment.id, JobStatus.SUCCEEDED, attempt=attempt, finished_at=utcnow(), bone_age_months=124.4,
                stage="Child", model_version_id=model_id, inference_seconds=0.5,
                ood_score=ood_score, result_notes=notes)
            uow.commit()
            return assessment.id

    ids = {"turned": put([TURNED], 0.73214), "plain": put(None, None)}
    client = authed_client(contract_checked(create_app(settings)))
    return client, ids


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace(" .", ".")


def _element(html: str, element_id: str) -> str | None:
    found = re.search(rf'<dd id="{element_id}">(.*?)</dd>', html, re.S)
    return _text(found.group(1)).strip() if found else None


def test_the_api_returns_the_notes_and_the_ood_score(world):
    client, ids = world
    result = client.get(f"/api/v1/assessments/{ids['turned']}").get_json()["result"]
    assert result["notes"] == [TURNED]
    assert result["ood_score"] == 0.732  # 0.73214 to 3 decimals
    plain = client.get(f"/api/v1/assessments/{ids['plain']}").get_json()["result"]
    assert plain["notes"] == [] and plain["ood_score"] is None
    listed = client.get("/api/v1/assessments").get_json()["assessments"]
    assert {a["id"]: a["result"]["notes"] for a in listed} == {ids["turned"]: [TURNED], ids["plain"]: []}


def test_the_document_describes_both_fields(world):
    client, _ids = world
    result = api_document(client.application)["components"]["schemas"]["Result"]["properties"]
    assert result["notes"]["type"] == "array" and result["notes"]["items"]["type"] == "string"
    assert result["ood_score"]["nullable"] is True
    assert "out-of-distribution" in result["ood_score"]["description"]
    assert "threshold" in result["ood_score"]["description"] and "metadata" in result["ood_score"]["description"]


def test_the_result_page_shows_the_note(world):
    client, ids = world
    html = client.get(f"/assessments/{ids['turned']}").get_data(as_text=True)
    assert _element(html, "result-notes") == ("The film was upside down and was turned upright before "
                                              "assessment.")
    assert "0.73" not in html  # the OOD score is for the API only
    plain = client.get(f"/assessments/{ids['plain']}").get_data(as_text=True)
    assert 'id="result-notes"' not in plain and "Before assessment" not in plain


def test_the_report_shows_the_note(world):
    client, ids = world
    html = client.get(f"/assessments/{ids['turned']}/report").get_data(as_text=True)
    assert _element(html, "report-notes") == ("The film was upside down and was turned upright before "
                                              "assessment.")
    assert "Before assessment" in _text(html) and "0.73" not in html
    plain = client.get(f"/assessments/{ids['plain']}/report").get_data(as_text=True)
    assert 'id="report-notes"' not in plain
