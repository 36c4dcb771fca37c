"""Prediction intervals on the bone age: split-conformal, Mondrian by predicted age band.

At training time (training/train.py, after the best epoch is chosen) the held-out
validation residuals of the final model are calibrated with crepes' ConformalRegressor,
one category per age band of the *predicted* bone age (the true age is unknown when
predicting), and the half-widths are stored in the checkpoint metadata under
"interval" (so in model.json too). The Predictor applies them to every prediction:
[prediction - h, prediction + h] for the band of the prediction, clipped at 0.

A band with fewer than MIN_BAND_SIZE validation studies has no calibration of its own and
uses the pooled half-width (all validation studies), and says so ("pooled": true). With
too few validation studies for the nominal 90% level (fewer than 9) there is no
calibration: calibrate() returns None and predictions carry no interval, like those of
checkpoints trained before intervals existed.

Caveat, stated in the metadata: the validation split also chose the best epoch, so the
calibration set is not perfectly exchangeable with new data; the benchmark
(benchmarks/bench_intervals.py) measures coverage on the untouched test split.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

# Age bands of the predicted bone age, in years (the audit's bands: 0-4, 4-8, 8-12, 12-15, 15+).
BAND_EDGES_YEARS = (0, 4, 8, 12, 15)
CONFIDENCES = (0.8, 0.9, 0.95)
DEFAULT_CONFIDENCE = 0.9
MIN_BAND_SIZE = 30
METHOD = "split-conformal, Mondrian by predicted age band (crepes ConformalRegressor)"


def band_index(months: np.ndarray | float) -> np.ndarray:
    """0..len(BAND_EDGES_YEARS)-1: the age band of each (predicted) bone age in months."""
    edges = np.array(BAND_EDGES_YEARS[1:], dtype=float) * 12
    return np.searchsorted(edges, np.asarray(months, dtype=float), side="right")


def band_label(index: int) -> str:
    low = BAND_EDGES_YEARS[index]
    high = BAND_EDGES_YEARS[index + 1] if index + 1 < len(BAND_EDGES_YEARS) else None
    return f"{low}-{high} y" if high is not None else f"{low}+ y"


def _half_widths(residuals: np.ndarray, bins: np.ndarray, confidence: float) -> dict[int, float]:
    from crepes import ConformalRegressor

    regressor = ConformalRegressor().fit(residuals, bins=bins)
    present = np.unique(bins)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # too few examples: an infinite width, handled below
        bounds = regressor.predict_int(y_hat=np.zeros(len(present)), bins=present, confidence=confidence)
    return {int(b): float(high) for b, (_, high) in zip(present, bounds)}


def calibrate(predictions, targets, *, confidences=CONFIDENCES,
              min_band_size: int = MIN_BAND_SIZE) -> dict | None:
    """The interval calibration (JSON-able) from held-out predictions and true ages (months),
    or None when there are too few studies for every level."""
    predictions = np.asarray(predictions, dtype=float)
    targets = np.asarray(targets, dtype=float)
    keep = np.isfinite(predictions) & np.isfinite(targets)
    predictions, targets = predictions[keep], targets[keep]
    n = len(predictions)
    if n == 0:
        return None
    residuals = targets - predictions
    bands = band_index(predictions)
    counts = np.bincount(bands, minlength=len(BAND_EDGES_YEARS))
    levels = {}
    for confidence in confidences:
        pooled = _half_widths(residuals, np.zeros(n, dtype=int), confidence)[0]
        if not math.isfinite(pooled):
            continue
        per_band = _half_widths(residuals, bands, confidence)
        widths = []
        for index in range(len(BAND_EDGES_YEARS)):
            own = per_band.get(index)
            use_own = counts[index] >= min_band_size and own is not None and math.isfinite(own)
            widths.append({"band": band_label(index), "n": int(counts[index]), "pooled": not use_own,
                           "half_width_months": round(own if use_own else pooled, 3)})
        levels[f"{confidence:g}"] = {"pooled_half_width_months": round(pooled, 3), "bands": widths}
    if f"{DEFAULT_CONFIDENCE:g}" not in levels:
        return None  # too few studies for the nominal level: no interval rather than another level
    return {
        "method": METHOD,
        "calibrated_on": "validation split",
        "n": int(n),
        "band_edges_years": list(BAND_EDGES_YEARS),
        "min_band_size": int(min_band_size),
        "default_confidence": DEFAULT_CONFIDENCE,
        "levels": levels,
        "note": "the validation split also selected the best epoch; coverage is measured on the test split",
    }


@dataclass(frozen=True)
class Interval:
    low_months: float
    high_months: float
    confidence: float


class IntervalModel:
    """Applies a stored calibration (the "interval" entry of a checkpoint's metadata)."""

    def __init__(self, calibration: dict, confidence: float | None = None):
        self.calibration = calibration
        self.confidence = float(confidence if confidence is not None else calibration["default_confidence"])
        key = f"{self.confidence:g}"
        if key not in calibration["levels"]:
            raise ValueError(f"no calibration at {self.confidence:g}; stored: {sorted(calibration['levels'])}")
        self.half_widths = np.array([b["half_width_months"] for b in calibration["levels"][key]["bands"]])

    @classmethod
    def from_metadata(cls, metadata: dict, confidence: float | None = None) -> "IntervalModel | None":
        calibration = metadata.get("interval")
        return cls(calibration, confidence) if calibration else None

    def bounds(self, predictions) -> tuple[np.ndarray, np.ndarray]:
        predictions = np.asarray(predictions, dtype=float)
        half = self.half_widths[band_index(predictions)]
        # clipped at 0 months (but never above the prediction itself)
        return np.minimum(np.maximum(predictions - half, 0.0), predictions), predictions + half

    def interval(self, prediction: float) -> Interval:
        low, high = self.bounds(np.array([prediction]))
        return Interval(float(low[0]), float(high[0]), self.confidence)


def coverage_table(predictions, targets, low, high, groups: dict[str, np.ndarray]) -> list[dict]:
    """Empirical coverage and mean width, overall and per group value (for the benchmark)."""
    targets = np.asarray(targets, dtype=float)
    covered = (np.asarray(low) <= targets) & (targets <= np.asarray(high))
    width = np.asarray(high) - np.asarray(low)
    rows = [{"group": "all", "value": "all", "n": len(targets), "coverage": float(covered.mean()),
             "mean_width_months": float(width.mean())}]
    for name, values in groups.items():
        values = np.asarray(values)
        for value in sorted(set(values.tolist()), key=str):
            mask = values == value
            rows.append({"group": name, "value": value, "n": int(mask.sum()), "coverage": float(covered[mask].mean()),
                         "mean_width_months": float(width[mask].mean())})
    return rows
