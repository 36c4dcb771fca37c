"""Post-hoc recalibration of the bone age: a monotone map from the network's prediction
(after flip TTA) to months, fitted on the validation split at the end of training.

A short training run regresses to the mean age: the youngest children are predicted too
old and the oldest too young (docs/benchmarks.md, issue 12). The map stretches the
predictions back. Methods (the recipe's `recalibrate` field):

  none        the network's output as it is
  linear      months = intercept + slope * prediction, fitted by median (L1) regression
  linear-sex  the same, one line per sex (a sex with too few studies uses the pooled line)
  isotonic    a non-decreasing step function (sklearn.isotonic), interpolated between steps
  inverse     the L1 line of the prediction on the true age, inverted: unbiased at every true age
              (the youngest no longer over-estimated on average) at the cost of a wider spread, so
              usually a larger overall MAE than "linear", which minimises the error given the prediction

fit() returns a small JSON-able dict (stored in the checkpoint metadata as "recalibration")
or None when there is nothing to fit (too few studies, or a line that would not be
increasing); apply() maps predictions through it and clips to [0, 240] months. apply(None,
...) is the identity, so checkpoints without a recalibration predict exactly as before.
Torch-free (numpy, scikit-learn).
"""

from __future__ import annotations

import numpy as np

METHODS = ("none", "linear", "linear-sex", "isotonic", "inverse")
MONTHS_RANGE = (0.0, 240.0)
MIN_STUDIES = 20  # fewer validation studies than this: no recalibration
MIN_PER_SEX = 15  # linear-sex: fewer studies of one sex than this: that sex uses the pooled line


def _arrays(predictions, targets=None, male=None):
    p = np.asarray(predictions, dtype=float).reshape(-1)
    t = None if targets is None else np.asarray(targets, dtype=float).reshape(-1)
    m = np.zeros_like(p) if male is None else np.asarray(male, dtype=float).reshape(-1)
    return p, t, m


def _line(predictions: np.ndarray, targets: np.ndarray) -> dict | None:
    """The L1 (median) regression line of the targets on the predictions; None unless increasing."""
    from sklearn.linear_model import QuantileRegressor

    if len(predictions) < 2 or np.ptp(predictions) == 0:
        return None
    regressor = QuantileRegressor(quantile=0.5, alpha=0.0, solver="highs").fit(predictions[:, None], targets)
    slope, intercept = float(regressor.coef_[0]), float(regressor.intercept_)
    if not (np.isfinite(slope) and np.isfinite(intercept)) or slope <= 0:
        return None
    return {"intercept": round(intercept, 6), "slope": round(slope, 6)}


def fit(predictions, targets, male=None, method: str = "linear") -> dict | None:
    """The recalibration of `predictions` (months, the model's output after TTA) towards
    `targets` (true months); `male`: 1 for boys, 0 for girls (used by linear-sex)."""
    if method not in METHODS:
        raise ValueError(f"unknown recalibration {method!r}; choose one of {', '.join(METHODS)}")
    p, t, m = _arrays(predictions, targets, male)
    keep = np.isfinite(p) & np.isfinite(t)
    p, t, m = p[keep], t[keep], m[keep]
    if method == "none" or len(p) < MIN_STUDIES:
        return None
    result: dict = {"method": method, "n": int(len(p)), "range": list(MONTHS_RANGE)}
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(increasing=True, out_of_bounds="clip").fit(p, t)
        result["x"] = [round(float(v), 4) for v in iso.X_thresholds_]
        result["y"] = [round(float(v), 4) for v in iso.y_thresholds_]
        return result
    if method == "inverse":  # prediction = a + b * age, so age = (prediction - a) / b
        line = _line(t, p)
        if line is None:
            return None
        result.update(intercept=round(-line["intercept"] / line["slope"], 6), slope=round(1 / line["slope"], 6))
        return result
    pooled = _line(p, t)
    if pooled is None:
        return None
    result.update(pooled)
    if method == "linear-sex":
        result["by_sex"] = {}
        for sex, chosen in (("M", m > 0.5), ("F", m <= 0.5)):
            line = _line(p[chosen], t[chosen]) if chosen.sum() >= MIN_PER_SEX else None
            result["by_sex"][sex] = line or {**pooled, "pooled": True}
    return result


def apply(recalibration: dict | None, predictions, male=None) -> np.ndarray:
    """Months from the model's predictions through the stored map (float32, like the model's
    output); the predictions unchanged when `recalibration` is None."""
    if recalibration is None:
        return np.asarray(predictions, dtype=np.float32) if not isinstance(predictions, np.ndarray) else predictions
    p, _, m = _arrays(predictions, male=male)
    method = recalibration["method"]
    if method == "isotonic":
        months = np.interp(p, recalibration["x"], recalibration["y"])
    elif method in ("linear", "linear-sex", "inverse"):
        slope = np.full_like(p, recalibration["slope"])
        intercept = np.full_like(p, recalibration["intercept"])
        for sex, chosen in (("M", m > 0.5), ("F", m <= 0.5)):
            line = recalibration.get("by_sex", {}).get(sex)
            if line is not None:
                slope[chosen], intercept[chosen] = line["slope"], line["intercept"]
        months = intercept + slope * p
    else:
        raise ValueError(f"unknown recalibration {method!r} in the checkpoint")
    low, high = recalibration.get("range", MONTHS_RANGE)
    return np.clip(months, low, high).astype(np.float32)


def cross_validate(predictions, targets, male=None, methods=METHODS, *, folds: int = 5, repeats: int = 20,
                   seed: int = 0) -> dict[str, dict]:
    """Held-out MAE of each method by repeated k-fold cross-validation on one set (the
    validation split): fit on k-1 folds, apply to the last. {method: {"mae", "sd", "folds",
    "repeats", "abs_errors"}}: the SD over the repeats' MAEs, and each study's out-of-fold absolute
    error averaged over the repeats (for paired comparisons between methods)."""
    p, t, m = _arrays(predictions, targets, male)
    rng = np.random.default_rng(seed)
    per_repeat: dict[str, list[float]] = {method: [] for method in methods}
    summed = {method: np.zeros(len(p)) for method in methods}
    for _ in range(repeats):
        fold = rng.permutation(len(p)) % folds
        errors = {method: np.zeros(len(p)) for method in methods}
        for k in range(folds):
            test, train = fold == k, fold != k
            for method in methods:
                mapping = fit(p[train], t[train], m[train], method)
                errors[method][test] = np.abs(apply(mapping, p[test], m[test]) - t[test])
        for method in methods:
            per_repeat[method].append(float(errors[method].mean()))
            summed[method] += errors[method]
    return {method: {"mae": float(np.mean(v)), "sd": float(np.std(v)), "folds": folds, "repeats": repeats,
                     "abs_errors": summed[method] / repeats}
            for method, v in per_repeat.items()}
