"""Shared fixtures.

Services: PostgreSQL and Redis are used for real, at the URLs in
BONEAGE_TEST_DATABASE_URL and BONEAGE_TEST_REDIS_URL. When one is not reachable
the tests that need it are skipped with a message saying what to start, unless
BONEAGE_REQUIRE_SERVICES=1 (set by .ci/run), which turns the skip into a failure.

Model: `synthetic_dataset` and `tiny_model` build a small synthetic data set and
train the real "demo" recipe on it once per test session.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path

import pytest

from boneage.settings import Settings

DEFAULT_TEST_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/15"
CHROMIUM = os.environ.get("BONEAGE_TEST_CHROMIUM", "/usr/bin/chromium")
REPO_ROOT = Path(__file__).resolve().parents[1]
RSNA_SAMPLE = REPO_ROOT.parent / "shared" / "data" / "rsna-sample"


def services_required() -> bool:
    return os.environ.get("BONEAGE_REQUIRE_SERVICES") == "1"


def service_unavailable(message: str):
    """Skip, or fail when BONEAGE_REQUIRE_SERVICES=1."""
    if services_required():
        pytest.fail(f"{message} (BONEAGE_REQUIRE_SERVICES=1, so this is a failure)", pytrace=False)
    pytest.skip(message)


# ---------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    url = os.environ.get("BONEAGE_TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)
    import sqlalchemy as sa

    engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "not there"
        service_unavailable(
            f"PostgreSQL is not reachable at {url} ({type(exc).__name__}). Start it, e.g. "
            "`docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust -e POSTGRES_DB=test "
            "postgres:16`, or point BONEAGE_TEST_DATABASE_URL at one"
        )
    finally:
        engine.dispose()
    return url


@contextlib.contextmanager
def fresh_postgres_schema(server_url: str, prefix: str):
    """A database URL whose search_path is a new schema, dropped on exit."""
    import sqlalchemy as sa

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(server_url)
    with engine.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in server_url else "?"
    try:
        yield f"{server_url}{separator}options=-csearch_path%3D{schema}"
    finally:
        from db.session import dispose_engines

        dispose_engines()
        with engine.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture
def postgres_url(postgres_server_url: str):
    """A fresh schema for one test."""
    with fresh_postgres_schema(postgres_server_url, "boneage_test") as url:
        yield url


# --------------------------------------------------------------------- Redis


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("BONEAGE_TEST_REDIS_URL", DEFAULT_TEST_REDIS_URL)
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except Exception as exc:  # noqa: BLE001
        service_unavailable(
            f"Redis is not reachable at {url} ({type(exc).__name__}). Start it, e.g. "
            "`docker run -d -p 6379:6379 redis:7`, or point BONEAGE_TEST_REDIS_URL at one"
        )
    return url


# ------------------------------------------------------------------ Settings


def make_settings(root: Path, **overrides: str) -> Settings:
    """Settings rooted in `root`; keyword arguments are environment variables."""
    env = {"BONEAGE_VAR_DIR": str(root / "var"), **overrides}
    settings = Settings.from_env(env)
    settings.ensure_dirs()
    return settings


@pytest.fixture
def embedded_settings(tmp_path: Path) -> Settings:
    """Embedded mode (SQLite + filesystem transport) in a temporary directory, migrated."""
    import migrations

    settings = make_settings(tmp_path)
    migrations.upgrade(settings.database_url)
    return settings


@pytest.fixture
def service_settings(tmp_path: Path, postgres_url: str, redis_url: str) -> Settings:
    """PostgreSQL (fresh schema) + Redis, with queue names unique to this test."""
    import migrations

    suffix = uuid.uuid4().hex[:8]
    settings = make_settings(
        tmp_path,
        DATABASE_URL=postgres_url,
        BROKER_URL=redis_url,
        BONEAGE_INFERENCE_QUEUE=f"inference_{suffix}",
        BONEAGE_CPU_QUEUE=f"cpu_{suffix}",
    )
    migrations.upgrade(settings.database_url)
    yield settings
    import redis

    redis.Redis.from_url(redis_url).delete(settings.inference_queue, settings.cpu_queue)


# --------------------------------------------------------------------- Model


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory) -> Path:
    """48 synthetic radiographs (128 px) in the RSNA layout."""
    from training.synth import generate_dataset

    return Path(generate_dataset(tmp_path_factory.mktemp("synthetic"), 48, size=128, seed=0, progress=False))


@pytest.fixture(scope="session")
def tiny_model(synthetic_dataset: Path, tmp_path_factory) -> Path:
    """A real "demo" checkpoint trained for one epoch at 64 px; returns model.pt's path."""
    from training.train import train

    out = tmp_path_factory.mktemp("tiny-model")
    return Path(
        train(synthetic_dataset, "demo", out, seed=0, epochs=1, image_size=64, limit=48, progress=False)
    )


