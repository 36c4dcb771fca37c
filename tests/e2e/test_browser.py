"""In headless Chromium (Debian's package, driven by Playwright): fill in the form,
submit, wait for the result page and check that the Grad-CAM overlay loads.
The app is served on 127.0.0.1 by a real HTTP server; a real worker does the work."""

from __future__ import annotations

import threading

import pytest
from werkzeug.serving import make_server

import migrations
from helpers import BROWSER_ADMIN, browser_admin, browser_login, make_settings, register
from core.model_identity import SYNTHETIC_LABEL
from web import create_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]



@pytest.fixture(scope="module")
def served_app(tmp_path_factory, tiny_model, start_worker):
    settings = make_settings(tmp_path_factory.mktemp("browser"))
    migrations.upgrade(settings.database_url)
    register(settings, tiny_model)
    worker = start_worker(settings, "browser-worker")
    browser_admin(settings)  # the pages need a login (web.auth)
    server = make_server("127.0.0.1", 0, create_app(settings), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    worker.stop()




def test_submit_in_the_browser_and_see_the_heatmap(served_app, browser, synthetic_dataset):
    image = sorted((synthetic_dataset / "boneage-training-dataset").glob("*.png"))[3]
    page = browser.new_page()
    browser_login(page, served_app, *BROWSER_ADMIN)
    page.goto(served_app + "/")
    page.set_input_files("#image", str(image))
    page.check("input[name=sex][value=M]")
    page.fill("input[name=age_years]", "11")
    page.fill("input[name=age_months]", "4")
    page.fill("#reference", "BROWSER-1")
    page.click("#assessment-form button[type=submit]")

    page.wait_for_url("**/assessments/*")
    assert page.locator("#status").inner_text().strip().startswith(("Queued", "Running", "Done"))
    # The page polls the API and reloads itself when the job is done.
    page.wait_for_selector("#result", timeout=180_000)

    assert page.locator("#stage").inner_text() in ("Child", "Adolescent", "Adult")
    assert " y " in page.locator("#bone-age").inner_text()
    assert SYNTHETIC_LABEL in page.locator("#model-warning").inner_text()
    assert "not a diagnosis" in page.locator("#disclaimer").inner_text()
    assert "SD score" in page.locator("#comparison").inner_text()
    heatmap = page.locator("#heatmap")
    heatmap.scroll_into_view_if_needed()
    page.wait_for_function("() => document.querySelector('#heatmap').complete")
    assert heatmap.evaluate("img => img.naturalWidth") > 0
    assert page.locator("#original").evaluate("img => img.naturalWidth") > 0
    # The located hand is drawn over the heatmap, inside the image's rendered area.
    hand_box = page.locator("#hand-box")
    assert hand_box.is_visible()
    image_area, box_area = heatmap.bounding_box(), hand_box.bounding_box()
    assert box_area["width"] > 0.2 * image_area["width"] and box_area["height"] > 0.2 * image_area["height"]
    assert image_area["x"] - 1 <= box_area["x"] and box_area["x"] + box_area["width"] <= image_area["x"] + image_area["width"] + 1
    assert image_area["y"] - 1 <= box_area["y"] and box_area["y"] + box_area["height"] <= image_area["y"] + image_area["height"] + 1
    assert "of the heatmap lies inside it" in page.locator("#hand-caption").inner_text()

    page.goto(served_app + "/assessments")
    assert "BROWSER-1" in page.locator("#assessments").inner_text()


def test_browser_shows_form_errors(served_app, browser, tmp_path):
    text_file = tmp_path / "notes.png"
    text_file.write_text("not an image")
    page = browser.new_page()
    browser_login(page, served_app, *BROWSER_ADMIN)
    page.goto(served_app + "/")
    page.set_input_files("#image", str(text_file))
    page.check("input[name=sex][value=F]")
    page.click("#assessment-form button[type=submit]")
    page.wait_for_selector("#form-errors")
    assert "not an image we can read" in page.locator("#form-errors").inner_text()
