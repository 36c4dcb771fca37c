"""The serving model, loaded once per worker process and kept until another model
becomes active. torch is imported only when a model is first loaded."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

from core.errors import JobFailed
from core.hashing import file_sha256

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActiveModel:
    id: int
    name: str
    checkpoint_path: Path
    checkpoint_sha256: str


class Prediction(Protocol):
    bone_age_months: float
    stage: str
    overlay_png: bytes | None
    seconds: float


class Predictor(Protocol):
    def predict(self, images: Sequence, sexes: Sequence[str], gradcam: bool = True) -> list[Prediction]: ...


class PredictorProvider(Protocol):
    def get(self, model: ActiveModel) -> Predictor: ...


class PredictorCache:
    """One loaded model per process, keyed on the model version and its checkpoint hash."""

    def __init__(self, device: str | None = None):
        self.device = device
        self.loads = 0
        self._key: tuple[int, str] | None = None
        self._predictor = None
        self._lock = threading.Lock()

    def get(self, model: ActiveModel) -> Predictor:
        key = (model.id, model.checkpoint_sha256)
        with self._lock:
            if self._key != key:
                self._predictor = None  # release the previous model before loading
                self._predictor = self._load(model)
                self._key = key
                self.loads += 1
            return self._predictor

    def _load(self, model: ActiveModel) -> Predictor:
        path = model.checkpoint_path
        if not path.is_file():
            raise JobFailed(
                f"The checkpoint of the active model {model.name} is missing ({path}). "
                "An administrator must restore it or register another model."
            )
        if file_sha256(path) != model.checkpoint_sha256:
            raise JobFailed(
                f"The checkpoint of the active model {model.name} has changed since it was "
                "registered; an administrator must register it again."
            )
        from training.predict import Predictor  # torch is imported here, in the worker only

        log.info("loading model %s from %s", model.name, path)
        return Predictor.from_checkpoint(path, device=self.device)
