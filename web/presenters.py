"""Turning an Assessment into what the page and the API show."""

from __future__ import annotations

from flask import url_for

from db.models import Assessment, ModelVersion
from core.model_identity import model_label
from core.numbers import round_or_none
from core.status import JobStatus
from core.greulich_pyle import compare_with_chronological_age
from core.stages import format_years_months

DISCLAIMER = (
    "This result is decision support for a qualified reader, not a diagnosis. "
    "It must be interpreted together with the radiograph and the clinical context."
)

READINGS = {
    "delayed": "delayed (more than 2 SD below the mean for age)",
    "normal": "within normal limits (within 2 SD of the mean for age)",
    "advanced": "advanced (more than 2 SD above the mean for age)",
    "indeterminate": "indeterminate (the age is outside the reference table)",
}

# "indeterminate" because the bone age's prediction interval crosses a ±2 SD limit.
INTERVAL_INDETERMINATE = "indeterminate (the {level} interval of the bone age crosses the {limit})"


def interval_json(assessment: Assessment) -> dict | None:
    """The calibrated prediction interval of the bone age; None when the model had none."""
    low, high = assessment.bone_age_low_months, assessment.bone_age_high_months
    if low is None or high is None or assessment.interval_confidence is None:
        return None
    return {
        "confidence": assessment.interval_confidence,
        "level": f"{assessment.interval_confidence * 100:g}%",
        "low_months": round_or_none(low),
        "high_months": round_or_none(high),
        "low": format_years_months(low),
        "high": format_years_months(high),
    }


def _interval_bounds(assessment: Assessment) -> tuple[float, float] | None:
    if assessment.bone_age_low_months is None or assessment.bone_age_high_months is None:
        return None
    return assessment.bone_age_low_months, assessment.bone_age_high_months


def model_json(model: ModelVersion | None) -> dict | None:
    if model is None:
        return None
    return {
        "name": model.name,
        "recipe": model.recipe,
        "trained_on": model.trained_on,
        "label": model_label(model.label, synthetic=model.synthetic),
        "not_for_clinical_use": model.synthetic,
    }


def comparison_json(assessment: Assessment) -> dict | None:
    if assessment.chronological_age_months is None or assessment.bone_age_months is None:
        return None
    c = compare_with_chronological_age(
        assessment.bone_age_months, assessment.chronological_age_months, assessment.sex,
        interval=_interval_bounds(assessment),
    )
    reading_text = READINGS[c.reading]
    if c.indeterminate_reason == "interval_straddles_limit":
        limit = "-2 SD limit" if c.z_low < -2 <= c.z_high else "+2 SD limit"
        if c.z_low < -2 <= c.z_high and c.z_low <= 2 < c.z_high:
            limit = "-2 and the +2 SD limits"
        reading_text = INTERVAL_INDETERMINATE.format(level=f"{assessment.interval_confidence * 100:g}%", limit=limit)
    return {
        "reference": "Greulich-Pyle (Brush Foundation standard)",
        "chronological_age_months": c.chronological_age_months,
        "chronological_age": format_years_months(c.chronological_age_months),
        "expected_bone_age_months": round_or_none(c.expected_bone_age_months),
        "sd_months": round_or_none(c.sd_months),
        "sd_score": round_or_none(c.z_score, 2),  # the page prints it with 2 decimals
        "reading": c.reading,
        "reading_text": reading_text,
        "sd_score_low": round_or_none(c.z_low, 2),
        "sd_score_high": round_or_none(c.z_high, 2),
    }


def hand_json(assessment: Assessment) -> dict | None:
    """Where the hand was found in the heatmap's frame and how much of the heatmap lies on it."""
    if not assessment.hand_box:
        return None
    left, top, right, bottom = assessment.hand_box
    return {
        "box": [left, top, right, bottom],
        "box_area_share": round((right - left) * (bottom - top), 3),
        "heatmap_share": round_or_none(assessment.heatmap_in_hand, 3),
    }


def assessment_json(assessment: Assessment) -> dict:
    result = None
    if assessment.status == JobStatus.SUCCEEDED:
        result = {
            "bone_age_months": round_or_none(assessment.bone_age_months),
            "bone_age": format_years_months(assessment.bone_age_months),
            "interval": interval_json(assessment),
            "stage": assessment.stage,
            "heatmap_url": url_for("api.heatmap", assessment_id=assessment.id)
            if assessment.heatmap_path
            else None,
            "model": model_json(assessment.model_version),
            "comparison": comparison_json(assessment),
            "notes": list(assessment.result_notes or []),
            "ood_score": round_or_none(assessment.ood_score, 3),
            "hand": hand_json(assessment),
            "growth_chart_url": url_for("growth_chart_api.growth_chart_svg", assessment_id=assessment.id),
            "report_url": url_for("pages.report", assessment_id=assessment.id),
            "timings": {
                "queue_wait_seconds": round_or_none(assessment.queue_wait_seconds, 3),
                "inference_seconds": round_or_none(assessment.inference_seconds, 3),
            },
        }
    return {
        "id": assessment.id,
        "status": str(assessment.status),
        "url": url_for("api.get_assessment", assessment_id=assessment.id),
        "page_url": url_for("pages.assessment", assessment_id=assessment.id),
        "image_url": url_for("api.image", assessment_id=assessment.id),
        "created_at": _iso(assessment.created_at),
        "started_at": _iso(assessment.started_at),
        "finished_at": _iso(assessment.finished_at),
        "images_deleted_at": _iso(assessment.images_deleted_at),
        "error": assessment.error,
        "sex": assessment.sex,
        "chronological_age_months": assessment.chronological_age_months,
        "reference": assessment.reference,
        "result": result,
        "disclaimer": DISCLAIMER,
    }


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None

