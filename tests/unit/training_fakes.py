"""In-memory stand-ins for the training repositories (issue 7), applying the same rules
as db.training_repository: core.training_status decides which transitions are allowed
and a write names the attempt it belongs to. FakeUnitOfWork (fakes.py) holds them."""

from __future__ import annotations

import itertools

from core.training_status import TrainingStatus, sources_of
from db.models import Dataset, ModelActivation, TrainingEpoch, TrainingJob, utcnow


class FakeDatasets:
    def __init__(self):
        self.rows: list[Dataset] = []
        self._ids = itertools.count(1)

    def add(self, dataset: Dataset) -> Dataset:
        dataset.id = next(self._ids)
        self.rows.append(dataset)
        return dataset

    def get(self, dataset_id: int):
        return next((d for d in self.rows if d.id == dataset_id), None)

    def get_by_name(self, name: str):
        return next((d for d in self.rows if d.name == name), None)

    def get_by_path(self, path: str):
        return next((d for d in self.rows if d.path == path), None)

    def all(self):
        return sorted(self.rows, key=lambda d: d.name)


class FakeTrainingJobs:
    def __init__(self, datasets: FakeDatasets, models):
        self.rows: dict[str, TrainingJob] = {}
        self.epoch_rows: list[TrainingEpoch] = []
        self.datasets, self.models = datasets, models

    def add(self, job: TrainingJob) -> TrainingJob:
        job.dataset = self.datasets.get(job.dataset_id)
        job.init_model = self.models.get(job.init_model_id) if job.init_model_id else None
        self.rows[job.id] = job
        return job

    def get(self, job_id: str):
        job = self.rows.get(job_id)
        if job is not None:
            job.model_version = self.models.get(job.model_version_id) if job.model_version_id else None
        return job

    def recent(self, limit: int = 50):
        return sorted(self.rows.values(), key=lambda j: j.created_at, reverse=True)[:limit]

    def claim(self, job, *, now, stale_before):
        row = self.rows[job.id]
        stale = row.status is TrainingStatus.RUNNING and row.heartbeat_at < stale_before
        if row.attempts != job.attempts or not (row.status is TrainingStatus.QUEUED or stale):
            return None
        row.status, row.attempts, row.started_at, row.heartbeat_at = TrainingStatus.RUNNING, row.attempts + 1, now, now
        row.error = row.finished_at = None
        return row.attempts

    def transition(self, job_id, target, *, attempt=None, **values) -> bool:
        row = self.rows.get(job_id)
        if row is None or row.status not in sources_of(target) or (attempt is not None and row.attempts != attempt):
            return False
        row.status = TrainingStatus(target)
        for name, value in values.items():
            setattr(row, name, value)
        return True

    def heartbeat(self, job_id, attempt, now, **values):
        row = self.rows.get(job_id)
        if row is None or row.attempts != attempt or row.status not in (TrainingStatus.RUNNING,
                                                                         TrainingStatus.CANCELLING):
            return None
        row.heartbeat_at = now
        for name, value in values.items():
            setattr(row, name, value)
        return row.status

    def mark_stale_crashed(self, *, now, stale_before):
        crashed = []
        for row in self.rows.values():
            if row.status in (TrainingStatus.RUNNING, TrainingStatus.CANCELLING) and row.heartbeat_at < stale_before:
                row.status, row.finished_at, row.error = TrainingStatus.CRASHED, now, "no heartbeat"
                crashed.append(row.id)
        return crashed

    def record_epoch(self, epoch: TrainingEpoch) -> None:
        self.epoch_rows = [e for e in self.epoch_rows if not (e.job_id == epoch.job_id and e.epoch >= epoch.epoch)]
        self.epoch_rows.append(epoch)

    def epochs(self, job_id: str):
        return sorted((e for e in self.epoch_rows if e.job_id == job_id), key=lambda e: e.epoch)


class FakeActivations:
    def __init__(self):
        self.rows: list[ModelActivation] = []
        self._ids = itertools.count(1)

    def record(self, model, previous, *, by=None, note=None, action="activate", forced=False, comparison=None):
        row = ModelActivation(model_version_id=model.id, previous_model_version_id=previous.id if previous else None,
                              action=action, activated_by=by, note=note, forced=forced, comparison=comparison,
                              activated_at=utcnow())
        row.id = next(self._ids)
        row.model_version, row.previous_model_version = model, previous
        self.rows.append(row)

    def add(self, row):
        self.rows.append(row)
        return row

    def latest(self):
        return self.rows[-1] if self.rows else None

    def history(self, *, since=None, until=None):
        rows = [r for r in self.rows if (since is None or r.activated_at >= since)
                and (until is None or r.activated_at <= until)]
        return list(reversed(rows))

    def serving_at(self, when):
        return next((r for r in reversed(self.rows) if r.activated_at <= when), None)
