"""Submitting through the form and the API: the row is committed, the file stored by
hash and the task queued by name with the id (no worker runs in these tests)."""

from __future__ import annotations

import hashlib
import re

import pytest

from db.session import unit_of_work_factory
from openapi_contract import contract_checked
from helpers import authed_client
from web import create_app


@pytest.fixture
def app(embedded_settings):
    return contract_checked(create_app(embedded_settings))


@pytest.fixture
def client(app):
    return authed_client(app)


def stored_files(settings):
    return sorted(p for p in settings.files_dir.rglob("*") if p.is_file())


def test_form_page_offers_the_fields(client):
    page = client.get("/").get_data(as_text=True)
    for name in ("image", "sex", "age_years", "age_months", "birth_date", "study_date", "reference"):
        assert f'name="{name}"' in page
    assert "not a diagnosis" in page


def declare_all_queues(app):
    """Bind every queue, as a worker consuming all of them would."""
    celery = app.extensions["celery"]
    with celery.connection_for_write() as connection:
        for queue in celery.amqp.queues.values():
            queue(connection.default_channel).declare()


def test_form_submission_commits_stores_and_queues(app, client, embedded_settings, png_bytes, queued_tasks):
    declare_all_queues(app)
    data = png_bytes()
    response = client.post(
        "/assessments",
        data={"image": (_io(data), "hand.png"), "sex": "F", "age_years": "9", "age_months": "6", "reference": "S-17"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 303
    assessment_id = re.fullmatch(r"/assessments/([0-9a-f]{32})", response.headers["Location"]).group(1)

    with unit_of_work_factory(embedded_settings.database_url)() as uow:
        row = uow.assessments.get(assessment_id)
        assert (row.status, row.sex, row.chronological_age_months, row.reference) == ("queued", "F", 114.0, "S-17")
        assert row.image_sha256 == hashlib.sha256(data).hexdigest()
        assert (embedded_settings.files_dir / row.image_path).read_bytes() == data
    assert queued_tasks(embedded_settings) == [("boneage.assess", [assessment_id])]
    assert queued_tasks(embedded_settings, embedded_settings.cpu_queue) == []  # delivered once

    page = client.get(f"/assessments/{assessment_id}").get_data(as_text=True)
    assert "Queued" in page and "assessment.js" in page and "S-17" in page
    assert client.get(f"/api/v1/assessments/{assessment_id}/image.png").data == data
    assert assessment_id in client.get("/assessments").get_data(as_text=True)


def test_api_submission_returns_202_with_id_and_url(client, embedded_settings, png_bytes, queued_tasks):
    response = client.post(
        "/api/v1/assessments",
        data={"image": (_io(png_bytes()), "hand.png"), "sex": "male", "birth_date": "2012-01-15", "study_date": "2022-07-15"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "queued"
    assert body["url"] == f"/api/v1/assessments/{body['id']}" == response.headers["Location"]
    assert body["sex"] == "M"
    assert body["chronological_age_months"] == pytest.approx(126.0, abs=0.1)
    assert body["result"] is None
    assert queued_tasks(embedded_settings) == [("boneage.assess", [body["id"]])]

    status = client.get(body["url"]).get_json()
    assert (status["id"], status["status"]) == (body["id"], "queued")
    missing = client.get(f"{body['url']}/heatmap.png")
    assert missing.status_code == 404 and "queued" in missing.get_json()["error"]
    listed = client.get("/api/v1/assessments").get_json()["assessments"]
    assert [a["id"] for a in listed] == [body["id"]]


def test_same_image_twice_is_stored_once(client, embedded_settings, png_bytes):
    for _ in range(2):
        response = client.post(
            "/api/v1/assessments",
            data={"image": (_io(png_bytes()), "hand.png"), "sex": "F"},
            content_type="multipart/form-data",
        )
        assert response.status_code == 202
    # One upload and its one working copy (a small PNG is its own display copy).
    assert [p.parent.parent.name for p in stored_files(embedded_settings)] == ["uploads", "working"]


def test_openapi_document_describes_the_api(client):
    document = client.get("/api/v1/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    post = document["paths"]["/api/v1/assessments"]["post"]
    assert "202" in post["responses"] and "413" in post["responses"]
    assert set(document["paths"]) >= {
        "/api/v1/assessments/{assessment_id}",
        "/api/v1/assessments/{assessment_id}/heatmap.png",
        "/api/v1/assessments/{assessment_id}/image.png",
    }


def test_healthz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_api_on_postgres_and_redis(service_settings, png_bytes, queued_tasks):
    app = contract_checked(create_app(service_settings))
    declare_all_queues(app)
    client = authed_client(app)
    response = client.post(
        "/api/v1/assessments",
        data={"image": (_io(png_bytes()), "hand.png"), "sex": "F"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 202, response.get_json()
    assessment_id = response.get_json()["id"]
    assert queued_tasks(service_settings) == [("boneage.assess", [assessment_id])]
    assert queued_tasks(service_settings, service_settings.cpu_queue) == []  # delivered once
    with unit_of_work_factory(service_settings.database_url)() as uow:
        assert uow.assessments.get(assessment_id).status == "queued"


def _io(data: bytes):
    import io

    return io.BytesIO(data)
