"""In headless Chromium: the audits page of a seeded history shows the finding banner
and the trend plot images load (decoded by the browser, non-zero size)."""

from __future__ import annotations

import threading

import pytest
from werkzeug.serving import make_server

import migrations
from audit_history import SHIFT_WEEK, WEEKS, History, seed_history
from db.session import unit_of_work_factory
from helpers import BROWSER_ADMIN, browser_admin, browser_login, make_settings
from services.audits import run_audit
from web import create_app

pytestmark = [pytest.mark.browser]



@pytest.fixture
def served_audits(tmp_path):
    settings = make_settings(tmp_path)
    migrations.upgrade(settings.database_url)
    uow = unit_of_work_factory(settings.database_url)
    seed_history(uow)
    for week in range(WEEKS):
        run_audit(*History.week(week), trigger="schedule", uow=uow)
    browser_admin(settings)  # the pages need a login (web.auth)
    server = make_server("127.0.0.1", 0, create_app(settings), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_the_audits_page_shows_the_finding_and_the_trend_plots_load(served_audits, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1200, "height": 2400})
    browser_login(page, served_audits, *BROWSER_ADMIN)
    page.goto(served_audits + "/audits")
    banner = page.locator("#findings")
    assert banner.is_visible()
    shifted = History.week(SHIFT_WEEK)[0].date().isoformat()
    gap = page.locator(".finding[data-kind=sex_gap]")
    assert gap.count() == 1 and shifted in gap.inner_text() and "girls" in gap.inner_text()
    for plot in ("mae_by_sex", "signed_error_by_age_band", "disagreement", "drift"):
        image = page.locator(f"#trend-{plot}")
        image.scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle(),
                               timeout=30000)
        assert image.evaluate("img => img.naturalWidth") > 100
    page.screenshot(path=str(tmp_path / "audits.png"), full_page=True)
    page.locator(".finding[data-kind=sex_gap] a").click()
    page.wait_for_url("**/audits/*")
    assert "SYNTHETIC" not in page.content() and page.locator("#findings").is_visible()
