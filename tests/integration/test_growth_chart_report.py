"""The growth chart and the printable report (issue 11), through the real database:

- AssessmentRepository.series on PostgreSQL: the same reference and sex, succeeded, up to
  the given study, oldest first, only one user's when asked;
- the chart's API (data and SVG) and the report page on a migrated SQLite database with
  users of each role: a submitter's chart never joins another submitter's studies, and
  nobody gets a chart or report of a study they may not see.

Results are written through the repository as the worker would (no model, no worker);
the headless-Chromium test (tests/e2e/test_report_browser.py) runs the whole path.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

import migrations
from core.status import JobStatus
from db.models import Assessment, ModelVersion, utcnow
from db.session import unit_of_work_factory
from helpers import authed_client, make_settings, make_user
from openapi_contract import contract_checked
from web import create_app


def user_id(uow_factory, username: str) -> int:
    with uow_factory() as uow:
        return uow.users.get_by_username(username).id


def put(uow_factory, *, reference="CHILD-1", sex="F", age=120.0, bone_age=110.0, interval="±14",
        by=None, days=0, status=JobStatus.SUCCEEDED, model_id=None) -> str:
    """An assessment created `days` after a fixed start, finished as the worker would finish it."""
    if interval == "±14":
        interval = (bone_age - 14, bone_age + 14)
    with uow_factory() as uow:
        assessment = uow.assessments.add(Assessment(
            image_sha256="a" * 64, image_path="uploads/aa/a.png", sex=sex, chronological_age_months=age,
            reference=reference, submitted_by_id=by, created_at=utcnow() - timedelta(days=1000 - days)))
        uow.commit()
        if status is JobStatus.QUEUED:
            return assessment.id
        now = utcnow()
        attempt = uow.assessments.claim(assessment, now=now, stale_before=now)
        values = dict(finished_at=utcnow())
        if status is JobStatus.SUCCEEDED:
            values.update(bone_age_months=bone_age, stage="Child", model_version_id=model_id,
                          heatmap_path=f"heatmaps/{assessment.id}-1.png",
                          bone_age_low_months=interval[0] if interval else None,
                          bone_age_high_months=interval[1] if interval else None,
                          interval_confidence=0.9 if interval else None)
        else:
            values.update(error="The image was not assessed: it is blank.")
        assert uow.assessments.transition(assessment.id, status, attempt=attempt, **values)
        uow.commit()
        return assessment.id


# ------------------------------------------------------------------ the series query on PostgreSQL


def test_the_series_query_on_postgresql(tmp_path, postgres_url):
    settings = make_settings(tmp_path, DATABASE_URL=postgres_url)
    migrations.upgrade(settings.database_url)
    uow_factory = unit_of_work_factory(settings.database_url)
    alice = user_id(uow_factory, make_user(settings, "submitter")[0])
    bob = user_id(uow_factory, make_user(settings, "submitter")[0])
    first = put(uow_factory, by=alice, days=0, age=96.0)
    bobs = put(uow_factory, by=bob, days=50, age=98.0)
    second = put(uow_factory, by=alice, days=100, age=102.0)
    put(uow_factory, by=alice, days=120, status=JobStatus.FAILED)
    put(uow_factory, by=alice, days=130, status=JobStatus.QUEUED)
    put(uow_factory, by=alice, days=140, reference="CHILD-2")
    put(uow_factory, by=alice, days=150, sex="M")
    current = put(uow_factory, by=alice, days=200, age=108.0)
    put(uow_factory, by=alice, days=300, age=120.0)  # later than the current one
    with uow_factory() as uow:
        up_to = uow.assessments.get(current).created_at
        everyone = uow.assessments.series("CHILD-1", "F", created_up_to=up_to)
        assert [a.id for a in everyone] == [first, bobs, second, current]
        alices = uow.assessments.series("CHILD-1", "F", created_up_to=up_to, submitted_by=alice)
        assert [a.id for a in alices] == [first, second, current]
        assert [a.chronological_age_months for a in alices] == [96.0, 102.0, 108.0]
        assert uow.assessments.series("CHILD-1", "F", created_up_to=up_to, submitted_by=bob)[0].id == bobs
        assert uow.assessments.series("nobody", "F", created_up_to=up_to) == []


# ------------------------------------------------------------------ the web (SQLite)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    settings = make_settings(tmp_path_factory.mktemp("growth-chart"))
    migrations.upgrade(settings.database_url)
    uow_factory = unit_of_work_factory(settings.database_url)
    with uow_factory() as uow:
        model = uow.models.add(ModelVersion(
            name="demo-0123abcd", recipe="demo", checkpoint_path="/models/demo/model.pt",
            checkpoint_sha256="0123abcd" + "0" * 56, trained_on="synthetic", is_active=True,
            metrics={"val_mae": 9.84, "test_mae": 10.26, "test_n": 12}))
        uow.commit()
        model_id = model.id
    app = contract_checked(create_app(settings))
    clients = {name: authed_client(app, role, username=name)
               for name, role in (("alice", "submitter"), ("bob", "submitter"), ("reader", "reader"))}
    alice, bob = user_id(uow_factory, "alice"), user_id(uow_factory, "bob")
    ids = {
        "alice-first": put(uow_factory, by=alice, days=0, age=96.0, bone_age=88.0, model_id=model_id),
        "bob-same-ref": put(uow_factory, by=bob, days=40, age=99.0, bone_age=150.0, model_id=model_id),
        "alice-no-age": put(uow_factory, by=alice, days=60, age=None, bone_age=94.0, model_id=model_id),
        # 10 y 4 m (124 months), interval 9 y 2 m - 11 y 6 m (110 - 138 months), at 11 y 0 m
        "alice-current": put(uow_factory, by=alice, days=200, age=132.0, bone_age=124.0, interval=(110.0, 138.0),
                             model_id=model_id),
        "alice-queued": put(uow_factory, by=alice, days=210, status=JobStatus.QUEUED),
    }
    return settings, app, clients, ids


def test_a_submitters_chart_joins_only_their_own_studies(world):
    _settings, _app, clients, ids = world
    response = clients["alice"].get(f"/api/v1/assessments/{ids['alice-current']}/growth-chart")
    assert response.status_code == 200
    chart = response.get_json()
    assert [p["assessment_id"] for p in chart["points"]] == [ids["alice-first"], ids["alice-current"]]
    assert ids["bob-same-ref"] not in response.get_data(as_text=True)
    assert chart["not_placed"] == 1  # the study without an age
    current = chart["points"][-1]
    assert current["current"] and (current["chronological_age_months"], current["bone_age_months"],
                                   current["low_months"], current["high_months"]) == (132.0, 124.0, 110.0, 138.0)
    assert chart["sex"] == "F" and chart["reference"] == "CHILD-1" and chart["interval_level"] == "90%"
    # F,132,137.86,11.94 in the Brush table (literal): mean ± 2 SD = 137.86 ∓ 23.88 = 113.98 - 161.74
    row = next(r for r in chart["band"] if r["age_months"] == 132)
    assert (row["mean_months"], row["low_months"], row["high_months"]) == pytest.approx((137.86, 113.98, 161.74))
    # the department (a reader) sees Bob's study in the series too
    seen = clients["reader"].get(f"/api/v1/assessments/{ids['alice-current']}/growth-chart").get_json()
    assert [p["assessment_id"] for p in seen["points"]] == [ids["alice-first"], ids["bob-same-ref"],
                                                          ids["alice-current"]]


def test_the_chart_image_is_svg_with_the_labels(world):
    _settings, _app, clients, ids = world
    response = clients["alice"].get(f"/api/v1/assessments/{ids['alice-current']}/growth-chart.svg")
    assert response.status_code == 200 and response.mimetype == "image/svg+xml"
    text = response.get_data(as_text=True)
    assert "<svg" in text and "chronological age (years)" in text and "this assessment (90% interval)" in text
    assert "private" in response.headers["Cache-Control"]


@pytest.mark.parametrize("path", ["/api/v1/assessments/{id}/growth-chart", "/api/v1/assessments/{id}/growth-chart.svg",
                                  "/assessments/{id}/report"])
def test_nobody_gets_the_chart_or_report_of_a_study_they_may_not_see(world, path):
    _settings, _app, clients, ids = world
    url = path.format(id=ids["alice-current"])
    assert clients["bob"].get(url).status_code == 404
    assert ids["alice-current"] not in clients["bob"].get(url).get_data(as_text=True) or "/api/" in url
    assert clients["alice"].get(url).status_code == 200
    assert clients["reader"].get(url).status_code == 200
    # a study that has not finished has no chart and no report yet
    assert clients["alice"].get(path.format(id=ids["alice-queued"])).status_code == 404
    assert clients["alice"].get(path.format(id="0" * 40)).status_code == 404


def test_a_study_without_an_age_has_a_chart_that_says_so(world):
    _settings, _app, clients, ids = world
    chart = clients["alice"].get(f"/api/v1/assessments/{ids['alice-no-age']}/growth-chart").get_json()
    assert chart["note"] and "cannot be placed" in chart["note"]
    assert [p["current"] for p in chart["points"]] == [False]  # the earlier study is still drawn
    svg = clients["alice"].get(chart["image_url"]).get_data(as_text=True)
    assert "point cannot be placed" in svg.replace("&#39;", "'")


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace(" .", ".").replace(" ,", ",")


def test_the_result_page_shows_the_chart_and_links_the_report(world):
    _settings, _app, clients, ids = world
    body = clients["alice"].get(f"/api/v1/assessments/{ids['alice-current']}").get_json()
    html = clients["alice"].get(f"/assessments/{ids['alice-current']}").get_data(as_text=True)
    assert f'src="{body["result"]["growth_chart_url"]}"' in html and 'id="growth-chart-image"' in html
    assert f'href="{body["result"]["report_url"]}"' in html


def test_the_report_has_what_a_reader_files(world):
    _settings, _app, clients, ids = world
    body = clients["alice"].get(f"/api/v1/assessments/{ids['alice-current']}").get_json()
    response = clients["alice"].get(body["result"]["report_url"])
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    text = _text(html)
    assert "Reference CHILD-1" in text
    assert "10 y 4 m (90% interval 9 y 2 m – 11 y 6 m)" in text
    assert "Stage Child" in text and "Chronological age 11 y 0 m" in text
    # Brush F,132: mean 137.86, SD 11.94 -> (124 - 137.86) / 11.94 = -1.16; interval (110 - 137.86) / 11.94 =
    # -2.33 to (138 - 137.86) / 11.94 = +0.01: the interval crosses -2 SD, so the reading is indeterminate
    assert "SD score -1.16 (90% interval -2.33 to +0.01)" in text
    assert "indeterminate (the 90% interval of the bone age crosses the -2 SD limit)" in text
    assert "demo-0123abcd" in text and "Synthetic demo model, not for clinical use" in text
    assert "Validation MAE 9.8 months; held-out test MAE 10.3 months (n = 12), measured on synthetic images" in text
    assert "decision support for a qualified reader, not a diagnosis" in text
    for source in (body["image_url"], body["result"]["heatmap_url"], body["result"]["growth_chart_url"]):
        assert f'src="{source}"' in html
    assert 'href="/static/report.css' in html and "@page" in clients["alice"].get("/static/report.css").get_data(
        as_text=True)
    assert not re.search(r"\b(name|patient|birth)\b", text, re.IGNORECASE)  # pseudonymous reference only


def test_a_report_without_an_age_says_the_comparison_was_not_made(world):
    _settings, _app, clients, ids = world
    text = _text(clients["alice"].get(f"/assessments/{ids['alice-no-age']}/report").get_data(as_text=True))
    assert "Chronological age not given" in text and "Not made: no chronological age was given" in text
