"""The audit's rules, torch- and database-free: groups, windows, run keys, thresholds
and the findings they produce from an audit's results.

Ages are in months; an error is prediction - reference (the mean of the readings),
so a positive error means the model over-estimates the bone age.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from datetime import datetime, time, timedelta, timezone
from typing import Any

from core.errors import UserFacingError
from core.greulich_pyle import compare_with_chronological_age

# Bands of the reference bone age (lower inclusive, upper exclusive), as in the seed
# report (training.metrics.AGE_BANDS_MONTHS): 0-4, 4-8, 8-12, 12-15, 15+ years.
AGE_BANDS_MONTHS: tuple[tuple[float, float], ...] = ((0, 48), (48, 96), (96, 144), (144, 180), (180, math.inf))
AGE_BAND_LABELS: tuple[str, ...] = ("0-4 y", "4-8 y", "8-12 y", "12-15 y", "15+ y")

READING_METHODS = ("GP", "TW3", "other")
MIN_READING_MONTHS = 0.0
MAX_READING_MONTHS = 240.0  # 20 years: beyond the Greulich-Pyle atlas and any model's range

TRIGGERS = ("schedule", "page", "cli", "api", "demo")
SCHEDULE_TRIGGER = "schedule"


def age_band(months: float) -> str:
    for (lower, upper), label in zip(AGE_BANDS_MONTHS, AGE_BAND_LABELS):
        if lower <= months < upper:
            return label
    raise ValueError(f"no age band for {months!r} months")


def gp_reading(bone_age_months: float, chronological_age_months: float | None, sex: str) -> str | None:
    """delayed / normal / advanced, or None where the Brush table does not apply."""
    if chronological_age_months is None:
        return None
    reading = compare_with_chronological_age(bone_age_months, chronological_age_months, sex).reading
    return None if reading == "indeterminate" else reading


def check_reading_months(value: float) -> float:
    if not math.isfinite(value) or not MIN_READING_MONTHS <= value <= MAX_READING_MONTHS:
        raise ValueError(
            f"a bone age must be between {MIN_READING_MONTHS:g} and {MAX_READING_MONTHS:g} months, got {value:g}"
        )
    return float(value)


# ------------------------------------------------------------------ windows


def scheduled_window(now: datetime, days: int) -> tuple[datetime, datetime]:
    """The `days` whole UTC days before today's midnight: the same window however
    often, and whenever that night, the schedule fires."""
    end = datetime.combine(now.astimezone(timezone.utc).date(), time(0), tzinfo=timezone.utc)
    return end - timedelta(days=days), end


def run_key(trigger: str, start: datetime, end: datetime) -> str:
    """A scheduled run's unique key: one run per window and kind."""
    return f"{trigger}:{start.astimezone(timezone.utc):%Y-%m-%dT%H:%M}:{end.astimezone(timezone.utc):%Y-%m-%dT%H:%M}"


def parse_window(start: str | datetime, end: str | datetime) -> tuple[datetime, datetime]:
    """Dates (YYYY-MM-DD, midnight UTC) or ISO datetimes; `end` is exclusive and must be later."""
    window = (_as_utc(start, "from"), _as_utc(end, "to"))
    if window[1] <= window[0]:
        raise UserFacingError("the window's end ('to') must be after its start ('from')")
    return window


def _as_utc(value: str | datetime, name: str) -> datetime:
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise UserFacingError(f"'{name}' must be a date (YYYY-MM-DD) or an ISO date-time, got {value!r}") from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


# --------------------------------------------------------------- thresholds


@dataclass(frozen=True)
class AuditParameters:
    """What an audit run computes and when it reports a finding. Stored with each run."""

    min_readings: int = 30  # per model version in the window; fewer: "too few readings"
    min_group_readings: int = 15  # per group (sex, age band, stage, sex x age band)
    n_boot: int = 200  # bootstrap samples for the intervals (fairlearn MetricFrame)
    ci_level: float = 0.95
    seed: int = 0
    mae_margin_months: float = 0.0  # MAE's interval lies above validation MAE + this
    sex_gap_months: float = 3.0  # |MAE_M - MAE_F| at least this, and its interval excludes 0
    drift_p_value: float = 0.01  # two-sample test p below this is drift
    max_failure_rate: float = 0.05
    min_monitoring_n: int = 20  # per side of a two-sample test
    reference_days: int = 28  # reference period: this many days before the window

    @property
    def ci_quantiles(self) -> list[float]:
        tail = (1.0 - self.ci_level) / 2.0
        return [tail, 1.0 - tail]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> "AuditParameters":
        values = dict(values or {})
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise UserFacingError(f"unknown audit parameters: {', '.join(unknown)}")
        parsed: dict[str, Any] = {}
        defaults = cls()
        for name, value in values.items():
            kind = type(getattr(defaults, name))
            try:
                parsed[name] = kind(value)
            except (TypeError, ValueError):
                raise UserFacingError(f"audit parameter {name} must be a {kind.__name__}, got {value!r}") from None
            if parsed[name] < 0 or (kind is float and not math.isfinite(parsed[name])):
                raise UserFacingError(f"audit parameter {name} must not be negative, got {value!r}")
        params = cls(**parsed)
        if not 0 < params.ci_level < 1:
            raise UserFacingError("audit parameter ci_level must be between 0 and 1")
        if params.n_boot < 20:
            raise UserFacingError("audit parameter n_boot must be at least 20")
        return params


