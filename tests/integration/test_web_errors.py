"""Errors never show a stack trace; a broker outage fails the job with its reason."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap

import pytest

from core.settings import Settings
from db.session import unit_of_work_factory
from openapi_contract import contract_checked
from helpers import authed_client
from web import create_app


@pytest.fixture
def app(embedded_settings):
    return contract_checked(create_app(embedded_settings))


def test_unknown_assessment_is_404_in_json_and_html(app):
    client = authed_client(app)
    api = client.get("/api/v1/assessments/0123456789abcdef0123456789abcdef")
    assert api.status_code == 404 and "no assessment" in api.get_json()["error"]
    page = client.get("/assessments/0123456789abcdef0123456789abcdef")
    assert page.status_code == 404 and "no assessment" in page.get_data(as_text=True)
    assert client.get("/api/v1/nothing-here").get_json()["error"]


def test_unexpected_error_shows_no_stack_trace(app, monkeypatch):
    from db.repository import AssessmentRepository

    def explode(self, limit=50):
        raise RuntimeError("secret internals at /srv/boneage/db.py line 42")

    monkeypatch.setattr(AssessmentRepository, "recent", explode)
    client = authed_client(app)
    for url, json in (("/assessments", False), ("/api/v1/assessments", True)):
        response = client.get(url)
        assert response.status_code == 500
        text = response.get_data(as_text=True)
        assert "Traceback" not in text and "secret internals" not in text
        assert "went wrong" in text
        if json:
            assert "went wrong" in response.get_json()["error"]


def test_broker_outage_marks_the_job_failed_with_the_reason(tmp_path, png_bytes):
    import migrations

    # Nothing listens on port 1: publishing fails, quickly.
    settings = Settings.from_env({"BONEAGE_VAR_DIR": str(tmp_path / "var"), "BROKER_URL": "redis://127.0.0.1:1/0"})
    settings.ensure_dirs()
    migrations.upgrade(settings.database_url)
    client = authed_client(contract_checked(create_app(settings)))
    response = client.post(
        "/api/v1/assessments",
        data={"image": (io.BytesIO(png_bytes()), "hand.png"), "sex": "F"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "failed" and "could not be queued" in body["error"]
    with unit_of_work_factory(settings.database_url)() as uow:
        assert uow.assessments.get(body["id"]).status == "failed"  # the row is kept, not lost
    page = client.get(body["page_url"]).get_data(as_text=True)
    assert "could not be queued" in page and "Traceback" not in page


def test_web_app_never_imports_torch_or_the_model_code(embedded_settings):
    code = textwrap.dedent(
        f"""
        import sys
        from core.settings import Settings
        from web import create_app
        app = create_app(Settings.from_env({{"BONEAGE_VAR_DIR": {str(embedded_settings.var_dir)!r}}}))
        client = app.test_client()
        assert client.get("/login").status_code == 200
        assert client.get("/api/v1/openapi.json").status_code == 200
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision", "pytorch_grad_cam")
                       or m in ("training.predict", "training.train", "training.model"))
        print(heavy)
        sys.exit(1 if heavy else 0)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
