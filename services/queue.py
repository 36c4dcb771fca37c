"""The task queue: Celery configured from core.settings, shared by the worker, the
web app and the scheduler, and the adapter the services queue jobs through.

This module imports neither torch nor the model code, so the web process can
create a Celery client from it and queue tasks by name.
"""

from __future__ import annotations

from celery import Celery
from celery.schedules import crontab
from kombu import Exchange, Queue

from core.settings import Settings
from services.filesystem_broker import TRANSPORT as FILESYSTEM_TRANSPORT

ASSESS_TASK = "boneage.assess"
AUDIT_TASK = "boneage.audit"
RETENTION_TASK = "boneage.delete-expired-images"  # daily, when BONEAGE_RETENTION_DAYS is set
RECOVER_TASK = "boneage.recover"  # every minute and at worker start: jobs that lost their message
RECOVER_EVERY_S = 60  # the default of BONEAGE_RECOVER_EVERY_S (Settings.recover_every_s)
TRAIN_TASK = "boneage.train"  # on its own queue: a long training never delays assessments

# Hard limit on one assessment; services.assessments.RUNNING_LEASE is longer, so a
# job is only taken over once the worker that ran it must be gone.
ASSESS_TIME_LIMIT_S = 300
REDIS_VISIBILITY_TIMEOUT_S = 24 * 3600

# A scheduled audit message not started within this many seconds is dropped (a worker
# that was down all night does not run yesterday's audit late); the run's unique key
# keeps a second delivery of the same window from making a second run.
AUDIT_EXPIRES_S = 6 * 3600
AUDIT_BEAT_ENTRY = "nightly-audit"


def celery_config(settings: Settings) -> dict:
    config: dict = {
        "broker_url": settings.broker_url,
        "broker_connection_retry_on_startup": True,
        # A job's state lives in the database only; Celery's results are not kept.
        "task_ignore_result": True,
        "result_backend": None,
        # Acknowledge after the task ran, one message at a time: a worker that dies
        # mid-inference leaves the job on the queue for another worker.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_annotations": {ASSESS_TASK: {"time_limit": ASSESS_TIME_LIMIT_S,
                                           "soft_time_limit": ASSESS_TIME_LIMIT_S - 30}},
        "task_serializer": "json",
        "accept_content": ["json"],
        "timezone": "UTC",
        "task_default_queue": settings.cpu_queue,
        # Each queue has its own direct exchange and routing key, so a message sent to
        # one queue is never delivered to the other.
        "task_queues": [_queue(settings.inference_queue), _queue(settings.cpu_queue),
                        _queue(settings.training_queue)],
        "task_default_exchange": settings.cpu_queue,
        "task_default_routing_key": settings.cpu_queue,
        "task_routes": {
            ASSESS_TASK: {"queue": settings.inference_queue},
            AUDIT_TASK: {"queue": settings.cpu_queue},
            RECOVER_TASK: {"queue": settings.cpu_queue},
            RETENTION_TASK: {"queue": settings.cpu_queue},
            TRAIN_TASK: {"queue": settings.training_queue},
        },
        # Publishing fails fast (about a second) when the broker is down, so the web
        # request can mark the job failed instead of hanging.
        "task_publish_retry_policy": {
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.3,
            "interval_max": 0.5,
        },
        "broker_connection_timeout": 3,
        "beat_schedule": {
            "recover-jobs": {
                "task": RECOVER_TASK,
                "schedule": settings.recover_every_s,
                # A sweep not started before the next one is due is dropped.
                "options": {"queue": settings.cpu_queue,
                            "expires": max(settings.recover_every_s - 5, settings.recover_every_s / 2)},
            },
            AUDIT_BEAT_ENTRY: {
                "task": AUDIT_TASK,
                "schedule": crontab(*settings.audit_cron.split()),
                "kwargs": {"window_days": settings.audit_window_days},
                "options": {"queue": settings.cpu_queue, "expires": AUDIT_EXPIRES_S},
            }
        },
        "beat_schedule_filename": str(settings.beat_schedule_path),
    }
    if settings.retention_days:
        config["beat_schedule"]["delete-expired-images"] = {
            "task": RETENTION_TASK,
            "schedule": crontab(hour=3, minute=30),
            "options": {"queue": settings.cpu_queue, "expires": 3600},
        }
    if settings.embedded:
        messages = str(settings.queue_messages_dir)
        config["broker_transport"] = FILESYSTEM_TRANSPORT
        config["broker_transport_options"] = {
            "data_folder_in": messages,
            "data_folder_out": messages,
            "processed_folder": str(settings.queue_dir / "processed"),
            "control_folder": str(settings.queue_dir / "control"),
            "store_processed": False,
            "polling_interval": 0.5,  # seconds between looks at the queue directory
        }
        # Broadcast (remote control) is of no use to one local worker and would
        # leave unread message files for workers that have gone.
        config["worker_enable_remote_control"] = False
    else:
        # Redis hands an unacknowledged message to another worker after this long. It
        # must outlast the longest task (a training job), or a running task would be
        # delivered twice; the database's guarded claims make a second delivery harmless.
        config["broker_transport_options"] = {"visibility_timeout": REDIS_VISIBILITY_TIMEOUT_S}
    return config


def _queue(name: str) -> Queue:
    return Queue(name, Exchange(name, type="direct"), routing_key=name)


def make_celery(settings: Settings, main: str = "boneage", include: list[str] | None = None) -> Celery:
    app = Celery(main, include=include or [])
    app.conf.update(celery_config(settings))
    return app


class CeleryTaskQueue:
    """services.assessments.TaskQueue over a Celery client: tasks are sent by name."""

    def __init__(self, celery: Celery, settings: Settings):
        self.celery = celery
        self.settings = settings

    def enqueue_assessment(self, assessment_id: str) -> None:
        self.celery.send_task(ASSESS_TASK, args=[assessment_id], queue=self.settings.inference_queue)

    def enqueue_training(self, job_id: str) -> None:
        self.celery.send_task(TRAIN_TASK, args=[job_id], queue=self.settings.training_queue)