def too_few(n: int, needed: int, what: str = "readings") -> dict[str, Any]:
    return {"n": n, "too_few": True,
            "message": f"Too few {what} to report: {n} (at least {needed} needed)."}


# ----------------------------------------------------------------- findings


def findings_for(results: dict[str, Any], params: AuditParameters) -> list[dict[str, Any]]:
    """Every threshold an audit's results cross, as finding dicts
    {kind, model_version, group, message, value, threshold}."""
    found: list[dict[str, Any]] = []
    for version in results.get("versions", []):
        found += _version_findings(version, params)
    monitoring = results.get("monitoring") or {}
    failure = monitoring.get("failures") or {}
    if failure.get("rate") is not None and failure["rate"] > params.max_failure_rate and failure.get("finished", 0):
        found.append(_finding(
            "failure_rate", None, "all", failure["rate"], params.max_failure_rate,
            f"{failure['rate']:.1%} of the finished assessments failed ({failure['failed']} of "
            f"{failure['finished']}), above {params.max_failure_rate:.0%}."))
    for name, test in sorted((monitoring.get("drift") or {}).items()):
        if test.get("drift"):
            found.append(_finding(
                "drift", None, name, test["p_value"], params.drift_p_value,
                f"{test['label']} differs from the reference period ({test['test']}, p = {test['p_value']:.2g}, "
                f"n = {test['n_window']} vs {test['n_reference']})."))
    return found


def _version_findings(version: dict[str, Any], params: AuditParameters) -> list[dict[str, Any]]:
    if version.get("too_few"):
        return []
    found = []
    name = version.get("model_name")
    validation_mae = version.get("validation_mae")
    if validation_mae is not None:
        limit = validation_mae + params.mae_margin_months
        candidates = [("all", version["overall"])] + [
            (f"sex={sex}", metrics) for sex, metrics in (version.get("by_sex") or {}).items()
        ]
        for group, metrics in candidates:
            interval = metrics.get("mae_ci")
            if not metrics.get("too_few") and interval and interval[0] is not None and interval[0] > limit:
                found.append(_finding(
                    "mae_above_validation", name, group, metrics["mae"], limit,
                    f"MAE {metrics['mae']:.1f} months ({group}; {params.ci_level:.0%} interval "
                    f"{interval[0]:.1f}-{interval[1]:.1f}) is above the model's validation MAE "
                    f"{validation_mae:.1f} months" + (f" + {params.mae_margin_months:g}" if params.mae_margin_months else "")
                    + "."))
    gap = version.get("sex_gap") or {}
    interval = gap.get("ci")
    if gap.get("value") is not None and interval and None not in interval:
        excludes_zero = interval[0] > 0 or interval[1] < 0
        if excludes_zero and abs(gap["value"]) >= params.sex_gap_months:
            worse = "M" if gap["value"] > 0 else "F"
            found.append(_finding(
                "sex_gap", name, f"sex={worse}", gap["value"], params.sex_gap_months,
                f"The MAE is {abs(gap['value']):.1f} months higher for {'boys' if worse == 'M' else 'girls'} "
                f"(MAE_M - MAE_F = {gap['value']:+.1f}, {params.ci_level:.0%} interval "
                f"{interval[0]:+.1f} to {interval[1]:+.1f}; threshold {params.sex_gap_months:g} months)."))
    return found


def _finding(kind: str, model: str | None, group: str, value: float, threshold: float, message: str) -> dict:
    return {"kind": kind, "model_version": model, "group": group, "value": round(float(value), 4),
            "threshold": float(threshold), "message": message}
