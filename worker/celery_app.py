"""The worker's Celery app. Start workers and the scheduler with the console script,
which builds their command lines in one place (worker_argv, beat_argv):

    boneage worker [--queues inference,cpu] [--pool solo]    # training: --queues training    # = celery -A worker.celery_app worker ...
    boneage beat

Configured from the same settings as the web app (services.queue). Importing this
module does not import torch; the model is loaded lazily, inside the worker
process, by the first task that needs it.
"""

from __future__ import annotations

import os

# torch's OpenMP threads sleep as soon as a parallel region ends instead of spinning for
# it (read when torch is first imported, later, by the first task that loads the model).
# Spinning burns the CPU the web process and the other workers need on the same cores:
# measured on 2 cores under load, batch 16 with 2 threads, 145 CPU ms per study spinning
# and 77 passive, at the same throughput or better. BONEAGE_OMP_WAIT_POLICY=ACTIVE (or
# OMP_WAIT_POLICY itself) overrides it, for a host given to one worker alone.
os.environ.setdefault("OMP_WAIT_POLICY", os.environ.get("BONEAGE_OMP_WAIT_POLICY", "PASSIVE"))

from celery.signals import worker_process_init, worker_ready  # noqa: E402

from core.settings import Settings
from db.session import dispose_engines
from services.queue import make_celery

settings = Settings.from_env()
settings.ensure_dirs()
celery = make_celery(settings, main="boneage", include=["worker.tasks"])
app = celery


@worker_process_init.connect
def _fresh_connections_after_fork(**_kwargs) -> None:
    # A forked pool process must not reuse the parent's pooled database connections.
    dispose_engines()


@worker_ready.connect
def _recover_at_start(sender=None, **_kwargs) -> None:
    # Jobs whose worker died before this one started are sent again now, not at the
    # next beat tick (and in `boneage up --no-beat`, at all).
    from services.queue import RECOVER_TASK

    celery.send_task(RECOVER_TASK, queue=settings.cpu_queue)


def worker_argv(
    settings: Settings,
    *,
    queues: str | None = None,
    hostname: str = "boneage@%h",
    pool: str = "solo",
    concurrency: int | None = None,
    loglevel: str = "INFO",
) -> list[str]:
    argv = [
        "worker",
        "-Q", queues or f"{settings.inference_queue},{settings.cpu_queue}",
        "--pool", pool,
        "--without-gossip", "--without-mingle",
        "--loglevel", loglevel,
        "--hostname", hostname,
    ]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    return argv


def beat_argv(settings: Settings, *, loglevel: str = "INFO") -> list[str]:
    return ["beat", "--loglevel", loglevel, "--schedule", str(settings.beat_schedule_path)]
