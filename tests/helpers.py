"""Helpers shared by the tests: `from helpers import make_settings`.

The fixtures in conftest.py are built from these; tests import helpers, never conftest.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

import pytest

from core.settings import Settings

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


def make_settings(root: Path, **overrides: str) -> Settings:
    """Settings rooted in `root`; keyword arguments are environment variables."""
    env = {"BONEAGE_VAR_DIR": str(root / "var"), **overrides}
    settings = Settings.from_env(env)
    settings.ensure_dirs()
    return settings


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
    """A small grayscale PNG that decodes like a radiograph would (for upload checks): a
    bright blob on a dark background with seeded noise (distinct bytes per seed), so the
    worker's image rejection (core/image_checks.py) accepts it as it accepts a radiograph."""
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    blob = np.exp(-(((xx - 0.5) / 0.18) ** 2 + ((yy - 0.55) / 0.28) ** 2))
    pixels = (np.clip(0.08 + 0.7 * blob + rng.normal(0, 0.02, (size, size)), 0, 1) * 255).astype("uint8")
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


class WorkerProcess:
    """A real Celery worker (`python -m boneage worker`, as production starts it; solo pool)
    in a subprocess, configured through the environment from `settings`."""

    def __init__(self, settings: Settings, name: str = "worker", queues: str | None = None,
                 env: dict[str, str] | None = None):
        self.settings = settings
        self.queues = queues  # e.g. settings.training_queue; default: the worker's default queues
        self.env = env or {}
        self.log_path = settings.var_dir / f"{name}-{uuid.uuid4().hex[:6]}.log"
        self.process = None

    def start(self, timeout: float = 120) -> "WorkerProcess":
        import subprocess
        import sys
        import time

        env = {**os.environ, **self.settings.to_env(), "PYTHONUNBUFFERED": "1", "BONEAGE_DEVICE": "cpu", **self.env}
        command = [sys.executable, "-m", "boneage", "worker", "--hostname", f"test-{uuid.uuid4().hex[:8]}@%h"]
        if self.queues:
            command += ["--queues", self.queues]
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


def register(settings: Settings, checkpoint, *, activate: bool = True, label: str | None = None):
    """Register a checkpoint with the service at `settings` (the register-model use case)."""
    from db.session import unit_of_work_factory
    from services.model_registry import register_model

    return register_model(checkpoint, uow=unit_of_work_factory(settings.database_url), model_dir=settings.model_dir,
                          activate=activate, label=label)


# ------------------------------------------------------------ access control (issue 9)


def make_user(settings: Settings, role: str = "admin", *, username: str | None = None,
              password: str | None = None) -> tuple[str, str]:
    """Create a user through services.users; returns (username, password)."""
    from db.session import unit_of_work_factory
    from services.users import add_user

    username = username or f"{role}-{uuid.uuid4().hex[:8]}"
    user, password = add_user(username, role, uow=unit_of_work_factory(settings.database_url), password=password)
    return user.username, password


def api_token(settings: Settings, role: str = "admin", *, username: str | None = None) -> str:
    """A bearer token of a new user with `role` (or of the existing `username`)."""
    from db.session import unit_of_work_factory
    from services.users import create_token

    uow = unit_of_work_factory(settings.database_url)
    if username is None or not _user_exists(settings, username):
        username, _ = make_user(settings, role, username=username)
    return create_token(username, uow=uow, label="tests")[1]


def _user_exists(settings: Settings, username: str) -> bool:
    from db.session import unit_of_work_factory

    with unit_of_work_factory(settings.database_url)() as work:
        return work.users.get_by_username(username) is not None


