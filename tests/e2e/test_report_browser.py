"""In headless Chromium (Debian's package, driven by Playwright): a child's two studies
submitted through the form with the same reference, the result page showing the
prediction interval and the growth chart (with the earlier study joined), and the
printable report printed to PDF: exactly one A4 page, rendered to PNG with pdftoppm.

The model is the session's tiny model with a prediction-interval calibration made
honestly on 40 fresh synthetic radiographs it has never seen (the tiny model's own
validation split is too small to calibrate a 90% interval). The app is served on
127.0.0.1 by a real HTTP server; a real worker does the work.

The rendered page is left at <tmp>/report-1.png (the path is printed) for a person to look
at; with BONEAGE_TEST_ARTIFACTS=DIR the PDF and the PNG are copied into DIR too (pytest
removes old temporary directories while other runs go on).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

import migrations
from helpers import BROWSER_ADMIN, browser_admin, browser_login, make_settings, register
from web import create_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]

INTERVAL = re.compile(r"\(90% interval \d+ y \d+ m – \d+ y \d+ m\)")


def calibrated_copy(checkpoint: Path, out: Path) -> Path:
    """`checkpoint` with a split-conformal calibration from its residuals on fresh synthetic data."""
    import csv

    import torch

    from core.imageio import decode_image
    from training.intervals import calibrate
    from training.model import load_checkpoint, model_from_checkpoint, save_checkpoint
    from training.predict import Predictor
    from training.synth import generate_dataset

    data = generate_dataset(out / "calibration", 40, size=128, seed=11, progress=False)
    rows = list(csv.DictReader((data / "boneage-training-dataset.csv").open()))
    images = [decode_image((data / "boneage-training-dataset" / f"{r['id']}.png").read_bytes()) for r in rows]
    sexes = ["M" if r["male"].lower() in ("true", "1") else "F" for r in rows]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        predictions = Predictor.from_checkpoint(checkpoint, device="cpu").predict(images, sexes, gradcam=False)
    finally:
        torch.set_num_threads(threads)
    calibration = calibrate([p.bone_age_months for p in predictions], [float(r["boneage"]) for r in rows])
    assert calibration is not None, "40 studies calibrate a 90% interval"
    model, _ = model_from_checkpoint(checkpoint)
    path = out / "model.pt"
    save_checkpoint(path, model, {**load_checkpoint(checkpoint)["metadata"], "interval": calibration})
    return path


@pytest.fixture(scope="module")
def served_app(tmp_path_factory, tiny_model, start_worker):
    root = tmp_path_factory.mktemp("report-browser")
    settings = make_settings(root)
    migrations.upgrade(settings.database_url)
    register(settings, calibrated_copy(tiny_model, root / "calibrated"))
    worker = start_worker(settings, "report-browser-worker")
    browser_admin(settings)
    server = make_server("127.0.0.1", 0, create_app(settings), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", settings
    server.shutdown()
    worker.stop()




def submit(page, base: str, image: Path, years: int, months: int) -> None:
    page.goto(base + "/")
    page.set_input_files("#image", str(image))
    page.check("input[name=sex][value=F]")
    page.fill("input[name=age_years]", str(years))
    page.fill("input[name=age_months]", str(months))
    page.fill("#reference", "CHILD-REPORT-1")
    page.click("#assessment-form button[type=submit]")
    page.wait_for_url("**/assessments/*")
    page.wait_for_selector("#result", timeout=180_000)  # the page polls and reloads when done


def loaded(page, selector: str) -> int:
    """The image's natural width once it has loaded (0: it failed)."""
    page.locator(selector).scroll_into_view_if_needed()
    page.wait_for_function(f"() => document.querySelector('{selector}').complete")
    return page.locator(selector).evaluate("img => img.naturalWidth")


def pdf_pages(pdf: Path) -> int:
    if shutil.which("pdfinfo"):
        info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
        return int(re.search(r"^Pages:\s+(\d+)", info, re.MULTILINE).group(1))
    return len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf.read_bytes()))


