"""A seeded audit history, inserted directly through the repositories (no model):
`seed_history(uow)` for the audit tests (numbers, findings, pages, worker).

Six weeks from START, ~120 assessments a week from model "m1" (validation MAE 9.0):
prediction = truth + N(0, 10), each reading = truth + N(0, 4), a third of the
assessments read twice; 2% failed. In week SHIFT_WEEK the girls' predictions are
SHIFT_MONTHS higher. Model "m2" has a few assessments in the last week only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np

from core.status import JobStatus
from db.audit_models import Reading
from db.models import Assessment, ModelVersion

START = datetime(2026, 3, 2, tzinfo=timezone.utc)  # a Monday
WEEKS = 6
PER_WEEK = 120
SHIFT_WEEK = 3
SHIFT_SEX = "F"
SHIFT_MONTHS = 15.0
M2_ROWS = 20


@dataclass
class History:
    m1: int = 0
    m2: int = 0
    ids: list[str] = field(default_factory=list)

    @staticmethod
    def week(index: int) -> tuple[datetime, datetime]:
        return START + timedelta(weeks=index), START + timedelta(weeks=index + 1)


def seed_history(uow, *, seed: int = 7, weeks: int = WEEKS, per_week: int = PER_WEEK, shift: bool = True) -> History:
    rng = np.random.default_rng(seed)
    history = History()
    with uow() as work:
        m1 = work.models.add(ModelVersion(name="m1", recipe="demo", checkpoint_path="m1.pt", checkpoint_sha256="1" * 64,
                                          trained_on="synthetic", metrics={"val_mae": 9.0}))
        m2 = work.models.add(ModelVersion(name="m2", recipe="demo", checkpoint_path="m2.pt", checkpoint_sha256="2" * 64,
                                          trained_on="rsna", metrics={"val_mae": 7.0}))
        history.m1, history.m2 = m1.id, m2.id
        for index in range(weeks * per_week + M2_ROWS):
            is_m2 = index >= weeks * per_week
            week = weeks - 1 if is_m2 else index // per_week
            truth = float(rng.uniform(6, 225))
            sex = "M" if rng.random() < 0.5 else "F"
            created = START + timedelta(weeks=week, seconds=float(rng.uniform(0, 7 * 86400 - 1)))
            failed = rng.random() < 0.02
            pred = truth + rng.normal(0, 10) + (SHIFT_MONTHS if shift and week == SHIFT_WEEK and sex == SHIFT_SEX else 0)
            chronological = float(np.clip(truth + rng.normal(0, 15), 1, 239)) if rng.random() < 0.8 else None
            assessment = work.assessments.add(Assessment(
                image_sha256="0" * 64, image_path="uploads/none.png", sex=sex, chronological_age_months=chronological,
                created_at=created, finished_at=created,
                status=JobStatus.FAILED if failed else JobStatus.SUCCEEDED,
                error="The stored image could not be read: truncated." if failed else None,
                bone_age_months=None if failed else float(np.clip(pred, 0, 260)),
                model_version_id=None if failed else (m2.id if is_m2 else m1.id),
                inference_seconds=None if failed else float(rng.uniform(0.1, 0.4))))
            history.ids.append(assessment.id)
            if not failed:
                for reader in range(2 if rng.random() < 1 / 3 else 1):
                    value = float(np.clip(truth + rng.normal(0, 4), 0, 240))
                    work.readings.add(Reading(assessment_id=assessment.id, bone_age_months=value, reader=f"R{reader}",
                                              read_at=created + timedelta(days=1)))
        work.commit()
    return history
