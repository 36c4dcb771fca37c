"""run_assessment with batching across jobs (fakes: no database or torch): one job's run
claims other queued jobs and predicts them in one call; each result is written on its own;
one image failing fails only its own job; a job taken into a batch is not run again."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import pytest
from PIL import Image

from core.status import JobStatus
from core.submission import Submission
from db.files import FileStoreUnavailable
from db.models import ModelVersion
from helpers import make_png
from services.assessments import run_assessment, submit_assessment

from fakes import FakeFiles, FakePrediction, FakePredictor, FakePredictors, FakeQueue, FakeUnitOfWork


def _service():
    uow, files, queue = FakeUnitOfWork(), FakeFiles(), FakeQueue()
    uow.models.add(ModelVersion(name="demo-12345678", recipe="demo", checkpoint_path="/m/model.pt",
                                checkpoint_sha256="1" * 64, trained_on="synthetic", is_active=True))
    return uow, files, queue


def _submit(uow, files, queue, image: bytes, sex: str = "F") -> str:
    return submit_assessment(Submission(image=image, sex=sex, chronological_age_months=None, reference=None),
                             uow=uow, files=files, queue=queue)


def _blank_png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((200, 160), np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_one_run_claims_the_queued_jobs_and_predicts_them_in_one_call():
    uow, files, queue = _service()
    ids = [_submit(uow, files, queue, make_png(seed=i), "MF"[i % 2]) for i in range(5)]
    predictor = FakePredictor()
    predictors = FakePredictors(predictor)

    assert run_assessment(ids[0], uow=uow, files=files, predictors=predictors, batch_size=4) == JobStatus.SUCCEEDED
    assert predictor.calls == [(4, ["M", "F", "M", "F"], True)]
    jobs = [uow.assessments.get(i) for i in ids]
    assert [j.status for j in jobs] == [JobStatus.SUCCEEDED] * 4 + [JobStatus.QUEUED]  # oldest first, 4 at most
    assert all(j.attempts == 1 and j.heatmap_path == f"heatmaps/{j.id}-1.png" for j in jobs[:4])

    # Their own messages arrive later: nothing is run again.
    for assessment_id in ids[1:4]:
        assert run_assessment(assessment_id, uow=uow, files=files, predictors=predictors, batch_size=4) == "succeeded"
    assert len(predictor.calls) == 1 and all(uow.assessments.get(i).attempts == 1 for i in ids[:4])

    # The last one's message runs it (a batch of one: nothing else is queued).
    assert run_assessment(ids[4], uow=uow, files=files, predictors=predictors, batch_size=4) == "succeeded"
    assert predictor.calls[-1][0] == 1


def test_batched_results_equal_one_at_a_time():
    images = [make_png(seed=i) for i in range(6)]
    results = []
    for batch_size in (1, 6):
        uow, files, queue = _service()
        ids = [_submit(uow, files, queue, image) for image in images]
        for assessment_id in ids:
            run_assessment(assessment_id, uow=uow, files=files, predictors=FakePredictors(), batch_size=batch_size)
        results.append([uow.assessments.get(i).bone_age_months for i in ids])
    assert results[0] == results[1] and None not in results[0]


def test_a_rejected_image_in_a_batch_fails_alone():
    uow, files, queue = _service()
    ids = [_submit(uow, files, queue, make_png(seed=1)), _submit(uow, files, queue, _blank_png()),
           _submit(uow, files, queue, make_png(seed=2))]
    predictor = FakePredictor()
    run_assessment(ids[0], uow=uow, files=files, predictors=FakePredictors(predictor), batch_size=8)
    jobs = [uow.assessments.get(i) for i in ids]
    assert [j.status for j in jobs] == [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.SUCCEEDED]
    assert jobs[1].error.startswith("The image was not assessed: The image is blank")
    assert predictor.calls == [(2, ["F", "F"], True)]


@dataclass
class OneBadImagePredictor:
    """Fails any batch holding the image whose mean is `bad_mean` (as a model can fail on one input)."""

    bad_mean: float
    calls: list = field(default_factory=list)

    def predict(self, images, sexes, gradcam=True):
        self.calls.append(len(images))
        if any(abs(float(image.mean()) - self.bad_mean) < 1e-9 for image in images):
            raise RuntimeError("the model cannot take this input")
        return [FakePrediction(100.0 + 50.0 * float(image.mean()), "Child", b"\x89PNG heatmap") for image in images]


def test_a_failing_image_in_a_batch_fails_only_its_own_job():
    from core.working_image import make_working_image

    uow, files, queue = _service()
    images = [make_png(seed=i) for i in range(3)]
    ids = [_submit(uow, files, queue, image) for image in images]
    predictor = OneBadImagePredictor(float(make_working_image(images[1]).as_float().mean()))
    run_assessment(ids[0], uow=uow, files=files, predictors=FakePredictors(predictor), batch_size=3)
    jobs = [uow.assessments.get(i) for i in ids]
    assert [j.status for j in jobs] == [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.SUCCEEDED]
    assert "internal error (RuntimeError)" in jobs[1].error and jobs[1].bone_age_months is None
    assert predictor.calls == [3, 1, 1, 1]  # the batch, then each image alone


@dataclass
class CheckingPredictor:
    """The model's own image checks (training/predict.py): a rejection, an OOD score, notes.
    It "rejects" the boys' images, a rule the test can steer."""

    def predict(self, images, sexes, gradcam=True):
        predictions = []
        for image, sex in zip(images, sexes):
            p = FakePrediction(120.0, "Child", b"\x89PNG heatmap")
            p.ood_score = 4.5 if sex == "M" else 0.5
            p.notes = ["the film was upside down and was rotated 180°"]
            p.rejection = "the model's features say this is not a hand radiograph" if sex == "M" else None
            predictions.append(p)
        return predictions