def test_the_interval_chart_and_a_one_page_report(served_app, browser, synthetic_dataset, tmp_path):
    served_app, _settings = served_app
    films = sorted((synthetic_dataset / "boneage-training-dataset").glob("*.png"))
    page = browser.new_page()
    browser_login(page, served_app, *BROWSER_ADMIN)
    submit(page, served_app, films[5], 10, 1)  # the earlier study
    submit(page, served_app, films[6], 11, 4)  # the follow-up

    assert INTERVAL.search(page.locator("#interval").inner_text())
    assert page.locator("#interval").is_visible()
    assert loaded(page, "#growth-chart-image") > 0
    assert page.locator("#growth-chart-image").is_visible()
    assessment_id = page.url.rstrip("/").rsplit("/", 1)[1]
    chart = page.request.get(f"{served_app}/api/v1/assessments/{assessment_id}/growth-chart").json()
    assert [p["chronological_age_months"] for p in chart["points"]] == [121.0, 136.0]  # the trajectory
    assert [p["current"] for p in chart["points"]] == [False, True]
    assert all(p["low_months"] <= p["bone_age_months"] <= p["high_months"] for p in chart["points"])
    if os.environ.get("BONEAGE_TEST_ARTIFACTS"):
        Path(os.environ["BONEAGE_TEST_ARTIFACTS"]).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(os.environ["BONEAGE_TEST_ARTIFACTS"]) / "result.png"), full_page=True)

    page.click("#report-link a")
    page.wait_for_url(f"**/assessments/{assessment_id}/report")
    assert INTERVAL.search(page.locator("#report-bone-age").inner_text())
    assert "CHILD-REPORT-1" in page.locator("#report-identification").inner_text()
    assert "not a diagnosis" in page.locator("#report-disclaimer").inner_text()
    assert "not for clinical use" in page.locator("#report-model-warning").inner_text()
    assert "MAE" in page.locator("#report-model").inner_text()
    for image in ("#report-radiograph", "#report-heatmap", "#report-chart"):
        assert loaded(page, image) > 0, image

    pdf = tmp_path / "report.pdf"
    page.pdf(path=str(pdf), format="A4", print_background=True)
    assert pdf.read_bytes().startswith(b"%PDF")
    assert pdf_pages(pdf) == 1
    if shutil.which("pdftoppm"):
        subprocess.run(["pdftoppm", "-png", "-r", "60", str(pdf), str(tmp_path / "report")], check=True)
        (rendered,) = tmp_path.glob("report-*.png")
        from PIL import Image

        with Image.open(rendered) as png:  # A4 at 60 dpi: 496 x 702 px, and not blank
            assert abs(png.size[0] - 496) <= 2 and abs(png.size[1] - 702) <= 2
            assert png.convert("L").getextrema()[0] < 64
        print(f"\nthe report, printed and rendered: {rendered}")
    if os.environ.get("BONEAGE_TEST_ARTIFACTS"):
        keep = Path(os.environ["BONEAGE_TEST_ARTIFACTS"])
        keep.mkdir(parents=True, exist_ok=True)
        for made in [pdf, *tmp_path.glob("report-*.png")]:
            shutil.copy(made, keep / made.name)


def tall_png(width: int, height: int, mode: str) -> bytes:
    import io

    import numpy as np
    from PIL import Image

    ramp = np.linspace(0, 255, width * height).reshape(height, width).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(ramp).convert(mode).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_tall_film_and_long_texts_still_print_on_one_page(served_app, browser, tmp_path):
    """The layout's worst case, written straight into the served database: a film twice as
    tall as wide, the longest reference the form allows, a long model label, a delayed
    reading with both SD limits crossed, and two earlier studies."""
    from core.status import JobStatus
    from db.files import open_file_store
    from db.models import Assessment, ModelVersion, utcnow
    from db.session import unit_of_work_factory

    base, settings = served_app
    files = open_file_store(settings)
    sha, upload = files.put_upload(tall_png(300, 600, "L"))
    reference = "LONG-REFERENCE " + "X" * 49  # 64 characters, the most the form takes
    uow_factory = unit_of_work_factory(settings.database_url)
    with uow_factory() as uow:
        model = uow.models.add(ModelVersion(
            name="rsna-0badcafe", recipe="rsna", checkpoint_path="/models/rsna/model.pt",
            checkpoint_sha256="0badcafe" + "0" * 56, trained_on="rsna",
            label="a long label a person gave this model to say where it came from and what it is for",
            metrics={"val_mae": 8.04, "test_mae": 8.61, "test_n": 91}))
        uow.commit()
        ids = []
        for age, bone_age in ((100.0, 70.0), (118.0, 80.0), (140.0, 96.0)):
            study = uow.assessments.add(Assessment(image_sha256=sha, image_path=upload, sex="M",
                                                   chronological_age_months=age, reference=reference))
            uow.commit()
            now = utcnow()
            attempt = uow.assessments.claim(study, now=now, stale_before=now)
            assert uow.assessments.transition(
                study.id, JobStatus.SUCCEEDED, attempt=attempt, finished_at=utcnow(), bone_age_months=bone_age,
                stage="Child", model_version_id=model.id, interval_confidence=0.9,
                bone_age_low_months=bone_age - 12, bone_age_high_months=bone_age + 12,
                heatmap_path=files.put_heatmap(f"{study.id}-1", tall_png(300, 600, "RGB")))
            uow.commit()
            ids.append(study.id)

    page = browser.new_page()
    browser_login(page, base, *BROWSER_ADMIN)
    page.goto(f"{base}/assessments/{ids[-1]}/report")
    assert reference in page.locator("#report-identification").inner_text()
    assert "delayed" in page.locator("#report-comparison").inner_text() or \
        "indeterminate" in page.locator("#report-comparison").inner_text()
    assert "held-out test MAE 8.6 months (n = 91)" in page.locator("#report-model").inner_text()
    assert "a long label a person gave" in page.locator("#report-model").inner_text()
    for image in ("#report-radiograph", "#report-heatmap", "#report-chart"):
        assert loaded(page, image) > 0, image
    pdf = tmp_path / "report-worst-case.pdf"
    page.pdf(path=str(pdf), format="A4", print_background=True)
    assert pdf_pages(pdf) == 1
    if os.environ.get("BONEAGE_TEST_ARTIFACTS"):
        keep = Path(os.environ["BONEAGE_TEST_ARTIFACTS"])
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(pdf, keep / pdf.name)
