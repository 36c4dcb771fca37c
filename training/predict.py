"""Prediction for the CLI and the workers: load the model once, predict batches.

`boneage predict IMAGE --sex M|F [--model PATH]` and the Celery `assess` task both call
Predictor.predict, so a worker gets exactly what the command line shows.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from core.hashing import file_sha256
from core.model_identity import model_name
from training.fusion import fold_batchnorm
from training.gradcam import HeadGradCam, mass_in_box, overlay_png
from training.inference import ForwardPass, forward_with_features
from training.intervals import IntervalModel
from training.ood import REJECTION_REASON, SYNTHETIC_MODEL_HINT, OodModel
from training.orientation import upright
from training.model import default_device, model_from_checkpoint
from training.precision import Precision
from training.preprocess import Preprocessing, hand_in_input, preprocess
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
    # The pooled 512-d backbone features of the image (not mirrored) from the same forward
    # pass that gave the bone age and the heatmap: for feature-space (out-of-distribution) scores.
    features: np.ndarray | None = None
    # Out-of-distribution score (training/ood.py): distance to the training films' features over
    # the rejection threshold (<= 1 alike, > 1 refused); None for checkpoints without OOD statistics.
    ood_score: float | None = None
    # For the reader: what was done to the image before assessing it (e.g. turned upright).
    notes: list[str] = field(default_factory=list)
    # Why the image must not be assessed (the number above is then not to be shown), and its code.
    rejection: str | None = None
    rejection_code: str | None = None  # "unlike_training"
    # Where the hand was found (core/hand.py), as (left, top, right, bottom) shares of the model's
    # input square (the heatmap's frame), and the share of the heatmap's mass inside that box: a
    # check that the estimate came from the hand (chance level: the box's area). None: no hand found.
    hand_box: tuple[float, float, float, float] | None = None
    heatmap_in_hand: float | None = None


class Predictor:
    def __init__(self, model, metadata: dict, model_version: str, device: torch.device,
                 precision: Precision | None = None):
        self.precision = precision or Precision.resolve(device)
        # A copy with the batch normalisation folded into the convolutions (training/fusion.py):
        # the same months, with fewer layers to run; the caller's model is left as it was.
        self.model = self.precision.prepare(fold_batchnorm(model).to(device))
        self.metadata = metadata
        self.model_version = model_version
        self.device = device
        self.recipe = Recipe.from_dict(metadata["recipe"])
        self.preprocessing = Preprocessing(**metadata["preprocessing"])
        self._explainer: HeadGradCam | None = None
        self.intervals = IntervalModel.from_metadata(metadata)
        self.ood = OodModel.from_metadata(metadata)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | None = None, precision: str | None = None,
                        channels_last: str | None = None) -> "Predictor":
        """precision/channels_last: as BONEAGE_PRECISION / BONEAGE_CHANNELS_LAST (read from the
        environment when not given; BONEAGE_TORCH_THREADS sets the process's torch threads)."""
        from core.settings import Settings

        settings = Settings.from_env()
        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        model, metadata = model_from_checkpoint(path)
        version = model_name(metadata["recipe"]["name"], file_sha256(path))
        device = torch.device(device) if device else default_device()
        chosen = Precision.resolve(device, precision or settings.precision, channels_last or settings.channels_last)
        return cls(model, metadata, version, device, chosen)

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
        # An upside-down or sideways film is turned upright first (and the result says so).
        turned = upright(images, self.ood_scores if self.ood is not None else None)
        images = [t.image for t in turned]
        squares = self.preprocess(images)
        male = np.array([normalise_sex(s) == "M" for s in sexes], dtype=np.float32)
        # One backbone pass per image (plus its mirror for TTA) gives the bone age, the
        # features and the layer-4 activations Grad-CAM needs (training/gradcam.py).
        forward = self.forward(squares, male)
        months = forward.months
        heatmaps = (self.explainer.heatmaps(forward.feature_maps, male, squares.shape[-1]) if gradcam
                    else [None] * len(images))
        overlays = [overlay_png(s, h) for s, h in zip(squares, heatmaps)] if gradcam else [None] * len(images)
        share = (time.perf_counter() - started) / len(images)
        if self.intervals is not None:
            lows, highs = self.intervals.bounds(months, male)
            bounds = [(float(lo), float(hi), self.intervals.confidence) for lo, hi in zip(lows, highs)]
        else:
            bounds = [(None, None, None)] * len(images)
        scores = self.ood.scores(forward.features) if self.ood is not None else [None] * len(images)
        predictions = [
            Prediction(float(m), stage_for(float(m)), h, o, share, *b, features=f)
            for m, h, o, b, f in zip(months, heatmaps, overlays, bounds, forward.features)
        ]
        for prediction, turn, score in zip(predictions, turned, scores):
            prediction.notes = [turn.note] if turn.note else []
            prediction.hand_box = hand_in_input(turn.image, self.preprocessing)
            if prediction.hand_box is not None and prediction.heatmap is not None:
                prediction.heatmap_in_hand = round(mass_in_box(prediction.heatmap, prediction.hand_box), 4)
            if score is not None:
                prediction.ood_score = round(float(score), 4)
                if self.ood.rejected(score):
                    prediction.rejection_code, prediction.rejection = "unlike_training", REJECTION_REASON + (
                        SYNTHETIC_MODEL_HINT if self.synthetic else "")
        return predictions

    def ood_scores(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """The OOD score (training/ood.py) of decoded images; needs the model's OOD statistics."""
        return self.ood.scores(self.features(images))

    def forward(self, squares: np.ndarray, male: np.ndarray) -> ForwardPass:
        """The model's forward pass on preprocessed squares (N, H, W): months, pooled
        features (N, 512) and layer-4 activations, in the configured precision."""
        return forward_with_features(self.model, squares, male, tta=self.recipe.tta, device=self.device,
                                     precision=self.precision)

    def features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Pooled 512-d backbone features (N, 512) of decoded images, as Prediction.features
        (the image features do not depend on the sex; only the head sees it)."""
        squares = self.preprocess(images)
        # features only: the mirrored pass of the TTA would not change them
        return forward_with_features(self.model, squares, np.zeros(len(squares), dtype=np.float32), tta=False,
                                     device=self.device, precision=self.precision).features

    def heatmaps(self, squares: np.ndarray, male: np.ndarray) -> np.ndarray:
        """Grad-CAM maps (N, H, W) of preprocessed squares, as predict() draws them."""
        return self.explainer.heatmaps(self.forward(squares, male).feature_maps, male, squares.shape[-1])

    @property
    def explainer(self) -> HeadGradCam:
        if self._explainer is None:
            self._explainer = HeadGradCam(self.model)
        return self._explainer
