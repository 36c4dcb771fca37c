"""Where the hand was found, shown with the result (issue 12): the box the worker stores from the
Prediction (assessments.hand_box, shares of the heatmap's frame) drawn over the heatmap on the
result page, the heatmap's share inside it on the page, in the printable report and in the API.
Results are written through the repository as the worker writes them, on a migrated SQLite
database; every /api/ response is checked against the OpenAPI document.
"""

from __future__ import annotations

import re

import pytest

import migrations
from core.status import JobStatus
from db.models import Assessment, ModelVersion, utcnow
from db.session import unit_of_work_factory
from helpers import authed_client, make_settings
from openapi_contract import api_document, contract_checked
from web import create_app

BOX = [0.1875, 0.05, 0.8125, 0.9625]  # 62.5% x 91.25% = 57.0% of the frame


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    settings = make_settings(tmp_path_factory.mktemp("hand-box"))
    migrations.upgrade(settings.database_url)
    uow_factory = unit_of_work_factory(settings.database_url)
    with uow_factory() as uow:
        model = uow.models.add(ModelVersion(
            name="demo-0123abcd", recipe="demo", checkpoint_path="/models/demo/model.pt",
            checkpoint_sha256="0123abcd" + "0" * 56, trained_on="synthetic", is_active=True))
        uow.commit()
        model_id = model.id

    def put(hand_box, heatmap_in_hand) -> str:
        with uow_factory() as uow:
            assessment = uow.assessments.add(Assessment(
                image_sha256="a" * 64, image_path="uploads/aa/a.png", sex="M", chronological_age_months=100.0))
            uow.commit()
            now = utcnow()
            attempt = uow.assessments.claim(assessment, now=now, stale_before=now)
            assert uow.assessments.transition(
                assessment.id, JobStatus.SUCCEEDED, attempt=attempt, finished_at=utcnow(), bone_age_months=98.0,
                stage="Child", model_version_id=model_id, inference_seconds=0.5, heatmap_path="heatmaps/x-1.png",
                hand_box=hand_box, heatmap_in_hand=heatmap_in_hand)
            uow.commit()
            return assessment.id

    ids = {"found": put(BOX, 0.81234), "none": put(None, None)}
    return authed_client(contract_checked(create_app(settings))), ids


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def test_the_api_returns_the_box_its_area_and_the_heatmap_share(world):
    client, ids = world
    hand = client.get(f"/api/v1/assessments/{ids['found']}").get_json()["result"]["hand"]
    assert hand == {"box": BOX, "box_area_share": 0.57, "heatmap_share": 0.812}
    assert client.get(f"/api/v1/assessments/{ids['none']}").get_json()["result"]["hand"] is None
    schema = api_document(client.application)["components"]["schemas"]["Result"]["properties"]["hand"]
    assert {"$ref": "#/components/schemas/Hand"} in schema["anyOf"]
    assert {"type": "object", "nullable": True} in schema["anyOf"]


def test_the_result_page_draws_the_box_over_the_heatmap(world):
    client, ids = world
    html = client.get(f"/assessments/{ids['found']}").get_data(as_text=True)
    box = re.search(r'<rect id="hand-box"([^>]*)>', html)
    assert box, "no hand box on the page"
    attributes = dict(re.findall(r'([\w-]+)="([^"]*)"', box.group(1)))
    assert {k: attributes[k] for k in ("x", "y", "width", "height")} == {
        "x": "0.1875", "y": "0.0500", "width": "0.6250", "height": "0.9125"}
    # the box sits in the heatmap's own frame, so it is drawn over that image, not the radiograph
    frame = re.search(r'<div class="overlay-frame">(.*?)</figure>', html, re.S).group(1)
    assert 'id="heatmap"' in frame and 'id="hand-box"' in frame and 'viewBox="0 0 1 1"' in frame
    caption = _text(re.search(r'<span id="hand-caption">(.*?)</span>', html, re.S).group(1))
    assert caption == ("Dashed box: the hand as located; 81% of the heatmap lies inside it "
                       "(the box covers 57% of the image).")
    plain = client.get(f"/assessments/{ids['none']}").get_data(as_text=True)
    assert 'id="hand-box"' not in plain and 'id="hand-caption"' not in plain
    assert 'id="heatmap"' in plain


def test_the_report_gives_the_heatmap_share(world):
    client, ids = world
    html = client.get(f"/assessments/{ids['found']}/report").get_data(as_text=True)
    share = _text(re.search(r'<span id="report-hand">(.*?)</span>', html, re.S).group(1))
    assert share == "81% of it on the located hand (box 57% of the image)"
    assert 'id="report-hand"' not in client.get(f"/assessments/{ids['none']}/report").get_data(as_text=True)
