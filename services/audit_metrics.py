"""The numbers of an audit, from plain rows (no database): accuracy against the readings
by group with fairlearn's MetricFrame (and its bootstrap intervals), the sex gap, stage
classification, model against readers, and label-free monitoring against a reference
period with two-sample tests.

Error = prediction - reference, where the reference is the mean of an assessment's
readings. Every value that is undefined for the data is None (strict JSON).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from itertools import combinations
from typing import Any, Sequence

import numpy as np

from core.audit_rules import AGE_BAND_LABELS, AuditParameters, age_band, gp_reading, too_few
from core.stages import STAGES, stage_for

SEXES = ("F", "M")
GROUPINGS = ("sex", "age_band", "stage", "sex_age_band")


@dataclass
class AuditRow:
    """One assessment as the audit sees it."""

    id: str
    created_at: datetime
    status: str
    sex: str
    chronological_age_months: float | None = None
    bone_age_months: float | None = None
    model_version_id: int | None = None
    inference_seconds: float | None = None
    error: str | None = None
    readings: list[float] = field(default_factory=list)
    image_mean: float | None = None
    image_std: float | None = None
    heatmap_in_hand: float | None = None  # Grad-CAM mass inside the located hand (assessments.heatmap_in_hand)

    @property
    def reference(self) -> float | None:
        return float(np.mean(self.readings)) if self.readings else None


# ---------------------------------------------------------------- metrics


def _mae(y_true, y_pred) -> float:
    return float(np.mean(np.abs(np.asarray(y_pred, float) - np.asarray(y_true, float))))


def _rmse(y_true, y_pred) -> float:
    return float(np.sqrt(np.mean((np.asarray(y_pred, float) - np.asarray(y_true, float)) ** 2)))


def _signed(y_true, y_pred) -> float:
    return float(np.mean(np.asarray(y_pred, float) - np.asarray(y_true, float)))


def _within_12(y_true, y_pred) -> float:
    return float(np.mean(np.abs(np.asarray(y_pred, float) - np.asarray(y_true, float)) <= 12.0))


def _count(y_true, y_pred) -> int:
    return int(len(y_true))


def _disagreement(y_true, y_pred, disagree, defined) -> float:
    """Share of the rows with a Greulich-Pyle reading on both sides where they differ."""
    defined = np.asarray(defined, bool)
    return float(np.mean(np.asarray(disagree, bool)[defined])) if defined.any() else math.nan


def _sex_gap(y_true, y_pred, sex) -> float:
    """MAE_M - MAE_F on the rows given (the bootstrap's resample)."""
    errors = np.abs(np.asarray(y_pred, float) - np.asarray(y_true, float))
    sex = np.asarray(sex)
    if not (sex == "M").any() or not (sex == "F").any():
        return math.nan
    return float(errors[sex == "M"].mean() - errors[sex == "F"].mean())


METRICS = {"n": _count, "mae": _mae, "rmse": _rmse, "mean_signed_error": _signed, "within_12_months": _within_12,
           "disagreement_rate": _disagreement}
METRIC_NAMES = tuple(METRICS)


@dataclass
class Labelled:
    """The rows of one model version that have readings, as arrays."""

    truth: np.ndarray
    pred: np.ndarray
    sex: np.ndarray
    age_band: np.ndarray
    stage: np.ndarray
    disagree: np.ndarray
    gp_defined: np.ndarray
    readings: list[list[float]]

    @classmethod
    def from_rows(cls, rows: Sequence[AuditRow]) -> "Labelled":
        truth = np.array([r.reference for r in rows], float)
        pred = np.array([r.bone_age_months for r in rows], float)
        model_gp = [gp_reading(r.bone_age_months, r.chronological_age_months, r.sex) for r in rows]
        reader_gp = [gp_reading(r.reference, r.chronological_age_months, r.sex) for r in rows]
        defined = np.array([m is not None and h is not None for m, h in zip(model_gp, reader_gp)], bool)
        return cls(
            truth=truth, pred=pred,
            sex=np.array([r.sex for r in rows]),
            age_band=np.array([age_band(t) for t in truth]),
            stage=np.array([stage_for(t) for t in truth]),
            disagree=np.array([d and m != h for d, m, h in zip(defined, model_gp, reader_gp)], bool),
            gp_defined=defined,
            readings=[list(r.readings) for r in rows],
        )


def metric_frame(data: Labelled, features, *, n_boot: int | None = None, ci_quantiles=None, seed: int | None = None,
                 metrics: dict | None = None):
    from fairlearn.metrics import MetricFrame

    metrics = metrics or METRICS
    params = {"disagreement_rate": {"disagree": data.disagree, "defined": data.gp_defined}}
    return MetricFrame(metrics=metrics, y_true=data.truth, y_pred=data.pred, sensitive_features=features,
                       sample_params={k: v for k, v in params.items() if k in metrics},
                       n_boot=n_boot, ci_quantiles=ci_quantiles, random_state=seed)


def _clean(value) -> Any:
    if value is None:
        return None
    if isinstance(value, (np.integer,)):
        return int(value)
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


def _row_metrics(series, params: AuditParameters, *, what: str = "readings") -> dict[str, Any]:
    # MetricFrame lists every combination of two features, the empty ones with NaN.
    n = 0 if _clean(series["n"]) is None else int(series["n"])
    if n < params.min_group_readings:
        return too_few(n, params.min_group_readings, what)
    out = {name: _clean(series[name]) for name in METRIC_NAMES}
    out["n"] = n
    return out


def _group_label(key) -> str:
    return " · ".join(str(k) for k in key) if isinstance(key, tuple) else str(key)


def accuracy(rows: Sequence[AuditRow], params: AuditParameters) -> dict[str, Any]:
    """Accuracy of one model version in one window, from its rows that have readings."""
    n = len(rows)
    if n < params.min_readings:
        return too_few(n, params.min_readings)
    data = Labelled.from_rows(rows)
    overall = metric_frame(data, {"all": np.zeros(n, int)}).overall
    result: dict[str, Any] = {"n": n, "overall": _row_metrics(overall, params)}

    features = {"sex": {"sex": data.sex}, "age_band": {"age_band": data.age_band}, "stage": {"stage": data.stage},
                "sex_age_band": {"sex": data.sex, "age_band": data.age_band}}
    order = {"sex": list(SEXES), "age_band": list(AGE_BAND_LABELS), "stage": list(STAGES),
             "sex_age_band": [f"{s} · {b}" for s in SEXES for b in AGE_BAND_LABELS]}
    for grouping, feature in features.items():
        frame = metric_frame(data, feature)
        groups = {_group_label(key): _row_metrics(row, params) for key, row in frame.by_group.iterrows()}
        result[f"by_{grouping}"] = {label: groups[label] for label in order[grouping] if label in groups}

    # Intervals: bootstrap of the MAE overall and by sex, and of the sex gap.
    quantiles = params.ci_quantiles
    ci_frame = metric_frame(data, {"sex": data.sex}, n_boot=params.n_boot, ci_quantiles=quantiles,
                            seed=params.seed, metrics={"mae": _mae})
    result["overall"]["mae_ci"] = [_clean(bound["mae"]) for bound in ci_frame.overall_ci]
    for sex in result["by_sex"]:
        if not result["by_sex"][sex].get("too_few"):
            result["by_sex"][sex]["mae_ci"] = [_clean(bound.loc[sex, "mae"]) for bound in ci_frame.by_group_ci]
    result["sex_gap"] = sex_gap(data, params, ci_frame)
    result["stage_classification"] = stage_classification(data.truth, data.pred)
    result["model_vs_readers"] = model_vs_readers(data, params)
    return result


def sex_gap(data: Labelled, params: AuditParameters, ci_frame=None) -> dict[str, Any]:
    """MAE_M - MAE_F with a bootstrap interval (MetricFrame over one group with the sex as
    a sample parameter, so each resample's gap is computed on the same rows), and
    MetricFrame's own difference() (max - min, unsigned) with its interval."""
    counts = {s: int((data.sex == s).sum()) for s in SEXES}
    if min(counts.values()) < params.min_group_readings:
        return {**too_few(min(counts.values()), params.min_group_readings, "readings for one sex"),
                "counts": counts}
    from fairlearn.metrics import MetricFrame

    frame = MetricFrame(metrics={"gap": _sex_gap}, y_true=data.truth, y_pred=data.pred,
                        sensitive_features={"all": np.zeros(len(data.truth), int)},
                        sample_params={"gap": {"sex": data.sex}}, n_boot=params.n_boot,
                        ci_quantiles=params.ci_quantiles, random_state=params.seed)
    out = {"metric": "mae", "definition": "MAE_M - MAE_F (months)", "value": _clean(frame.overall["gap"]),
           "ci": [_clean(bound["gap"]) for bound in frame.overall_ci], "counts": counts}
    if ci_frame is not None:
        out["difference"] = _clean(ci_frame.difference()["mae"])
        out["difference_ci"] = [_clean(bound["mae"]) for bound in ci_frame.difference_ci()]
    return out


def stage_classification(truth: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    from training.metrics import stage_classification as classify  # numpy / scikit-learn only

    return classify(truth, pred)


def model_vs_readers(data: Labelled, params: AuditParameters) -> dict[str, Any]:
    """On the assessments with two or more readings: the reader-to-reader MAE (mean
    absolute difference over pairs of readers) beside the model's MAE against each
    reader and against their mean."""
    index = [i for i, r in enumerate(data.readings) if len(r) >= 2]
    if len(index) < params.min_group_readings:
        return too_few(len(index), params.min_group_readings, "assessments with two or more readings")
    pairs = [float(np.mean([abs(a - b) for a, b in combinations(data.readings[i], 2)])) for i in index]
    versus_each = [float(np.mean([abs(data.pred[i] - r) for r in data.readings[i]])) for i in index]
    return {
        "n": len(index),
        "reader_to_reader_mae": float(np.mean(pairs)),
        "model_mae_vs_each_reader": float(np.mean(versus_each)),
        "model_mae_vs_reader_mean": float(np.mean(np.abs(data.pred[index] - data.truth[index]))),
    }


# ------------------------------------------------------------- monitoring

CONTINUOUS = {
    "bone_age_months": "Predicted bone age",
    "chronological_age_months": "Chronological age",
    "inference_seconds": "Inference time",
    "image_mean": "Image mean intensity",
    "image_std": "Image contrast (SD of intensity)",
    # A model that drifts off the hand (the marker, the plate's edge) shows here first.
    "heatmap_in_hand": "Heatmap share on the hand",
}


def monitoring(window: Sequence[AuditRow], reference: Sequence[AuditRow], params: AuditParameters,
               window_days: float, reference_days: float) -> dict[str, Any]:
    """Label-free: every assessment in the window, readings or not, against the reference."""
    from scipy import stats

    finished = [r for r in window if r.status in ("succeeded", "failed")]
    failed = [r for r in finished if r.status == "failed"]
    reasons: dict[str, int] = {}
    for row in failed:
        reason = (row.error or "no reason recorded").split(". ")[0][:120]
        reasons[reason] = reasons.get(reason, 0) + 1
    succeeded = [r for r in window if r.status == "succeeded"]
    times = np.array([r.inference_seconds for r in succeeded if r.inference_seconds is not None], float)
    out: dict[str, Any] = {
        "volume": {"n": len(window), "per_day": len(window) / window_days if window_days else None,
                   "reference_n": len(reference),
                   "reference_per_day": len(reference) / reference_days if reference_days else None},
        "failures": {"finished": len(finished), "failed": len(failed),
                     "rate": len(failed) / len(finished) if finished else None,
                     "reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1]))},
        "inference_seconds": {"n": int(times.size),
                              "mean": _clean(times.mean()) if times.size else None,
                              "p50": _clean(np.percentile(times, 50)) if times.size else None,
                              "p95": _clean(np.percentile(times, 95)) if times.size else None},
        "sex_mix": {s: sum(1 for r in window if r.sex == s) for s in SEXES},
        "distributions": {},
        "drift": {},
    }
    ref_succeeded = [r for r in reference if r.status == "succeeded"]
    for name, label in CONTINUOUS.items():
        source = (window, reference) if name == "chronological_age_months" else (succeeded, ref_succeeded)
        a = np.array([getattr(r, name) for r in source[0] if getattr(r, name) is not None], float)
        b = np.array([getattr(r, name) for r in source[1] if getattr(r, name) is not None], float)
        out["distributions"][name] = {"label": label, "n": int(a.size),
                                      "mean": _clean(a.mean()) if a.size else None,
                                      "reference_mean": _clean(b.mean()) if b.size else None}
        if min(a.size, b.size) < params.min_monitoring_n:
            out["drift"][name] = {"label": label, "test": "Kolmogorov-Smirnov", "n_window": int(a.size),
                                  "n_reference": int(b.size), "drift": False,
                                  **too_few(int(min(a.size, b.size)), params.min_monitoring_n, "assessments")}
            continue
        test = stats.ks_2samp(a, b)
        out["drift"][name] = _test_result(label, "Kolmogorov-Smirnov", test.statistic, test.pvalue,
                                          a.size, b.size, params)
    # Sex mix and failure rate: 2 x 2 tables, Fisher's exact test.
    tables = {
        "sex_mix": ("Share of girls", [[sum(r.sex == "F" for r in window), sum(r.sex == "M" for r in window)],
                                       [sum(r.sex == "F" for r in reference), sum(r.sex == "M" for r in reference)]]),
        "failure_rate": ("Failure rate", [[len(failed), len(finished) - len(failed)],
                                          [sum(r.status == "failed" for r in reference),
                                           sum(r.status == "succeeded" for r in reference)]]),
    }
    for name, (label, table) in tables.items():
        n_window, n_reference = sum(table[0]), sum(table[1])
        if min(n_window, n_reference) < params.min_monitoring_n:
            out["drift"][name] = {"label": label, "test": "Fisher exact", "n_window": n_window,
                                  "n_reference": n_reference, "drift": False,
                                  **too_few(min(n_window, n_reference), params.min_monitoring_n, "assessments")}
            continue
        statistic, p_value = stats.fisher_exact(table)
        out["drift"][name] = _test_result(label, "Fisher exact", statistic, p_value, n_window, n_reference, params)
    return out


def _test_result(label, test, statistic, p_value, n_window, n_reference, params) -> dict[str, Any]:
    p_value = _clean(p_value)
    return {"label": label, "test": test, "statistic": _clean(statistic), "p_value": p_value,
            "n_window": int(n_window), "n_reference": int(n_reference),
            "drift": p_value is not None and p_value < params.drift_p_value}
