"""When the S3 file store cannot be reached: a submission gets 503 with Retry-After and a
message saying to try again, and leaves no row and no queued task; a worker leaves its
job to be run again (not failed) - as when the database is away (docs/reliability.md).
The store is a private S3 server of this module (moto's server mode), stopped by the test;
"unreachable" is also a port where nothing listens."""

from __future__ import annotations

import io
import socket
from datetime import timedelta

import pytest

import migrations
from db.files import FileStoreUnavailable, open_file_store
from db.session import unit_of_work_factory
from helpers import S3Server, authed_client, make_settings, read_queued_tasks, register
from web import create_app


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@pytest.fixture
def unreachable_settings(tmp_path, s3_server):  # s3_server: its credentials in the environment
    settings = make_settings(tmp_path, BONEAGE_FILES_URL="s3://boneage/files", BONEAGE_S3_ENDPOINT_URL=closed_port_url())
    migrations.upgrade(settings.database_url)
    return settings


def test_a_submission_gets_503_and_leaves_nothing(unreachable_settings, png_bytes):
    settings = unreachable_settings
    client = authed_client(create_app(settings))
    response = client.post("/api/v1/assessments", data={"image": (io.BytesIO(png_bytes()), "hand.png"), "sex": "F"},
                           content_type="multipart/form-data")
    assert response.status_code == 503
    # 5 s, or the submission rate limit's window when Flask-Limiter's header is later
    assert int(response.headers["Retry-After"]) >= 5
    assert "file store cannot be reached" in response.get_json()["error"]
    assert "try again" in response.get_json()["error"]

    page = client.post("/assessments", data={"image": (io.BytesIO(png_bytes()), "hand.png"), "sex": "M"},
                       content_type="multipart/form-data")
    assert page.status_code == 503
    text = page.get_data(as_text=True)
    assert "file store cannot be reached" in text and "Traceback" not in text

    with unit_of_work_factory(settings.database_url)() as uow:
        assert uow.assessments.count() == 0
    assert read_queued_tasks(settings) == []


def test_a_worker_leaves_its_job_to_be_run_again(tmp_path, s3_server, tiny_model, png_bytes):
    from services.assessments import run_assessment
    from services.predictors import PredictorCache

    server = S3Server(tmp_path / "private-moto.log").start()
    try:
        settings = make_settings(tmp_path, BONEAGE_FILES_URL=server.new_bucket(),
                                 BONEAGE_S3_ENDPOINT_URL=server.endpoint_url)
        migrations.upgrade(settings.database_url)
        register(settings, tiny_model)
        client = authed_client(create_app(settings))
        response = client.post("/api/v1/assessments",
                               data={"image": (io.BytesIO(png_bytes(160)), "hand.png"), "sex": "F"},
                               content_type="multipart/form-data")
        assert response.status_code == 202
        assessment_id = response.get_json()["id"]
    finally:
        server.stop()  # the store goes away before the worker reads the study

    uow = unit_of_work_factory(settings.database_url)
    with pytest.raises(FileStoreUnavailable):
        run_assessment(assessment_id, uow=uow, files=open_file_store(settings), predictors=PredictorCache("cpu"),
                       lease=timedelta(seconds=360))
    with uow() as work:
        row = work.assessments.get(assessment_id)
        # still this attempt's: the recovery sweep runs it again once the lease runs out
        assert (row.status, row.attempts, row.error) == ("running", 1, None)
