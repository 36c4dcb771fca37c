"""Prediction for the CLI and the workers: load the model once, predict batches.

`boneage predict IMAGE --sex M|F [--model PATH]` and the Celery `assess` task both call
Predictor.predict, so a worker gets exactly what the command line shows.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.hashing import file_sha256
from core.model_identity import model_name
from training.gradcam import GradCamExplainer, overlay_png
from training.inference import predict_months
from training.intervals import IntervalModel
from training.model import default_device, model_from_checkpoint
from training.preprocess import Preprocessing, preprocess
from training.recipes import Recipe
from core.stages import normalise_sex, stage_for


@dataclass
class Prediction:
    bone_age_months: float
    stage: str
    heatmap: np.ndarray | None  # (H, W) float32 in [0, 1], at the model's input size
    overlay_png: bytes | None
    seconds: float  # this image's share of the batch time
    # The calibrated prediction interval (training/intervals.py); None for checkpoints without one.
    interval_low_months: float | None = None
    interval_high_months: float | None = None
    interval_confidence: float | None = None


class Predictor:
    def __init__(self, model, metadata: dict, model_version: str, device: torch.device):
        self.model = model.to(device).eval()
        self.metadata = metadata
        self.model_version = model_version
        self.device = device
        self.recipe = Recipe.from_dict(metadata["recipe"])
        self.preprocessing = Preprocessing(**metadata["preprocessing"])
        self._explainer: GradCamExplainer | None = None
        self.intervals = IntervalModel.from_metadata(metadata)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | None = None) -> "Predictor":
        model, metadata = model_from_checkpoint(path)
        version = model_name(metadata["recipe"]["name"], file_sha256(path))
        return cls(model, metadata, version, torch.device(device) if device else default_device())

    @property
    def synthetic(self) -> bool:
        return bool(self.metadata.get("synthetic"))

    def preprocess(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack([preprocess(image, self.preprocessing) for image in images])

    def predict(self, images: Sequence[np.ndarray], sexes: Sequence[str], gradcam: bool = True) -> list[Prediction]:
        """images: decoded float arrays (core.imageio.decode_image); sexes: 'M'/'F'."""
        if len(images) != len(sexes):
            raise ValueError("one sex per image is needed")
        if not images:
            return []
        started = time.perf_counter()
        squares = self.preprocess(images)
        male = np.array([normalise_sex(s) == "M" for s in sexes], dtype=np.float32)
        months = predict_months(self.model, squares, male, tta=self.recipe.tta, device=self.device)
        heatmaps = self.explainer.heatmaps(squares, male) if gradcam else [None] * len(images)
        overlays = [overlay_png(s, h) for s, h in zip(squares, heatmaps)] if gradcam else [None] * len(images)
        share = (time.perf_counter() - started) / len(images)
        if self.intervals is not None:
            lows, highs = self.intervals.bounds(months)
            bounds = [(float(lo), float(hi), self.intervals.confidence) for lo, hi in zip(lows, highs)]
        else:
            bounds = [(None, None, None)] * len(images)
        return [
            Prediction(float(m), stage_for(float(m)), h, o, share, *b)
            for m, h, o, b in zip(months, heatmaps, overlays, bounds)
        ]

    @property
    def explainer(self) -> GradCamExplainer:
        if self._explainer is None:
            self._explainer = GradCamExplainer(self.model)
        return self._explainer
