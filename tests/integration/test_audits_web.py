"""The audits page, a run's page and exports, and the audit API (checked against the
OpenAPI document), on the seeded history."""

from __future__ import annotations

import csv
import io

import pytest

from audit_history import SHIFT_WEEK, History, seed_history
from db.session import unit_of_work_factory
from openapi_contract import contract_checked
from helpers import authed_client
from web import create_app


@pytest.fixture
def client_and_history(embedded_settings):
    history = seed_history(unit_of_work_factory(embedded_settings.database_url), weeks=5, per_week=80)
    return authed_client(contract_checked(create_app(embedded_settings))), history


def test_audit_api_page_trends_and_exports(client_and_history):
    client, history = client_and_history
    assert client.get("/audits").status_code == 200 and "No audit has run yet" in client.get("/audits").get_data(as_text=True)
    bad = client.post("/api/v1/audits", json={"from": "2026-03-09", "to": "2026-03-02"})
    assert bad.status_code == 400 and "after its start" in bad.get_json()["error"]
    for week in range(5):
        start, end = History.week(week)
        response = client.post("/api/v1/audits", json={"from": start.date().isoformat(), "to": end.date().isoformat(),
                                                        "parameters": {"n_boot": 50}})
        assert response.status_code == 201
    runs = client.get("/api/v1/audits").get_json()["audits"]
    assert len(runs) == 5 and all(r["trigger"] == "api" and r["status"] == "succeeded" for r in runs)
    findings = client.get("/api/v1/audit-findings").get_json()["findings"]
    assert findings and {f["window_start"][:10] for f in findings} == {History.week(SHIFT_WEEK)[0].date().isoformat()}

    # The shifted week is not the latest: run it again from the page so it is the latest run shown.
    start, end = History.week(SHIFT_WEEK)
    response = client.post("/audits", data={"from": start.date().isoformat(), "to": end.date().isoformat()})
    assert response.status_code == 303
    run_page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'id="findings"' in run_page and "sex gap" in run_page
    page = client.get("/audits").get_data(as_text=True)
    assert 'id="findings"' in page and 'data-kind="sex_gap"' in page and "Sex × age band" in page
    for name in ("mae_by_sex", "signed_error_by_age_band", "disagreement", "drift"):
        image = client.get(f"/audits/trends/{name}.png")
        assert image.status_code == 200 and image.data.startswith(b"\x89PNG")
    run_id = response.headers["Location"].rsplit("/", 1)[1]
    exported = list(csv.DictReader(io.StringIO(client.get(f"/audits/{run_id}.csv").get_data(as_text=True))))
    api_run = client.get(f"/api/v1/audits/{run_id}").get_json()
    overall = next(r for r in exported if r["model_version"] == "m1" and r["grouping"] == "overall")
    assert float(overall["mae"]) == pytest.approx(api_run["results"]["versions"][0]["overall"]["mae"])
    assert client.get(f"/audits/{run_id}.json").get_json()["findings"] == api_run["findings"]
    assert client.get("/api/v1/audits/nope").status_code == 404
    document = client.get("/api/v1/openapi.json").get_json()
    operations = {op["operationId"] for path in document["paths"].values() for op in path.values() if "operationId" in op}
    assert operations >= {"listReadings", "addReading", "importReadings", "listAudits", "runAudit", "getAudit",
                          "listFindings"}
