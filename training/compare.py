"""Comparing a candidate model with another (the serving one) on the same held-out data:
the candidate's held-out studies (its saved test split of `data_dir`, or all of a
folder it was not trained on), each model with its own preprocessing."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.cache import load_image_array
from training.evaluate import BATCH, held_out_records
from training.inference import predict_months
from training.predict import Predictor
from training.rsna import load_records


def held_out_mae(predictor: Predictor, records) -> float:
    squares = load_image_array(records, predictor.preprocessing, progress=False)
    male = np.array([r.male for r in records], dtype=np.float32)
    truth = np.array([r.bone_age_months for r in records], dtype=np.float32)
    predicted = np.concatenate([
        predict_months(predictor.model, squares[i : i + BATCH], male[i : i + BATCH], tta=predictor.recipe.tta,
                       device=predictor.device)
        for i in range(0, len(records), BATCH)
    ])
    return float(np.mean(np.abs(predicted - truth)))


def compare_models(candidate_path, baseline_path, data_dir, *, device: str | None = None) -> dict:
    """MAE of both models on the candidate's held-out studies of `data_dir`."""
    data_dir = Path(data_dir)
    candidate = Predictor.from_checkpoint(candidate_path, device=device)
    records, which = held_out_records(load_records(data_dir), candidate.metadata, data_dir)
    if not records:
        raise ValueError(f"{data_dir}: no held-out studies to compare on")
    baseline = Predictor.from_checkpoint(baseline_path, device=device)
    return {
        "n": len(records),
        "data": f"{data_dir.name} ({which})",
        "candidate_mae": held_out_mae(candidate, records),
        "baseline_mae": held_out_mae(baseline, records),
    }
