"""run_assessment stores the predictor's interval with the result (fakes: no database or torch)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from core.status import JobStatus
from core.submission import Submission
from db.models import ModelVersion
from helpers import make_png
from services.assessments import run_assessment, submit_assessment

from fakes import FakeFiles, FakePrediction, FakePredictors, FakeQueue, FakeUnitOfWork


@dataclass
class IntervalPredictor:
    interval: tuple | None

    def predict(self, images, sexes, gradcam=True):
        low, high, confidence = self.interval or (None, None, None)
        return [FakePrediction(120.0, "Child", None, 0.01, low, high, confidence) for _ in images]


@pytest.mark.parametrize("interval", [(101.5, 138.5, 0.9), None])
def test_the_interval_is_stored_with_the_result(interval):
    uow, files = FakeUnitOfWork(), FakeFiles()
    uow.models.add(ModelVersion(name="demo-12345678", recipe="demo", checkpoint_path="/m/model.pt",
                                checkpoint_sha256="1" * 64, trained_on="synthetic", is_active=True))
    assessment_id = submit_assessment(Submission(image=make_png(), sex="F", chronological_age_months=120.0,
                                                 reference="R-1"), uow=uow, files=files, queue=FakeQueue())
    status = run_assessment(assessment_id, uow=uow, files=files, predictors=FakePredictors(IntervalPredictor(interval)))
    job = uow.assessments.get(assessment_id)
    assert status == JobStatus.SUCCEEDED and job.bone_age_months == 120.0
    assert (job.bone_age_low_months, job.bone_age_high_months, job.interval_confidence) == (interval or (None,) * 3)


def test_a_blank_image_is_rejected_with_its_reason_before_predicting():
    import numpy as np
    from PIL import Image
    import io

    from fakes import FakePredictor

    uow, files = FakeUnitOfWork(), FakeFiles()
    uow.models.add(ModelVersion(name="demo-12345678", recipe="demo", checkpoint_path="/m/model.pt",
                                checkpoint_sha256="1" * 64, trained_on="synthetic", is_active=True))
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((200, 160), np.uint8)).save(buffer, format="PNG")
    assessment_id = submit_assessment(Submission(image=buffer.getvalue(), sex="M", chronological_age_months=None,
                                                 reference=None), uow=uow, files=files, queue=FakeQueue())
    predictor = FakePredictor()
    assert run_assessment(assessment_id, uow=uow, files=files, predictors=FakePredictors(predictor)) == JobStatus.FAILED
    job = uow.assessments.get(assessment_id)
    assert job.error.startswith("The image was not assessed: The image is blank")
    assert predictor.calls == [] and job.bone_age_months is None
