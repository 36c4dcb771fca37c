"""The audit's services and rules with fakes: readings (one, CSV all-or-nothing), audit
runs (unique key per scheduled window, failure recorded), findings thresholds, windows."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from core.audit_rules import AuditParameters, age_band, findings_for, run_key, scheduled_window
from core.errors import UserFacingError
from core.status import JobStatus
from db.models import Assessment, ModelVersion
from fakes import FakeUnitOfWork
from services.audits import run_audit, run_scheduled_audit
from services.readings import InvalidReading, add_reading, import_readings_csv

NOW = datetime(2026, 11, 27, 2, 0, tzinfo=timezone.utc)
FAST = {"n_boot": 20}  # few resamples: unit tests stay fast


def _assessment(uow, created=NOW - timedelta(days=1), **values):
    defaults = dict(image_sha256="a", image_path="x.png", sex="F", status=JobStatus.SUCCEEDED, bone_age_months=100.0,
                    created_at=created)
    return uow.assessments.add(Assessment(**{**defaults, **values}))


def test_a_reading_is_stored_and_impossible_or_duplicate_ones_are_refused():
    uow = FakeUnitOfWork()
    a = _assessment(uow)
    reading = add_reading(a.id, {"bone_age_months": "120", "reader": " R1 ", "method": "tw3"}, uow=uow, clock=lambda: NOW)
    assert (reading.reader, reading.method, reading.read_at) == ("R1", "TW3", NOW)
    with pytest.raises(InvalidReading) as refused:
        add_reading(a.id, {"bone_age_months": "241", "reader": "R2", "method": "x", "read_at": "2099-01-01"},
                    uow=uow, clock=lambda: NOW)
    assert set(refused.value.fields) == {"bone_age_months", "method", "read_at"}
    with pytest.raises(InvalidReading, match="already has a reading"):
        add_reading(a.id, {"bone_age_months": 12, "reader": "R1"}, uow=uow)
    with pytest.raises(InvalidReading, match="no assessment"):
        add_reading("missing", {"bone_age_months": 12, "reader": "R1"}, uow=uow)
    assert len(uow.readings.rows) == 1


def test_years_and_months_are_accepted_on_the_form():
    uow = FakeUnitOfWork()
    a = _assessment(uow)
    assert add_reading(a.id, {"bone_age_years": "10", "bone_age_extra_months": "3", "reader": "R"},
                       uow=uow).bone_age_months == 123


def test_a_csv_is_imported_whole_or_not_at_all_with_a_reason_per_row():
    uow = FakeUnitOfWork()
    a, b = _assessment(uow, reference="S-1"), _assessment(uow, reference="S-2")
    _assessment(uow, reference="TWIN"), _assessment(uow, reference="TWIN")
    report = import_readings_csv(
        f"assessment,bone_age_months,reader\nS-1,100,R1\n{b.id},abc,R1\nTWIN,80,R1\nS-1,90,R1\n,70,R1\n", uow=uow)
    assert report.imported == 0 and [e["row"] for e in report.errors] == [2, 3, 4, 5]
    assert "number of months" in report.errors[0]["error"] and "names 2 assessments" in report.errors[1]["error"]
    assert "Duplicate: row 1" in report.errors[2]["error"] and "names no assessment" in report.errors[3]["error"]
    assert uow.readings.rows == []
    assert import_readings_csv("id,reader\n1,R\n", uow=uow).errors[0]["row"] == 0
    report = import_readings_csv(f"\ufeffassessment_id,bone_age_months,reader\n{a.id},100,R1\n{b.id},90,R1\n", uow=uow)
    assert report.ok and report.imported == 2 and len(uow.readings.rows) == 2


def _history(uow, n=60, shift=0.0):
    rng = np.random.default_rng(0)
    model = uow.models.add(ModelVersion(name="m", recipe="demo", checkpoint_path="m", checkpoint_sha256="0",
                                        trained_on="synthetic", metrics={"val_mae": 9.0}))
    for index in range(n):
        truth = float(rng.uniform(10, 200))
        sex = "FM"[index % 2]
        a = _assessment(uow, sex=sex, bone_age_months=truth + rng.normal(0, 8) + (shift if sex == "F" else 0),
                        model_version_id=model.id, created_at=NOW - timedelta(hours=1 + index))
        add_reading(a.id, {"bone_age_months": truth, "reader": "R1"}, uow=uow)


def test_a_scheduled_window_runs_once_however_often_it_is_triggered():
    uow = FakeUnitOfWork()
    _history(uow)
    run = run_scheduled_audit(uow=uow, window_days=7, parameters=FAST, clock=lambda: NOW + timedelta(days=1))
    assert run.status == "succeeded" and run.trigger == "schedule"
    assert run.unique_key == run_key("schedule", *scheduled_window(NOW + timedelta(days=1), 7))
    assert run_scheduled_audit(uow=uow, window_days=7, parameters=FAST, clock=lambda: NOW + timedelta(days=1, hours=3)) is None
    # A person may audit the same window again: that is a new run.
    again = run_audit(run.window_start, run.window_end, trigger="page", uow=uow, parameters=FAST)
    assert again.id != run.id and len(uow.audits.rows) == 2


def test_the_race_for_a_window_is_decided_by_the_unique_key(monkeypatch):
    uow = FakeUnitOfWork()
    start, end = scheduled_window(NOW, 7)
    monkeypatch.setattr(uow.audits, "get_by_key", lambda key: None)  # both triggers looked before either inserted
    assert run_audit(start, end, trigger="schedule", uow=uow) is not None
    assert run_audit(start, end, trigger="schedule", uow=uow) is None
    assert len(uow.audits.rows) == 1


def test_a_shifted_group_is_a_finding_and_a_failing_audit_is_recorded(monkeypatch):
    uow = FakeUnitOfWork()
    _history(uow, n=120, shift=20.0)
    run = run_audit(NOW - timedelta(days=7), NOW, trigger="cli", uow=uow, parameters=FAST)
    assert {(f["kind"], f["group"]) for f in run.findings} >= {("sex_gap", "sex=F"), ("mae_above_validation", "sex=F")}
    import services.audits as audits

    monkeypatch.setattr(audits, "compute_audit", lambda *a, **k: 1 / 0)
    failed = run_audit(NOW - timedelta(days=7), NOW, trigger="cli", uow=uow)
    assert failed.status == "failed" and "ZeroDivisionError" in failed.error


def test_parameters_and_windows_are_checked():
    with pytest.raises(UserFacingError, match="unknown audit parameters"):
        AuditParameters.from_dict({"nope": 1})
    with pytest.raises(UserFacingError, match="n_boot"):
        AuditParameters.from_dict({"n_boot": 3})
    assert AuditParameters.from_dict({"sex_gap_months": "2.5"}).sex_gap_months == 2.5
    with pytest.raises(UserFacingError, match="after its start"):
        run_audit("2026-01-02", "2026-01-01", trigger="cli", uow=FakeUnitOfWork())
    assert scheduled_window(datetime(2026, 5, 3, 23, 59, tzinfo=timezone.utc), 7) == (
        datetime(2026, 4, 26, tzinfo=timezone.utc), datetime(2026, 5, 3, tzinfo=timezone.utc))
    assert [age_band(m) for m in (0, 47.9, 48, 143.9, 144, 180, 239)] == [
        "0-4 y", "0-4 y", "4-8 y", "8-12 y", "12-15 y", "15+ y", "15+ y"]


def test_findings_thresholds():
    params = AuditParameters()
    version = {"model_name": "m", "validation_mae": 9.0, "overall": {"mae": 10.0, "mae_ci": [9.01, 11.0]},
               "by_sex": {"F": {"mae": 9.5, "mae_ci": [8.0, 11.0]}, "M": {"n": 3, "too_few": True}},
               "sex_gap": {"value": -2.9, "ci": [-4.0, -1.0]}}
    kinds = [(f["kind"], f["group"]) for f in findings_for({"versions": [version]}, params)]
    assert kinds == [("mae_above_validation", "all")]  # gap under 3 months; F's interval includes 9
    version["sex_gap"] = {"value": -3.5, "ci": [-6.0, 0.5]}
    assert len(findings_for({"versions": [version]}, params)) == 1  # the interval includes 0
    version["sex_gap"] = {"value": 3.5, "ci": [1.0, 6.0]}
    assert findings_for({"versions": [version]}, params)[-1]["group"] == "sex=M"
    monitoring = {"failures": {"rate": 0.06, "failed": 6, "finished": 100},
                  "drift": {"x": {"drift": True, "p_value": 0.001, "label": "X", "test": "KS", "n_window": 30,
                                  "n_reference": 40}, "y": {"drift": False}}}
    kinds = [(f["kind"], f["group"]) for f in findings_for({"versions": [], "monitoring": monitoring}, params)]
    assert kinds == [("failure_rate", "all"), ("drift", "x")]
    assert findings_for({"versions": [{"too_few": True}]}, params) == []


def test_an_empty_sex_and_age_band_combination_is_reported_as_too_few_not_a_crash():
    """Found by running the demonstration history: MetricFrame lists every combination of
    two features, the empty ones with NaN counts."""
    from services.audit_metrics import AuditRow, accuracy

    start = datetime(2026, 11, 1, tzinfo=timezone.utc)
    rows = [AuditRow(id=str(i), created_at=start, status="succeeded", sex=sex, chronological_age_months=age,
                     bone_age_months=age + 5.0, model_version_id=1, readings=[age])
            for i, (sex, age) in enumerate([("F", 30.0 + i % 10) for i in range(20)]   # girls: 2-3 y only
                                           + [("M", 150.0 + i % 10) for i in range(20)])]  # boys: 12-13 y only
    result = accuracy(rows, AuditParameters(n_boot=20))
    assert result["n"] == 40 and result["overall"]["mae"] == pytest.approx(5.0)
    by = result["by_sex_age_band"]
    assert all(value.get("n", 0) in (0, 20) for value in by.values())
    assert any(value.get("n") == 0 for value in by.values()), "the empty combinations are listed as too few"


def test_monitoring_flags_a_model_whose_heatmaps_leave_the_hand():
    """The heatmap's share on the located hand (assessments.heatmap_in_hand) is monitored like
    the other label-free distributions: a window where the model looks at the film's edges
    instead (shares near the box's area) is flagged as drift against the reference."""
    from services.audit_metrics import AuditRow, monitoring

    start = datetime(2026, 11, 1, tzinfo=timezone.utc)
    rng = np.random.default_rng(3)

    def rows(shares):
        return [AuditRow(id=str(i), created_at=start, status="succeeded", sex="MF"[i % 2], bone_age_months=120.0,
                         heatmap_in_hand=float(share)) for i, share in enumerate(shares)]

    params = AuditParameters(n_boot=20)
    reference = rows(rng.normal(0.80, 0.05, 60))
    looking_away = monitoring(rows(rng.normal(0.55, 0.05, 40)), reference, params, 7.0, 28.0)
    assert looking_away["distributions"]["heatmap_in_hand"]["mean"] == pytest.approx(0.55, abs=0.03)
    assert looking_away["distributions"]["heatmap_in_hand"]["reference_mean"] == pytest.approx(0.80, abs=0.03)
    assert looking_away["drift"]["heatmap_in_hand"]["drift"] is True
    steady = monitoring(rows(rng.normal(0.80, 0.05, 40)), reference, params, 7.0, 28.0)
    assert steady["drift"]["heatmap_in_hand"]["drift"] is False
    # studies assessed before the share was stored (null) are left out, not counted as zero
    old = monitoring(rows([0.8] * 10) + [AuditRow(id="old", created_at=start, status="succeeded", sex="F")],
                     reference, params, 7.0, 28.0)
    assert old["distributions"]["heatmap_in_hand"]["n"] == 10
