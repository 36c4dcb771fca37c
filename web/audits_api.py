"""JSON API for readings, audit runs and findings (in the OpenAPI document)."""

from __future__ import annotations

from flask import abort, jsonify, request
from flask_smorest import Blueprint

from core.errors import UserFacingError
from services.audits import run_audit
from services.readings import InvalidReading, add_reading, import_readings_csv
from web.audit_presenters import finding_rows, reading_json, run_json, run_summary_json
from web.audit_schemas import (
    AuditListSchema,
    AuditRequestSchema,
    AuditRunSchema,
    FindingListSchema,
    ImportReportSchema,
    ImportUploadSchema,
    ReadingInputSchema,
    ReadingListSchema,
    ReadingSchema,
)
from web.dependencies import deps
from web.schemas import ErrorSchema

bp = Blueprint("audits_api", __name__, url_prefix="/api/v1", description="Readings and audits")
MAX_CSV_BYTES = 5 * 1024 * 1024


def _error(message: str, status: int, fields: dict | None = None):
    body = {"error": message}
    if fields is not None:
        body["field_messages"] = fields
    # A Response, so flask-smorest does not dump it through the success schema.
    return jsonify(ErrorSchema().dump(body)), status


@bp.get("/assessments/<assessment_id>/readings")
@bp.doc(summary="An assessment's readings", operationId="listReadings")
@bp.response(200, ReadingListSchema)
@bp.alt_response(404, schema=ErrorSchema, description="No such assessment.")
def list_readings(assessment_id: str):
    with deps().uow() as uow:
        if len(assessment_id) > 32 or uow.assessments.get(assessment_id) is None:
            abort(404, description=f"There is no assessment with id {assessment_id[:40]!r}.")
        return {"readings": [reading_json(r) for r in uow.readings.for_assessment(assessment_id)]}


@bp.post("/assessments/<assessment_id>/readings")
@bp.doc(summary="Add a reader's bone age for an assessment", operationId="addReading",
        requestBody={"required": True, "content": {"application/json": {"schema": ReadingInputSchema}}})
@bp.response(201, ReadingSchema)
@bp.alt_response(400, schema=ErrorSchema, description="Refused (impossible age, duplicate reader, ...); nothing stored.")
@bp.alt_response(404, schema=ErrorSchema, description="No such assessment.")
def create_reading(assessment_id: str):
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _error("Send a JSON object with bone_age_months and reader.", 400)
    try:
        reading = add_reading(assessment_id, body, uow=deps().uow)
    except InvalidReading as exc:
        if "assessment" in exc.fields:
            return _error(exc.fields["assessment"], 404)
        return _error(str(exc), 400, exc.fields)
    return reading_json(reading), 201


@bp.post("/readings/import")
@bp.doc(summary="Import readings from a CSV: all rows or none", operationId="importReadings",
        requestBody={"required": True, "content": {"multipart/form-data": {"schema": ImportUploadSchema}}})
@bp.response(201, ImportReportSchema, description="Every row imported.")
@bp.alt_response(400, schema=ImportReportSchema, description="Some rows refused (with reasons); nothing imported.")
def import_readings():
    upload = request.files.get("file")
    data = upload.read(MAX_CSV_BYTES + 1) if upload else b""
    if not data or len(data) > MAX_CSV_BYTES:
        reason = "Send the CSV as the multipart field 'file'." if not data else "The file is larger than 5 MB."
        return {"rows": 0, "imported": 0, "errors": [{"row": 0, "error": reason}]}, 400
    report = import_readings_csv(data.decode("utf-8", errors="replace"), uow=deps().uow)
    return {"rows": report.rows, "imported": report.imported, "errors": report.errors}, (201 if report.ok else 400)


@bp.get("/audits")
@bp.doc(summary="Audit runs, latest window first", operationId="listAudits")
@bp.response(200, AuditListSchema)
def list_audits():
    limit = min(max(request.args.get("limit", 50, type=int), 1), 200)
    with deps().uow() as uow:
        return {"audits": [run_summary_json(r) for r in uow.audits.recent(limit)]}


@bp.post("/audits")
@bp.doc(summary="Run an audit of a window now", operationId="runAudit",
        requestBody={"required": True, "content": {"application/json": {"schema": AuditRequestSchema}}})
@bp.response(201, AuditRunSchema)
@bp.alt_response(400, schema=ErrorSchema, description="Bad window or parameters.")
def create_audit():
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or "from" not in body or "to" not in body:
        return _error("Send a JSON object with 'from' and 'to' (dates, YYYY-MM-DD).", 400)
    if not isinstance(body.get("parameters", {}), dict):
        return _error("'parameters' must be an object.", 400)
    try:
        run = run_audit(body["from"], body["to"], trigger="api", uow=deps().uow, files=deps().files,
                        parameters=body.get("parameters"))
    except UserFacingError as exc:
        return _error(str(exc), 400)
    return run_json(run), 201


@bp.get("/audits/<run_id>")
@bp.doc(summary="One audit run: parameters, results and findings", operationId="getAudit")
@bp.response(200, AuditRunSchema)
@bp.alt_response(404, schema=ErrorSchema, description="No such run.")
def get_audit(run_id: str):
    with deps().uow() as uow:
        run = uow.audits.get(run_id) if len(run_id) <= 32 else None
        if run is None:
            abort(404, description=f"There is no audit run with id {run_id[:40]!r}.")
        return run_json(run)


@bp.get("/audit-findings")
@bp.doc(summary="Findings of the latest runs (or of one run: ?run=ID)", operationId="listFindings")
@bp.response(200, FindingListSchema)
def list_findings():
    run_id = request.args.get("run")
    with deps().uow() as uow:
        runs = [uow.audits.get(run_id)] if run_id else uow.audits.recent(request.args.get("limit", 20, type=int))
        return {"findings": [f for run in runs if run is not None for f in finding_rows(run)]}
