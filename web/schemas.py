"""The API's bodies as marshmallow schemas: responses are dumped through them and the
OpenAPI document (/api/v1/openapi.json) is generated from them.

The fields of an assessment are all required (always sent, null when there is no value),
and the default `unknown = RAISE` makes the document say `additionalProperties: false`,
so the document lists exactly the keys the API sends.

The Submission schema describes the multipart form of POST /api/v1/assessments. The
form is checked by core.submission.parse_submission, which the HTML form shares, so a
bad field gets the same message on the page and in the API.
"""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields
from marshmallow.validate import Length, OneOf, Range, Regexp

from core.stages import STAGES
from core.status import JobStatus
from core.submission import MAX_AGE_YEARS, REFERENCE_PATTERN
from web.presenters import READINGS

SEXES = ("M", "F")


def _always(field_class, *args, nullable: bool = False, description: str | None = None, **options):
    """A response field that is always present (null allowed when `nullable`)."""
    metadata = {"description": description} if description else {}
    metadata.update(options.pop("metadata", {}))
    return field_class(*args, required=True, allow_none=nullable, metadata=metadata, **options)


def _datetime(*, nullable: bool = False):
    """An ISO 8601 timestamp (web.presenters formats it; the pages show it too)."""
    return _always(fields.String, nullable=nullable, metadata={"format": "date-time"})


class ModelSchema(Schema):
    """The model version that produced a result."""

    name = _always(fields.String, description="Recipe and the first 8 hex digits of the checkpoint's SHA-256.")
    recipe = _always(fields.String)
    trained_on = _always(fields.String, description='The training data, e.g. "rsna" or "synthetic".')
    label = _always(fields.String, nullable=True, description="Shown beside the result; warns about synthetic models.")
    not_for_clinical_use = _always(fields.Boolean)


class ComparisonSchema(Schema):
    """Bone age against chronological age (Greulich-Pyle, Brush Foundation table)."""

    reference = _always(fields.String, description="The reference standard used.")
    chronological_age_months = _always(fields.Float)
    chronological_age = _always(fields.String, description='e.g. "10 y 4 m"')
    expected_bone_age_months = _always(fields.Float, nullable=True)
    sd_months = _always(fields.Float, nullable=True)
    sd_score = _always(fields.Float, nullable=True, description="(bone age - expected) / SD.")
    reading = _always(fields.String, validate=OneOf(READINGS))
    reading_text = _always(fields.String, description="The reading, in words.")
    sd_score_low = _always(fields.Float, nullable=True, description="The prediction interval's low end as an SD score.")
    sd_score_high = _always(fields.Float, nullable=True, description="The prediction interval's high end as an SD score.")


class IntervalSchema(Schema):
    """The bone age's prediction interval: split-conformal, calibrated per age band on the
    model's held-out validation data (nominal coverage `confidence`)."""

    confidence = _always(fields.Float, description="Nominal coverage, e.g. 0.9.")
    level = _always(fields.String, description='e.g. "90%"')
    low_months = _always(fields.Float)
    high_months = _always(fields.Float)
    low = _always(fields.String, description='e.g. "9 y 2 m"')
    high = _always(fields.String, description='e.g. "11 y 6 m"')


class TimingsSchema(Schema):
    queue_wait_seconds = _always(fields.Float, nullable=True)
    inference_seconds = _always(fields.Float, nullable=True)


class HandSchema(Schema):
    """Where the hand was found (core/hand.py) in the frame of the heatmap overlay."""

    box = _always(
        fields.List, fields.Float(),
        description="[left, top, right, bottom] of the hand's box as shares (0-1) of the heatmap overlay's "
                    "width and height.",
    )
    box_area_share = _always(fields.Float, description="The box's share of the overlay's area: what a heatmap "
                                                       "blind to the hand would put inside it.")
    heatmap_share = _always(
        fields.Float, nullable=True,
        description="The share of the Grad-CAM heatmap's mass inside the box: well above box_area_share when the "
                    "estimate came from the hand.",
    )


