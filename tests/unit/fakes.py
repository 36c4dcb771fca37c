"""In-memory stand-ins for storage, the queue and the model, for driving the
services in unit tests (cosmicpython's FakeRepository / FakeUnitOfWork).

The fake repositories apply the same rules as the real ones: core.status decides
which transitions are allowed, and a write names the attempt it belongs to.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

from core.hashing import sha256_hex
from core.imageio import sniff_suffix
from core.status import JobStatus, sources_of
from db.models import Assessment, ModelVersion


class FakeAssessments:
    def __init__(self):
        self.rows: dict[str, Assessment] = {}

    def add(self, assessment: Assessment) -> Assessment:
        self.rows[assessment.id] = assessment
        return assessment

    def get(self, assessment_id: str) -> Assessment | None:
        return self.rows.get(assessment_id)

    def recent(self, limit: int = 50) -> list[Assessment]:
        return sorted(self.rows.values(), key=lambda a: a.created_at, reverse=True)[:limit]

    def count(self) -> int:
        return len(self.rows)

    def series(self, reference: str, sex: str, *, created_up_to, submitted_by: int | None = None) -> list[Assessment]:
        return sorted(
            (a for a in self.rows.values()
             if a.reference == reference and a.sex == sex and a.status is JobStatus.SUCCEEDED
             and a.created_at <= created_up_to and (submitted_by is None or a.submitted_by_id == submitted_by)),
            key=lambda a: (a.created_at, a.id),
        )

    def claim(self, assessment: Assessment, *, now, stale_before) -> int | None:
        row = self.rows[assessment.id]
        stale = stale_before is not None and row.status is JobStatus.RUNNING and row.started_at < stale_before
        if row.attempts != assessment.attempts or not (row.status is JobStatus.QUEUED or stale):
            return None
        row.status, row.attempts, row.started_at, row.error = JobStatus.RUNNING, row.attempts + 1, now, None
        row.queue_wait_seconds = max(0.0, (now - row.created_at).total_seconds())
        return row.attempts

    def claim_queued(self, limit: int, *, now, exclude=()) -> list:
        queued = sorted((a for a in self.rows.values() if a.status is JobStatus.QUEUED and a.id not in exclude),
                        key=lambda a: a.created_at)[:max(0, limit)]
        claimed = [(a, self.claim(a, now=now, stale_before=None)) for a in queued]
        return [(a, attempt) for a, attempt in claimed if attempt is not None]

    def transition(self, assessment_id: str, target: JobStatus, *, attempt: int | None = None, **values) -> bool:
        row = self.rows.get(assessment_id)
        if row is None or row.status not in sources_of(target):
            return False
        if attempt is not None and row.attempts != attempt:
            return False
        row.status = target
        for name, value in values.items():
            setattr(row, name, value)
        return True

    def needing_recovery(self, *, resend_before, stale_before) -> list[Assessment]:
        return sorted(
            (a for a in self.rows.values()
             if (a.enqueued_at or a.created_at) < resend_before
             and (a.status is JobStatus.QUEUED or (a.status is JobStatus.RUNNING and a.started_at < stale_before))),
            key=lambda a: a.created_at,
        )

    def images_to_delete(self, *, finished_before) -> list[Assessment]:
        return [a for a in self.rows.values() if a.status.finished and a.finished_at is not None
                and a.finished_at < finished_before and a.images_deleted_at is None]

    def image_still_needed(self, image_path: str, *, finished_before) -> bool:
        return any(a.image_path == image_path and a.images_deleted_at is None
                   and (a.finished_at is None or a.finished_at >= finished_before) for a in self.rows.values())

    def record_send(self, assessment: Assessment, *, now) -> bool:
        row = self.rows.get(assessment.id)
        if row is None:
            return False
        row.sends, row.enqueued_at = row.sends + 1, now
        return True

class FakeModels:
    def __init__(self):
        self.rows: list[ModelVersion] = []
        self._ids = itertools.count(1)

    def add(self, model: ModelVersion) -> ModelVersion:
        model.id = next(self._ids)
        self.rows.append(model)
        return model

    def get(self, model_id: int) -> ModelVersion | None:
        return next((m for m in self.rows if m.id == model_id), None)

    def get_by_name(self, name: str) -> ModelVersion | None:
        return next((m for m in self.rows if m.name == name), None)

    def active(self) -> ModelVersion | None:
        return next((m for m in self.rows if m.is_active), None)

    def all(self) -> list[ModelVersion]:
        return list(self.rows)

    activations = None  # a training_fakes.FakeActivations, set by FakeUnitOfWork

    def activate(self, model: ModelVersion, **history) -> None:
        previous = self.active()
        if previous is model:
            return
        if self.activations is not None:
            self.activations.record(model, previous, **history)
        for other in self.rows:
            other.is_active = other is model


class FakeReadings:
    """db.audit_repository.ReadingRepository in memory (readers unique per assessment)."""

    def __init__(self, assessments: FakeAssessments):
        self.assessments = assessments
        self.rows: list = []
        self._ids = itertools.count(1)

    def add(self, reading):
        if reading.reader in self.readers_of(reading.assessment_id):
            raise AssertionError("unique (assessment_id, reader) violated: the service must check first")
        reading.id = next(self._ids)
        self.rows.append(reading)
        return reading

    def for_assessment(self, assessment_id: str) -> list:
        return [r for r in self.rows if r.assessment_id == assessment_id]

    def for_assessments(self, assessment_ids) -> dict:
        wanted = set(assessment_ids)
        found: dict = {}
        for r in self.rows:
            if r.assessment_id in wanted:
                found.setdefault(r.assessment_id, []).append(r)
        return found

    def readers_of(self, assessment_id: str) -> set[str]:
        return {r.reader for r in self.for_assessment(assessment_id)}

    def assessment_ids_by_reference(self, reference: str) -> list[str]:
        return [a.id for a in self.assessments.rows.values() if a.reference == reference]

    def with_assessments(self) -> list:
        grouped = self.for_assessments({r.assessment_id for r in self.rows})
        return sorted(((self.assessments.rows[i], rs) for i, rs in grouped.items()), key=lambda p: p[0].created_at)


class FakeAudits:
    """db.audit_repository.AuditRepository in memory; a second run with the same unique key
    raises IntegrityError, as the database's unique constraint does."""

    def __init__(self, assessments: FakeAssessments):
        self.assessments = assessments
        self.rows: dict = {}

    def add(self, run):
        from sqlalchemy.exc import IntegrityError

        if any(r.unique_key == run.unique_key for r in self.rows.values()):
            raise IntegrityError("INSERT INTO audit_runs", {}, Exception("unique_key"))
        self.rows[run.id] = run
        return run

    def get(self, run_id: str):
        return self.rows.get(run_id)

    def get_by_key(self, key: str):
        return next((r for r in self.rows.values() if r.unique_key == key), None)

    def recent(self, limit: int = 50) -> list:
        return sorted(self.rows.values(), key=lambda r: (r.window_end, r.created_at), reverse=True)[:limit]

    def latest(self):
        return next((r for r in self.recent(10**6) if r.status == "succeeded"), None)

    def succeeded_in_order(self, limit: int = 200) -> list:
        return list(reversed([r for r in self.recent(10**6) if r.status == "succeeded"][:limit]))

    def assessments_between(self, start, end) -> list:
        return sorted((a for a in self.assessments.rows.values() if start <= a.created_at < end),
                      key=lambda a: a.created_at)


class FakeUnitOfWork:
    """One in-memory database; each `uow()` call opens a "transaction" on it."""

    def __init__(self):
        self.assessments = FakeAssessments()
        self.models = FakeModels()
        self.readings = FakeReadings(self.assessments)
        self.audits = FakeAudits(self.assessments)
        self.commits = 0
        from training_fakes import FakeActivations, FakeDatasets, FakeTrainingJobs  # issue 7

        self.datasets = FakeDatasets()
        self.activations = self.models.activations = FakeActivations()
        self.training_jobs = FakeTrainingJobs(self.datasets, self.models)

    def __call__(self) -> "FakeUnitOfWork":
        return self

    def __enter__(self) -> "FakeUnitOfWork":
        return self

    def __exit__(self, *exc_info) -> None:
        pass

    def commit(self) -> None:
        self.commits += 1


class FakeFiles:
    def __init__(self):
        self.blobs: dict[str, bytes] = {}

    def put_upload(self, data: bytes) -> tuple[str, str]:
        digest = sha256_hex(data)
        relative = f"uploads/{digest[:2]}/{digest}{sniff_suffix(data)}"
        self.blobs[relative] = data
        return digest, relative

    def put_working_copies(self, sha256: str, working, upload_path: str) -> tuple[str, str]:
        from core.working_image import upload_is_display_size

        paths = (f"working/{sha256[:2]}/{sha256}.png", f"display/{sha256[:2]}/{sha256}.png")
        self.blobs[paths[0]] = working.png()
        if upload_is_display_size(upload_path, working):
            return paths[0], upload_path
        self.blobs[paths[1]] = working.display_png()
        return paths

    def put_heatmap(self, name: str, png: bytes) -> str:
        relative = f"heatmaps/{name}.png"
        self.blobs[relative] = png
        return relative

    def read(self, relative: str) -> bytes:
        try:
            return self.blobs[relative]
        except KeyError:
            raise FileNotFoundError(relative) from None

    def exists(self, relative: str) -> bool:
        return relative in self.blobs

    def delete(self, relative: str) -> None:
        self.blobs.pop(relative, None)

    def publish_dir(self, local_dir, relative: str) -> None:
        for path in sorted(Path(local_dir).rglob("*")):
            if path.is_file():
                self.blobs[f"{relative}/{path.relative_to(local_dir).as_posix()}"] = path.read_bytes()


class FakeQueue:
    def __init__(self, error: Exception | None = None):
        self.sent: list[str] = []
        self.error = error

    def enqueue_assessment(self, assessment_id: str) -> None:
        if self.error is not None:
            raise self.error
        self.sent.append(assessment_id)

    def enqueue_training(self, job_id: str) -> None:
        if self.error is not None:
            raise self.error
        self.sent.append(job_id)


@dataclass
class FakePrediction:
    bone_age_months: float
    stage: str
    overlay_png: bytes | None
    seconds: float = 0.01
    interval_low_months: float | None = None
    interval_high_months: float | None = None
    interval_confidence: float | None = None


@dataclass
class FakePredictor:
    """Predicts 100 months plus the image's mean intensity x 50, a rule the tests can check."""

    error: Exception | None = None
    calls: list = field(default_factory=list)

    def predict(self, images, sexes, gradcam=True):
        self.calls.append((len(images), list(sexes), gradcam))
        if self.error is not None:
            raise self.error
        return [FakePrediction(100.0 + 50.0 * float(image.mean()), "Child", b"\x89PNG heatmap" if gradcam else None)
                for image in images]


class FakePredictors:
    def __init__(self, predictor: FakePredictor | None = None, error: Exception | None = None):
        self.predictor = predictor or FakePredictor()
        self.error = error
        self.requested = []

    def get(self, model):
        self.requested.append(model)
        if self.error is not None:
            raise self.error
        return self.predictor
