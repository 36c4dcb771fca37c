"""Retention: images of old finished studies are deleted, the numbers kept."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from core.status import JobStatus
from db.models import Assessment
from services.retention import delete_expired_images

from fakes import FakeFiles, FakeUnitOfWork

NOW = datetime(2026, 11, 27, 3, 30, tzinfo=timezone.utc)
RETENTION = timedelta(days=30)


def study(uow, files, image: bytes, *, finished_days_ago: float | None, heatmap=True):
    _, path = files.put_upload(image)
    assessment = Assessment(sex="F", image_sha256="x", image_path=path, bone_age_months=120.0,
                            status=JobStatus.SUCCEEDED if finished_days_ago is not None else JobStatus.QUEUED,
                            finished_at=None if finished_days_ago is None else NOW - timedelta(days=finished_days_ago))
    uow.assessments.add(assessment)
    if heatmap:
        assessment.heatmap_path = files.put_heatmap(f"{assessment.id}-1", b"png")
    return assessment


def test_old_images_go_the_numbers_stay_and_shared_uploads_are_kept_while_needed(caplog):
    uow, files = FakeUnitOfWork(), FakeFiles()
    old = study(uow, files, b"old image", finished_days_ago=40)
    old_shared = study(uow, files, b"shared image", finished_days_ago=40)
    recent_shared = study(uow, files, b"shared image", finished_days_ago=2)
    queued = study(uow, files, b"queued image", finished_days_ago=None, heatmap=False)
    old_heatmap = old.heatmap_path

    with caplog.at_level("WARNING"):
        deleted = delete_expired_images(uow=uow, files=files, retention=RETENTION, clock=lambda: NOW)

    assert sorted(deleted) == sorted([old.id, old_shared.id])
    assert not files.exists(old.image_path) and not files.exists(old_heatmap)
    assert old.images_deleted_at == NOW and old.heatmap_path is None and old.bone_age_months == 120.0
    assert files.exists(old_shared.image_path), "a newer study still uses the same upload"
    assert files.exists(recent_shared.heatmap_path) and recent_shared.images_deleted_at is None
    assert files.exists(queued.image_path)
    assert "retention: deleted the images of 2 studies" in caplog.text
    assert delete_expired_images(uow=uow, files=files, retention=RETENTION, clock=lambda: NOW) == []


def test_the_daily_deletion_is_scheduled_only_when_a_retention_period_is_set(tmp_path):
    from core.settings import Settings
    from services.queue import RETENTION_TASK, celery_config

    keep = Settings.from_env({"BONEAGE_VAR_DIR": str(tmp_path)})
    delete = Settings.from_env({"BONEAGE_VAR_DIR": str(tmp_path), "BONEAGE_RETENTION_DAYS": "30"})
    assert keep.retention_days is None and delete.retention_days == 30
    assert RETENTION_TASK not in {e["task"] for e in celery_config(keep)["beat_schedule"].values()}
    entry = celery_config(delete)["beat_schedule"]["delete-expired-images"]
    assert entry["task"] == RETENTION_TASK and entry["options"]["queue"] == delete.cpu_queue
    assert Settings.from_env(delete.to_env()).retention_days == 30
