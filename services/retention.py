"""Retention: stored images (uploads, their working and display copies, and heatmaps) are deleted once a finished study is
older than BONEAGE_RETENTION_DAYS. The numbers (bone age, interval, comparison,
readings, audit results) stay; the study's page says the images were deleted."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Callable

from services.assessments import utcnow

log = logging.getLogger(__name__)


def delete_expired_images(*, uow, files, retention: timedelta, clock: Callable[[], datetime] = utcnow) -> list[str]:
    """Delete the images of studies finished more than `retention` ago; returns their ids."""
    now = clock()
    cutoff = now - retention
    deleted = []
    with uow() as work:
        for assessment in work.assessments.images_to_delete(finished_before=cutoff):
            assessment.images_deleted_at = now
            if assessment.heatmap_path:
                files.delete(assessment.heatmap_path)
                assessment.heatmap_path = None
            deleted.append(assessment)
        work.commit()
    # The upload's working and display copies (kept by the same content hash) go with it.
    stored = {}
    for assessment in deleted:
        copies = stored.setdefault(assessment.image_path, {assessment.image_path})
        copies.update(p for p in (assessment.working_image_path, assessment.display_image_path) if p)
    with uow() as work:
        for image_path in sorted(stored):
            if not work.assessments.image_still_needed(image_path, finished_before=cutoff):
                for path in sorted(stored[image_path]):
                    files.delete(path)
    ids = [a.id for a in deleted]
    if ids:
        log.warning("retention: deleted the images of %d studies finished before %s: %s", len(ids),
                    cutoff.isoformat(timespec="seconds"), ", ".join(ids))
    return ids
