"""JSON API, version 1. The OpenAPI document at /api/v1/openapi.json describes it
(web.openapi), from the schemas in web.schemas that the responses are dumped through."""

from __future__ import annotations

import io

from flask import abort, request, send_file
from flask_smorest import Blueprint

from core.dicom import tags_for_form
from core.imageio import ImageDecodeError
from core.status import refused_by_queue
from core.submission import InvalidSubmission, parse_submission, uploaded_image
from web.access import may_see, owner_filter
from web.dependencies import deps, submit
from web.errors import RETRY_AFTER_S
from web.presenters import assessment_json
from web.schemas import AssessmentListSchema, AssessmentSchema, ErrorSchema, SubmissionSchema
from web.schemas import DicomTagsSchema, DicomUploadSchema

bp = Blueprint("api", __name__, url_prefix="/api/v1", description="Bone-age assessments")

PNG = {"type": "string", "format": "binary"}
LOCATION = {"Location": {"description": "The assessment's URL; poll it.", "schema": {"type": "string"}}}
LIMIT = {
    "name": "limit",
    "in": "query",
    "description": "How many; values outside 1-200 are clamped.",
    "schema": {"type": "integer", "default": 50, "minimum": 1, "maximum": 200},
}


@bp.post("/assessments")
@bp.doc(
    summary="Submit a radiograph; the job is queued",
    operationId="createAssessment",
    requestBody={"required": True, "content": {"multipart/form-data": {"schema": SubmissionSchema}}},
)
@bp.response(202, AssessmentSchema, description="Accepted and queued; poll `url`.", headers=LOCATION)
@bp.alt_response(400, schema=ErrorSchema, description="The submission is invalid; nothing was stored.")
@bp.alt_response(413, schema=ErrorSchema, description="The upload is larger than the limit.")
@bp.alt_response(503, schema=AssessmentSchema, description="Stored but could not be queued; the job is failed.")
def create_assessment():
    # An InvalidSubmission becomes a 400 in web.errors, as for the HTML form.
    submission = parse_submission(request.form, uploaded_image(request.files))
    assessment_id = submit(submission)
    with deps().uow() as uow:
        body = assessment_json(uow.assessments.get(assessment_id))
    if refused_by_queue(body["status"], body["started_at"]):  # try again in a moment
        return body, 503, {"Location": body["url"], "Retry-After": str(RETRY_AFTER_S)}
    return body, 202, {"Location": body["url"]}


@bp.get("/assessments")
@bp.doc(summary="Recent assessments, newest first", operationId="listAssessments", parameters=[LIMIT])
@bp.response(200, AssessmentListSchema)
def list_assessments():
    limit = min(max(request.args.get("limit", 50, type=int), 1), 200)
    with deps().uow() as uow:
        return {"assessments": [assessment_json(a) for a in uow.assessments.recent(limit, submitted_by=owner_filter())]}


@bp.get("/assessments/<assessment_id>")
@bp.doc(summary="Status and, when done, the result", operationId="getAssessment")
@bp.response(200, AssessmentSchema)
@bp.alt_response(404, schema=ErrorSchema, description="No such assessment.")
def get_assessment(assessment_id: str):
    with deps().uow() as uow:
        return assessment_json(_get_or_404(uow, assessment_id))


@bp.get("/assessments/<assessment_id>/heatmap.png")
@bp.doc(summary="Grad-CAM overlay on the radiograph", operationId="getHeatmap")
@bp.response(200, PNG, content_type="image/png", description="PNG")
@bp.alt_response(404, schema=ErrorSchema, description="Not (yet) available.")
def heatmap(assessment_id: str):
    with deps().uow() as uow:
        assessment = _get_or_404(uow, assessment_id)
        if assessment.images_deleted_at is not None:
            abort(404, description=f"The heatmap was deleted on {assessment.images_deleted_at:%Y-%m-%d} under the "
                                   "retention policy; the results are kept.")
        if not assessment.heatmap_path:
            abort(404, description=f"There is no heatmap for this assessment (status: {assessment.status}).")
        relative = assessment.heatmap_path
    try:
        png = deps().files.read(relative)
    except FileNotFoundError:
        abort(404, description="The heatmap file is missing from the file store.")
    return send_file(io.BytesIO(png), mimetype="image/png", max_age=3600, etag=relative)


@bp.get("/assessments/<assessment_id>/image.png")
@bp.doc(summary="The uploaded radiograph at display size (at most 768 px a side), as PNG", operationId="getImage")
@bp.response(200, PNG, content_type="image/png", description="PNG")
@bp.alt_response(404, schema=ErrorSchema, description="No such assessment.")
def image(assessment_id: str):
    with deps().uow() as uow:
        assessment = _get_or_404(uow, assessment_id)
        # The display copy stored at submission; studies stored before it existed: the upload.
        relative = assessment.display_image_path or assessment.image_path
        deleted_at = assessment.images_deleted_at
    if deleted_at is not None:
        abort(404, description=f"The radiograph was deleted on {deleted_at:%Y-%m-%d} under the retention policy; "
                               "the results are kept.")
    try:
        data = deps().files.read(relative)
    except FileNotFoundError:
        abort(404, description="The uploaded image is missing from the file store.")
    png = data if relative.endswith(".png") else _to_png(data)
    return send_file(io.BytesIO(png), mimetype="image/png", max_age=3600, etag=relative)


@bp.post("/dicom/tags")
@bp.doc(
    summary="Read a DICOM file's sex, dates and age to fill in the form; nothing is stored",
    description="The submission form calls this when a DICOM file is chosen and pre-fills the sex and age for "
                "the person to confirm. The file is read in memory and forgotten: no row, no file, no task.",
    operationId="readDicomTags",
    requestBody={"required": True, "content": {"multipart/form-data": {"schema": DicomUploadSchema}}},
)
@bp.response(200, DicomTagsSchema)
@bp.alt_response(400, schema=ErrorSchema, description="Not a DICOM file, or one the service cannot assess.")
@bp.alt_response(413, schema=ErrorSchema, description="The upload is larger than the limit.")
def read_dicom_tags():
    data = uploaded_image(request.files)
    if not data:
        raise InvalidSubmission({"image": "Choose a DICOM file to read."})
    try:
        return tags_for_form(data).as_dict()
    except ImageDecodeError as exc:  # a 400 with the reason, as for a refused submission
        raise InvalidSubmission({"image": f"The file cannot be assessed: {exc}."}) from None


def _get_or_404(uow, assessment_id: str):
    assessment = uow.assessments.get(assessment_id) if len(assessment_id) <= 32 else None
    if assessment is None or not may_see(assessment):  # another's study: as if it did not exist
        abort(404, description=f"There is no assessment with id {assessment_id[:40]!r}.")
    return assessment


def _to_png(data: bytes) -> bytes:
    import numpy as np
    from PIL import Image

    from core.imageio import decode_image

    pixels = (decode_image(data) * 255.0).round().astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()
