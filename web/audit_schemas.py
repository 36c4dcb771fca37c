"""API bodies for readings, audit runs and findings (see web.schemas for the conventions:
response fields always present, null where there is no value)."""

from __future__ import annotations

from marshmallow import Schema, fields

from core.audit_rules import READING_METHODS, TRIGGERS
from marshmallow.validate import OneOf


def _always(field_class, *args, nullable: bool = False, description: str | None = None, **options):
    metadata = {"description": description} if description else {}
    metadata.update(options.pop("metadata", {}))
    return field_class(*args, required=True, allow_none=nullable, metadata=metadata, **options)


class ReadingSchema(Schema):
    id = _always(fields.Integer)
    assessment_id = _always(fields.String)
    bone_age_months = _always(fields.Float, description="The reader's bone age in months (0-240).")
    reader = _always(fields.String, description="Pseudonymous reader id.")
    method = _always(fields.String, validate=OneOf(READING_METHODS))
    read_at = _always(fields.String, metadata={"format": "date-time"})
    synthetic = _always(fields.Boolean, description="Made by the demonstration history.")


class ReadingListSchema(Schema):
    readings = _always(fields.List, fields.Nested(ReadingSchema))


class ReadingInputSchema(Schema):
    """The body of POST .../readings (JSON); checked by services.readings.parse_reading."""

    bone_age_months = fields.Float(required=True, metadata={"description": "0-240 months"})
    reader = fields.String(required=True)
    method = fields.String(load_default="GP", validate=OneOf(READING_METHODS))
    read_at = fields.String(metadata={"format": "date-time", "description": "default: now"})


class ImportErrorSchema(Schema):
    row = _always(fields.Integer, description="1 = the first data row; 0 = the file as a whole.")
    error = _always(fields.String)


class ImportReportSchema(Schema):
    rows = _always(fields.Integer)
    imported = _always(fields.Integer, description="0 whenever a row was refused: all rows or none.")
    errors = _always(fields.List, fields.Nested(ImportErrorSchema))


class ImportUploadSchema(Schema):
    file = fields.Raw(required=True, metadata={"type": "string", "format": "binary",
                                               "description": "CSV: assessment (id or reference), bone_age_months, "
                                                              "reader[, method, read_at]"})


class FindingSchema(Schema):
    kind = _always(fields.String, description="mae_above_validation, sex_gap, drift or failure_rate")
    model_version = _always(fields.String, nullable=True)
    group = _always(fields.String)
    value = _always(fields.Float)
    threshold = _always(fields.Float)
    message = _always(fields.String)


class RunFindingSchema(FindingSchema):
    run_id = _always(fields.String)
    window_start = _always(fields.String, metadata={"format": "date-time"})
    window_end = _always(fields.String, metadata={"format": "date-time"})


class FindingListSchema(Schema):
    findings = _always(fields.List, fields.Nested(RunFindingSchema))


class AuditSummarySchema(Schema):
    id = _always(fields.String)
    url = _always(fields.String)
    page_url = _always(fields.String)
    trigger = _always(fields.String, validate=OneOf(TRIGGERS))
    status = _always(fields.String, validate=OneOf(("running", "succeeded", "failed")))
    window_start = _always(fields.String, metadata={"format": "date-time"})
    window_end = _always(fields.String, metadata={"format": "date-time", "description": "exclusive"})
    model_version_ids = _always(fields.List, fields.Integer())
    finding_count = _always(fields.Integer)
    created_at = _always(fields.String, metadata={"format": "date-time"})
    finished_at = _always(fields.String, nullable=True, metadata={"format": "date-time"})
    error = _always(fields.String, nullable=True)
    synthetic = _always(fields.Boolean)


class AuditRunSchema(AuditSummarySchema):
    parameters = _always(fields.Dict, description="core.audit_rules.AuditParameters")
    results = _always(fields.Dict, description="Per model version: overall and by-group metrics with "
                                               "intervals, sex gap, stage classification, model vs readers; "
                                               "monitoring against the reference period.")
    findings = _always(fields.List, fields.Nested(FindingSchema))


class AuditListSchema(Schema):
    audits = _always(fields.List, fields.Nested(AuditSummarySchema))


class AuditRequestSchema(Schema):
    window_from = fields.String(required=True, data_key="from", metadata={"description": "YYYY-MM-DD or ISO date-time (UTC)"})
    window_to = fields.String(required=True, data_key="to", metadata={"description": "exclusive"})
    parameters = fields.Dict(metadata={"description": "overrides of the default thresholds"})
