"""The beat entry, applied as celery beat applies it, runs the audit through a real
worker on the cpu queue (PostgreSQL and Redis); a second trigger for the same window
makes no second run."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from celery.beat import ScheduleEntry, Scheduler

from core.audit_rules import scheduled_window
from core.status import JobStatus
from db.audit_models import Reading
from db.models import Assessment
from db.session import unit_of_work_factory
from services.queue import AUDIT_BEAT_ENTRY, AUDIT_TASK, make_celery


def test_the_beat_entry_runs_one_audit_per_window_on_the_cpu_queue(service_settings, queued_tasks, start_worker):
    settings = service_settings
    uow = unit_of_work_factory(settings.database_url)
    yesterday = datetime.now(timezone.utc) - timedelta(days=1)
    with uow() as work:
        for index in range(6):
            a = work.assessments.add(Assessment(image_sha256="0" * 64, image_path="uploads/x.png", sex="MF"[index % 2],
                                                created_at=yesterday, status=JobStatus.SUCCEEDED,
                                                bone_age_months=100.0 + index, inference_seconds=0.2))
            work.readings.add(Reading(assessment_id=a.id, bone_age_months=101.0, reader="R1"))
        work.commit()

    app = make_celery(settings)
    config = app.conf.beat_schedule[AUDIT_BEAT_ENTRY]
    assert config["task"] == AUDIT_TASK and config["options"]["queue"] == settings.cpu_queue
    assert config["options"]["expires"] > 0
    scheduler = Scheduler(app, lazy=True)
    for _ in range(2):  # beat fires twice (or two beat processes run)
        entry = ScheduleEntry(name=AUDIT_BEAT_ENTRY, app=app, **config)
        scheduler.apply_async(entry)
    assert [name for name, _ in queued_tasks(settings, settings.cpu_queue)] == [AUDIT_TASK, AUDIT_TASK]
    assert queued_tasks(settings, settings.inference_queue) == []

    worker = start_worker(settings, "audit-worker")
    deadline = time.monotonic() + 120
    while worker.log().count(f"Task {AUDIT_TASK}[") < 2 or " succeeded in " not in worker.log():
        assert time.monotonic() < deadline, worker.log()[-3000:]
        time.sleep(0.3)
    while sum(line.count(" succeeded in ") for line in worker.log().splitlines() if AUDIT_TASK in line) < 2:
        assert time.monotonic() < deadline, worker.log()[-3000:]
        time.sleep(0.3)
    with uow() as work:
        runs = work.audits.recent()
    assert len(runs) == 1, [(r.trigger, r.window_start) for r in runs]
    (run,) = runs
    start, end = scheduled_window(datetime.now(timezone.utc), settings.audit_window_days)
    assert run.trigger == "schedule" and run.status == "succeeded", run.error
    assert (run.window_start, run.window_end) == (start, end)
    assert run.results["n_assessments"] == 6 and run.results["n_with_readings"] == 6
    assert run.results["versions"] == []  # no model version on these rows: nothing mixed in
