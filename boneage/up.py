"""`boneage up`: the whole service on one machine.

Migrates the database, trains and registers the synthetic demo model when no
model is active, then starts the web server (gunicorn), one worker (solo pool, all
queues) and the scheduler (celery beat) as child processes, and stops them
together on Ctrl-C or SIGTERM. A child that dies is restarted, with a back-off that
grows while it keeps dying; the others go on serving.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from core.settings import Settings

STOP_TIMEOUT_S = 20
RESTART_BACKOFF_S = (1, 2, 5, 10, 30)
STABLE_AFTER_S = 60  # a child that ran this long before dying restarts at the shortest back-off
START_TIMEOUT_S = 120


@dataclass
class Child:
    name: str
    command: list[str]
    log_path: Path
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    failures: int = 0  # deaths in a row, each within STABLE_AFTER_S of its start
    restart_at: float | None = None


def child_commands(settings: Settings, host: str, port: int, beat: bool) -> list[tuple[str, list[str]]]:
    boneage = [sys.executable, "-m", "boneage"]
    commands = [
        (
            "web",
            [sys.executable, "-m", "gunicorn", "--bind", f"{host}:{port}", "--workers", "2", "--threads", "4",
             "--access-logfile", "-", "web:create_app()"],
        ),
        ("worker", [*boneage, "worker"]),
        # Training on its own queue and process, so a long job never delays assessments.
        ("training-worker", [*boneage, "worker", "--queues", settings.training_queue, "--hostname", "training@%h"]),
    ]
    if beat:
        commands.append(("beat", [*boneage, "beat"]))
    return commands


def run(settings: Settings, *, host: str = "127.0.0.1", port: int = 8000, beat: bool = True) -> int:
    import migrations
    from db.session import unit_of_work_factory
    from services.demo_model import ensure_demo_model

    settings.ensure_dirs()
    migrations.upgrade(settings.database_url)
    uow = unit_of_work_factory(settings.database_url)
    admin_password = _ensure_admin(uow)
    demo_data = settings.datasets_dir / "demo"
    ensure_demo_model(uow=uow, var_dir=settings.var_dir, data_dir=demo_data,
                      model_dir=settings.model_dir, images=settings.demo_images,
                      image_size=settings.demo_image_size, time_budget_s=settings.demo_time_budget_s)
    _register_demo_dataset(uow, settings, demo_data)

    log_dir = settings.var_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    children = [Child(name, command, log_dir / f"{name}.log") for name, command in child_commands(settings, host, port, beat)]
    env = {**os.environ, **settings.to_env(), "PYTHONUNBUFFERED": "1"}

    stopping = False

    def request_stop(signum, _frame):
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for child in children:
            child.process = _start(child, env)
            print(f"started {child.name} (pid {child.process.pid}); log: {child.log_path}")
        url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/"
        if not _wait_until_serving(url, children, lambda: stopping):
            return _stop(children, exit_code=1)
        print(f"\nboneage is running at {url}  (Ctrl-C stops it)\n", flush=True)
        if admin_password:
            print(f"log in as admin with the one-time password printed above: {admin_password}\n", flush=True)
        while not stopping:
            for child in children:
                _keep_alive(child, env)
            time.sleep(0.5)
        print("stopping…", flush=True)
        return _stop(children, exit_code=0)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _keep_alive(child: Child, env: dict[str, str]) -> None:
    """Restart a child that died, after a back-off that grows while it keeps dying."""
    now = time.monotonic()
    if child.restart_at is None and child.process.poll() is not None:
        _report_death(child)
        stable = now - child.started_at >= STABLE_AFTER_S
        child.failures = 0 if stable else child.failures + 1
        delay = RESTART_BACKOFF_S[min(child.failures, len(RESTART_BACKOFF_S) - 1)]
        print(f"{child.name} stopped (exit status {child.process.returncode}); restarting it in {delay:g} s",
              flush=True)
        child.restart_at = now + delay
    elif child.restart_at is not None and now >= child.restart_at:
        child.process = _start(child, env)
        child.restart_at = None
        print(f"restarted {child.name} (pid {child.process.pid})", flush=True)


def _ensure_admin(uow) -> str | None:
    """First start (no users yet): create the administrator and print its password once."""
    from services.users import ensure_admin

    password = ensure_admin(uow=uow)
    if password:
        print(f"created user admin (role admin); one-time password: {password}", flush=True)
        print("  it is shown only now: log in with it and create the other users "
              "(`boneage users add NAME --role submitter|reader|admin`)", flush=True)
    return password


def _register_demo_dataset(uow, settings: Settings, folder: Path) -> None:
    """The demo data, registered as dataset "demo" so it can be trained on from the browser."""
    from core.errors import UserFacingError
    from services.datasets import register_dataset

    if not (folder / "boneage-training-dataset.csv").is_file():
        return
    try:
        dataset = register_dataset(folder, uow=uow, data_root=settings.datasets_dir, name="demo", by="boneage up")
    except UserFacingError as exc:
        print(f"the demo data set was not registered: {exc}")
        return
    if dataset.created:
        print(f"registered dataset {dataset.name} ({dataset.n_records} synthetic studies) for training jobs")
        print(f"  the demo model was trained on these synthetic films ({folder / 'boneage-training-dataset'}); "
              "it refuses real radiographs as unlike its training images: register a model trained on real "
              "studies (`boneage train`, `boneage register-model`) to assess them")


def _start(child: Child, env: dict[str, str]) -> subprocess.Popen:
    child.started_at = time.monotonic()
    log = child.log_path.open("ab")
    try:
        return subprocess.Popen(
            child.command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=_child_setup,
        )
    finally:
        log.close()


def _child_setup() -> None:
    # Own process group: Ctrl-C reaches only the supervisor, which stops the children
    # in order. On Linux, also ask the kernel to stop the child if the supervisor dies.
    os.setsid()
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def _wait_until_serving(url: str, children: list[Child], stopped) -> bool:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and not stopped():
        for child in children:
            if child.process.poll() is not None:
                _report_death(child)
                return False
        try:
            with urllib.request.urlopen(url + "healthz", timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    if not stopped():
        print(f"the web server did not answer at {url} within {START_TIMEOUT_S} s; see {children[0].log_path}")
    return False


def _report_death(child: Child) -> None:
    print(f"{child.name} exited with status {child.process.returncode}; last lines of {child.log_path}:", file=sys.stderr)
    lines = child.log_path.read_text(errors="replace").splitlines()[-20:]
    for line in lines:
        print(f"  {line}", file=sys.stderr)


def _stop(children: list[Child], exit_code: int) -> int:
    running = [c for c in children if c.process is not None and c.process.poll() is None]
    for child in running:
        _signal_group(child.process, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for child in running:
        try:
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"{child.name} did not stop in {STOP_TIMEOUT_S} s; killing it", file=sys.stderr)
            _signal_group(child.process, signal.SIGKILL)
            child.process.wait()
    names = [child.name for child in children]
    print("stopped " + (", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]), flush=True)
    return exit_code


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass
