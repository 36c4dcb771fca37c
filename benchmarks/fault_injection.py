"""Fault injection: assessments through real processes while things break.

    .venv/bin/python benchmarks/fault_injection.py [--mode embedded|services|both] [--jobs N]

In each mode the suite starts its own web server (gunicorn `web:create_app()`), two
workers (`python -m boneage worker`, solo pool), beat (recovery sweep every
BONEAGE_RECOVER_EVERY_S) and, in services mode, a private Redis (redis-server on a
free port, no persistence) and a private PostgreSQL cluster (initdb/pg_ctl in a
temporary directory, run as the `postgres` user when run as root). It trains a tiny
demo model (1 epoch, 64 px, 48 synthetic images) unless --model is given, submits N
studies over the API from concurrent clients, and meanwhile:

- SIGKILLs a worker while it is running an assessment, several times (then restarts it);
- SIGKILLs the web server (its whole process group) during a burst of submissions and
  restarts it, and commits jobs the way the web does and "dies" before sending them
  (rows with no message anywhere);
- services mode: kills Redis (SIGKILL; every message in it is gone) and starts it again;
  stops PostgreSQL (fast shutdown: every connection dropped) and starts it again.

A client behaves like a polite API client: on a refused connection, a 5xx, a 503 or a 429
it waits (Retry-After when given) and submits again. When the code has access control
(`boneage users`), the clients send a submitter's API token. At the end every stored job is
counted: succeeded, failed (with reasons), lost (not terminal), run twice (more than one
result: not exactly one heatmap file <id>-<attempt>.png for a succeeded job, any for a
failed one, or more than one "won" line in the workers' logs), and, per fault, the time
from the end of the fault until every job that existed then was terminal.

Importable: run_mode(mode, jobs=..., root=..., model=..., images=...) -> Report (the
e2e test tests/e2e/test_fault_injection.py calls it).
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

TERMINAL = {"succeeded", "failed"}

# Short recovery settings, so that recovery happens within the run. The lease must stay
# above the longest assessment (here: the first one of a worker, which loads torch and
# the model on a busy two-core machine).
RECOVERY_ENV = {
    "BONEAGE_ASSESSMENT_LEASE_S": "20",
    "BONEAGE_RESEND_AFTER_S": "10",
    "BONEAGE_MAX_ATTEMPTS": "5",
    "BONEAGE_RECOVER_EVERY_S": "5",
}
FINAL_TIMEOUT_S = 240  # after the last fault: every job terminal by then, or it is lost


# ------------------------------------------------------------------ processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Proc:
    """A child process in its own process group, logging to a file (appended across restarts)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path, cwd: Path = REPO_ROOT):
        self.name, self.argv, self.env, self.log_path, self.cwd = name, argv, env, log_path, cwd
        self.process: subprocess.Popen | None = None
        self.log_offset = 0  # where the current run's output starts in the log

    def start(self) -> "Proc":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self, current_run_only: bool = False) -> str:
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as fh:
            if current_run_only:
                fh.seek(self.log_offset)
            return fh.read().decode(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=30)
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def wait_for(self, text: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log(current_run_only=True):
            if not self.alive():
                raise RuntimeError(f"{self.name} exited:\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: {text!r} not in its log after {timeout} s:\n{self.log()[-3000:]}")
            time.sleep(0.2)


def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if found:
        return found[-1].parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


def services_available() -> str | None:
    """None when redis-server and PostgreSQL's initdb/pg_ctl are installed, else what is missing."""
    missing = []
    if shutil.which("redis-server") is None:
        missing.append("redis-server")
    if postgres_bin() is None:
        missing.append("PostgreSQL server binaries (initdb, pg_ctl)")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        missing.append("runuser")
    return ", ".join(missing) or None


class PrivateRedis:
    def __init__(self, root: Path):
        self.port = free_port()
        self.dir = root / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = Proc("redis", ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly", "no", "--dir", str(self.dir)], dict(os.environ),
                         self.dir / "redis.log", cwd=self.dir)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc.start()
        self.proc.wait_for("Ready to accept connections", timeout=30)

    def crash(self) -> None:
        self.proc.kill(signal.SIGKILL)

    def stop(self) -> None:
        self.proc.stop()


class PrivatePostgres:
    """A throw-away cluster; its directory is owned by `postgres` when run as root."""

    def __init__(self):
        self.bin = postgres_bin()
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="boneage-fi-pg-"))
        os.chmod(self.dir, 0o755)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        self.logfile = self.dir / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/boneage"

    def _run(self, *argv: str) -> None:
        subprocess.run(_as_postgres([str(self.bin / argv[0]), *argv[1:]]), check=True, cwd=self.dir,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "boneage")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-o", options, "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


