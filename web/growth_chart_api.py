"""The growth chart of an assessment, as data and as an SVG image (issue 11).

Both answer only for a succeeded study the caller may see, and join only the earlier
studies the caller may see (web.access.owner_filter: a submitter, their own)."""

from __future__ import annotations

from dataclasses import asdict

from flask import Response, abort, url_for
from flask_smorest import Blueprint

from services.growth_chart import REFERENCE_STANDARD, GrowthChart, growth_chart, render_chart
from web.access import owner_filter
from web.dependencies import deps
from web.growth_chart_schemas import GrowthChartSchema
from web.schemas import ErrorSchema

bp = Blueprint("growth_chart_api", __name__, url_prefix="/api/v1", description="Growth chart")

SVG = {"type": "string", "format": "binary"}
NOT_FOUND = "Not found, not yours, or not (yet) succeeded."


def chart_or_404(assessment_id: str) -> GrowthChart:
    chart = growth_chart(assessment_id, uow=deps().uow, submitted_by=owner_filter()) \
        if len(assessment_id) <= 32 else None
    if chart is None:
        abort(404, description=f"There is no growth chart for assessment {assessment_id[:40]!r}: it is drawn "
                               "for a succeeded assessment you may see.")
    return chart


def chart_json(chart: GrowthChart) -> dict:
    body = asdict(chart)
    body["reference_standard"] = REFERENCE_STANDARD
    for point in body["points"]:
        point["created_at"] = point["created_at"].isoformat()
    body["image_url"] = url_for("growth_chart_api.growth_chart_svg", assessment_id=chart.assessment_id)
    return body


@bp.get("/assessments/<assessment_id>/growth-chart")
@bp.doc(summary="The growth chart's data: Greulich-Pyle band and the child's series", operationId="getGrowthChart")
@bp.response(200, GrowthChartSchema)
@bp.alt_response(404, schema=ErrorSchema, description=NOT_FOUND)
def growth_chart_data(assessment_id: str):
    return chart_json(chart_or_404(assessment_id))


@bp.get("/assessments/<assessment_id>/growth-chart.svg")
@bp.doc(summary="The growth chart as an SVG image", operationId="getGrowthChartImage")
@bp.response(200, SVG, content_type="image/svg+xml", description="SVG")
@bp.alt_response(404, schema=ErrorSchema, description=NOT_FOUND)
def growth_chart_svg(assessment_id: str):
    chart = chart_or_404(assessment_id)
    # A later follow-up of the same child does not change it, but an earlier study may still finish.
    return Response(render_chart(chart, "svg"), mimetype="image/svg+xml", headers={"Cache-Control": "private, no-cache"})