class ResultSchema(Schema):
    """What the model found; present when the job succeeded."""

    bone_age_months = _always(fields.Float, nullable=True)
    bone_age = _always(fields.String, nullable=True, description='e.g. "10 y 4 m"')
    interval = _always(
        fields.Nested, IntervalSchema, nullable=True,
        description="The prediction interval; null when the model has no calibration (older checkpoints).",
    )
    stage = _always(fields.String, nullable=True, validate=OneOf(STAGES))
    heatmap_url = _always(fields.String, nullable=True, description="The Grad-CAM overlay (PNG).")
    model = _always(fields.Nested, ModelSchema, nullable=True)
    comparison = _always(
        fields.Nested, ComparisonSchema, nullable=True, description="Present when a chronological age was given."
    )
    notes = _always(
        fields.List, fields.String(),
        description="What the model's own checks did to the image before assessing it, in words for the reader "
                    '(e.g. "the film was upside down and was turned upright before assessment"); empty when nothing.',
    )
    ood_score = _always(
        fields.Float, nullable=True,
        description="The model's out-of-distribution score of the image's features: their distance from the "
                    "training films' features divided by the model's threshold (the threshold and how it was "
                    'fitted are in the model\'s metadata, under "ood"). Higher means less like the films the model '
                    "was trained on; above 1 the image is refused. Null when the model has no OOD statistics.",
    )
    hand = _always(
        fields.Nested, HandSchema, nullable=True,
        description="Where the hand was found; null when the locator found none (or for studies assessed "
                    "before it was stored).",
    )
    growth_chart_url = _always(fields.String, description="The growth chart (SVG): Greulich-Pyle band and the "
                                                          "child's series; its data at the URL without `.svg`.")
    report_url = _always(fields.String, description="The printable report (HTML, one A4 page).")
    timings = _always(fields.Nested, TimingsSchema)


class AssessmentSchema(Schema):
    """One job: its status and, once it succeeded, the result."""

    id = _always(fields.String)
    status = _always(fields.String, validate=OneOf([status.value for status in JobStatus]))
    url = _always(fields.String, description="This resource.")
    page_url = _always(fields.String, description="The job's HTML page.")
    image_url = _always(fields.String, description="The uploaded radiograph as PNG.")
    created_at = _datetime()
    started_at = _datetime(nullable=True)
    finished_at = _datetime(nullable=True)
    images_deleted_at = _datetime(nullable=True)
    error = _always(fields.String, nullable=True, description="Why the job failed.")
    sex = _always(fields.String, validate=OneOf(SEXES))
    chronological_age_months = _always(fields.Float, nullable=True)
    reference = _always(fields.String, nullable=True, description="The submitter's pseudonymous reference.")
    result = _always(fields.Nested, ResultSchema, nullable=True, description="Present when status is succeeded.")
    disclaimer = _always(fields.String)


class AssessmentListSchema(Schema):
    assessments = _always(fields.List, fields.Nested(AssessmentSchema), description="Newest first.")


class ErrorSchema(Schema):
    """Every error under /api/: a message for a person and, for a refused submission,
    one message per form field (`age` stands for the age and date fields together)."""

    error = _always(fields.String, description="What was wrong, for a person to read.")
    field_messages = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        data_key="fields",
        metadata={"description": "One message per invalid form field."},
    )


class SubmissionSchema(Schema):
    """The multipart form of POST /api/v1/assessments (checked by parse_submission)."""

    class Meta:
        unknown = EXCLUDE  # other form fields are ignored

    image = fields.Raw(
        required=True, metadata={"type": "string", "format": "binary", "description": "PNG, JPEG or DICOM."}
    )
    sex = fields.String(
        required=True, validate=OneOf(SEXES), metadata={"description": "M or F (male and female are accepted too)."}
    )
    age_years = fields.Integer(
        validate=Range(0, MAX_AGE_YEARS), metadata={"description": "Chronological age: whole years."}
    )
    age_months = fields.Integer(validate=Range(0, 11), metadata={"description": "Chronological age: months on top."})
    birth_date = fields.Date(metadata={"description": "With study_date, instead of age_years and age_months."})
    study_date = fields.Date()
    reference = fields.String(
        validate=[Length(max=64), Regexp(REFERENCE_PATTERN)],
        metadata={"description": "Optional pseudonymous patient or study reference; never a name."},
    )


class DicomUploadSchema(Schema):
    """The multipart form of POST /api/v1/dicom/tags."""

    class Meta:
        unknown = EXCLUDE  # the rest of the submission form may come along; it is ignored

    image = fields.Raw(required=True, metadata={"type": "string", "format": "binary", "description": "A DICOM file."})


class DicomTagsSchema(Schema):
    """What a DICOM file's header says, to fill in the submission form (the person confirms
    by submitting). Null where the header does not say; nothing is stored."""

    sex = _always(fields.String, nullable=True, validate=OneOf(SEXES), description="Patient's Sex, when M or F.")
    birth_date = _always(fields.Date, nullable=True, description="Patient's Birth Date.")
    study_date = _always(fields.Date, nullable=True,
                         description="Study Date, else Acquisition, Series or Content Date.")
    chronological_age_months = _always(
        fields.Float, nullable=True,
        description="Age at the study: from the two dates, else from Patient's Age; null outside 0-25 years.",
    )
    modality = _always(fields.String, nullable=True, description='e.g. "CR" or "DX".')
    photometric_interpretation = _always(fields.String, nullable=True, description='e.g. "MONOCHROME1".')