# ------------------------------------------------------------------ the model


def train_tiny_model(root: Path) -> tuple[Path, Path]:
    """(model.pt, folder of synthetic PNGs): the demo recipe, 1 epoch at 64 px on 48 images."""
    from training.synth import generate_dataset
    from training.train import train

    data = Path(generate_dataset(root / "synthetic", 48, size=128, seed=0, progress=False))
    model = Path(train(data, "demo", root / "tiny-model", seed=0, epochs=1, image_size=64, limit=48,
                       progress=False, threads=1))
    return model, data / "boneage-training-dataset"


# ------------------------------------------------------------------ the run


@dataclass
class Fault:
    name: str
    started: float
    ended: float = 0.0
    pending_at_end: set[str] = field(default_factory=set)
    all_terminal_at: float | None = None
    note: str = ""

    @property
    def recovery_s(self) -> float | None:
        return None if self.all_terminal_at is None else max(0.0, self.all_terminal_at - self.ended)


@dataclass
class Report:
    mode: str
    studies: int = 0
    jobs: int = 0
    accepted: int = 0  # 202 responses
    succeeded: int = 0
    failed: int = 0
    failed_reasons: dict[str, int] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)
    doubled: list[str] = field(default_factory=list)
    rerun: int = 0  # jobs with more than one attempt
    max_attempts_seen: int = 0
    client_retries: int = 0
    client_responses: dict[str, int] = field(default_factory=dict)
    studies_without_result: int = 0
    faults: list[Fault] = field(default_factory=list)
    kills_mid_task: int = 0
    result_lines: int = 0  # "assessment <id>: … months" lines in the workers' logs
    heatmap_files: int = 0
    worker_kills: int = 0
    all_terminal_after_last_fault_s: float | None = None
    wall_s: float = 0.0

    @property
    def worst_recovery_s(self) -> float | None:
        times = [f.recovery_s for f in self.faults]
        return None if not times or None in times else max(times)

    def ok(self) -> bool:
        return not self.lost and not self.doubled and self.worst_recovery_s is not None


class Monitor:
    """Reads every job's status from the database twice a second (ignoring outages)."""

    def __init__(self, database_url: str):
        import sqlalchemy as sa
        from sqlalchemy.pool import NullPool

        args = {"connect_timeout": 2} if database_url.startswith("postgresql") else {"timeout": 5}
        self.engine = sa.create_engine(database_url, poolclass=NullPool, connect_args=args)
        self.query = sa.text("SELECT id, status FROM assessments")
        self.statuses: dict[str, str] = {}
        self.faults: list[Fault] = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def read(self) -> dict[str, str] | None:
        try:
            with self.engine.connect() as connection:
                return {row.id: row.status for row in connection.execute(self.query)}
        except Exception:  # noqa: BLE001 - the database is down: try again later
            return None

    def _loop(self) -> None:
        while not self._stop.is_set():
            statuses = self.read()
            now = time.monotonic()
            if statuses is not None:
                with self.lock:
                    self.statuses = statuses
                    for fault in self.faults:
                        if fault.ended and fault.all_terminal_at is None and all(
                                statuses.get(i) in TERMINAL for i in fault.pending_at_end):
                            fault.all_terminal_at = now
            self._stop.wait(0.5)

    def end_fault(self, fault: Fault) -> None:
        """The fault is over: every job not terminal now must become terminal."""
        fault.ended = time.monotonic()
        statuses = None
        while statuses is None:
            statuses = self.read()
            if statuses is None:
                time.sleep(0.3)
        with self.lock:
            fault.pending_at_end = {i for i, s in statuses.items() if s not in TERMINAL}
            self.faults.append(fault)
        _log(f"fault over: {fault.name} {fault.note}; {len(fault.pending_at_end)} job(s) not terminal yet")

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join()
        self.engine.dispose()


class Clients:
    """Concurrent API clients. A study is submitted until a 202 comes back (or the
    deadline passes); refused connections, 5xx and 503 are retried after a pause."""

    def __init__(self, base_url: str, images: list[Path], concurrency: int = 6, headers: dict | None = None):
        self.base_url = base_url
        self.headers = headers or {}
        self.images = images
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=concurrency)
        self.futures: list[concurrent.futures.Future] = []
        self.lock = threading.Lock()
        self.responses: collections.Counter = collections.Counter()
        self.retries = 0
        self.accepted: dict[int, str] = {}  # study -> id of the 202 job
        self.next_study = 0

    def submit_studies(self, count: int) -> None:
        for _ in range(count):
            with self.lock:
                study = self.next_study
                self.next_study += 1
            self.futures.append(self.pool.submit(self._submit, study))

    def _submit(self, study: int) -> None:
        import requests

        image = self.images[study % len(self.images)]
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                with image.open("rb") as fh:
                    response = requests.post(f"{self.base_url}/api/v1/assessments",
                                             files={"image": (image.name, fh, "image/png")},
                                             data={"sex": "MF"[study % 2], "age_years": str(3 + study % 14),
                                                   "reference": f"FI-{study:04d}"},
                                             headers=self.headers, timeout=30)
                key = str(response.status_code)
            except requests.RequestException as exc:
                response, key = None, type(exc).__name__
            with self.lock:
                self.responses[key] += 1
            if response is not None and response.status_code == 202:
                with self.lock:
                    self.accepted[study] = response.json()["id"]
                return
            if response is not None and response.status_code < 500 and response.status_code != 429:
                raise RuntimeError(f"study {study}: {response.status_code} {response.text[:300]}")
            retry_after = 1.0
            if response is not None and response.headers.get("Retry-After", "").isdigit():
                retry_after = float(response.headers["Retry-After"])
            with self.lock:
                self.retries += 1
            time.sleep(min(retry_after, 5.0) * random.uniform(0.5, 1.0))
        raise RuntimeError(f"study {study}: not accepted within 300 s")

    def wait(self) -> None:
        for future in self.futures:
            future.result()
        self.pool.shutdown()


TASK_RECEIVED = re.compile(r"Task boneage\.assess\[([0-9a-f-]+)\] received")
TASK_DONE = re.compile(r"Task boneage\.assess\[([0-9a-f-]+)\] (?:succeeded|failed|raised|retry)")
WON = re.compile(r"assessment ([0-9a-f]{32}): [-0-9.]+ months")


def worker_busy(worker: Proc) -> bool:
    """True while the worker's current run has received an assessment it has not finished."""
    log = worker.log(current_run_only=True)
    received = TASK_RECEIVED.findall(log)
    return bool(received) and received[-1] not in set(TASK_DONE.findall(log))


CODE_PACKAGES = ("boneage", "core", "db", "migrations", "services", "training", "web", "worker")


