"""A labelled SYNTHETIC audit history for a newcomer's empty database.

Synthetic radiographs (training.synth) are submitted and run through the real model by
the same services the web and the worker use (submit_assessment, run_assessment),
then dated back over the past weeks. Readings come from the generator's true age with
reader noise (a second reader on some). In one week, one sex's readings are shifted
down by `shift_months`, so the model's error for that group is shifted by as much in
that window only: the audit should find it there and nowhere else. Then one audit run
per week is stored.

Everything is marked: assessments by the reference prefix SYNTHETIC-DEMO-, readings
and runs by their `synthetic` flag; services.audits.remove_synthetic removes them all.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from typing import Callable

import numpy as np

from core.errors import UserFacingError
from core.submission import Submission
from db.audit_models import SYNTHETIC_REFERENCE_PREFIX, Reading
from services.assessments import run_assessment, submit_assessment
from services.audits import run_audit

READER_NOISE_MONTHS = 6.0


@dataclass(frozen=True)
class DemoPlan:
    weeks: int = 6
    per_week: int = 40
    shift_week: int = 4  # 0 = the oldest week
    shift_sex: str = "F"
    shift_months: float = 18.0
    second_reader_share: float = 0.4
    image_size: int = 256
    seed: int = 0


class _RunNow:
    """A task queue that runs the assessment at once, in this process, with the real model."""

    def __init__(self, uow, files, predictors):
        self.uow, self.files, self.predictors = uow, files, predictors

    def enqueue_assessment(self, assessment_id: str) -> None:
        run_assessment(assessment_id, uow=self.uow, files=self.files, predictors=self.predictors)


def fill_demo_history(plan: DemoPlan, *, uow, files, predictors, now: datetime | None = None,
                      force: bool = False, say: Callable[[str], None] = print) -> list[str]:
    """Create the history and its weekly audits; returns the audit run ids, oldest first."""
    from PIL import Image

    from training.synth import draw_label, render_hand

    with uow() as work:
        if work.models.active() is None:
            raise UserFacingError("no active model: run `boneage up` (trains the demo model) or register one first")
        if work.assessments.count() and not force:
            raise UserFacingError("the database already has assessments; the demonstration history is for an empty "
                                  "database (use --force to add it anyway)")
    now = now or datetime.now(timezone.utc)
    today = datetime.combine(now.date(), time(0), tzinfo=timezone.utc)
    first = today - timedelta(weeks=plan.weeks)
    queue = _RunNow(uow, files, predictors)
    total = plan.weeks * plan.per_week
    for index in range(total):
        week = index // plan.per_week
        rng = np.random.default_rng([plan.seed, 8, index])
        age, male = draw_label(rng)
        pixels, _mask = render_hand(age, male, rng, plan.image_size)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        sex = "M" if male else "F"
        chronological = float(np.clip(age + rng.normal(0, 10), 1, 230))
        assessment_id = submit_assessment(
            Submission(buffer.getvalue(), sex, round(chronological, 1), f"{SYNTHETIC_REFERENCE_PREFIX}{index:04d}"),
            uow=uow, files=files, queue=queue)
        created = first + timedelta(weeks=week, seconds=float(rng.uniform(0, 7 * 86400 - 600)))
        shifted = week == plan.shift_week and sex == plan.shift_sex
        with uow() as work:
            assessment = work.assessments.get(assessment_id)
            took = (assessment.finished_at - assessment.created_at) if assessment.finished_at else timedelta(0)
            assessment.created_at, assessment.started_at = created, created
            assessment.finished_at = created + took if assessment.finished_at else None
            readers = 2 if rng.random() < plan.second_reader_share else 1
            for reader in range(readers):
                value = age + rng.normal(0, READER_NOISE_MONTHS) - (plan.shift_months if shifted else 0.0)
                work.readings.add(Reading(assessment_id=assessment_id, bone_age_months=float(np.clip(value, 0, 240)),
                                          reader=f"synthetic-reader-{reader + 1}", method="GP",
                                          read_at=created + timedelta(days=1), created_at=now, synthetic=True))
            work.commit()
        if (index + 1) % 20 == 0 or index + 1 == total:
            say(f"{index + 1}/{total} synthetic assessments run through the model")
    run_ids = []
    for week in range(plan.weeks):
        start = first + timedelta(weeks=week)
        run = run_audit(start, start + timedelta(weeks=1), trigger="demo", uow=uow, files=files, synthetic=True)
        run_ids.append(run.id)
        say(f"audit {start:%Y-%m-%d}: {run.finding_count} finding(s)")
    return run_ids
