"""While the database cannot be reached (PostgreSQL restarting), the web answers 503 with
Retry-After, never a 500, and stores no job (benchmarks/fault_injection.py restarts a real
PostgreSQL under load; this is the same answer without one)."""

from __future__ import annotations

import io
import socket

import pytest

from helpers import make_png, make_settings
from web import create_app


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens on it once the socket is closed


@pytest.fixture
def client(tmp_path):
    database_url = f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/boneage?connect_timeout=2"
    settings = make_settings(tmp_path, DATABASE_URL=database_url)
    app = create_app(settings)
    app.testing = False  # errors go through the handlers, as in production
    client = app.test_client()
    # Any token: looking it up needs the database, so the request meets the outage first.
    client.environ_base["HTTP_AUTHORIZATION"] = "Bearer bat_any-token"
    return client


def test_a_submission_while_the_database_is_down_gets_503_with_retry_after(client):
    response = client.post("/api/v1/assessments", content_type="multipart/form-data",
                           data={"image": (io.BytesIO(make_png()), "hand.png"), "sex": "F"})
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.headers["Retry-After"].isdigit()
    body = response.get_json()
    assert "try again" in body["error"] and "Traceback" not in response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/api/v1/assessments", "/api/v1/assessments/" + "a" * 32, "/assessments/" + "a" * 32])
def test_reads_while_the_database_is_down_get_503_with_retry_after(client, path):
    response = client.get(path)
    assert response.status_code == 503, response.get_data(as_text=True)
    assert int(response.headers["Retry-After"]) > 0
    assert "psycopg" not in response.get_data(as_text=True)
