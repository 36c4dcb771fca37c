"""The demonstration history through the real (tiny) model: synthetic assessments run by
run_assessment with the registered model, dated back, readings from the true age, weekly
audit runs; everything marked synthetic, exported as a dataset only when asked, and
removed by remove_synthetic."""

from __future__ import annotations

import csv

import pytest

import migrations
from db.files import open_file_store
from db.session import unit_of_work_factory
from helpers import make_settings, register
from services.audits import remove_synthetic
from services.demo_history import DemoPlan, fill_demo_history
from services.predictors import PredictorCache
from services.readings_dataset import export_readings_dataset

pytestmark = pytest.mark.slow


def test_demo_history_is_synthetic_audited_exportable_and_removable(tmp_path, tiny_model, one_thread):
    settings = make_settings(tmp_path)
    migrations.upgrade(settings.database_url)
    register(settings, tiny_model)
    uow, files = unit_of_work_factory(settings.database_url), open_file_store(settings)
    plan = DemoPlan(weeks=2, per_week=8, shift_week=1, image_size=96)
    runs = fill_demo_history(plan, uow=uow, files=files, predictors=PredictorCache(device="cpu"), say=lambda _: None)
    assert len(runs) == 2
    with uow() as work:
        assessments = work.assessments.recent(100)
        stored = [work.audits.get(r) for r in runs]
    assert len(assessments) == 16 and all(a.reference.startswith("SYNTHETIC-DEMO-") for a in assessments)
    assert all(a.status == "succeeded" for a in assessments)
    assert all(run.synthetic and run.trigger == "demo" and run.status == "succeeded" for run in stored)
    assert stored[0].window_end == stored[1].window_start
    # 8 a week is below the 30 readings an audit needs: it says so instead of printing numbers.
    assert all(v["too_few"] for run in stored for v in run.results["versions"])

    with pytest.raises(Exception, match="not empty|no assessments"):
        export_readings_dataset(tmp_path / "none", uow=uow, files=files)
    summary = export_readings_dataset(tmp_path / "dataset", uow=uow, files=files, include_synthetic=True)
    assert summary["records"] == 16 and (tmp_path / "dataset" / "SYNTHETIC.txt").is_file()
    rows = list(csv.DictReader((tmp_path / "dataset" / "boneage-training-dataset.csv").open()))
    assert len(rows) == 16 and all((tmp_path / "dataset" / "boneage-training-dataset" / f"{r['id']}.png").is_file()
                                   for r in rows)

    removed = remove_synthetic(uow=uow, files=files)
    assert removed["assessments"] == 16 and removed["audit_runs"] == 2 and removed["readings"] >= 16
    with uow() as work:
        assert work.assessments.count() == 0 and work.audits.recent() == []