def wait_until_healthy(base_url: str, web: Proc, timeout: float = 120) -> None:
    """Until the web server's /healthz answers (any status below 500); its log otherwise."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{base_url}/healthz", timeout=5).status_code < 500:
                return
        time.sleep(0.3)
    raise RuntimeError(f"the web server did not answer within {timeout} s:\n{web.log()[-3000:]}")


def snapshot_code(target: Path) -> Path:
    """Copy the packages the processes run into `target`, so that a process restarted in
    the middle of the run runs the code it started with, even while someone edits the
    working tree (processes run with cwd and PYTHONPATH at the copy)."""
    for package in CODE_PACKAGES:
        shutil.copytree(REPO_ROOT / package, target / package, ignore=shutil.ignore_patterns("__pycache__"))
    return target


class Service:
    def __init__(self, mode: str, root: Path, model: Path):
        self.mode, self.root, self.model = mode, root, model
        self.redis: PrivateRedis | None = None
        self.postgres: PrivatePostgres | None = None
        self.web: Proc | None = None
        self.workers: list[Proc] = []
        self.beat: Proc | None = None
        self.port = free_port()
        self.code = REPO_ROOT
        self.auth_headers: dict[str, str] = {}

    def start(self) -> None:
        from core.settings import Settings

        env = {"BONEAGE_VAR_DIR": str(self.root / "var"), **RECOVERY_ENV}
        if self.mode == "services":
            self.redis = PrivateRedis(self.root)
            self.redis.start()
            self.postgres = PrivatePostgres()
            self.postgres.init()
            env |= {"DATABASE_URL": self.postgres.url, "BROKER_URL": self.redis.url}
        self.settings = Settings.from_env(env)
        self.settings.ensure_dirs()
        self.code = code = snapshot_code(self.root / "code")
        self.env = {**os.environ, **self.settings.to_env(), "PYTHONUNBUFFERED": "1", "BONEAGE_DEVICE": "cpu",
                    "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(code)}
        subprocess.run([sys.executable, "-m", "boneage", "db", "upgrade"], cwd=code, check=True, env=self.env,
                       stdout=subprocess.DEVNULL)
        subprocess.run([sys.executable, "-m", "boneage", "register-model", str(self.model), "--activate"], cwd=code,
                       check=True, env=self.env, stdout=subprocess.DEVNULL)
        if (code / "boneage" / "users_cli.py").exists():  # access control: the clients use a submitter's token
            subprocess.run([sys.executable, "-m", "boneage", "users", "add", "fault-injection", "--role", "submitter"],
                           cwd=code, check=True, env=self.env, stdout=subprocess.DEVNULL)
            printed = subprocess.run([sys.executable, "-m", "boneage", "users", "token", "fault-injection"], cwd=code,
                                     check=True, env=self.env, capture_output=True, text=True).stdout
            self.auth_headers = {"Authorization": f"Bearer {printed.strip().splitlines()[-1].strip()}"}
        logs = self.root / "logs"
        self.web = Proc("web", [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}", "--workers", "2",
                                "--threads", "4", "--timeout", "60", "web:create_app()"], self.env, logs / "web.log",
                        cwd=code)
        self.workers = [Proc(f"worker{i}", [sys.executable, "-m", "boneage", "worker", "--hostname", f"fi{i}@%h"],
                             self.env, logs / f"worker{i}.log", cwd=code) for i in (1, 2)]
        self.beat = Proc("beat", [sys.executable, "-m", "boneage", "beat"], self.env, logs / "beat.log", cwd=code)
        for proc in (self.web, *self.workers, self.beat):
            proc.start()
        self.web.wait_for("Booting worker")
        for worker in self.workers:
            worker.wait_for(" ready.")
        self.wait_web()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_web(self, timeout: float = 120) -> None:
        wait_until_healthy(self.base_url, self.web, timeout)

    def stop(self) -> None:
        from db.session import dispose_engines

        for proc in (self.beat, *self.workers, self.web):
            if proc is not None:
                proc.stop()
        dispose_engines()
        if self.redis:
            self.redis.stop()
        if self.postgres:
            self.postgres.destroy()


# ------------------------------------------------------------------ the faults


def kill_worker_mid_task(service: Service, monitor: Monitor, report: Report, index: int) -> None:
    """SIGKILL a worker while it runs an assessment (worker `index` if it is the first
    seen busy, else the other one), then start it again."""
    started = time.monotonic()
    order = [service.workers[index], *(w for w in service.workers if w is not service.workers[index])]
    worker, busy = order[0], False
    while time.monotonic() < started + 20:
        busy_now = [w for w in order if worker_busy(w)]
        if busy_now:
            worker = busy_now[0]
            # A random point of the assessment. On a fast CPU one takes only tens of ms, so a
            # worker seen idle again by then is watched again rather than killed between tasks.
            time.sleep(random.uniform(0, 0.01))
            busy = worker_busy(worker)
            if busy:
                break
        time.sleep(0.02)
    fault = Fault(f"SIGKILL {worker.name}", started)
    worker.kill(signal.SIGKILL)
    report.worker_kills += 1
    report.kills_mid_task += busy
    fault.note = "mid-assessment" if busy else "(idle at the time)"
    time.sleep(1.0)
    worker.start()
    worker.wait_for(" ready.")
    monitor.end_fault(fault)


# What submit_assessment commits before it sends the message (sends=1, enqueued_at=now),
# for each image given; then the "web" dies: no message is ever sent.
COMMIT_WITHOUT_SEND = """
import sys
from pathlib import Path
from core.settings import Settings
from db.files import open_file_store
from db.models import Assessment, utcnow
from db.session import unit_of_work_factory
settings = Settings.from_env()
files, uow = open_file_store(settings), unit_of_work_factory(settings.database_url)
for n, image in enumerate(sys.argv[1:]):
    sha, path = files.put_upload(Path(image).read_bytes())
    with uow() as work:
        work.assessments.add(Assessment(image_sha256=sha, image_path=path, sex="MF"[n % 2], sends=1,
                                        enqueued_at=utcnow(), reference=f"FI-ORPHAN-{n}"))
        work.commit()
