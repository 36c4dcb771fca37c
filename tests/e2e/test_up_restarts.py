"""`boneage up` keeps serving when one of its children dies: the dead child is
restarted (with a back-off) and the others are left alone; only Ctrl-C stops all."""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

import migrations
from helpers import REPO_ROOT, api_token, auth_header, make_png, make_settings, register

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Output:
    """The supervisor's stdout, read in a thread so the test can wait for lines."""

    def __init__(self, stream):
        self.lines: list[str] = []
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream):
        for line in stream:
            self.lines.append(line)

    def wait_for(self, pattern: str, timeout: float = 120) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                found = re.search(pattern, line)
                if found:
                    return found
            time.sleep(0.2)
        raise AssertionError(f"no line matching {pattern!r}:\n" + "".join(self.lines))


def test_a_killed_worker_is_restarted_and_the_service_keeps_working(tmp_path, tiny_model):
    settings = make_settings(tmp_path)
    migrations.upgrade(settings.database_url)
    register(settings, tiny_model)
    headers = auth_header(api_token(settings, "submitter"))
    port = _free_port()
    env = {**os.environ, **settings.to_env(), "PYTHONUNBUFFERED": "1", "BONEAGE_DEVICE": "cpu"}
    process = subprocess.Popen([sys.executable, "-m", "boneage", "up", "--port", str(port), "--no-beat"],
                               cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = Output(process.stdout)
    base = f"http://127.0.0.1:{port}"
    try:
        output.wait_for("boneage is running at")
        worker_pid = int(output.wait_for(r"started worker \(pid (\d+)\)").group(1))
        web_pid = int(output.wait_for(r"started web \(pid (\d+)\)").group(1))

        os.kill(worker_pid, signal.SIGKILL)
        output.wait_for(r"worker stopped \(exit status -9\); restarting it in")
        new_pid = int(output.wait_for(r"restarted worker \(pid (\d+)\)").group(1))
        assert new_pid != worker_pid
        os.kill(web_pid, 0)  # the web server was left alone
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 200

        response = requests.post(f"{base}/api/v1/assessments", data={"sex": "M"}, headers=headers,
                                 files={"image": ("hand.png", io.BytesIO(make_png(128)), "image/png")}, timeout=10)
        assert response.status_code == 202
        deadline = time.monotonic() + 120
        while (body := requests.get(base + response.json()["url"], headers=headers, timeout=5).json())["status"] not in (
                "succeeded", "failed"):
            assert time.monotonic() < deadline, "the job did not finish after the worker was restarted"
            time.sleep(0.5)
        assert body["status"] == "succeeded", body["error"]
        assert process.poll() is None, "the supervisor must not stop when a child dies"
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    assert process.returncode == 0, "".join(output.lines)
    output.wait_for("stopped web, worker and training-worker", timeout=5)
