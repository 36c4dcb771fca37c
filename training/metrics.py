"""Evaluation metrics for bone-age regression, as analysed in the seed report.

Pure numpy / scikit-learn (no torch), so reports can be rebuilt from saved predictions.
Every function returns plain Python floats / ints; a value that is undefined for the
data given (e.g. the MAE of a sex with no images) is None, never NaN, so the result
can be written as strict JSON.

Ages are in months. "Signed error" is prediction - truth: positive means the model
over-estimates the bone age.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
)

from core.stages import STAGES, normalise_sex, stage_for

SEXES = ("M", "F")

# Bands of true bone age, in months (lower inclusive, upper exclusive; the last is
# open-ended). Chosen to expose what the seed report describes: higher variance below
# 4 years and above 15 years, over-estimation in early childhood, under-estimation in
# late adolescence. 144 months is also the Child / Adolescent stage limit.
AGE_BANDS_MONTHS: tuple[tuple[float, float], ...] = (
    (0, 48),
    (48, 96),
    (96, 144),
    (144, 180),
    (180, math.inf),
)


def age_band_label(lower_months: float, upper_months: float) -> str:
    """'4-8 y' for (48, 96); '15+ y' for an open upper end."""
    lower_years = _format_years(lower_months)
    if math.isinf(upper_months):
        return f"{lower_years}+ y"
    return f"{lower_years}-{_format_years(upper_months)} y"


def regression_metrics(y_true, y_pred) -> dict[str, Any]:
    """n, mae, rmse, r2, mean_signed_error (pred - true). None where undefined.

    R² needs at least two images; with none at all every metric is None.
    """
    true, pred = _paired_arrays(y_true, y_pred)
    n = int(true.size)
    if n == 0:
        return {"n": 0, "mae": None, "rmse": None, "r2": None, "mean_signed_error": None}
    return {
        "n": n,
        "mae": float(mean_absolute_error(true, pred)),
        "rmse": float(math.sqrt(mean_squared_error(true, pred))),
        "r2": float(r2_score(true, pred)) if n >= 2 else None,
        "mean_signed_error": float(np.mean(pred - true)),
    }


def metrics_by_sex(y_true, y_pred, sexes) -> dict[str, Any]:
    """{"M": regression_metrics, "F": regression_metrics, "gap_mae": MAE_M - MAE_F}.

    Sex values may be spelled any way normalise_sex accepts. gap_mae is None when
    either sex is absent.
    """
    true, pred = _paired_arrays(y_true, y_pred)
    sex_codes = _normalised_sexes(sexes, expected_length=true.size)
    result: dict[str, Any] = {
        sex: regression_metrics(true[sex_codes == sex], pred[sex_codes == sex]) for sex in SEXES
    }
    result["gap_mae"] = _difference_or_none(result["M"]["mae"], result["F"]["mae"])
    return result


def metrics_by_age_band(y_true, y_pred) -> list[dict[str, Any]]:
    """One row per AGE_BANDS_MONTHS band of the *true* age: band, bounds, n, mae, signed error."""
    true, pred = _paired_arrays(y_true, y_pred)
    rows = []
    for lower, upper in AGE_BANDS_MONTHS:
        in_band = (true >= lower) & (true < upper)
        band = regression_metrics(true[in_band], pred[in_band])
        rows.append(
            {
                "band": age_band_label(lower, upper),
                "lower_months": float(lower),
                "upper_months": None if math.isinf(upper) else float(upper),
                "n": band["n"],
                "mae": band["mae"],
                "mean_signed_error": band["mean_signed_error"],
            }
        )
    return rows


def stage_classification(y_true, y_pred) -> dict[str, Any]:
    """Child / Adolescent / Adult from true and predicted ages (stages.stage_for).

    Returns labels, per_class {stage: precision, recall, f1, support}, macro_avg,
    weighted_avg, accuracy, n, and confusion_matrix {"labels", "rows", "columns",
    "matrix"} with rows = true stage, columns = predicted stage, both in STAGES order.
    The three stages are always reported; a stage with no images gets support 0 and
    scores of 0 (scikit-learn's zero_division=0), and a row of zeros in the matrix.
    """
    true, pred = _paired_arrays(y_true, y_pred)
    if true.size == 0:
        raise ValueError("stage classification needs at least one prediction")
    true_stages = [stage_for(age) for age in true]
    pred_stages = [stage_for(age) for age in pred]
    labels = list(STAGES)
    report = classification_report(
        true_stages, pred_stages, labels=labels, output_dict=True, zero_division=0
    )
    matrix = confusion_matrix(true_stages, pred_stages, labels=labels)
    return {
        "labels": labels,
        "per_class": {stage: _class_scores(report[stage]) for stage in labels},
        "macro_avg": _class_scores(report["macro avg"]),
        "weighted_avg": _class_scores(report["weighted avg"]),
        "accuracy": float(accuracy_score(true_stages, pred_stages)),
        "n": int(true.size),
        "confusion_matrix": {
            "labels": labels,
            "rows": "true stage",
            "columns": "predicted stage",
            "matrix": matrix.astype(int).tolist(),
        },
    }


def all_metrics(y_true, y_pred, sexes) -> dict[str, Any]:
    """Everything above in one JSON-serialisable dict.

    Keys: n, regression, by_sex, by_age_band, stage_classification.
    """
    true, pred = _paired_arrays(y_true, y_pred)
    if true.size == 0:
        raise ValueError("no predictions to evaluate")
    return json_ready(
        {
            "n": int(true.size),
            "regression": regression_metrics(true, pred),
            "by_sex": metrics_by_sex(true, pred, sexes),
            "by_age_band": metrics_by_age_band(true, pred),
            "stage_classification": stage_classification(true, pred),
        }
    )


def json_ready(value: Any) -> Any:
    """Copy of value with numpy types as Python ones, tuples as lists, NaN/inf as None."""
    if isinstance(value, dict):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_ready(item) for item in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


# -- helpers -----------------------------------------------------------------


def _paired_arrays(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    true = np.asarray(y_true, dtype=float).reshape(-1)
    pred = np.asarray(y_pred, dtype=float).reshape(-1)
    if true.shape != pred.shape:
        raise ValueError(f"y_true has {true.size} values but y_pred has {pred.size}")
    if not (np.all(np.isfinite(true)) and np.all(np.isfinite(pred))):
        raise ValueError("ages must be finite numbers")
    return true, pred


def _normalised_sexes(sexes: Sequence, expected_length: int) -> np.ndarray:
    codes = np.array([normalise_sex(sex) for sex in sexes], dtype=object)
    if codes.size != expected_length:
        raise ValueError(f"got {codes.size} sexes for {expected_length} predictions")
    return codes


def _class_scores(entry: dict) -> dict[str, Any]:
    return {
        "precision": float(entry["precision"]),
        "recall": float(entry["recall"]),
        "f1": float(entry["f1-score"]),
        "support": int(entry["support"]),
    }


def _difference_or_none(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else float(a - b)


def _format_years(months: float) -> str:
    years = months / 12
    return f"{years:g}"
