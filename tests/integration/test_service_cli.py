"""`boneage db upgrade|check`, `register-model`, `models`, and `boneage up` as a supervisor."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

import migrations
from boneage import service_cli, training_cli
from core.errors import UserFacingError
from helpers import REPO_ROOT, register
from db.session import unit_of_work_factory


def run_cli(monkeypatch, settings, *argv):
    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers(dest="command", required=True)
    service_cli.add_commands(subparsers)
    training_cli.add_commands(subparsers)  # `models` lives there
    args = parser.parse_args(list(argv))
    return args.handler(args)


@pytest.fixture
def fresh_settings(tmp_path):
    from helpers import make_settings

    return make_settings(tmp_path)


def test_db_upgrade_then_check(monkeypatch, fresh_settings, capsys):
    with pytest.raises(UserFacingError, match="boneage db upgrade"):
        run_cli(monkeypatch, fresh_settings, "db", "check")
    assert run_cli(monkeypatch, fresh_settings, "db", "upgrade") == 0
    assert f"revision {migrations.head_revision()}" in capsys.readouterr().out
    assert run_cli(monkeypatch, fresh_settings, "db", "check") == 0


def test_register_model_copies_and_activates(monkeypatch, fresh_settings, tiny_model, capsys):
    run_cli(monkeypatch, fresh_settings, "db", "upgrade")
    run_cli(monkeypatch, fresh_settings, "register-model", str(tiny_model))
    assert "not active" in capsys.readouterr().out
    run_cli(monkeypatch, fresh_settings, "register-model", str(tiny_model.parent), "--activate")
    out = capsys.readouterr().out
    assert "already registered" in out and "synthetic demo model, not for clinical use" in out
    with unit_of_work_factory(fresh_settings.database_url)() as uow:
        (model,) = uow.models.all()
        assert model.is_active and model.trained_on == "synthetic"
        assert model.name.startswith("demo-")
        assert fresh_settings.model_dir in __import__("pathlib").Path(model.checkpoint_path).parents
        assert model.metrics  # from model.json
    run_cli(monkeypatch, fresh_settings, "models")
    assert "* demo-" in capsys.readouterr().out


def test_register_model_explains_a_wrong_path(monkeypatch, fresh_settings, tmp_path):
    run_cli(monkeypatch, fresh_settings, "db", "upgrade")
    with pytest.raises(UserFacingError, match="no checkpoint"):
        run_cli(monkeypatch, fresh_settings, "register-model", str(tmp_path / "nope.pt"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_up_starts_web_worker_and_beat_and_stops_them_together(fresh_settings, tiny_model):
    """With a model already registered, `boneage up` serves, and Ctrl-C stops every child."""
    import migrations

    migrations.upgrade(fresh_settings.database_url)
    register(fresh_settings, tiny_model)
    port = _free_port()
    env = {**os.environ, **fresh_settings.to_env(), "PYTHONUNBUFFERED": "1"}
    code = f"import sys; from boneage.cli import main; sys.exit(main(['up', '--port', '{port}']))"
    process = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if "boneage is running at" in line or process.poll() is not None:
                break
        assert f"http://127.0.0.1:{port}/" in "".join(lines), "".join(lines)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            assert response.status == 200
        pids = [int(line.split("pid ")[1].split(")")[0]) for line in lines if line.startswith("started ")]
        assert len(pids) == 4  # web, worker, training worker, beat
    finally:
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=60)
    assert process.returncode == 0, "".join(lines) + out
    assert "stopped web, worker, training-worker and beat" in out
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
