"""JSON API, version 1. The OpenAPI document at /api/v1/openapi.json describes it."""

from __future__ import annotations

import io

from flask import Blueprint, abort, jsonify, request, send_file, url_for

from core.status import JobStatus
from web.openapi import openapi_document
from web.presenters import assessment_json
from web.dependencies import deps, submit
from core.submission import InvalidSubmission, parse_submission, uploaded_image

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.post("/assessments")
def create_assessment():
    try:
        submission = parse_submission(request.form, uploaded_image(request.files))
    except InvalidSubmission as exc:
        return jsonify(error=str(exc), fields=exc.errors), 400
    assessment_id = submit(submission)
    with deps().uow() as uow:
        body = assessment_json(uow.assessments.get(assessment_id))
    status = 503 if body["status"] == JobStatus.FAILED else 202
    return jsonify(body), status, {"Location": body["url"]}


@bp.get("/assessments")
def list_assessments():
    limit = min(max(request.args.get("limit", 50, type=int), 1), 200)
    with deps().uow() as uow:
        return jsonify(assessments=[assessment_json(a) for a in uow.assessments.recent(limit)])


@bp.get("/assessments/<assessment_id>")
def get_assessment(assessment_id: str):
    with deps().uow() as uow:
        return jsonify(assessment_json(_get_or_404(uow, assessment_id)))


@bp.get("/assessments/<assessment_id>/heatmap.png")
def heatmap(assessment_id: str):
    with deps().uow() as uow:
        assessment = _get_or_404(uow, assessment_id)
        if not assessment.heatmap_path:
            abort(404, description=f"There is no heatmap for this assessment (status: {assessment.status}).")
        path = deps().files.path(assessment.heatmap_path)
    if not path.is_file():
        abort(404, description="The heatmap file is missing from the file store.")
    return send_file(path, mimetype="image/png", max_age=3600)


@bp.get("/assessments/<assessment_id>/image.png")
def image(assessment_id: str):
    """The uploaded radiograph, as PNG (DICOM and JPEG uploads are converted)."""
    with deps().uow() as uow:
        relative = _get_or_404(uow, assessment_id).image_path
    files = deps().files
    if not files.exists(relative):
        abort(404, description="The uploaded image is missing from the file store.")
    if relative.endswith(".png"):
        return send_file(files.path(relative), mimetype="image/png", max_age=3600)
    return send_file(io.BytesIO(_to_png(files.read(relative))), mimetype="image/png", max_age=3600)


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document(server_url=url_for("api.openapi", _external=True).rsplit("/api/v1", 1)[0]))


def _get_or_404(uow, assessment_id: str):
    assessment = uow.assessments.get(assessment_id) if len(assessment_id) <= 32 else None
    if assessment is None:
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

