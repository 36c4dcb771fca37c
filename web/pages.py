"""HTML pages: the submission form, a job's page (polls until done) and recent jobs."""

from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, request, url_for

from web.presenters import DISCLAIMER, assessment_json
from web.report_presenters import model_accuracy_json
from web.access import may_see, owner_filter
from web.dependencies import deps, submit
from core.status import JobStatus
from core.submission import MAX_AGE_YEARS, parse_submission, uploaded_image

bp = Blueprint("pages", __name__)


def render_form(errors: dict[str, str] | None = None, status: int = 200, form=None):
    if form is None:
        form = request.form if request.method == "POST" else {}
    return (
        render_template(
            "form.html",
            errors=errors or {},
            form=form,
            max_upload_mb=deps().settings.max_upload_mb,
            max_age_years=MAX_AGE_YEARS,
            disclaimer=DISCLAIMER,
        ),
        status,
    )


@bp.get("/")
def index():
    return render_form()


@bp.post("/assessments")
def create():
    # An InvalidSubmission shows the form again with the messages (web.errors).
    submission = parse_submission(request.form, uploaded_image(request.files))
    assessment_id = submit(submission)
    return redirect(url_for("pages.assessment", assessment_id=assessment_id), code=303)


@bp.get("/assessments")
def recent():
    with deps().uow() as uow:
        items = [assessment_json(a) for a in uow.assessments.recent(50, submitted_by=owner_filter())]
    return render_template("list.html", assessments=items)


@bp.get("/assessments/<assessment_id>")
def assessment(assessment_id: str):
    with deps().uow() as uow:
        found = uow.assessments.get(assessment_id) if len(assessment_id) <= 32 else None
        if found is None or not may_see(found):  # another's study: as if it did not exist
            abort(404, description="There is no assessment with this id.")
        data = assessment_json(found)
    return render_template("assessment.html", a=data, disclaimer=DISCLAIMER)


@bp.get("/assessments/<assessment_id>/report")
def report(assessment_id: str):
    """The printable report of a succeeded assessment: one A4 page (report.css's print styles)."""
    with deps().uow() as uow:
        found = uow.assessments.get(assessment_id) if len(assessment_id) <= 32 else None
        if found is None or not may_see(found):
            abort(404, description="There is no assessment with this id.")
        if found.status != JobStatus.SUCCEEDED:
            abort(404, description=f"There is no report yet: the assessment is {found.status}. "
                                   "A report is made once it has succeeded.")
        data = assessment_json(found)
        accuracy = model_accuracy_json(found.model_version)
    return render_template("report.html", a=data, accuracy=accuracy, disclaimer=DISCLAIMER)
