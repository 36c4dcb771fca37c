"""Running one assessment: the active model (loaded once per process), the stored
image, prediction with Grad-CAM, the overlay file and the result row.

Every failure ends with the job marked failed and a reason a person can act on;
unexpected errors are logged with their traceback, which users never see.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from boneage.settings import Settings
from db.files import FileStore
from boneage.hashing import file_sha256
from db.session import UnitOfWorkFactory
from training.imageio import ImageDecodeError, decode_image

log = logging.getLogger(__name__)


class AssessmentFailed(Exception):
    """The job cannot succeed; the message is shown to the user."""


@dataclass(frozen=True)
class ActiveModel:
    id: int
    name: str
    checkpoint_path: Path
    checkpoint_sha256: str


class PredictorCache:
    """One loaded model per worker process, keyed on the active model version."""

    def __init__(self):
        self._key: tuple[int, str] | None = None
        self._predictor = None
        self._lock = threading.Lock()

    def get(self, model: ActiveModel, device: str | None):
        key = (model.id, model.checkpoint_sha256)
        with self._lock:
            if self._key != key:
                self._predictor = None  # release the previous model before loading
                self._predictor = self._load(model, device)
                self._key = key
            return self._predictor

    @staticmethod
    def _load(model: ActiveModel, device: str | None):
        path = model.checkpoint_path
        if not path.is_file():
            raise AssessmentFailed(
                f"The checkpoint of the active model {model.name} is missing ({path}). "
                "An administrator must restore it or register another model."
            )
        if file_sha256(path) != model.checkpoint_sha256:
            raise AssessmentFailed(
                f"The checkpoint of the active model {model.name} has changed since it was "
                "registered; an administrator must register it again."
            )
        from training.predict import Predictor  # torch is imported here, in the worker only

        log.info("loading model %s from %s", model.name, path)
        return Predictor.from_checkpoint(path, device=device)


predictors = PredictorCache()


def run_assessment(
    assessment_id: str,
    *,
    settings: Settings,
    uow_factory: UnitOfWorkFactory,
    files: FileStore,
    cache: PredictorCache = predictors,
) -> str:
    """Run one job; returns its final status (or 'missing' / the status it already had)."""
    with uow_factory() as uow:
        assessment = uow.assessments.get_for_update(assessment_id)
        if assessment is None:
            log.warning("assessment %s does not exist; dropping the task", assessment_id)
            return "missing"
        if assessment.finished:
            log.info("assessment %s is already %s", assessment_id, assessment.status)
            return assessment.status
        assessment.mark_running()
        uow.commit()
        sex, image_path = assessment.sex, assessment.image_path

    try:
        model, prediction = _predict(sex, image_path, settings=settings, uow_factory=uow_factory,
                                     files=files, cache=cache)
        heatmap_path = files.put_heatmap(assessment_id, prediction.overlay_png) if prediction.overlay_png else None
    except AssessmentFailed as exc:
        return _fail(uow_factory, assessment_id, str(exc))
    except Exception as exc:  # noqa: BLE001 - anything else: log it, tell the user plainly
        log.exception("assessment %s failed", assessment_id)
        return _fail(
            uow_factory,
            assessment_id,
            f"The assessment failed because of an internal error ({type(exc).__name__}). "
            "It was logged for the administrators.",
        )

    with uow_factory() as uow:
        assessment = uow.assessments.get(assessment_id)
        assessment.mark_succeeded(
            bone_age_months=prediction.bone_age_months,
            stage=prediction.stage,
            heatmap_path=heatmap_path,
            model_version=uow.models.get(model.id),
            inference_seconds=prediction.seconds,
        )
        uow.commit()
    log.info("assessment %s: %.1f months (%s) with %s", assessment_id, prediction.bone_age_months,
             prediction.stage, model.name)
    return "succeeded"


def _predict(sex, image_path, *, settings, uow_factory, files, cache):
    with uow_factory() as uow:
        active = uow.models.active()
        if active is None:
            raise AssessmentFailed(
                "No model is registered and active. An administrator must run "
                "`boneage register-model PATH --activate` (or `boneage up`, which trains a demo model)."
            )
        model = ActiveModel(active.id, active.name, Path(active.checkpoint_path), active.checkpoint_sha256)
    predictor = cache.get(model, settings.device)
    try:
        data = files.read(image_path)
    except FileNotFoundError:
        raise AssessmentFailed("The uploaded image is missing from the file store.") from None
    try:
        image = decode_image(data)
    except ImageDecodeError as exc:
        raise AssessmentFailed(f"The stored image could not be read: {exc}.") from None
    (prediction,) = predictor.predict([image], [sex], gradcam=True)
    return model, prediction


def _fail(uow_factory: UnitOfWorkFactory, assessment_id: str, reason: str) -> str:
    log.warning("assessment %s failed: %s", assessment_id, reason)
    with uow_factory() as uow:
        uow.assessments.get(assessment_id).mark_failed(reason)
        uow.commit()
    return "failed"
