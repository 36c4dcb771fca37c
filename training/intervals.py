"""Prediction intervals on the bone age: split-conformal, conditional on the true age band.

At training time (training/train.py, after the best epoch is chosen) the held-out validation
residuals of the final model are calibrated with crepes' ConformalRegressor, one Mondrian
category per age band of the *true* bone age (label-conditional conformal prediction), and
the half-widths are stored in the checkpoint metadata under "interval" (so in model.json too).

Why the true age band: a model regresses towards the mean, most at the ends of the age range
(young children are predicted too old, adolescents too young). Calibrating by the predicted
age lets the ends' large errors widen the middle's intervals and still under-covers the ends
(measured: docs/benchmarks.md, "Prediction intervals"). Conditioning on the true band gives
each band its own coverage.

For a new film the true band is unknown, so the interval is the set of ages y that the
calibration accepts, |y - prediction| <= h(y). The half-width h(y) is piecewise linear in the
age, through one knot per band at the band's centre (flat beyond the first and last centre),
and the knots are fitted so that on the calibration set each band's studies are covered at the
conformal rank: starting from each band's own conformal quantile, every knot is rescaled by
the conformal quantile of |residual| / h(true age) in its band until nothing moves (a few
dozen rounds). A continuous h whose slope stays under 1 makes that set one interval around the
prediction, so the interval shown is exactly the set the calibration measured. (The earlier
piecewise-constant widths made a union of separate segments, and keeping only the part around
the prediction dropped the 15+ y segment of adolescents predicted too young: 77-83% covered.)
Where the slope reaches 1 the interval is the connected part that holds the prediction.

The calibration is made for both sexes together and, where each sex alone has enough studies
for the nominal level, for each sex apart ("by_sex"), which a child of known sex is given: the
model errs differently for boys and girls of the same age, and the calibration of both together
covered girls 12-15 y 82.7% and boys 4-8 y 80.0% on the real sample (docs/benchmarks.md).

A band with fewer than MIN_BAND_SIZE validation studies (the ends, with a 15% validation
split) borrows the training split's residuals of that band, scaled by the ratio of the
validation to the training mean absolute error (training residuals are optimistic); where
even that is too few it uses the pooled half-width. The metadata says which ("source").
With too few validation studies for the nominal 90% level (fewer than 9) there is no
calibration: calibrate() returns None and predictions carry no interval.

Checkpoints calibrated by an earlier method are still applied as they were calibrated: by the
predicted band ("taxonomy" absent), or by the true band with piecewise-constant widths
("join_gap_months" stored; segments less than that apart joined).

Caveat, stated in the metadata: the validation split also chose the best epoch, so the
calibration set is not perfectly exchangeable with new data; the benchmark
(benchmarks/bench_intervals.py) measures coverage on the untouched test split.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

# Age bands, in years (the audit's bands: 0-4, 4-8, 8-12, 12-15, 15+).
BAND_EDGES_YEARS = (0, 4, 8, 12, 15)
CONFIDENCES = (0.8, 0.9, 0.95)
DEFAULT_CONFIDENCE = 0.9
MIN_BAND_SIZE = 30
MIN_BORROWED = 10  # with borrowed training residuals, at least this many (a finite 90% quantile needs 9)
UPPER_AGE_MONTHS = 228.0  # the oldest bone age in the RSNA set (19 y): closes the last band for its centre
FIT_ROUNDS = 200
TAXONOMY = "true age band"
SHAPE = "linear between band centres"
METHOD = ("split-conformal, Mondrian by true age band (label-conditional; crepes ConformalRegressor), "
          "half-width piecewise linear in the age through one knot per band, fitted so that each band "
          "is covered at its conformal rank; the interval is the set of ages y with |y - prediction| <= h(y)")
PREDICTED_BAND_METHOD = "split-conformal, Mondrian by predicted age band (crepes ConformalRegressor)"


def band_index(months: np.ndarray | float) -> np.ndarray:
    """0..len(BAND_EDGES_YEARS)-1: the age band of each bone age in months."""
    edges = np.array(BAND_EDGES_YEARS[1:], dtype=float) * 12
    return np.searchsorted(edges, np.asarray(months, dtype=float), side="right")


def band_label(index: int) -> str:
    low = BAND_EDGES_YEARS[index]
    high = BAND_EDGES_YEARS[index + 1] if index + 1 < len(BAND_EDGES_YEARS) else None
    return f"{low}-{high} y" if high is not None else f"{low}+ y"


def band_centres_months() -> np.ndarray:
    """The knots of the half-width: the centre of each age band (the last one closed at 19 y)."""
    edges = np.array(list(BAND_EDGES_YEARS) + [UPPER_AGE_MONTHS / 12], dtype=float) * 12
    return (edges[:-1] + edges[1:]) / 2


def _half_width(residuals: np.ndarray, confidence: float) -> float:
    """The split-conformal half-width of one calibration set (inf when it is too small)."""
    from crepes import ConformalRegressor

    if len(residuals) == 0:
        return math.inf
    regressor = ConformalRegressor().fit(np.asarray(residuals, dtype=float))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # too few examples: an infinite width, handled by the caller
        (_, high), = regressor.predict_int(y_hat=np.zeros(1), confidence=confidence)
    return float(high)


def _finite(pairs):
    predictions, targets = (np.asarray(a, dtype=float) for a in pairs)
    keep = np.isfinite(predictions) & np.isfinite(targets)
    return predictions[keep], targets[keep]


def calibrate(predictions, targets, *, male=None, train_predictions=None, train_targets=None, train_male=None,
              confidences=CONFIDENCES, min_band_size: int = MIN_BAND_SIZE) -> dict | None:
    """The interval calibration (JSON-able) from held-out predictions and true ages (months),
    or None when there are too few studies for the nominal level. `train_predictions` and
    `train_targets` (the training split's) fill in bands with few held-out studies.

    With `male` (1 for boys; and `train_male` for the training split), each sex is also
    calibrated on its own studies alone, stored under "by_sex" and used for a child of known sex:
    the model errs differently for boys and girls of the same age (girls mature earlier), and one
    calibration for both covered girls 12-15 y 82.7% and boys 4-8 y 80.0% on the real sample held
    out in full (docs/benchmarks.md, the cross-fit). Where one sex has too few studies for the
    nominal level, only the calibration of both is stored."""
    if male is None:
        return _calibrate(predictions, targets, train_predictions, train_targets, confidences, min_band_size)
    predictions, targets, male = (np.asarray(a, dtype=float) for a in (predictions, targets, male))
    calibration = _calibrate(predictions, targets, train_predictions, train_targets, confidences, min_band_size)
    if calibration is None:
        return None
    by_sex = {}
    for sex, mine in (("M", male > 0.5), ("F", male <= 0.5)):
        train = (None, None)
        if train_predictions is not None and train_targets is not None and train_male is not None:
            train_mine = (np.asarray(train_male, dtype=float) > 0.5) == (sex == "M")
            train = (np.asarray(train_predictions, dtype=float)[train_mine], np.asarray(train_targets, dtype=float)[train_mine])
        own = _calibrate(predictions[mine], targets[mine], *train, confidences, min_band_size)
        if own is None:
            return calibration
        by_sex[sex] = own
    return {**calibration, "method": calibration["method"] + "; calibrated for each sex apart", "by_sex": by_sex}


def _calibrate(predictions, targets, train_predictions, train_targets, confidences, min_band_size) -> dict | None:
    predictions, targets = _finite((predictions, targets))
    n = len(predictions)
    if n == 0:
        return None
    residuals = targets - predictions
    bands = band_index(targets)
    counts = np.bincount(bands, minlength=len(BAND_EDGES_YEARS))
    borrowed = {}  # band -> (scaled training residuals, their true ages)
    scale = None
    if train_predictions is not None and train_targets is not None:
        train_predictions, train_targets = _finite((train_predictions, train_targets))
        train_residuals = train_targets - train_predictions
        if len(train_residuals) and np.mean(np.abs(train_residuals)) > 0:
            scale = float(np.mean(np.abs(residuals)) / np.mean(np.abs(train_residuals)))
            train_bands = band_index(train_targets)
            borrowed = {b: (scale * train_residuals[train_bands == b], train_targets[train_bands == b])
                        for b in range(len(BAND_EDGES_YEARS)) if np.any(train_bands == b)}
    levels = {}
    for confidence in confidences:
        pooled = _half_width(residuals, confidence)
        if not math.isfinite(pooled):
            continue
        entries, calibration_sets = [], []
        for index in range(len(BAND_EDGES_YEARS)):
            own, ages = residuals[bands == index], targets[bands == index]
            source, extra = "validation", 0
            if len(own) < min_band_size and index in borrowed:
                extra = len(borrowed[index][0])
                own = np.concatenate([own, borrowed[index][0]])
                ages = np.concatenate([ages, borrowed[index][1]])
                source = "validation + training (scaled)"
            width = _half_width(own, confidence) if len(own) >= (min_band_size if not extra else MIN_BORROWED) else math.inf
            if not math.isfinite(width):
                source, width, extra, own, ages = "pooled", pooled, 0, None, None
            entries.append({"band": band_label(index), "n": int(counts[index]), "n_borrowed": int(extra),
                            "source": source, "pooled": source == "pooled", "half_width_months": width})
            calibration_sets.append((own, ages))
        knots = _fit_knots([entry["half_width_months"] for entry in entries], calibration_sets, confidence)
        for entry, knot in zip(entries, knots):
            entry["half_width_months"] = round(float(knot), 3)
        levels[f"{confidence:g}"] = {"pooled_half_width_months": round(pooled, 3), "bands": entries}
    if f"{DEFAULT_CONFIDENCE:g}" not in levels:
        return None  # too few studies for the nominal level: no interval rather than another level
    return {
        "method": METHOD,
        "taxonomy": TAXONOMY,
        "shape": SHAPE,
        "band_centres_months": [round(float(c), 3) for c in band_centres_months()],
        "calibrated_on": "validation split",
        "n": int(n),
        "band_edges_years": list(BAND_EDGES_YEARS),
        "min_band_size": int(min_band_size),
        "training_residual_scale": round(scale, 4) if scale is not None else None,
        "default_confidence": DEFAULT_CONFIDENCE,
        "levels": levels,
        "note": "the validation split also selected the best epoch; coverage is measured on the test split",
    }


def _fit_knots(start: list[float], calibration_sets: list, confidence: float) -> np.ndarray:
    """The knots of h (one per band centre) at which every band's calibration studies are
    covered at the conformal rank: |residual| <= h(true age) for the conformal share. Each knot
    is rescaled by its band's conformal quantile of |residual| / h(age) until no knot moves by
    1e-4 months; a band's own knot carries most of the weight of h inside the band, and the rounds
    settle in 8-31 rounds on the real and synthetic calibration sets of docs/benchmarks.md. Pooled
    bands (no calibration set) keep the pooled width."""
    centres = band_centres_months()
    knots = np.array(start, dtype=float)
    for _ in range(FIT_ROUNDS):
        previous = knots.copy()
        for index, (residuals, ages) in enumerate(calibration_sets):
            if residuals is None:
                continue
            ratios = np.abs(residuals) / np.maximum(np.interp(ages, centres, knots), 1e-9)
            knots[index] *= _half_width(ratios, confidence)
        if np.max(np.abs(knots - previous)) < 1e-4:
            break
    return knots


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
        # Each sex's own calibration, where both have this level (checkpoints before 28 Nov have none).
        by_sex = {sex: own for sex, own in calibration.get("by_sex", {}).items() if key in own["levels"]}
        self.by_sex = {sex: IntervalModel(own, self.confidence) for sex, own in by_sex.items()} if len(by_sex) == 2 else {}

    @classmethod
    def from_metadata(cls, metadata: dict, confidence: float | None = None) -> "IntervalModel | None":
        calibration = metadata.get("interval")
        return cls(calibration, confidence) if calibration else None

    def bounds(self, predictions, male=None) -> tuple[np.ndarray, np.ndarray]:
        """The intervals' low and high ends (months); `male` (1 for boys) picks each sex's own
        calibration where the checkpoint has one."""
        predictions = np.asarray(predictions, dtype=float)
        if male is not None and self.by_sex:
            boys = np.asarray(male, dtype=float) > 0.5
            low, high = np.empty(len(predictions)), np.empty(len(predictions))
            for sex, mine in (("M", boys), ("F", ~boys)):
                if mine.any():
                    low[mine], high[mine] = self.by_sex[sex].bounds(predictions[mine])
            return low, high
        if self.calibration.get("taxonomy") != TAXONOMY:  # calibrated by the predicted band (older checkpoints)
            half = self.half_widths[band_index(predictions)]
            # clipped at 0 months (but never above the prediction itself)
            return np.minimum(np.maximum(predictions - half, 0.0), predictions), predictions + half
        if "join_gap_months" in self.calibration:  # piecewise-constant widths (older checkpoints)
            low, high = self._joined_segments(predictions, float(self.calibration["join_gap_months"]))
        else:
            centres = np.asarray(self.calibration["band_centres_months"], dtype=float)
            low = np.array([_edge_of_set(p, centres, self.half_widths, -1) for p in predictions])
            high = np.array([_edge_of_set(p, centres, self.half_widths, +1) for p in predictions])
        low = np.minimum(np.maximum(low, 0.0), np.maximum(predictions, 0.0))  # clipped at 0 months
        return low, np.maximum(np.maximum(high, predictions), low)

    def _joined_segments(self, predictions: np.ndarray, gap: float) -> tuple[np.ndarray, np.ndarray]:
        """Per band the segment [prediction - h, prediction + h] cut to the band; of their union the
        connected part holding the prediction (segments less than `gap` apart joined)."""
        edges = np.array(list(BAND_EDGES_YEARS) + [np.inf], dtype=float) * 12
        lows = np.maximum(predictions[:, None] - self.half_widths[None], edges[None, :-1])
        highs = np.minimum(predictions[:, None] + self.half_widths[None], edges[None, 1:])
        low, high = np.empty(len(predictions)), np.empty(len(predictions))
        for i, p in enumerate(predictions):
            parts = []  # the union of the bands' segments, as connected parts
            for a, b in sorted((a, b) for a, b in zip(lows[i], highs[i]) if a <= b):
                if parts and a <= parts[-1][1] + gap:
                    parts[-1][1] = max(parts[-1][1], b)
                else:
                    parts.append([a, b])
            if not parts:  # cannot happen for p >= 0 (its own band's segment holds it); be safe
                parts = [[max(p - self.half_widths.max(), 0.0), p + self.half_widths.max()]]
            low[i], high[i] = min(parts, key=lambda part: 0.0 if part[0] <= p <= part[1]
                                  else min(abs(p - part[0]), abs(p - part[1])))
        return low, high

    def interval(self, prediction: float, male: bool | None = None) -> Interval:
        low, high = self.bounds(np.array([prediction]), None if male is None else np.array([float(male)]))
        return Interval(float(low[0]), float(high[0]), self.confidence)


def _edge_of_set(prediction: float, centres: np.ndarray, knots: np.ndarray, direction: int) -> float:
    """Where the set {y : |y - prediction| <= h(y)} that holds the prediction ends, walking up
    (direction +1) or down (-1). h is linear between the centres and flat outside them, so on
    each piece the distance minus h is linear and its first root is exact."""
    breaks = [c for c in centres if (c - prediction) * direction > 0]
    breaks = (sorted(breaks) if direction > 0 else sorted(breaks, reverse=True)) + [direction * math.inf]
    start = prediction
    for end in breaks:
        h_start = float(np.interp(start, centres, knots))
        slope = 0.0 if math.isinf(end) else (float(np.interp(end, centres, knots)) - h_start) / abs(end - start)
        # distance - h along this piece: (d - d_start) * (1 - slope) + (d_start - h_start), d = |y - prediction|
        reach = abs(start - prediction)
        if slope < 1.0:
            step = (h_start - reach) / (1.0 - slope)
            if math.isinf(end) or step <= abs(end - start):
                return start + direction * step
        start = end
    return start  # not reached: the last piece is flat (slope 0)


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
