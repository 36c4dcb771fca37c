"""submit_assessment and run_assessment driven with fakes: no database, broker or torch."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from core.errors import JobFailed
from core.hashing import sha256_hex
from core.status import JobStatus
from core.submission import Submission
from db.models import ModelVersion
from helpers import make_png
from services.assessments import MISSING, RUNNING_LEASE, run_assessment, submit_assessment

from fakes import FakeFiles, FakePredictor, FakePredictors, FakeQueue, FakeUnitOfWork

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)


def clock_at(*moments):
    it = iter(moments)
    last = [moments[0]]

    def now():
        last[0] = next(it, last[0])
        return last[0]

    return now


@pytest.fixture
def uow():
    fake = FakeUnitOfWork()
    fake.models.add(ModelVersion(name="demo-12345678", recipe="demo", checkpoint_path="/m/model.pt",
                                 checkpoint_sha256="1" * 64, trained_on="synthetic", is_active=True))
    return fake


def submit(uow, files, queue=None, **fields):
    submission = Submission(image=fields.pop("image", make_png()), sex=fields.pop("sex", "F"),
                            chronological_age_months=fields.pop("age", 120.0), reference=fields.pop("reference", "R-1"))
    return submit_assessment(submission, uow=uow, files=files, queue=queue or FakeQueue())


def test_submit_stores_the_upload_commits_the_job_then_queues_its_id(uow):
    files, queue = FakeFiles(), FakeQueue()
    image = make_png(seed=3)
    assessment_id = submit(uow, files, queue, image=image, sex="M", age=100.0, reference="S-9")
    job = uow.assessments.get(assessment_id)
    assert queue.sent == [assessment_id]
    assert (job.status, job.sex, job.chronological_age_months, job.reference) == (JobStatus.QUEUED, "M", 100.0, "S-9")
    assert files.read(job.image_path) == image and job.image_path.endswith(".png")
    assert job.image_sha256 == sha256_hex(image) and job.image_path == f"uploads/{job.image_sha256[:2]}/{job.image_sha256}.png"
    assert uow.commits == 1


def test_submit_marks_the_job_failed_with_a_reason_when_the_queue_is_down(uow):
    assessment_id = submit(uow, FakeFiles(), FakeQueue(error=ConnectionError("refused")))
    job = uow.assessments.get(assessment_id)
    assert job.status is JobStatus.FAILED and job.finished_at is not None
    assert "could not be queued" in job.error and "ConnectionError" in job.error and "again later" in job.error


def test_run_predicts_with_the_active_model_and_stores_the_result(uow):
    files = FakeFiles()
    assessment_id = submit(uow, files)
    predictors = FakePredictors()
    assert run_assessment(assessment_id, uow=uow, files=files, predictors=predictors,
                          clock=clock_at(T0, T0 + timedelta(seconds=2))) == "succeeded"
    job = uow.assessments.get(assessment_id)
    from core.imageio import decode_image

    assert job.bone_age_months == pytest.approx(100.0 + 50.0 * float(decode_image(make_png()).mean()))
    assert (job.status, job.stage, job.attempts, job.model_version_id) == (JobStatus.SUCCEEDED, "Child", 1, 1)
    assert files.read(job.heatmap_path) == b"\x89PNG heatmap"
    assert job.finished_at == T0 + timedelta(seconds=2) and job.started_at == T0
    assert predictors.requested[0].name == "demo-12345678"
    assert predictors.predictor.calls == [(1, ["F"], True)]


def test_run_of_an_unknown_id_changes_nothing(uow):
    assert run_assessment("no-such-id", uow=uow, files=FakeFiles(), predictors=FakePredictors()) == MISSING
    assert uow.assessments.count() == 0 and uow.commits == 0


def test_a_second_delivery_of_a_finished_job_does_not_rerun_it(uow):
    files = FakeFiles()
    assessment_id = submit(uow, files)
    predictors = FakePredictors()
    run_assessment(assessment_id, uow=uow, files=files, predictors=predictors)
    first = uow.assessments.get(assessment_id).bone_age_months
    assert run_assessment(assessment_id, uow=uow, files=files, predictors=predictors) == "succeeded"
    assert len(predictors.predictor.calls) == 1 and uow.assessments.get(assessment_id).bone_age_months == first


def test_a_delivery_of_a_job_another_worker_is_running_leaves_it_alone(uow):
    files = FakeFiles()
    assessment_id = submit(uow, files)
    job = uow.assessments.get(assessment_id)
    assert uow.assessments.claim(job, now=T0, stale_before=T0) == 1
    predictors = FakePredictors()
    assert run_assessment(assessment_id, uow=uow, files=files, predictors=predictors,
                          clock=clock_at(T0 + timedelta(minutes=1))) == "running"
    assert predictors.requested == [] and job.attempts == 1


def test_a_stale_running_job_is_taken_over_and_the_old_attempt_cannot_write(uow):
    files = FakeFiles()
    assessment_id = submit(uow, files)
    job = uow.assessments.get(assessment_id)
    assert uow.assessments.claim(job, now=T0, stale_before=T0) == 1
    later = T0 + RUNNING_LEASE + timedelta(seconds=1)
    assert run_assessment(assessment_id, uow=uow, files=files, predictors=FakePredictors(), clock=clock_at(later)) \
        == "succeeded"
    assert job.attempts == 2
    result = job.bone_age_months
    assert not uow.assessments.transition(assessment_id, JobStatus.FAILED, attempt=1, error="old worker")
    assert (job.status, job.bone_age_months) == (JobStatus.SUCCEEDED, result)


def test_a_result_for_a_job_that_changed_meanwhile_is_discarded_with_its_heatmap(uow):
    files = FakeFiles()
    assessment_id = submit(uow, files)

    class FailsTheJobWhilePredicting(FakePredictor):
        def predict(self, images, sexes, gradcam=True):
            uow.assessments.transition(assessment_id, JobStatus.FAILED, error="cancelled elsewhere")
            return super().predict(images, sexes, gradcam)

    status = run_assessment(assessment_id, uow=uow, files=files,
                            predictors=FakePredictors(FailsTheJobWhilePredicting()))
    job = uow.assessments.get(assessment_id)
    assert status == "failed" and job.error == "cancelled elsewhere" and job.bone_age_months is None
    assert not any(name.startswith("heatmaps/") for name in files.blobs)


def test_no_active_model_fails_the_job_with_what_to_do(uow):
    uow.models.rows[0].is_active = False
    files = FakeFiles()
    assessment_id = submit(uow, files)
    assert run_assessment(assessment_id, uow=uow, files=files, predictors=FakePredictors()) == "failed"
    assert "boneage register-model" in uow.assessments.get(assessment_id).error


def test_an_upload_missing_from_the_file_store_fails_the_job(uow):
    files = FakeFiles()
    assessment_id = submit(uow, files)
    files.blobs.clear()
    assert run_assessment(assessment_id, uow=uow, files=files, predictors=FakePredictors()) == "failed"
    assert "missing from the file store" in uow.assessments.get(assessment_id).error


def test_a_checkpoint_that_cannot_be_loaded_fails_the_job_with_the_loaders_reason(uow):
    files = FakeFiles()
    assessment_id = submit(uow, files)
    error = JobFailed("The checkpoint of the active model demo-12345678 has changed since it was registered")
    assert run_assessment(assessment_id, uow=uow, files=files, predictors=FakePredictors(error=error)) == "failed"
    assert uow.assessments.get(assessment_id).error == str(error)


def test_an_internal_error_is_stored_without_its_details(uow):
    files = FakeFiles()
    assessment_id = submit(uow, files)
    predictors = FakePredictors(FakePredictor(error=RuntimeError("CUDA out of memory at 0xdeadbeef")))
    assert run_assessment(assessment_id, uow=uow, files=files, predictors=predictors) == "failed"
    error = uow.assessments.get(assessment_id).error
    assert "internal error (RuntimeError)" in error and "0xdeadbeef" not in error