def auth_header(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def authed_client(app, role: str = "admin", *, username: str | None = None):
    """`app.test_client()` whose every request carries a bearer token of a user with `role`
    (a new user unless `username` names an existing one). The token is `client.token`."""
    client = app.test_client()
    client.token = api_token(app.extensions["boneage"].settings, role, username=username)
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {client.token}"
    return client


def browser_login(page, base_url: str, username: str, password: str) -> None:
    """Log a Playwright page in through the login form."""
    page.goto(base_url.rstrip("/") + "/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


def up_admin_password(output: str) -> str:
    """The one-time admin password that `boneage up` prints on first start."""
    import re

    match = re.search(r"one-time password: (\S+)", output)
    if match is None:
        raise AssertionError(f"`boneage up` printed no one-time password:\n{output[-2000:]}")
    return match.group(1)


def up_admin_token(settings: Settings) -> str:
    """A bearer token of the admin that `boneage up` created (for tests against `up`)."""
    return api_token(settings, username="admin")


BROWSER_ADMIN = ("browser-admin", "browser admin password")  # what the browser tests log in as


def browser_admin(settings: Settings) -> tuple[str, str]:
    """Create the browser tests' administrator (once per database); returns (user, password)."""
    if not _user_exists(settings, BROWSER_ADMIN[0]):
        make_user(settings, "admin", username=BROWSER_ADMIN[0], password=BROWSER_ADMIN[1])
    return BROWSER_ADMIN


def requests_login(base_url: str, username: str, password: str):
    """A requests.Session logged in through the login form (as a browser would); its
    `csrf_token` goes in the X-CSRFToken header of writes it sends to the API."""
    import re

    import requests

    session = requests.Session()
    page = session.get(base_url.rstrip("/") + "/login", timeout=10).text
    session.csrf_token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = session.post(base_url.rstrip("/") + "/login", timeout=10, allow_redirects=False,
                            data={"username": username, "password": password, "csrf_token": session.csrf_token})
    assert response.status_code == 303, f"login failed ({response.status_code}): {response.text[:300]}"
    return session


# ------------------------------------------------------------------ DICOM (issue 11)


def make_dicom(pixels=None, *, photometric: str = "MONOCHROME2", bits_stored: int = 12, signed: bool = False,
               modality: str = "DX", frames: int = 1, **tags) -> bytes:
    """A DICOM Part 10 file built in memory with pydicom: `pixels` (a 2-D integer array; by
    default a radiograph-like blob with 12-bit values, shown bright on dark in either
    photometric interpretation, as make_png's) as an uncompressed, explicit VR little
    endian DX image (Digital X-Ray Image Storage). Keyword arguments are further tags by
    keyword (PatientName="Doe^Jane", RescaleSlope=2, WindowCenter=..., VOILUTSequence=...)."""
    import io

    import numpy as np
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    if pixels is None:
        yy, xx = np.mgrid[0:96, 0:96] / 96
        blob = np.exp(-(((xx - 0.5) / 0.18) ** 2 + ((yy - 0.55) / 0.28) ** 2))
        shown = 0.08 + 0.7 * blob
        shown = 1.0 - shown if photometric == "MONOCHROME1" else shown  # MONOCHROME1: low values are white
        pixels = np.round(shown * (2**bits_stored - 1)).astype(np.int64)
    pixels = np.asarray(pixels)
    bits_allocated = 8 if bits_stored <= 8 else 16
    dtype = {(8, False): np.uint8, (8, True): np.int8, (16, False): np.uint16, (16, True): np.int16}[
        (bits_allocated, signed)]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    dataset.SOPClassUID, dataset.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    dataset.StudyInstanceUID, dataset.SeriesInstanceUID = generate_uid(), generate_uid()
    dataset.Modality = modality
    dataset.Rows, dataset.Columns = pixels.shape[-2:]
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = photometric
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = bits_allocated, bits_stored, bits_stored - 1
    dataset.PixelRepresentation = int(signed)
    if frames > 1:
        dataset.NumberOfFrames = frames
        pixels = np.stack([pixels] * frames)
    dataset.PixelData = pixels.astype(dtype).tobytes()
    for keyword, value in tags.items():
        setattr(dataset, keyword, value)
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
    return buffer.getvalue()


def database_rows(database_url: str) -> dict[str, list[str]]:
    """Every row of every table, as text (repr of each row), by table name: to scan what is
    stored, or to compare before and after."""
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            tables = sa.inspect(connection).get_table_names()
            return {table: [repr(tuple(row)) for row in connection.execute(sa.text(f'SELECT * FROM "{table}"'))]
                    for table in tables}
    finally:
        engine.dispose()


def stored_files(root) -> dict[str, bytes]:
    """Every file under `root` (relative path -> bytes)."""
    root = Path(root)
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


class S3Server:
    """A local S3-compatible server (moto's server mode) in a subprocess of the tests,
    on a free port of 127.0.0.1; stopped by stop(), which only touches this process."""

    def __init__(self, log_path: Path):
        self.log_path = log_path
        self.process = None
        self.endpoint_url = ""

    def start(self, timeout: float = 60) -> "S3Server":
        import socket
        import subprocess
        import sys
        import time

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.endpoint_url = f"http://127.0.0.1:{port}"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the S3 server exited: {self.log_path.read_text()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the S3 server did not listen within {timeout} s")

    def new_bucket(self) -> str:
        """A fresh bucket; returns the BONEAGE_FILES_URL of a prefix in it."""
        import boto3

        name = f"boneage-{uuid.uuid4().hex[:12]}"
        boto3.client("s3", endpoint_url=self.endpoint_url).create_bucket(Bucket=name)
        return f"s3://{name}/files"

    def objects(self, files_url: str) -> dict[str, bytes]:
        return self.objects_at(files_url, self.endpoint_url)

    @staticmethod
    def objects_at(files_url: str, endpoint_url: str) -> dict[str, bytes]:
        """Every object under a BONEAGE_FILES_URL, by its key relative to the prefix."""
        import boto3

        bucket, prefix = files_url.removeprefix("s3://").split("/", 1)
        client = boto3.client("s3", endpoint_url=endpoint_url)
        listing = client.list_objects_v2(Bucket=bucket, Prefix=prefix + "/").get("Contents", [])
        return {item["Key"].removeprefix(prefix + "/"): client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                for item in listing}

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except Exception:  # noqa: BLE001
                self.process.kill()
                self.process.wait(10)
