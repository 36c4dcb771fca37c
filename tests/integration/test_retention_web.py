"""Retention on a real database and file store, seen through the API."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest

from core.status import JobStatus
from db.files import open_file_store
from db.models import utcnow
from db.session import unit_of_work_factory
from helpers import authed_client, make_png
from openapi_contract import contract_checked
from services.retention import delete_expired_images
from web import create_app


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request, embedded_settings):
    if request.param == "sqlite":
        return embedded_settings
    return request.getfixturevalue("service_settings")


def test_expired_images_are_deleted_and_the_api_says_why(settings):
    client = authed_client(contract_checked(create_app(settings)))
    response = client.post("/api/v1/assessments", data={"sex": "F", "image": (io.BytesIO(make_png(128)), "a.png")},
                           content_type="multipart/form-data")
    assessment_id = response.get_json()["id"]
    uow = unit_of_work_factory(settings.database_url)
    files = open_file_store(settings)
    long_ago = utcnow() - timedelta(days=40)
    with uow() as work:
        attempt = work.assessments.claim(work.assessments.get(assessment_id), now=long_ago, stale_before=long_ago)
        heatmap = files.put_heatmap(f"{assessment_id}-{attempt}", make_png(64))
        assert work.assessments.transition(assessment_id, JobStatus.SUCCEEDED, attempt=attempt, finished_at=long_ago,
                                           bone_age_months=101.0, stage="Child", heatmap_path=heatmap)
        work.commit()
        image_path = work.assessments.get(assessment_id).image_path
    assert client.get(f"/api/v1/assessments/{assessment_id}/image.png").status_code == 200

    assert delete_expired_images(uow=uow, files=files, retention=timedelta(days=30)) == [assessment_id]

    assert not files.exists(image_path) and not files.exists(heatmap)
    for kind in ("image", "heatmap"):
        gone = client.get(f"/api/v1/assessments/{assessment_id}/{kind}.png")
        assert gone.status_code == 404 and "retention policy" in gone.get_json()["error"]
    body = client.get(f"/api/v1/assessments/{assessment_id}").get_json()
    assert body["result"]["bone_age_months"] == 101.0 and body["images_deleted_at"] is not None
    page = client.get(f"/assessments/{assessment_id}").get_data(as_text=True)
    assert "deleted on" in page and "retention policy" in page and 'id="original"' not in page
