"""services.growth_chart: the data the chart is drawn from (fakes, no database).

The band's expected values are rows of core/brush_skeletal_age.csv written here as
literals (mean ± 2 SD worked by hand), so they do not depend on the code under test.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from core.status import JobStatus
from db.models import Assessment
from services.growth_chart import NO_AGE_NOTE, build_chart, growth_chart, reference_band, render_chart

from fakes import FakeUnitOfWork

T0 = datetime(2024, 1, 10, tzinfo=timezone.utc)


def study(uow, days: int, *, reference="CHILD-7", sex="F", age=120.0, bone_age=110.0, interval=(98.0, 124.0),
          by=1, status=JobStatus.SUCCEEDED) -> Assessment:
    a = Assessment(image_sha256="a" * 64, image_path="uploads/a.png", sex=sex, reference=reference,
                   chronological_age_months=age, submitted_by_id=by, created_at=T0 + timedelta(days=days),
                   status=status, bone_age_months=bone_age if status is JobStatus.SUCCEEDED else None,
                   bone_age_low_months=interval[0] if interval else None,
                   bone_age_high_months=interval[1] if interval else None,
                   interval_confidence=0.9 if interval else None)
    return uow.assessments.add(a)


def test_the_band_is_the_brush_mean_and_two_sd_for_the_sex():
    girls = reference_band("F")
    by_age = {row.age_months: row for row in girls}
    # F,144,149.62,10.24: 149.62 - 20.48 = 129.14; 149.62 + 20.48 = 170.10
    assert by_age[144].mean_months == pytest.approx(149.62)
    assert by_age[144].low_months == pytest.approx(129.14)
    assert by_age[144].high_months == pytest.approx(170.10)
    # F,192,189.44,7.31: the last girls' row, 189.44 ± 14.62
    assert (girls[-1].age_months, girls[-1].low_months, girls[-1].high_months) == pytest.approx((192, 174.82, 204.06))
    boys = reference_band("male")
    # M,204,206.21,13.05: the last boys' row, 206.21 ± 26.10
    assert (boys[-1].age_months, boys[-1].mean_months, boys[-1].high_months) == pytest.approx((204, 206.21, 232.31))
    # M,3,3.01,0.69: the first row
    assert (boys[0].age_months, boys[0].low_months) == pytest.approx((3, 1.63))
    assert [r.age_months for r in boys] == sorted(r.age_months for r in boys)


def test_the_point_has_the_chronological_age_bone_age_and_interval():
    uow = FakeUnitOfWork()
    current = study(uow, 0, age=125.0, bone_age=131.5, interval=(118.0, 145.0))
    chart = growth_chart(current.id, uow=uow)
    assert chart.sex == "F" and chart.reference == "CHILD-7" and chart.note is None
    assert chart.interval_level == "90%"
    (point,) = chart.points
    assert point.current and point.assessment_id == current.id
    assert (point.chronological_age_months, point.bone_age_months, point.low_months, point.high_months) == \
        (125.0, 131.5, 118.0, 145.0)


def test_earlier_studies_of_the_same_child_join_in_date_order():
    uow = FakeUnitOfWork()
    # added out of order; a later study and other children are not part of this chart
    second = study(uow, 200, age=104.0, bone_age=99.0)
    first = study(uow, 0, age=98.0, bone_age=90.0)
    current = study(uow, 400, age=110.0, bone_age=104.0)
    study(uow, 600, age=116.0, bone_age=112.0)  # after the current one
    study(uow, 100, reference="CHILD-8")  # another child
    study(uow, 150, sex="M")  # the same reference for a boy: another child
    study(uow, 300, status=JobStatus.FAILED)  # no bone age
    study(uow, 350, status=JobStatus.QUEUED)
    chart = growth_chart(current.id, uow=uow)
    assert [p.assessment_id for p in chart.points] == [first.id, second.id, current.id]
    assert [p.current for p in chart.points] == [False, False, True]
    assert [p.bone_age_months for p in chart.earlier] == [90.0, 99.0]


def test_an_earlier_study_without_an_age_is_counted_not_placed():
    uow = FakeUnitOfWork()
    study(uow, 0, age=None)
    current = study(uow, 100)
    chart = growth_chart(current.id, uow=uow)
    assert chart.not_placed == 1 and [p.assessment_id for p in chart.points] == [current.id]


def test_without_a_chronological_age_there_is_no_point_and_a_note():
    uow = FakeUnitOfWork()
    earlier = study(uow, 0, age=100.0)
    current = study(uow, 100, age=None)
    chart = growth_chart(current.id, uow=uow)
    assert chart.current is None and chart.note == NO_AGE_NOTE
    assert [p.assessment_id for p in chart.points] == [earlier.id]  # the history is still drawn
    assert chart.band  # the reference is drawn anyway
    svg = render_chart(chart, "svg").decode()
    assert "the child's point cannot be placed" in svg.replace("&#39;", "'")


def test_a_submitter_never_sees_another_users_studies_in_the_series():
    uow = FakeUnitOfWork()
    theirs = study(uow, 0, by=2, age=100.0)
    mine_before = study(uow, 50, by=1, age=104.0)
    current = study(uow, 100, by=1)
    as_submitter = growth_chart(current.id, uow=uow, submitted_by=1)
    assert [p.assessment_id for p in as_submitter.points] == [mine_before.id, current.id]
    # a reader or admin (submitted_by None) sees the department's studies
    as_reader = growth_chart(current.id, uow=uow, submitted_by=None)
    assert [p.assessment_id for p in as_reader.points] == [theirs.id, mine_before.id, current.id]
    # another submitter may not have the chart at all
    assert growth_chart(current.id, uow=uow, submitted_by=2) is None


def test_no_reference_means_no_series_and_unfinished_studies_have_no_chart():
    uow = FakeUnitOfWork()
    study(uow, 0, reference=None)
    current = study(uow, 100, reference=None)
    assert [p.assessment_id for p in growth_chart(current.id, uow=uow).points] == [current.id]
    queued = study(uow, 200, status=JobStatus.QUEUED)
    assert growth_chart(queued.id, uow=uow) is None
    assert growth_chart("0" * 32, uow=uow) is None


def test_a_study_without_an_interval_has_a_point_without_bounds():
    uow = FakeUnitOfWork()
    current = study(uow, 0, interval=None)
    chart = build_chart(current, [])
    assert chart.interval_level is None
    assert (chart.current.low_months, chart.current.high_months) == (None, None)


@pytest.mark.parametrize("fmt, magic", [("svg", b"<svg"), ("png", b"\x89PNG")])
def test_the_chart_renders_with_axis_labels_in_years(fmt, magic):
    uow = FakeUnitOfWork()
    study(uow, 0, age=100.0)
    current = study(uow, 100)
    data = render_chart(growth_chart(current.id, uow=uow), fmt)
    assert magic in data[:200]
    if fmt == "svg":  # matplotlib writes each text as a comment beside its glyph paths
        text = data.decode()
        for words in ("chronological age (years)", "bone age (years)", "this assessment (90% interval)",
                      "Greulich-Pyle (Brush) mean", "earlier assessment"):
            assert re.search(re.escape(words), text), words
