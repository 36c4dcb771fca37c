"""The OpenAPI document at /api/v1/openapi.json says what the API sends.

The web tests check every /api/ response they get against the document (their apps
are `contract_checked`, see openapi_contract.py). These tests add what they do not
reach: finished jobs (a result with the model, the Greulich-Pyle comparison, the
timings and a heatmap; a failed job), that the checks do fail on an undocumented
field, and that the presenters' fields all survive the schemas.
"""

from __future__ import annotations

import io
import re

import pytest
from openapi_schema_validator import OAS30Validator

from core.status import JobStatus
from db.files import open_file_store
from db.models import ModelVersion
from db.session import unit_of_work_factory
from openapi_contract import api_document, check_body, check_response, contract_checked
from helpers import authed_client
from web import create_app
from web.presenters import assessment_json
from web.schemas import AssessmentSchema

ASSESSMENT = {"$ref": "#/components/schemas/Assessment"}


@pytest.fixture
def app(embedded_settings):
    return contract_checked(create_app(embedded_settings))


@pytest.fixture
def client(app):
    return authed_client(app)


def submit(client, png_bytes, **form) -> str:
    response = client.post(
        "/api/v1/assessments",
        data={"image": (io.BytesIO(png_bytes()), "hand.png"), "sex": "F", **form},
        content_type="multipart/form-data",
    )
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def succeed(settings, assessment_id: str, *, heatmap_png: bytes | None = None, bone_age_months: float = 121.34) -> None:
    """What a worker records for a successful run."""
    heatmap_path = open_file_store(settings).put_heatmap(f"{assessment_id}-1", heatmap_png) if heatmap_png else None
    with unit_of_work_factory(settings.database_url)() as uow:
        model = uow.models.get_by_name("demo-0123abcd") or uow.models.add(
            ModelVersion(name="demo-0123abcd", recipe="demo", checkpoint_path="demo.pt",
                         checkpoint_sha256="0123abcd" * 8, trained_on="synthetic")
        )
        started = uow.assessments.get(assessment_id).created_at
        assert uow.assessments.transition(assessment_id, JobStatus.RUNNING, started_at=started, queue_wait_seconds=0.25)
        assert uow.assessments.transition(
            assessment_id, JobStatus.SUCCEEDED, finished_at=started, bone_age_months=bone_age_months,
            stage="Child", heatmap_path=heatmap_path, model_version_id=model.id, inference_seconds=0.5,
        )
        uow.commit()


def fail(settings, assessment_id: str) -> None:
    with unit_of_work_factory(settings.database_url)() as uow:
        assert uow.assessments.transition(assessment_id, JobStatus.FAILED, error="The model could not be loaded.")
        uow.commit()


def test_finished_jobs_match_the_document(client, embedded_settings, png_bytes):
    with_age = submit(client, png_bytes, age_years="9", age_months="6", reference="S-17")
    without_age = submit(client, png_bytes, sex="M")
    failed = submit(client, png_bytes)
    succeed(embedded_settings, with_age, heatmap_png=png_bytes())
    succeed(embedded_settings, without_age, bone_age_months=200.0)
    fail(embedded_settings, failed)

    # The client checks each response against the document as it arrives.
    body = client.get(f"/api/v1/assessments/{with_age}").get_json()
    assert set(body["result"]["comparison"]) >= {"reference", "chronological_age", "reading_text"}
    assert body["result"]["model"]["not_for_clinical_use"] is True
    assert client.get(body["result"]["heatmap_url"]).mimetype == "image/png"
    assert client.get(f"/api/v1/assessments/{without_age}").get_json()["result"]["comparison"] is None
    assert client.get(f"/api/v1/assessments/{failed}").get_json()["status"] == "failed"
    listed = client.get("/api/v1/assessments?limit=500").get_json()["assessments"]
    assert {a["status"] for a in listed} == {"succeeded", "failed"}


def test_an_undocumented_field_fails_the_check(app, client, png_bytes):
    document = api_document(app)
    body = client.get(f"/api/v1/assessments/{submit(client, png_bytes)}").get_json()
    check_body(document, ASSESSMENT, body, "queued")
    with pytest.raises(AssertionError, match="attempts"):
        check_body(document, ASSESSMENT, {**body, "attempts": 1}, "with attempts")
    with pytest.raises(AssertionError, match="disclaimer"):
        check_body(document, ASSESSMENT, {k: v for k, v in body.items() if k != "disclaimer"}, "no disclaimer")


def test_an_undocumented_status_fails_the_check(app):
    accepted_as_200 = app.response_class("{}", status=200, mimetype="application/json")
    with pytest.raises(AssertionError, match="200 is not documented"):
        check_response(api_document(app), "POST", "/api/v1/assessments", accepted_as_200)


def test_the_schemas_drop_nothing_the_presenters_make(app, client, embedded_settings, png_bytes):
    """Responses are dumped through web.schemas, which drop keys they do not know:
    a field added to the presenters must be added to the schemas too."""
    queued = submit(client, png_bytes, birth_date="2012-01-15", study_date="2022-07-15")
    done = submit(client, png_bytes, age_years="11")
    succeed(embedded_settings, done, heatmap_png=png_bytes())
    with app.test_request_context(), unit_of_work_factory(embedded_settings.database_url)() as uow:
        for assessment_id in (queued, done):
            presented = assessment_json(uow.assessments.get(assessment_id))
            assert AssessmentSchema().dump(presented) == presented


def test_the_documented_submission_is_the_form(app, client):
    submission = api_document(app)["components"]["schemas"]["Submission"]
    page = client.get("/").get_data(as_text=True)
    form_fields = set(re.findall(r'<(?:input|select|textarea)[^>]*\bname="([^"]+)"', page))
    assert set(submission["properties"]) == form_fields - {"csrf_token"}  # the form's CSRF token (web.auth)
    assert submission["required"] == ["image", "sex"]


def test_the_document_is_served_and_its_schemas_are_valid(app, client):
    served = client.get("/api/v1/openapi.json")
    assert served.status_code == 200
    document = served.get_json()
    assert document == api_document(app) and document["openapi"] == "3.0.3"
    for name, schema in document["components"]["schemas"].items():
        OAS30Validator.check_schema(schema)
    operations = {op["operationId"] for path in document["paths"].values() for op in path.values() if "operationId" in op}
    # Other blueprints (audits, training) add their own; test_audits_web checks the audit ones.
    assert operations >= {"createAssessment", "listAssessments", "getAssessment", "getHeatmap", "getImage"}
