"""Jobs that lost their message are found in the database and run by a real worker:
one whose web process died between the commit and the send, and one whose worker was
killed while running it. The worker runs the recovery sweep when it starts."""

from __future__ import annotations

from datetime import timedelta

import pytest

import migrations
from core.status import JobStatus
from db.files import open_file_store
from db.models import Assessment, utcnow
from db.session import unit_of_work_factory
from helpers import make_png, make_settings, register

pytestmark = pytest.mark.slow


def _wait_finished(uow_factory, ids, timeout=120):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with uow_factory() as uow:
            rows = {i: uow.assessments.get(i) for i in ids}
        if all(row.status.finished for row in rows.values()):
            return rows
        time.sleep(0.3)
    raise AssertionError({i: str(r.status) for i, r in rows.items()})


def test_jobs_without_a_message_are_recovered_when_a_worker_starts(tmp_path, tiny_model, start_worker):
    settings = make_settings(tmp_path, BONEAGE_RESEND_AFTER_S="1", BONEAGE_ASSESSMENT_LEASE_S="2")
    migrations.upgrade(settings.database_url)
    register(settings, tiny_model)
    uow_factory = unit_of_work_factory(settings.database_url)
    files = open_file_store(settings)
    long_ago = utcnow() - timedelta(minutes=1)
    with uow_factory() as uow:
        sha, path = files.put_upload(make_png(128))
        # Committed, then the web process died before sending the task: no message anywhere.
        never_sent = uow.assessments.add(Assessment(image_sha256=sha, image_path=path, sex="F", sends=1,
                                                    enqueued_at=long_ago, created_at=long_ago))
        # Claimed by a worker that was then killed: running, no message, attempt 1.
        orphaned = uow.assessments.add(Assessment(image_sha256=sha, image_path=path, sex="M", sends=1,
                                                  enqueued_at=long_ago, created_at=long_ago,
                                                  status=JobStatus.RUNNING, attempts=1, started_at=long_ago))
        uow.commit()
        ids = [never_sent.id, orphaned.id]

    worker = start_worker(settings, "recovering-worker")
    rows = _wait_finished(uow_factory, ids)
    assert all(row.status is JobStatus.SUCCEEDED for row in rows.values()), {i: r.error for i, r in rows.items()}
    assert rows[never_sent.id].attempts == 1 and rows[orphaned.id].attempts == 2
    assert all(row.sends == 2 for row in rows.values())
    assert "recovery: sent 2 job(s) again" in worker.log()
