"""What the printable report adds to the result page: the model's measured accuracy."""

from __future__ import annotations

from db.models import ModelVersion
from core.numbers import round_or_none


def model_accuracy_json(model: ModelVersion | None) -> dict | None:
    """The model's MAE as measured at training time: on its validation split (the epoch kept)
    and on its held-out test split, when recorded (months); None when nothing was recorded."""
    if model is None:
        return None
    metrics = model.metrics or {}
    regression = (metrics.get("evaluation") or {}).get("regression") or {}
    accuracy = {
        "validation_mae_months": round_or_none(metrics.get("val_mae"), 1),
        "test_mae_months": round_or_none(regression.get("mae", metrics.get("test_mae")), 1),
        "test_n": regression.get("n", metrics.get("test_n")),
        "trained_on": model.trained_on,
    }
    if accuracy["validation_mae_months"] is None and accuracy["test_mae_months"] is None:
        return None
    return accuracy
