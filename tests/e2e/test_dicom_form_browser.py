"""In headless Chromium: choosing a DICOM file on the submission form pre-fills the sex
and the dates from its header, says "please confirm", and the submitted study carries
that age; a DICOM the service cannot assess is flagged at once (issue 11)."""

from __future__ import annotations

import threading

import pytest
from werkzeug.serving import make_server

import migrations
from db.session import unit_of_work_factory
from helpers import BROWSER_ADMIN, browser_admin, browser_login, make_dicom, make_png, make_settings
from web import create_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]



@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app on 127.0.0.1 (no worker: the studies stay queued, which is all this needs)."""
    settings = make_settings(tmp_path_factory.mktemp("dicom-browser"))
    migrations.upgrade(settings.database_url)
    browser_admin(settings)
    server = make_server("127.0.0.1", 0, create_app(settings), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield settings, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def page(browser, served):
    page = browser.new_page()
    browser_login(page, served[1], *BROWSER_ADMIN)
    page.goto(served[1] + "/")
    return page


def test_choosing_a_dicom_prefills_sex_and_age_for_the_person_to_confirm(page, served, tmp_path):
    path = tmp_path / "IM000001"  # PACS exports often have no .dcm suffix: the preamble is sniffed
    path.write_bytes(make_dicom(photometric="MONOCHROME1", modality="CR", PatientName="Doe^Jane",
                                PatientID="MRN-4711", PatientSex="F", PatientBirthDate="20140327",
                                StudyDate="20241103"))
    page.set_input_files("#image", str(path))
    page.wait_for_selector("#dicom-note[data-kind=prefilled]")
    note = page.locator("#dicom-note").inner_text()
    assert "Read from the DICOM header" in note and "please confirm" in note
    assert "sex female" in note and "10 y 7 m" in note
    assert "Doe" not in page.content() and "MRN-4711" not in page.content()
    assert page.locator("input[name=sex][value=F]").is_checked()
    assert page.locator("input[name=birth_date]").input_value() == "2014-03-27"
    assert page.locator("input[name=study_date]").input_value() == "2024-11-03"
    assert page.locator("input[name=age_years]").input_value() == ""

    page.click("#assessment-form button[type=submit]")  # the person confirms by submitting
    page.wait_for_url("**/assessments/*")
    assessment_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    with unit_of_work_factory(served[0].database_url)() as uow:
        row = uow.assessments.get(assessment_id)
        assert row.sex == "F" and row.chronological_age_months == pytest.approx(127.28)


def test_patients_age_alone_fills_years_and_months(page, tmp_path):
    path = tmp_path / "aged.dcm"
    path.write_bytes(make_dicom(PatientSex="M", PatientAge="009Y"))
    page.fill("input[name=birth_date]", "2015-01-01")  # replaced: the header's age wins, to be confirmed
    page.set_input_files("#image", str(path))
    page.wait_for_selector("#dicom-note[data-kind=prefilled]")
    assert page.locator("input[name=sex][value=M]").is_checked()
    assert page.locator("input[name=age_years]").input_value() == "9"
    assert page.locator("input[name=age_months]").input_value() == "0"
    assert page.locator("input[name=birth_date]").input_value() == ""


def test_a_header_without_sex_or_age_says_so(page, tmp_path):
    path = tmp_path / "bare.dcm"
    path.write_bytes(make_dicom())
    page.set_input_files("#image", str(path))
    page.wait_for_selector("#dicom-note[data-kind=missing]")
    assert "Enter the sex and the age yourself" in page.locator("#dicom-note").inner_text()
    assert not page.locator("input[name=sex][value=F]").is_checked()


def test_a_dicom_that_cannot_be_assessed_is_flagged_and_a_png_is_left_alone(page, tmp_path):
    path = tmp_path / "cine.dcm"
    path.write_bytes(make_dicom(frames=4, PatientSex="F"))
    page.set_input_files("#image", str(path))
    page.wait_for_selector("#dicom-note[data-kind=error]")
    assert "4 frames" in page.locator("#dicom-note").inner_text()
    png = tmp_path / "hand.png"
    png.write_bytes(make_png())
    page.set_input_files("#image", str(png))
    page.wait_for_function("() => document.querySelector('#dicom-note').hidden")