"""


def kill_web_during_burst(service: Service, clients: Clients, monitor: Monitor, burst: int, orphans: int) -> None:
    """SIGKILL gunicorn (master and workers) while a burst of submissions is in flight, and
    commit `orphans` jobs as the web does just before it would send them, then restart it."""
    fault = Fault("SIGKILL web during a burst + commit without send", time.monotonic())
    clients.submit_studies(burst)
    time.sleep(0.15)
    service.web.kill(signal.SIGKILL)
    # Run with the service's code (the copy), as the web would have run it.
    images = [str(clients.images[n % len(clients.images)]) for n in range(orphans)]
    subprocess.run([sys.executable, "-c", COMMIT_WITHOUT_SEND, *images], cwd=service.code, env=service.env,
                   check=True, timeout=120)
    time.sleep(1.0)
    service.web.start()
    service.wait_web()
    fault.note = f"({burst} submissions in flight, {orphans} jobs committed without a message)"
    monitor.end_fault(fault)


def restart_redis(service: Service, monitor: Monitor, down_s: float) -> None:
    fault = Fault("Redis killed and restarted (messages lost)", time.monotonic())
    service.redis.crash()
    time.sleep(down_s)
    service.redis.start()
    fault.note = f"(down {down_s:g} s)"
    monitor.end_fault(fault)


def restart_postgres(service: Service, monitor: Monitor, down_s: float) -> None:
    fault = Fault("PostgreSQL stopped and started", time.monotonic())
    service.postgres.stop("fast")
    time.sleep(down_s)
    service.postgres.start()
    fault.note = f"(down {down_s:g} s)"
    monitor.end_fault(fault)


# ------------------------------------------------------------------ one mode


def run_mode(mode: str, *, jobs: int = 60, root: Path, model: Path, images: Path,
             worker_kills: int = 4, orphans: int = 3, burst: int = 8) -> Report:
    """Run the suite in `mode` ("embedded" or "services") with `jobs` studies; returns the Report."""
    started = time.monotonic()
    root.mkdir(parents=True, exist_ok=True)
    report = Report(mode)
    service = Service(mode, root, model)
    monitor = None
    try:
        _log(f"{mode}: starting web, two workers and beat" + (" with a private Redis and PostgreSQL"
                                                               if mode == "services" else ""))
        service.start()
        monitor = Monitor(service.settings.database_url)
        monitor.start()
        clients = Clients(service.base_url, sorted(images.glob("*.png")), headers=service.auth_headers)

        # The studies arrive over about a minute; the faults happen while they do.
        steady = max(jobs - burst, 0)
        feeder_done = threading.Event()

        def feed():
            for _ in range(steady):
                clients.submit_studies(1)
                time.sleep(60.0 / max(steady, 1))
            feeder_done.set()

        threading.Thread(target=feed, daemon=True).start()
        plan: list[tuple[float, callable]] = []
        kill_times = [4 + i * (52 / max(worker_kills, 1)) for i in range(worker_kills)]
        for i, at in enumerate(kill_times):
            plan.append((at, lambda i=i: kill_worker_mid_task(service, monitor, report, i % 2)))
        plan.append((10, lambda: kill_web_during_burst(service, clients, monitor, burst, orphans)))
        if mode == "services":
            plan.append((22, lambda: restart_redis(service, monitor, 3.0)))
            plan.append((36, lambda: restart_postgres(service, monitor, 3.0)))
        t0 = time.monotonic()
        for at, action in sorted(plan, key=lambda p: p[0]):
            time.sleep(max(0.0, t0 + at - time.monotonic()))
            action()
        feeder_done.wait()
        clients.wait()
        last_fault_end = max(f.ended for f in monitor.faults)

        deadline = time.monotonic() + FINAL_TIMEOUT_S
        while time.monotonic() < deadline:
            statuses = monitor.read()
            if statuses is not None and all(s in TERMINAL for s in statuses.values()) and all(
                    f.all_terminal_at is not None for f in monitor.faults):
                report.all_terminal_after_last_fault_s = time.monotonic() - last_fault_end
                break
            time.sleep(0.5)
        _count(report, service, clients, monitor)
    finally:
        if monitor is not None:
            monitor.stop()
        service.stop()
    report.wall_s = time.monotonic() - started
    return report


def _count(report: Report, service: Service, clients: Clients, monitor: Monitor) -> None:
    import sqlalchemy as sa

    report.faults = list(monitor.faults)
    report.studies = clients.next_study
    report.accepted = len(clients.accepted)
    report.client_retries = clients.retries
    report.client_responses = dict(sorted(clients.responses.items()))
    # Plain SQL: the columns this count needs, whatever else the schema has.
    engine = sa.create_engine(service.settings.database_url)
    with engine.connect() as connection:
        rows = list(connection.execute(sa.text(
            "SELECT id, status, attempts, heatmap_path, error, reference FROM assessments")))
    engine.dispose()
    heatmaps = collections.defaultdict(list)
    for path in (service.settings.files_dir / "heatmaps").glob("*.png"):
        heatmaps[path.stem.rsplit("-", 1)[0]].append(f"heatmaps/{path.name}")
    won = collections.Counter()
    for worker in service.workers:
        won.update(WON.findall(worker.log()))
    # Shown in the table, so that a check that found nothing to count cannot pass unseen.
    report.result_lines = sum(won.values())
    report.heatmap_files = sum(len(files) for files in heatmaps.values())
    reasons = collections.Counter()
    references = collections.defaultdict(set)
    for row in rows:
        status = row.status
        report.jobs += 1
        report.max_attempts_seen = max(report.max_attempts_seen, row.attempts)
        report.rerun += row.attempts > 1
        if status == "succeeded":
            report.succeeded += 1
            references[row.reference].add("succeeded")
            if heatmaps[row.id] != [row.heatmap_path] or won[row.id] > 1:
                report.doubled.append(row.id)
        elif status == "failed":
            report.failed += 1
            reasons[re.sub(r"\s+", " ", row.error or "")[:110]] += 1
            if heatmaps[row.id] or won[row.id]:
                report.doubled.append(row.id)
        else:
            report.lost.append(row.id)
    report.failed_reasons = dict(reasons.most_common())
    report.studies_without_result = sum(
        1 for study in range(report.studies) if "succeeded" not in references.get(f"FI-{study:04d}", ()))


# ------------------------------------------------------------------ the table


def _seconds(value: float | None) -> str:
    return "not reached" if value is None else f"{value:.1f} s"


def table(reports: list[Report]) -> str:
    def row(label: str, values: list[str]) -> str:
        return f"| {label} | " + " | ".join(values) + " |"

    lines = [row("", [r.mode for r in reports]), row("---", ["---:" for _ in reports])]
    lines += [
        row("studies submitted (distinct)", [str(r.studies) for r in reports]),
        row("jobs stored (incl. client retries and jobs committed without a message)", [str(r.jobs) for r in reports]),
        row("succeeded", [str(r.succeeded) for r in reports]),
        row("failed", [str(r.failed) for r in reports]),
        row("**lost** (not terminal at the end)", [f"**{len(r.lost)}**" for r in reports]),
        row("**run twice** (two results / heatmaps)", [f"**{len(r.doubled)}**" for r in reports]),
        row("result lines in the workers' logs / heatmap files", [f"{r.result_lines} / {r.heatmap_files}"
                                                                  for r in reports]),
        row("jobs run more than once (attempts > 1)", [str(r.rerun) for r in reports]),
        row("highest attempts of a job", [str(r.max_attempts_seen) for r in reports]),
        row("studies with no successful job", [str(r.studies_without_result) for r in reports]),
        row("workers SIGKILLed (mid-assessment)", [f"{r.worker_kills} ({r.kills_mid_task})" for r in reports]),
        row("client retries", [str(r.client_retries) for r in reports]),
        row("client responses", [", ".join(f"{k}: {v}" for k, v in r.client_responses.items()) for r in reports]),
        row("**worst recovery** (end of a fault → all jobs of then terminal)",
            [f"**{_seconds(r.worst_recovery_s)}**" for r in reports]),
        row("last fault's end → every job terminal", [_seconds(r.all_terminal_after_last_fault_s) for r in reports]),
        row("wall time of the run", [f"{r.wall_s:.0f} s" for r in reports]),
    ]
    out = ["\n".join(lines), ""]
    for r in reports:
        out.append(f"{r.mode}: recovery per fault")
        for f in r.faults:
            out.append(f"  - {f.name} {f.note}: {len(f.pending_at_end)} job(s) pending at its end, "
                       f"all terminal after {_seconds(f.recovery_s)}")
        if r.failed_reasons:
            out.append(f"{r.mode}: failure reasons")
            out += [f"  - {n} × {reason}" for reason, n in r.failed_reasons.items()]
        if r.lost:
            out.append(f"{r.mode}: LOST {r.lost}")
        if r.doubled:
            out.append(f"{r.mode}: RUN TWICE {r.doubled}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["embedded", "services", "both"], default="both")
    parser.add_argument("--jobs", type=int, default=60, help="studies per mode (default 60)")
    parser.add_argument("--model", type=Path, help="a model.pt to serve (default: train a tiny one)")
    parser.add_argument("--images", type=Path, help="folder of PNGs to submit (default: the synthetic ones)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (logs, database)")
    args = parser.parse_args(argv)
    modes = ["embedded", "services"] if args.mode == "both" else [args.mode]
    if "services" in modes and (missing := services_available()):
        parser.error(f"services mode needs {missing}")
    root = Path(tempfile.mkdtemp(prefix="boneage-fault-injection-"))
    os.environ.setdefault("MPLCONFIGDIR", str(root / "mpl"))
    try:
        if args.model:
            model, images = args.model, args.images
        else:
            _log("training the tiny model (demo recipe, 1 epoch, 64 px, 48 synthetic images)")
            model, images = train_tiny_model(root)
            images = args.images or images
        if images is None:
            parser.error("--images is needed with --model")
        reports = [run_mode(mode, jobs=args.jobs, root=root / mode, model=model, images=images) for mode in modes]
        print()
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
              f"settings: " + ", ".join(f"{k}={v}" for k, v in RECOVERY_ENV.items()))
        print(table(reports))
        return 0 if all(r.ok() for r in reports) else 1
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
