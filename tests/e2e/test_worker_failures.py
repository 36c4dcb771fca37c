"""A real worker (`python -m boneage worker`, embedded mode: SQLite + filesystem
transport) facing what goes wrong in production: a task for an assessment that does not
exist, a registered checkpoint changed on disk, an upload gone from the file store.
Each job ends with a reason the user can read, and the worker keeps serving."""

from __future__ import annotations

import io
import time

import pytest

import migrations
from db.session import unit_of_work_factory
from helpers import authed_client, make_png, make_settings, read_queued_tasks, register
from services.queue import ASSESS_TASK, make_celery
from web import create_app

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(tmp_path):
    settings = make_settings(tmp_path)
    migrations.upgrade(settings.database_url)
    return settings


def declare_queues(settings) -> None:
    """Bind the queues, as a running worker does, so tasks sent before a worker starts
    are kept for it (the filesystem transport drops messages to unbound queues)."""
    celery = make_celery(settings)
    with celery.connection_for_write() as connection:
        for queue in celery.amqp.queues.values():
            queue(connection.default_channel).declare()


def submit(client, seed: int = 0) -> str:
    response = client.post(
        "/api/v1/assessments",
        data={"image": (io.BytesIO(make_png(seed=seed)), "hand.png"), "sex": "F", "age_years": "9"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.get_json()["id"]


def wait_for_log(worker, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in worker.log():
        assert worker.process.poll() is None, f"the worker exited:\n{worker.log()[-3000:]}"
        assert time.monotonic() < deadline, f"{text!r} not in the worker's log:\n{worker.log()[-3000:]}"
        time.sleep(0.25)


def assert_failure_shown(client, body: dict, reason: str) -> None:
    assert body["status"] == "failed"
    assert reason in body["error"] and "Traceback" not in body["error"]
    assert body["result"] is None
    response = client.get(body["page_url"])
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'id="failure-reason"' in page and reason in page
    assert "Traceback" not in page and 'File "' not in page
    assert 'id="result"' not in page


def test_an_unknown_assessment_id_is_logged_and_dropped_and_the_worker_keeps_serving(
    settings, tiny_model, start_worker, wait_finished
):
    register(settings, tiny_model)
    worker = start_worker(settings, "unknown-id-worker")
    unknown = "f" * 32
    make_celery(settings).send_task(ASSESS_TASK, args=[unknown], queue=settings.inference_queue)

    wait_for_log(worker, f"assessment {unknown} does not exist; dropping the task")
    with unit_of_work_factory(settings.database_url)() as uow:
        assert uow.assessments.get(unknown) is None  # nothing was created for it
        assert uow.assessments.count() == 0

    client = authed_client(create_app(settings))
    body = wait_finished(client, submit(client), timeout=120)
    assert body["status"] == "succeeded", f"{body['error']}\n{worker.log()[-3000:]}"
    assert worker.process.poll() is None
    assert read_queued_tasks(settings) == []  # the dropped task was acknowledged, not requeued
    assert worker.log().count(f"assessment {unknown} does not exist") == 1


def test_a_checkpoint_changed_after_registration_fails_the_job_with_the_reason(
    settings, tiny_model, start_worker, wait_finished
):
    model = register(settings, tiny_model)
    with model.checkpoint_path.open("ab") as checkpoint:
        checkpoint.write(b"tampered")  # the registered copy no longer has the registered hash
    client = authed_client(create_app(settings))
    worker = start_worker(settings, "changed-checkpoint-worker")

    body = wait_finished(client, submit(client), timeout=120)
    assert_failure_shown(client, body, "has changed since it was registered")
    assert model.name in body["error"]
    assert "loading model" not in worker.log()  # refused before torch.load
    assert worker.process.poll() is None


def test_an_upload_deleted_before_the_worker_runs_fails_the_job_with_the_reason(
    settings, tiny_model, start_worker, wait_finished
):
    register(settings, tiny_model)
    declare_queues(settings)
    client = authed_client(create_app(settings))
    assessment_id = submit(client)
    assert [name for name, _ in read_queued_tasks(settings)] == [ASSESS_TASK]
    with unit_of_work_factory(settings.database_url)() as uow:
        upload = settings.files_dir / uow.assessments.get(assessment_id).image_path
    assert upload.is_file()
    upload.unlink()

    worker = start_worker(settings, "deleted-upload-worker")
    body = wait_finished(client, assessment_id, timeout=120)
    assert_failure_shown(client, body, "missing from the file store")
    assert client.get(f"/api/v1/assessments/{assessment_id}/image.png").status_code == 404

    # The worker goes on: the same study submitted again is stored again and succeeds.
    body = wait_finished(client, submit(client), timeout=120)
    assert body["status"] == "succeeded", f"{body['error']}\n{worker.log()[-3000:]}"
