"""What the user reads for a finished assessment: the page /assessments/<id> and the
API /api/v1/assessments/<id>, for results with known bone ages put straight into a
migrated SQLite database (no model, no worker).

The expected Greulich-Pyle numbers are worked by hand from rows of
core/brush_skeletal_age.csv (sex, chronological age, mean skeletal age, SD, months),
written here as literals with the arithmetic beside them, so they do not depend on
core.greulich_pyle or web.presenters.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

import migrations
from core.status import JobStatus
from db.models import Assessment, ModelVersion, utcnow
from db.session import unit_of_work_factory
from helpers import authed_client, make_settings
from web import create_app

MODEL_NAME = "demo-0123abcd"


@pytest.fixture
def settings(tmp_path):
    settings = make_settings(tmp_path)
    migrations.upgrade(settings.database_url)
    return settings


@pytest.fixture
def client(settings):
    return authed_client(create_app(settings))


@pytest.fixture
def put_result(settings):
    """put_result(sex, chronological_age_months, bone_age_months, stage[, interval]) -> id of a
    succeeded assessment, written through the repository as the worker would (interval:
    the 90% prediction interval's (low, high) months, or None as from an uncalibrated model)."""
    uow_factory = unit_of_work_factory(settings.database_url)
    with uow_factory() as uow:
        model = uow.models.add(
            ModelVersion(
                name=MODEL_NAME, recipe="demo", checkpoint_path="/models/demo/model.pt",
                checkpoint_sha256="0123abcd" + "0" * 56, trained_on="synthetic", is_active=True,
            )
        )
        uow.commit()
        model_id = model.id

    def put(sex: str, chronological_age_months: float | None, bone_age_months: float, stage: str,
            interval: tuple[float, float] | None = None) -> str:
        with uow_factory() as uow:
            assessment = uow.assessments.add(
                Assessment(image_sha256="a" * 64, image_path="uploads/aa/a.png", sex=sex,
                           chronological_age_months=chronological_age_months, reference="DISPLAY-1")
            )
            uow.commit()
            now = utcnow()
            attempt = uow.assessments.claim(assessment, now=now, stale_before=now)
            assert attempt == 1
            assert uow.assessments.transition(
                assessment.id, JobStatus.SUCCEEDED, attempt=attempt, bone_age_months=bone_age_months,
                stage=stage, model_version_id=model_id, finished_at=utcnow(), inference_seconds=0.5,
                bone_age_low_months=interval[0] if interval else None,
                bone_age_high_months=interval[1] if interval else None,
                interval_confidence=0.9 if interval else None,
            )
            uow.commit()
            return assessment.id

    return put


class _ById(HTMLParser):
    """Text content of the elements with an id (tags stripped, whitespace collapsed)."""

    def __init__(self):
        super().__init__()
        self.stack: list[tuple[str, str | None]] = []
        self.parts: dict[str, list[str]] = {}

    def handle_starttag(self, tag, attrs):
        if tag in ("img", "br", "meta", "link", "input"):
            return
        self.stack.append((tag, dict(attrs).get("id")))
        element_id = self.stack[-1][1]
        if element_id:
            self.parts.setdefault(element_id, [])

    def handle_endtag(self, tag):
        while self.stack:
            open_tag, _ = self.stack.pop()
            if open_tag == tag:
                break

    def handle_data(self, data):
        for _, element_id in self.stack:
            if element_id:
                self.parts[element_id].append(data)


def page_texts(client, assessment_id: str) -> dict[str, str]:
    response = client.get(f"/assessments/{assessment_id}")
    assert response.status_code == 200
    parser = _ById()
    parser.feed(response.get_data(as_text=True))
    return {key: re.sub(r"\s+", " ", "".join(parts)).strip() for key, parts in parser.parts.items()}


def api_result(client, assessment_id: str) -> dict:
    response = client.get(f"/api/v1/assessments/{assessment_id}")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "succeeded"
    return body["result"]


def test_girl_two_and_a_half_sd_below_the_mean_is_delayed(client, put_result):
    # Row F,120,125.66,11.73: at 10 y 0 m a girl's mean skeletal age is 125.66 months, SD 11.73.
    # Bone age 125.66 - 2.5 * 11.73 = 125.66 - 29.325 = 96.335 months -> SD score -2.50, delayed.
    # 96.335 rounds to 96 months = 8 y 0 m.
    assessment_id = put_result("F", 120.0, 96.335, "Child")

    result = api_result(client, assessment_id)
    assert result["bone_age_months"] == pytest.approx(96.3, abs=0.051)
    assert result["bone_age"] == "8 y 0 m"
    assert result["stage"] == "Child"
    comparison = result["comparison"]
    assert comparison["sd_score"] == pytest.approx(-2.5, abs=1e-9)
    assert comparison["reading"] == "delayed"
    assert comparison["expected_bone_age_months"] == pytest.approx(125.7)  # 125.66 to one decimal
    assert comparison["sd_months"] == pytest.approx(11.7)  # 11.73 to one decimal
    assert comparison["chronological_age_months"] == 120.0
    assert comparison["chronological_age"] == "10 y 0 m"

    page = page_texts(client, assessment_id)
    assert page["bone-age"].startswith("8 y 0 m")
    assert page["stage"] == "Child"
    assert "SD score -2.50" in page["comparison"]
    assert "delayed" in page["comparison"] and "below the mean" in page["comparison"]
    assert "advanced" not in page["comparison"] and "above the mean" not in page["comparison"]
    assert "125.7 months" in page["comparison"] and "SD 11.7" in page["comparison"]
    assert "10 y 0 m" in page_html(client, assessment_id)  # the chronological age


def test_boy_two_and_a_half_sd_above_the_mean_is_advanced(client, put_result):
    # Row M,144,148.82,10.38: at 12 y 0 m a boy's mean is 148.82 months, SD 10.38.
    # Bone age 148.82 + 2.5 * 10.38 = 148.82 + 25.95 = 174.77 -> SD score +2.50, advanced.
    # 174.77 rounds to 175 months = 14 y 7 m; 144 <= 174.77 < 216: Adolescent.
    assessment_id = put_result("M", 144.0, 174.77, "Adolescent")

    result = api_result(client, assessment_id)
    assert result["bone_age"] == "14 y 7 m"
    assert result["bone_age_months"] == pytest.approx(174.8)
    comparison = result["comparison"]
    assert comparison["sd_score"] == pytest.approx(2.5, abs=1e-9)
    assert comparison["reading"] == "advanced"
    assert comparison["expected_bone_age_months"] == pytest.approx(148.8)
    assert comparison["sd_months"] == pytest.approx(10.4)

    page = page_texts(client, assessment_id)
    assert page["bone-age"] == "14 y 7 m (174.8 months)"
    assert page["stage"] == "Adolescent"
    assert "SD score +2.50" in page["comparison"]
    assert "advanced" in page["comparison"] and "above the mean" in page["comparison"]
    assert "delayed" not in page["comparison"]


def test_between_two_table_rows_the_reference_is_interpolated(client, put_result):
    # Girl aged 126 months (10 y 6 m), halfway between rows F,120,125.66,11.73 and
    # F,132,137.86,11.94: mean (125.66 + 137.86) / 2 = 131.76, SD (11.73 + 11.94) / 2 = 11.835.
    # Bone age 131.76 - 2.2 * 11.835 = 131.76 - 26.037 = 105.723 -> SD score -2.20, delayed.
    # (Against the 120-month row alone it would be (105.723 - 125.66) / 11.73 = -1.70: normal.)
    # 105.723 rounds to 106 months = 8 y 10 m.
    assessment_id = put_result("F", 126.0, 105.723, "Child")

    comparison = api_result(client, assessment_id)["comparison"]
    assert comparison["expected_bone_age_months"] == pytest.approx(131.8)  # 131.76
    assert comparison["sd_months"] == pytest.approx(11.8, abs=0.051)  # 11.835
    assert comparison["sd_score"] == pytest.approx(-2.2, abs=1e-9)
    assert comparison["reading"] == "delayed"
    assert comparison["chronological_age"] == "10 y 6 m"

    page = page_texts(client, assessment_id)
    assert page["bone-age"].startswith("8 y 10 m")
    assert "SD score -2.20" in page["comparison"] and "delayed" in page["comparison"]
    assert "131.8 months" in page["comparison"]


@pytest.mark.parametrize(
    "bone_age, sd_score, reading, shown",
    [
        # Row M,108,113.90,9.00 (boy, 9 y 0 m): mean 113.9, SD 9.0.
        (131.9, 2.0, "normal", "+2.00"),  # 113.9 + 2 * 9.0 = 131.9: exactly +2 SD is not "more than 2 SD"
        (95.9, -2.0, "normal", "-2.00"),  # 113.9 - 2 * 9.0 = 95.9: exactly -2 SD is normal too
        (132.8, 2.1, "advanced", "+2.10"),  # (132.8 - 113.9) / 9.0 = 18.9 / 9 = +2.10
        (95.0, -2.1, "delayed", "-2.10"),  # (95.0 - 113.9) / 9.0 = -18.9 / 9 = -2.10
        (113.9, 0.0, "normal", "+0.00"),  # at the mean
    ],
)
def test_the_two_sd_boundary(client, put_result, bone_age, sd_score, reading, shown):
    assessment_id = put_result("M", 108.0, bone_age, "Child")

    comparison = api_result(client, assessment_id)["comparison"]
    assert comparison["sd_score"] == pytest.approx(round(sd_score, 1), abs=1e-9)
    assert comparison["reading"] == reading
    assert comparison["expected_bone_age_months"] == pytest.approx(113.9)
    assert comparison["sd_months"] == pytest.approx(9.0)

    text = page_texts(client, assessment_id)["comparison"]
    assert f"SD score {shown}" in text
    words = {"normal": "within normal limits", "advanced": "advanced", "delayed": "delayed"}
    assert words[reading] in text
    for other in set(words) - {reading}:
        assert words[other] not in text


@pytest.mark.parametrize(
    "bone_age, shown, reading",
    [
        (131.99, "+2.01", "advanced"),  # (131.99 - 113.9) / 9.0 = 18.09 / 9 = +2.01
        (95.81, "-2.01", "delayed"),  # (95.81 - 113.9) / 9.0 = -18.09 / 9 = -2.01
    ],
)
def test_just_past_two_sd_the_page_shows_more_than_two(client, put_result, bone_age, shown, reading):
    # Row M,108,113.90,9.00, as above.
    assessment_id = put_result("M", 108.0, bone_age, "Child")
    assert api_result(client, assessment_id)["comparison"]["reading"] == reading
    text = page_texts(client, assessment_id)["comparison"]
    assert f"SD score {shown}" in text and reading in text


@pytest.mark.parametrize(
    "sex, chronological_age",
    [
        ("F", 200.0),  # the girls' table ends at 192 months
        ("M", 216.0),  # the boys' table ends at 204 months
        ("M", 2.0),  # both start at 3 months
    ],
)
def test_outside_the_table_the_reading_is_indeterminate(client, put_result, sex, chronological_age):
    assessment_id = put_result(sex, chronological_age, 150.0, "Adolescent")

    comparison = api_result(client, assessment_id)["comparison"]
    assert comparison["reading"] == "indeterminate"
    assert comparison["sd_score"] is None
    assert comparison["expected_bone_age_months"] is None
    assert comparison["sd_months"] is None

    text = page_texts(client, assessment_id)["comparison"]
    assert "indeterminate" in text and "outside the reference table" in text
    assert "SD score" not in text and "delayed" not in text and "advanced" not in text


def test_without_a_chronological_age_there_is_no_comparison(client, put_result):
    # 124.4 months rounds to 124 = 10 y 4 m.
    assessment_id = put_result("F", None, 124.4, "Child")

    result = api_result(client, assessment_id)
    assert result["comparison"] is None
    assert result["bone_age"] == "10 y 4 m"
    page = page_texts(client, assessment_id)
    assert page["bone-age"] == "10 y 4 m (124.4 months)"
    assert page["stage"] == "Child"
    assert "comparison" not in page
    html = page_html(client, assessment_id)
    assert "Greulich-Pyle comparison" not in html and "SD score" not in html
    # the growth chart still draws the Greulich-Pyle band, and says the child's point cannot be placed
    assert 'id="growth-chart-image"' in html


@pytest.mark.parametrize(
    "months, shown",
    [
        (124.4, "10 y 4 m"),  # 124 = 10 * 12 + 4
        (143.6, "12 y 0 m"),  # rounds to 144 = 12 * 12
        (11.6, "1 y 0 m"),  # rounds to 12
        (5.2, "0 y 5 m"),
        (227.5, "19 y 0 m"),  # 227.5 -> 228 (round half to even) = 19 * 12
    ],
)
def test_bone_age_is_written_in_years_and_months(client, put_result, months, shown):
    assessment_id = put_result("M", None, months, "Child")
    assert api_result(client, assessment_id)["bone_age"] == shown
    assert page_texts(client, assessment_id)["bone-age"].startswith(f"{shown} (")


def test_the_page_names_the_model_and_warns_it_is_synthetic(client, put_result):
    assessment_id = put_result("M", 108.0, 113.9, "Child")
    page = page_texts(client, assessment_id)
    assert page["model-version"].startswith(MODEL_NAME)
    assert "synthetic demo model, not for clinical use" in page["model-warning"]
    assert "not a diagnosis" in page["disclaimer"]
    result = api_result(client, assessment_id)
    assert result["model"]["name"] == MODEL_NAME
    assert result["model"]["not_for_clinical_use"] is True


def page_html(client, assessment_id: str) -> str:
    return client.get(f"/assessments/{assessment_id}").get_data(as_text=True)


# --- the prediction interval (issue 11) ------------------------------------------------


def test_the_interval_is_shown_beside_the_bone_age_and_returned_by_the_api(client, put_result):
    # 124.4 -> 10 y 4 m; 110.2 -> 110 = 9 y 2 m; 137.6 -> 138 = 11 y 6 m
    assessment_id = put_result("F", None, 124.4, "Child", interval=(110.2, 137.6))
    page = page_texts(client, assessment_id)
    assert page["bone-age"] == "10 y 4 m (124.4 months) (90% interval 9 y 2 m – 11 y 6 m)"
    assert page["interval"] == "(90% interval 9 y 2 m – 11 y 6 m)"
    interval = api_result(client, assessment_id)["interval"]
    assert interval == {"confidence": 0.9, "level": "90%", "low_months": 110.2, "high_months": 137.6,
                        "low": "9 y 2 m", "high": "11 y 6 m"}


def test_a_result_without_an_interval_says_nothing_of_one(client, put_result):
    assessment_id = put_result("F", 120.0, 124.4, "Child")
    assert api_result(client, assessment_id)["interval"] is None
    assert "interval" not in page_texts(client, assessment_id)
    comparison = api_result(client, assessment_id)["comparison"]
    assert comparison["sd_score_low"] is None and comparison["sd_score_high"] is None


@pytest.mark.parametrize(
    "bone_age, interval, reading, sd_low, sd_high, words",
    [
        # Row M,108,113.90,9.00. Point -1.50 SD (100.4); interval 91.4..109.4 = -2.50..-0.50 SD: crosses -2.
        (100.4, (91.4, 109.4), "indeterminate", -2.5, -0.5, "crosses the -2 SD limit"),
        # point +1.50 SD (127.4); 118.4..136.4 = +0.50..+2.50 SD: crosses +2.
        (127.4, (118.4, 136.4), "indeterminate", 0.5, 2.5, "crosses the +2 SD limit"),
        # point at the mean; 91.4..136.4 = -2.50..+2.50 SD: crosses both limits.
        (113.9, (91.4, 136.4), "indeterminate", -2.5, 2.5, "crosses the -2 and the +2 SD limits"),
        # point -3.00 SD (86.9); 82.4..95.0 = -3.50..-2.10 SD: wholly below -2.
        (86.9, (82.4, 95.0), "delayed", -3.5, -2.1, "delayed"),
        # point at the mean; 95.9..131.9 = exactly -2..+2 SD: still normal.
        (113.9, (95.9, 131.9), "normal", -2.0, 2.0, "within normal limits"),
    ],
)
def test_an_interval_across_a_two_sd_limit_makes_the_reading_indeterminate(
        client, put_result, bone_age, interval, reading, sd_low, sd_high, words):
    assessment_id = put_result("M", 108.0, bone_age, "Child", interval=interval)
    comparison = api_result(client, assessment_id)["comparison"]
    assert comparison["reading"] == reading
    assert (comparison["sd_score_low"], comparison["sd_score_high"]) == (sd_low, sd_high)
    text = page_texts(client, assessment_id)["comparison"]
    assert words in text
    if reading == "indeterminate":
        assert "90% interval of the bone age" in text and "outside the reference table" not in text