@pytest.fixture
def chromium_path() -> str:
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        service_unavailable(
            f"Chromium is not installed at {CHROMIUM}: `apt-get install -y chromium` "
            "(or set BONEAGE_TEST_CHROMIUM)"
        )
    return CHROMIUM


# --------------------------------------------------------------------- Queue


def read_queued_tasks(settings: Settings, queue: str | None = None) -> list[tuple[str, list]]:
    """(task name, args) of the messages waiting on a queue, read from the broker itself
    (message files of the filesystem transport, or the Redis list)."""
    import base64
    import json

    queue = queue or settings.inference_queue
    if settings.embedded:
        raw = [
            p.read_bytes()
            for p in sorted(settings.queue_messages_dir.glob(f"*.{queue}.msg"))
        ]
    else:
        import redis

        raw = redis.Redis.from_url(settings.broker_url).lrange(queue, 0, -1)
    tasks = []
    for item in raw:
        message = json.loads(item)
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        tasks.append((message["headers"]["task"], args))
    return tasks


def make_png(size: int = 96, seed: int = 0) -> bytes:
    """A small grayscale PNG that decodes like a radiograph would (for upload checks)."""
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = (rng.random((size, size)) * 255).astype("uint8")
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def queued_tasks():
    """queued_tasks(settings[, queue]) -> [(task name, args)] waiting on the broker."""
    return read_queued_tasks


@pytest.fixture
def png_bytes():
    """png_bytes(size=96, seed=0) -> a small grayscale PNG."""
    return make_png


# -------------------------------------------------------------------- Worker


class WorkerProcess:
    """A real Celery worker (`python -m celery -A worker.celery_app worker`, solo pool)
    in a subprocess, configured through the environment from `settings`."""

    def __init__(self, settings: Settings, name: str = "worker"):
        self.settings = settings
        self.log_path = settings.var_dir / f"{name}-{uuid.uuid4().hex[:6]}.log"
        self.process = None

    def start(self, timeout: float = 120) -> "WorkerProcess":
        import subprocess
        import sys
        import time

        env = {**os.environ, **self.settings.to_env(), "PYTHONUNBUFFERED": "1", "BONEAGE_DEVICE": "cpu"}
        command = [
            sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker",
            "-Q", f"{self.settings.inference_queue},{self.settings.cpu_queue}",
            "--pool", "solo", "--without-gossip", "--without-mingle", "--loglevel", "INFO",
            "--hostname", f"test-{uuid.uuid4().hex[:8]}@%h",
        ]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the worker exited with {self.process.returncode}:\n{self.log()}")
            if " ready." in self.log():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the worker was not ready after {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        import signal
        import subprocess

        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def wait_until_finished(client, assessment_id: str, timeout: float = 180) -> dict:
    """Poll GET /api/v1/assessments/<id> until it succeeded or failed."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/api/v1/assessments/{assessment_id}").get_json()
        if body["status"] in ("succeeded", "failed"):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"assessment still {body['status']} after {timeout} s")
        time.sleep(0.25)


@pytest.fixture(scope="session")
def start_worker():
    """start_worker(settings) -> a running WorkerProcess; all are stopped at the end."""
    workers: list[WorkerProcess] = []

    def start(settings: Settings, name: str = "worker") -> WorkerProcess:
        worker = WorkerProcess(settings, name)
        workers.append(worker)
        return worker.start()

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture(scope="session")
def wait_finished():
    """wait_finished(client, assessment_id, timeout=180) -> the finished assessment's JSON."""
    return wait_until_finished
