"""Pages for readings and audits: the reading form on a result page, the CSV import,
the audits page (latest run, findings banner, trend plots, runs), a run's page and
its CSV/JSON export."""

from __future__ import annotations

import json

from flask import Blueprint, Response, abort, g, redirect, render_template, request, url_for

from core.errors import UserFacingError
from services.audit_plots import PLOTS, trend_png
from services.audits import run_audit
from services.readings import InvalidReading, add_reading, import_readings_csv
from web.audit_presenters import finding_rows, metric_rows, metrics_csv, reading_json, run_json, run_summary_json
from web.dependencies import deps

bp = Blueprint("audits", __name__)
MAX_CSV_BYTES = 5 * 1024 * 1024
BANNER_WINDOWS = 12  # the banner shows the findings of this many recent windows


@bp.app_template_global()
def readings_for(assessment_id: str) -> list[dict]:
    with deps().uow() as uow:
        return [reading_json(r) for r in uow.readings.for_assessment(assessment_id)]


@bp.post("/assessments/<assessment_id>/readings")
def add_reading_form(assessment_id: str):
    try:
        add_reading(assessment_id, request.form, uow=deps().uow)
    except InvalidReading as exc:
        if "assessment" in exc.fields:
            abort(404, description=exc.fields["assessment"])
        from web.pages import assessment

        g.reading_errors = exc.fields  # the form on the page shows them (_readings.html)
        return assessment(assessment_id), 400
    return redirect(url_for("pages.assessment", assessment_id=assessment_id) + "#readings", code=303)


@bp.get("/audits")
def audits_page():
    with deps().uow() as uow:
        runs = uow.audits.recent(100)
        latest = uow.audits.latest()
        latest_data = run_json(latest) if latest else None
        rows = metric_rows(latest) if latest else []
        summaries = [run_summary_json(r) for r in runs]
        # The banner: findings of the newest run of each of the recent windows.
        newest: dict[tuple, object] = {}
        for run in runs:
            if run.status == "succeeded":
                newest.setdefault((run.window_start, run.window_end), run)
        findings = [f for run in list(newest.values())[:BANNER_WINDOWS] for f in finding_rows(run)]
    return render_template("audits.html", latest=latest_data, rows=rows, runs=summaries, plots=PLOTS,
                           findings=findings, errors=request.args.get("error"))


@bp.post("/audits")
def run_from_page():
    try:
        run = run_audit(request.form.get("from", ""), request.form.get("to", ""), trigger="page", uow=deps().uow,
                        files=deps().files)
    except UserFacingError as exc:
        return redirect(url_for("audits.audits_page", error=str(exc)), code=303)
    return redirect(url_for("audits.run_page", run_id=run.id), code=303)


@bp.post("/readings/import")
def import_form():
    upload = request.files.get("file")
    data = upload.read(MAX_CSV_BYTES + 1) if upload else b""
    if not data:
        report = {"rows": 0, "imported": 0, "errors": [{"row": 0, "error": "Choose a CSV file."}]}
    elif len(data) > MAX_CSV_BYTES:
        report = {"rows": 0, "imported": 0, "errors": [{"row": 0, "error": "The file is larger than 5 MB."}]}
    else:
        result = import_readings_csv(data.decode("utf-8", errors="replace"), uow=deps().uow)
        report = {"rows": result.rows, "imported": result.imported, "errors": result.errors}
    return render_template("readings_import.html", report=report), (400 if report["errors"] else 200)


@bp.get("/audits/<run_id>")
def run_page(run_id: str):
    with deps().uow() as uow:
        run = _run_or_404(uow, run_id)
        return render_template("audit_run.html", run=run_json(run), rows=metric_rows(run))


@bp.get("/audits/<run_id>.json")
def run_export_json(run_id: str):
    with deps().uow() as uow:
        body = json.dumps(run_json(_run_or_404(uow, run_id)), indent=2)
    return Response(body, mimetype="application/json",
                    headers={"Content-Disposition": f"attachment; filename=audit-{run_id}.json"})


@bp.get("/audits/<run_id>.csv")
def run_export_csv(run_id: str):
    with deps().uow() as uow:
        body = metrics_csv(_run_or_404(uow, run_id))
    return Response(body, mimetype="text/csv", headers={"Content-Disposition": f"attachment; filename=audit-{run_id}.csv"})


@bp.get("/audits/trends/<name>.png")
def trend(name: str):
    if name not in PLOTS:
        abort(404, description=f"There is no trend plot {name!r}.")
    with deps().uow() as uow:
        runs = [run_json(r) for r in uow.audits.succeeded_in_order()]
    return Response(trend_png(name, runs), mimetype="image/png", headers={"Cache-Control": "no-store"})


def _run_or_404(uow, run_id: str):
    run = uow.audits.get(run_id) if len(run_id) <= 32 else None
    if run is None:
        abort(404, description="There is no audit run with this id.")
    return run
