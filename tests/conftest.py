"""Shared fixtures (helpers.py has the functions they are built from).

Services: PostgreSQL and Redis are used for real, at the URLs in
BONEAGE_TEST_DATABASE_URL and BONEAGE_TEST_REDIS_URL. When one is not reachable
the tests that need it are skipped with a message saying what to start, unless
BONEAGE_REQUIRE_SERVICES=1 (set by .ci/run), which turns the skip into a failure.

Model: `synthetic_dataset` and `tiny_model` build a small synthetic data set and
train the real "demo" recipe on it once per test session.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest

from core.settings import Settings
from helpers import (
    CHROMIUM,
    S3Server,
    DEFAULT_TEST_DATABASE_URL,
    DEFAULT_TEST_REDIS_URL,
    WorkerProcess,
    fresh_postgres_schema,
    make_png,
    make_settings,
    read_queued_tasks,
    service_unavailable,
    wait_until_finished,
)


# ------------------------------------------------------------ home directory


@pytest.fixture(scope="session", autouse=True)
def caches_outside_home(tmp_path_factory):
    """Everything the tests would write under $HOME goes to a session temporary directory:
    the preprocessed image cache (BONEAGE_CACHE_DIR, default ~/.cache/boneage), torch hub
    downloads (TORCH_HOME) and matplotlib's config and font cache (MPLCONFIGDIR). Set in
    os.environ, so subprocesses (CLI, workers) started by the tests inherit it too."""
    root = tmp_path_factory.mktemp("home-caches")
    with pytest.MonkeyPatch.context() as patch:
        for name, folder in (("BONEAGE_CACHE_DIR", "boneage"), ("TORCH_HOME", "torch"), ("MPLCONFIGDIR", "matplotlib")):
            (root / folder).mkdir()
            patch.setenv(name, str(root / folder))
        yield root


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


# ------------------------------------------------------------------ S3


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """An S3 server of the tests' own (moto's server mode), for the object-storage file
    store (BONEAGE_FILES_URL). The credentials it accepts are set in os.environ, so the
    workers the tests start find them as a deployment's would."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                            ("AWS_DEFAULT_REGION", "us-east-1")):
            patch.setenv(name, value)
        server = S3Server(tmp_path_factory.mktemp("s3") / "moto.log").start()
        yield server
        server.stop()


# ------------------------------------------------------------------ Settings


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
def one_thread():
    """Tiny trainings on one thread: on a shared two-core machine two OpenMP threads spin
    against other processes and run many times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def chromium_path() -> str:
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        service_unavailable(
            f"Chromium is not installed at {CHROMIUM}: `apt-get install -y chromium` "
            "(or set BONEAGE_TEST_CHROMIUM)"
        )
    return CHROMIUM


# Headless, and nothing that phones home (there is no network here).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def browser(chromium_path):
    """A headless Chromium driven by Playwright, closed after the test."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


# --------------------------------------------------------------------- Queue


@pytest.fixture
def queued_tasks():
    """queued_tasks(settings[, queue]) -> [(task name, args)] waiting on the broker."""
    return read_queued_tasks


@pytest.fixture
def png_bytes():
    """png_bytes(size=96, seed=0) -> a small grayscale PNG."""
    return make_png


# -------------------------------------------------------------------- Worker


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


SERVICE_FIXTURES = {"postgres_server_url", "redis_url"}


def pytest_collection_modifyitems(items):
    """Mark every test that uses PostgreSQL or Redis with `services`, so
    `pytest -m "not services"` runs what needs neither."""
    for item in items:
        # Fixtures that pick PostgreSQL by parameter (getfixturevalue) show it in the test id.
        if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())) or "postgres" in item.name:
            item.add_marker(pytest.mark.services)
