"""One job, one heatmap, whatever happens around the attempt that writes the result
(the fault-injection suite, benchmarks/fault_injection.py, counts heatmap files)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.status import JobStatus
from core.submission import Submission
from db.models import ModelVersion
from helpers import make_png
from services.assessments import run_assessment, submit_assessment

from fakes import FakeFiles, FakePredictors, FakeQueue, FakeUnitOfWork


@pytest.fixture
def uow():
    fake = FakeUnitOfWork()
    fake.models.add(ModelVersion(name="demo-12345678", recipe="demo", checkpoint_path="/m/model.pt",
                                 checkpoint_sha256="1" * 64, trained_on="synthetic", is_active=True))
    return fake


def _submit(uow, files) -> str:
    return submit_assessment(Submission(image=make_png(), sex="F", chronological_age_months=120.0, reference="R"),
                             uow=uow, files=files, queue=FakeQueue())


def _heatmaps(files) -> list[str]:
    return sorted(name for name in files.blobs if name.startswith("heatmaps/"))


def test_a_database_outage_while_writing_the_result_removes_the_attempts_heatmap(uow, monkeypatch):
    files = FakeFiles()
    assessment_id = _submit(uow, files)
    real_transition = uow.assessments.transition

    def database_down(job_id, target, **values):
        if target is JobStatus.SUCCEEDED:
            raise ConnectionError("server closed the connection unexpectedly")
        return real_transition(job_id, target, **values)

    monkeypatch.setattr(uow.assessments, "transition", database_down)
    with pytest.raises(ConnectionError):
        run_assessment(assessment_id, uow=uow, files=files, predictors=FakePredictors())
    job = uow.assessments.get(assessment_id)
    # Still this attempt's: after the lease another attempt runs it and writes its own heatmap.
    assert (job.status, job.attempts, job.heatmap_path) == (JobStatus.RUNNING, 1, None)
    assert _heatmaps(files) == []


def test_the_winning_attempt_removes_heatmaps_left_by_killed_attempts(uow):
    files = FakeFiles()
    assessment_id = _submit(uow, files)
    job = uow.assessments.get(assessment_id)
    # Attempt 1 wrote its heatmap and was killed before it wrote the result.
    job.status, job.attempts, job.started_at = JobStatus.RUNNING, 1, job.created_at - timedelta(hours=1)
    files.put_heatmap(f"{assessment_id}-1", b"\x89PNG from the killed attempt")

    assert run_assessment(assessment_id, uow=uow, files=files, predictors=FakePredictors(),
                          lease=timedelta(minutes=6)) == "succeeded"
    job = uow.assessments.get(assessment_id)
    assert job.attempts == 2 and job.heatmap_path == f"heatmaps/{assessment_id}-2.png"
    assert _heatmaps(files) == [job.heatmap_path]
