"""In headless Chromium: queue a training job from the training page, watch the learning
curve grow on the job's live page (inline SVG, no CDN), see the report and the model
link at the end; queue another and cancel it with the Cancel button. A real training
worker does the work."""

from __future__ import annotations

import threading

import pytest
from werkzeug.serving import make_server

import migrations
from helpers import BROWSER_ADMIN, browser_admin, browser_login, WorkerProcess, make_settings, register
from web import create_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]



@pytest.fixture
def served(tmp_path, tiny_model):
    from training.synth import generate_dataset

    settings = make_settings(tmp_path, BONEAGE_TRAINING_HEARTBEAT_S="0.5")
    migrations.upgrade(settings.database_url)
    register(settings, tiny_model)
    generate_dataset(settings.datasets_dir / "tiny", 60, size=64, seed=2, progress=False)
    worker = WorkerProcess(settings, "training", queues=settings.training_queue,
                           env={"OMP_NUM_THREADS": "1"}).start()
    browser_admin(settings)  # the pages need a login (web.auth)
    server = make_server("127.0.0.1", 0, create_app(settings), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    worker.stop()




def test_queue_watch_the_curve_grow_and_cancel_another(served, browser):
    page = browser.new_page()
    browser_login(page, served, *BROWSER_ADMIN)
    external = []
    page.on("request", lambda request: None if request.url.startswith(served) else external.append(request.url))
    page.goto(served + "/training")
    page.fill("#dataset-form input[name=path]", "tiny")
    page.click("#dataset-form button[type=submit]")
    assert "Registered dataset tiny: 60 studies" in page.locator("#message").inner_text()

    page.select_option("#train-form select[name=dataset]", "tiny")
    page.select_option("#train-form select[name=recipe]", "demo")
    page.fill("#train-form input[name=epochs]", "4")
    page.fill("#train-form input[name=image_size]", "64")
    page.click("#train-form button[type=submit]")
    page.wait_for_url("**/training/jobs/*")

    # the curve grows while the page polls: first one point per series, then more
    page.locator("#curve circle.point-val_mae").first.wait_for(state="attached", timeout=120_000)
    page.locator("#curve circle.point-val_mae").nth(1).wait_for(state="attached", timeout=120_000)
    page.wait_for_selector("#report", timeout=180_000)  # the page reloads when the job ends
    assert page.locator("#status-text").inner_text() == "succeeded"
    assert page.locator("#curve circle.point-train_loss").count() == 4
    assert page.locator("#model-link").inner_text().startswith("demo-")
    assert page.locator("#report img").first.evaluate("img => img.naturalWidth") > 0

    page.goto(served + "/training")
    page.select_option("#train-form select[name=dataset]", "tiny")
    page.select_option("#train-form select[name=recipe]", "demo")
    page.fill("#train-form input[name=epochs]", "300")
    page.fill("#train-form input[name=image_size]", "64")
    page.click("#train-form button[type=submit]")
    page.wait_for_url("**/training/jobs/*")
    page.locator("#curve circle.point-val_mae").first.wait_for(state="attached", timeout=120_000)
    page.click("#cancel")
    page.locator("#job-status[data-status=cancelled]").wait_for(state="attached", timeout=120_000)
    assert page.locator("#resume").count() == 1

    page.goto(served + "/models")
    assert page.locator("#models tbody tr").count() == 2  # the serving one and the trained one, not the cancelled
    assert not external, external
