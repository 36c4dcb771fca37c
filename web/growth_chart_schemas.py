"""The growth chart's data as the API sends it (services.growth_chart; web.growth_chart_api)."""

from __future__ import annotations

from marshmallow import Schema, fields

from web.schemas import SEXES, _always, _datetime
from marshmallow.validate import OneOf


class BandRowSchema(Schema):
    """The reference at one chronological age: mean skeletal age and mean ± 2 SD (months)."""

    age_months = _always(fields.Float)
    mean_months = _always(fields.Float)
    low_months = _always(fields.Float, description="Mean - 2 SD.")
    high_months = _always(fields.Float, description="Mean + 2 SD.")


class ChartPointSchema(Schema):
    """One study of the child (same reference and sex), oldest first."""

    assessment_id = _always(fields.String)
    created_at = _datetime()
    chronological_age_months = _always(fields.Float)
    bone_age_months = _always(fields.Float)
    low_months = _always(fields.Float, nullable=True, description="The prediction interval's low end.")
    high_months = _always(fields.Float, nullable=True, description="The prediction interval's high end.")
    current = _always(fields.Boolean, description="This assessment (the others are earlier ones).")


class GrowthChartSchema(Schema):
    """Bone age against chronological age: the reference band for the sex and the child's series."""

    assessment_id = _always(fields.String)
    sex = _always(fields.String, validate=OneOf(SEXES))
    reference = _always(fields.String, nullable=True, description="The pseudonymous reference that joins the series.")
    reference_standard = _always(fields.String)
    interval_level = _always(fields.String, nullable=True, description='e.g. "90%"')
    band = _always(fields.List, fields.Nested(BandRowSchema), description="Youngest first.")
    points = _always(fields.List, fields.Nested(ChartPointSchema),
                     description="The child's succeeded studies up to this one that the caller may see, oldest first.")
    not_placed = _always(fields.Integer, description="Earlier studies without a chronological age (not drawn).")
    note = _always(fields.String, nullable=True, description="Why this assessment has no point, when it has none.")
    image_url = _always(fields.String, description="The chart as SVG.")
