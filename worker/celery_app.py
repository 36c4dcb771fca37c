"""The worker's Celery app: `celery -A worker.celery_app worker -Q inference --pool solo`.

Configured from the same settings as the web app (worker.config). Importing this
module does not import torch; the model is loaded lazily, inside the worker
process, by the first task that needs it.
"""

from __future__ import annotations

from celery.signals import worker_process_init

from boneage.settings import Settings
from db.session import dispose_engines
from worker.config import make_celery

settings = Settings.from_env()
settings.ensure_dirs()
celery = make_celery(settings, main="boneage", include=["worker.tasks"])
app = celery


@worker_process_init.connect
def _fresh_connections_after_fork(**_kwargs) -> None:
    # A forked pool process must not reuse the parent's pooled database connections.
    dispose_engines()
