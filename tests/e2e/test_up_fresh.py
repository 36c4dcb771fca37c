"""The README's first command on a fresh machine: `boneage up` with an empty state
directory migrates, trains and registers the synthetic demo model, serves, runs a real
job, and stops every child on Ctrl-C.

The demo training is shrunk through the environment (BONEAGE_DEMO_IMAGES,
BONEAGE_DEMO_IMAGE_SIZE, BONEAGE_DEMO_TIME_BUDGET) so the first start takes seconds,
not minutes; everything else is what a user runs.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from helpers import REPO_ROOT, requests_login, up_admin_password

pytestmark = pytest.mark.slow

SYNTHETIC_LABEL = "synthetic demo model, not for clinical use"
# Variables that would point `up` at another database, broker or state directory.
SERVICE_VARIABLES = ("DATABASE_URL", "BROKER_URL")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(predicate, timeout: float, what: str, log) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} after {timeout} s:\n{log()[-5000:]}")
        time.sleep(0.5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_up_on_an_empty_state_directory_trains_the_demo_model_and_serves(tmp_path):
    var_dir = tmp_path / "var"
    assert not var_dir.exists()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("BONEAGE_") and key not in SERVICE_VARIABLES}
    env.update(
        BONEAGE_VAR_DIR=str(var_dir),
        BONEAGE_DEMO_IMAGES="24",
        BONEAGE_DEMO_IMAGE_SIZE="128",
        BONEAGE_DEMO_TIME_BUDGET="2",
        BONEAGE_DEVICE="cpu",
        PYTHONUNBUFFERED="1",
    )
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "up.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "boneage", "up", "--port", str(port), "--no-beat"],
            cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
        )

    def output() -> str:
        return log_path.read_text(errors="replace")

    pids: list[int] = []
    try:
        _wait_for(lambda: "boneage is running at" in output() or process.poll() is not None, 600,
                  "`boneage up` was not serving", output)
        out = output()
        assert process.poll() is None, out
        assert f"{base}/" in out
        assert "No model is registered yet: training the demo model" in out
        assert f"registered and activated demo-" in out and SYNTHETIC_LABEL in out
        pids = [int(line.split("pid ")[1].split(")")[0]) for line in out.splitlines() if line.startswith("started ")]
        assert len(pids) == 3, out  # web, worker and training worker: --no-beat

        # The demo data set was generated as configured.
        generated = sorted((var_dir / "datasets" / "demo" / "boneage-training-dataset").glob("*.png"))
        assert len(generated) == 24

        # Nothing is open anonymously; the administrator logs in with the printed password.
        assert requests.get(f"{base}/api/v1/assessments", timeout=10).status_code == 401
        session = requests_login(base, "admin", up_admin_password(out))

        image = generated[0].read_bytes()
        response = session.post(
            f"{base}/api/v1/assessments",
            files={"image": ("hand.png", image, "image/png")},
            data={"sex": "F", "age_years": "10", "age_months": "0"},
            headers={"X-CSRFToken": session.csrf_token},
            timeout=30,
        )
        assert response.status_code == 202, response.text
        url = base + response.json()["url"]

        def finished() -> bool:
            return session.get(url, timeout=10).json()["status"] in ("succeeded", "failed")

        _wait_for(finished, 180, "the assessment did not finish",
                  lambda: (var_dir / "logs" / "worker.log").read_text(errors="replace"))
        body = session.get(url, timeout=10).json()
        assert body["status"] == "succeeded", body["error"]
        model = body["result"]["model"]
        assert model["name"].startswith("demo-") and model["trained_on"] == "synthetic"
        assert model["label"] == SYNTHETIC_LABEL and model["not_for_clinical_use"] is True
        assert body["result"]["bone_age"] and body["result"]["stage"] in ("Child", "Adolescent", "Adult")
        page = session.get(base + body["page_url"], timeout=10).text
        assert SYNTHETIC_LABEL in page and model["name"] in page
        heatmap = session.get(base + body["result"]["heatmap_url"], timeout=10)
        assert heatmap.status_code == 200 and heatmap.content.startswith(b"\x89PNG")
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        leftover = [pid for pid in pids if _group_alive(pid)]
        for pgid in leftover:  # the children run in their own process groups (pgid = pid)
            os.killpg(pgid, signal.SIGKILL)

    out = output()
    assert process.returncode == 0, out
    assert "stopped web, worker and training-worker" in out and "beat" not in out.split("stopping")[-1]
    # Every child, and everything in its process group (gunicorn's workers), is gone.
    assert not leftover, out
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