def test_the_models_rejection_score_and_notes_are_stored():
    uow, files, queue = _service()
    ids = [_submit(uow, files, queue, make_png(seed=3), "F"), _submit(uow, files, queue, make_png(seed=4), "M")]
    run_assessment(ids[0], uow=uow, files=files, predictors=FakePredictors(CheckingPredictor()), batch_size=2)
    kept, rejected = (uow.assessments.get(i) for i in ids)
    assert kept.status is JobStatus.SUCCEEDED and kept.result_notes == ["the film was upside down and was rotated 180°"]
    assert kept.ood_score == 0.5 and kept.bone_age_months == 120.0
    assert rejected.status is JobStatus.FAILED and rejected.bone_age_months is None
    assert rejected.error == "The image was not assessed: the model's features say this is not a hand radiograph"
    assert rejected.ood_score == 4.5


def test_batch_size_one_runs_only_its_own_job():
    uow, files, queue = _service()
    ids = [_submit(uow, files, queue, make_png(seed=i)) for i in range(3)]
    predictor = FakePredictor()
    run_assessment(ids[1], uow=uow, files=files, predictors=FakePredictors(predictor))
    assert [uow.assessments.get(i).status for i in ids] == [JobStatus.QUEUED, JobStatus.SUCCEEDED, JobStatus.QUEUED]
    assert predictor.calls == [(1, ["F"], True)]


class _UnreachableFiles(FakeFiles):
    """A store that went away after the submissions (db.files.FileStoreUnavailable)."""

    def __init__(self, stored: FakeFiles, fail_on: str):
        super().__init__()
        self.blobs = stored.blobs
        self.fail_on = fail_on

    def read(self, relative: str) -> bytes:
        if self.fail_on == "read":
            raise FileStoreUnavailable("the file store s3://b cannot be reached")
        return super().read(relative)

    def put_heatmap(self, name: str, png: bytes) -> str:
        if self.fail_on == "write":
            raise FileStoreUnavailable("the file store s3://b answered 503")
        return super().put_heatmap(name, png)


@pytest.mark.parametrize("fail_on", ["read", "write"])
def test_an_unreachable_file_store_leaves_the_batch_to_be_run_again(fail_on):
    uow, files, queue = _service()
    ids = [_submit(uow, files, queue, make_png(seed=i)) for i in range(3)]
    away = _UnreachableFiles(files, fail_on)
    with pytest.raises(FileStoreUnavailable):
        run_assessment(ids[0], uow=uow, files=away, predictors=FakePredictors(FakePredictor()), batch_size=3)
    jobs = [uow.assessments.get(i) for i in ids]
    # not failed: each stays its attempt's until the lease runs out and the sweep runs it again
    assert [(j.status, j.attempts, j.error, j.heatmap_path) for j in jobs] == [(JobStatus.RUNNING, 1, None, None)] * 3
    assert not [path for path in files.blobs if path.startswith("heatmaps/")]

    # with the store back, the next attempt succeeds
    later = uow.assessments.get(ids[0]).started_at + timedelta(seconds=400)
    assert run_assessment(ids[0], uow=uow, files=files, predictors=FakePredictors(FakePredictor()),
                          clock=lambda: later, batch_size=1) == JobStatus.SUCCEEDED
