"""One settings object for every process (web, worker, beat, CLI), read from the environment.

The defaults are the embedded single-machine mode: SQLite in ./var, Celery's
filesystem transport in ./var/queue and uploads/heatmaps in ./var/files. Set
DATABASE_URL and BROKER_URL to run the same code on PostgreSQL and Redis.

    DATABASE_URL            sqlite:///<var>/boneage.db
    BROKER_URL              filesystem://  (messages in <var>/queue)
    BONEAGE_VAR_DIR         ./var
    BONEAGE_FILES_DIR       <var>/files      (the file store when BONEAGE_FILES_URL is unset;
                                              with it, training jobs' local scratch)
    BONEAGE_FILES_URL       unset            (s3://bucket/prefix: the file store is an S3-compatible
                                              bucket, for machines that share no disk; db/files.py)
    BONEAGE_S3_ENDPOINT_URL unset            (the S3 server for BONEAGE_FILES_URL: MinIO's URL;
                                              unset: AWS)
    BONEAGE_MODEL_DIR       <var>/models
    BONEAGE_QUEUE_DIR       <var>/queue      (filesystem transport only)
    BONEAGE_MAX_UPLOAD_MB   20
    BONEAGE_INFERENCE_QUEUE inference        (GPU work)
    BONEAGE_CPU_QUEUE       cpu              (everything else: audits)
    BONEAGE_TRAINING_QUEUE  training         (training jobs: their own worker)
    BONEAGE_DATA_DIR        <var>/datasets   (datasets may be registered only under it)
    BONEAGE_TRAINING_HEARTBEAT_S 5           (a running training job's heartbeat period;
    BONEAGE_TRAINING_STALE_S 60               older than this: the job is shown crashed)
    BONEAGE_DEVICE          unset: CUDA when available, else CPU
    BONEAGE_DEMO_IMAGES     300              (`boneage up`'s demo model: synthetic images,
    BONEAGE_DEMO_IMAGE_SIZE 256               their size in pixels,
    BONEAGE_DEMO_TIME_BUDGET 300              training budget in CPU seconds)
    BONEAGE_ASSESSMENT_LEASE_S 360           (a running assessment older than this has lost
                                              its worker and is run again; above the task's
                                              300 s hard time limit)
    BONEAGE_RESEND_AFTER_S  300              (a queued assessment not started this long after
                                              its message was sent is sent again)
    BONEAGE_MAX_ATTEMPTS    3                (then the assessment fails with the reason)
    BONEAGE_RETENTION_DAYS  unset            (delete a finished study's images after N days;
                                              the numbers are kept)
    BONEAGE_RECOVER_EVERY_S 60               (beat's recovery sweep period, seconds)
    BONEAGE_BATCH_SIZE      16               (a worker runs up to this many queued assessments
                                              as one batch through the model)
    BONEAGE_BATCH_WAIT_S    0                (how long it waits for a batch to fill; 0: it takes
                                              what is queued now)
    BONEAGE_TORCH_THREADS   unset            (torch's intra-op threads in a process that loads a
                                              model; unset: torch's default, all cores)
    BONEAGE_PRECISION       auto             (auto|fp32|bf16|fp16: autocast of the model's forward
                                              passes; auto = fp32 on CPU, fp16 on CUDA)
    BONEAGE_CHANNELS_LAST   auto             (auto|0|1: channels-last layout; auto = on)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from core.errors import UserFacingError

FILESYSTEM_BROKER = "filesystem://"


@dataclass(frozen=True)
class Settings:
    var_dir: Path
    database_url: str
    broker_url: str
    files_dir: Path
    model_dir: Path
    queue_dir: Path
    files_url: str | None = None  # s3://bucket/prefix; None: the folder files_dir
    s3_endpoint_url: str | None = None
    max_upload_mb: float = 20.0
    inference_queue: str = "inference"
    cpu_queue: str = "cpu"
    training_queue: str = "training"
    data_dir: Path | None = None  # None: <var>/datasets
    training_heartbeat_s: float = 5.0
    training_stale_s: float = 60.0
    device: str | None = None
    # The demo model `boneage up` trains when no model is active (services.demo_model).
    demo_images: int = 300
    demo_image_size: int = 256
    demo_time_budget_s: float = 300.0
    # The scheduled audit (services.audits): when beat runs it (cron, UTC) and how many
    # whole days before that night it covers.
    audit_cron: str = "0 2 * * *"
    audit_window_days: int = 7
    assessment_lease_s: float = 360.0
    resend_after_s: float = 300.0
    max_attempts: int = 3
    retention_days: int | None = None  # None: images are kept
    recover_every_s: float = 60.0
    # Batching across jobs (services.assessments.run_assessment): up to batch_size queued
    # assessments run as one batch; the worker waits at most batch_wait_s for it to fill.
    batch_size: int = 16
    batch_wait_s: float = 0.0
    # Access control (web.auth): cookies only over HTTPS when true; Flask-Limiter limits
    # ("N per minute;M per day") on login attempts (per address) and submissions (per user).
    secure_cookies: bool = False
    login_rate_limit: str = "10 per minute"
    submit_rate_limit: str = "120 per minute"
    # The model's forward passes (training/precision.py, docs/benchmarks.md): torch threads
    # per model-loading process (None: torch's default), autocast dtype and memory layout.
    torch_threads: int | None = None
    precision: str = "auto"
    channels_last: str = "auto"
    # Training's autocast (training/precision.py: Precision.for_training): "auto" is mixed precision
    # on CUDA and float32 on a CPU; "bf16" asks for bfloat16 on a CPU too (faster on an AVX-512 EPYC,
    # slower on an AVX-512 Xeon without AMX: docs/benchmarks.md).
    train_precision: str = "auto"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        var_dir = Path(env.get("BONEAGE_VAR_DIR") or "var").expanduser().resolve()
        return cls(
            var_dir=var_dir,
            database_url=env.get("DATABASE_URL") or f"sqlite:///{var_dir / 'boneage.db'}",
            broker_url=env.get("BROKER_URL") or FILESYSTEM_BROKER,
            files_dir=_dir(env, "BONEAGE_FILES_DIR", var_dir / "files"),
            model_dir=_dir(env, "BONEAGE_MODEL_DIR", var_dir / "models"),
            queue_dir=_dir(env, "BONEAGE_QUEUE_DIR", var_dir / "queue"),
            files_url=_files_url(env, "BONEAGE_FILES_URL"),
            s3_endpoint_url=env.get("BONEAGE_S3_ENDPOINT_URL") or None,
            max_upload_mb=_positive_float(env, "BONEAGE_MAX_UPLOAD_MB", 20.0),
            inference_queue=_queue_name(env, "BONEAGE_INFERENCE_QUEUE", "inference"),
            cpu_queue=_queue_name(env, "BONEAGE_CPU_QUEUE", "cpu"),
            training_queue=_queue_name(env, "BONEAGE_TRAINING_QUEUE", "training"),
            data_dir=_dir(env, "BONEAGE_DATA_DIR", var_dir / "datasets"),
            training_heartbeat_s=_positive_float(env, "BONEAGE_TRAINING_HEARTBEAT_S", 5.0),
            training_stale_s=_positive_float(env, "BONEAGE_TRAINING_STALE_S", 60.0),
            device=env.get("BONEAGE_DEVICE") or None,
            demo_images=_positive_int(env, "BONEAGE_DEMO_IMAGES", 300),
            demo_image_size=_positive_int(env, "BONEAGE_DEMO_IMAGE_SIZE", 256),
            demo_time_budget_s=_positive_float(env, "BONEAGE_DEMO_TIME_BUDGET", 300.0),
            audit_cron=_cron(env, "BONEAGE_AUDIT_CRON", "0 2 * * *"),
            audit_window_days=_positive_int(env, "BONEAGE_AUDIT_WINDOW_DAYS", 7),
            assessment_lease_s=_positive_float(env, "BONEAGE_ASSESSMENT_LEASE_S", 360.0),
            resend_after_s=_positive_float(env, "BONEAGE_RESEND_AFTER_S", 300.0),
            max_attempts=_positive_int(env, "BONEAGE_MAX_ATTEMPTS", 3),
            retention_days=_positive_int(env, "BONEAGE_RETENTION_DAYS", 0) or None,
            recover_every_s=_positive_float(env, "BONEAGE_RECOVER_EVERY_S", 60.0),
            batch_size=_positive_int(env, "BONEAGE_BATCH_SIZE", 16),
            batch_wait_s=_non_negative_float(env, "BONEAGE_BATCH_WAIT_S", 0.0),
            secure_cookies=env.get("BONEAGE_SECURE_COOKIES", "").strip().lower() in ("1", "true", "yes"),
            login_rate_limit=env.get("BONEAGE_LOGIN_RATE_LIMIT") or "10 per minute",
            submit_rate_limit=env.get("BONEAGE_SUBMIT_RATE_LIMIT") or "120 per minute",
            torch_threads=_positive_int(env, "BONEAGE_TORCH_THREADS", 0) or None,
            precision=_choice(env, "BONEAGE_PRECISION", ("auto", "fp32", "bf16", "fp16")),
            channels_last=_choice(env, "BONEAGE_CHANNELS_LAST", ("auto", "0", "1")),
            train_precision=_choice(env, "BONEAGE_TRAIN_PRECISION", ("auto", "fp32", "bf16")),
        )

    @property
    def embedded(self) -> bool:
        """True when the broker is the filesystem transport (single machine, no Redis)."""
        return self.broker_url.startswith(FILESYSTEM_BROKER)

    @property
    def datasets_dir(self) -> Path:
        """The data root: datasets may be registered only in folders under it."""
        return self.data_dir or self.var_dir / "datasets"

    @property
    def training_runs_dir(self) -> Path:
        """Each training job's checkpoints (last.pt, model.pt) and report."""
        return self.files_dir / "training"

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def queue_messages_dir(self) -> Path:
        return self.queue_dir / "messages"

    @property
    def beat_schedule_path(self) -> Path:
        return self.var_dir / "celerybeat-schedule"

    def to_env(self) -> dict[str, str]:
        """Environment variables that make a child process read these same settings."""
        env = {
            "BONEAGE_VAR_DIR": str(self.var_dir),
            "DATABASE_URL": self.database_url,
            "BROKER_URL": self.broker_url,
            "BONEAGE_FILES_DIR": str(self.files_dir),
            "BONEAGE_MODEL_DIR": str(self.model_dir),
            "BONEAGE_QUEUE_DIR": str(self.queue_dir),
            "BONEAGE_FILES_URL": self.files_url or "",
            "BONEAGE_S3_ENDPOINT_URL": self.s3_endpoint_url or "",
            "BONEAGE_MAX_UPLOAD_MB": repr(self.max_upload_mb),
            "BONEAGE_INFERENCE_QUEUE": self.inference_queue,
            "BONEAGE_CPU_QUEUE": self.cpu_queue,
            "BONEAGE_TRAINING_QUEUE": self.training_queue,
            "BONEAGE_DATA_DIR": str(self.datasets_dir),
            "BONEAGE_TRAINING_HEARTBEAT_S": repr(self.training_heartbeat_s),
            "BONEAGE_TRAINING_STALE_S": repr(self.training_stale_s),
            "BONEAGE_DEMO_IMAGES": str(self.demo_images),
            "BONEAGE_DEMO_IMAGE_SIZE": str(self.demo_image_size),
            "BONEAGE_DEMO_TIME_BUDGET": repr(self.demo_time_budget_s),
            "BONEAGE_AUDIT_CRON": self.audit_cron,
            "BONEAGE_AUDIT_WINDOW_DAYS": str(self.audit_window_days),
            "BONEAGE_ASSESSMENT_LEASE_S": repr(self.assessment_lease_s),
            "BONEAGE_RESEND_AFTER_S": repr(self.resend_after_s),
            "BONEAGE_MAX_ATTEMPTS": str(self.max_attempts),
            "BONEAGE_RETENTION_DAYS": str(self.retention_days or ""),
            "BONEAGE_RECOVER_EVERY_S": repr(self.recover_every_s),
            "BONEAGE_BATCH_SIZE": str(self.batch_size),
            "BONEAGE_BATCH_WAIT_S": repr(self.batch_wait_s),
            "BONEAGE_SECURE_COOKIES": "1" if self.secure_cookies else "0",
            "BONEAGE_LOGIN_RATE_LIMIT": self.login_rate_limit,
            "BONEAGE_SUBMIT_RATE_LIMIT": self.submit_rate_limit,
            "BONEAGE_TORCH_THREADS": str(self.torch_threads or ""),
            "BONEAGE_PRECISION": self.precision,
            "BONEAGE_CHANNELS_LAST": self.channels_last,
            "BONEAGE_TRAIN_PRECISION": self.train_precision,
        }
        if self.device:
            env["BONEAGE_DEVICE"] = self.device
        return env

    def ensure_dirs(self) -> None:
        """Create the local directories this configuration writes to."""
        dirs = [self.var_dir, self.files_dir, self.model_dir, self.datasets_dir]
        if self.embedded:
            dirs += [self.queue_messages_dir, self.queue_dir / "processed", self.queue_dir / "control"]
        if self.database_url.startswith("sqlite:///"):
            dirs.append(Path(self.database_url.removeprefix("sqlite:///")).parent)
        for path in dirs:
            path.mkdir(parents=True, exist_ok=True)


def _dir(env: Mapping[str, str], name: str, default: Path) -> Path:
    value = env.get(name)
    return Path(value).expanduser().resolve() if value else default


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    return _positive(env, name, default, float, "a positive number")


def _non_negative_float(env: Mapping[str, str], name: str, default: float) -> float:
    value = env.get(name)
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number >= 0:  # also refuses NaN
        raise UserFacingError(f"{name} must be zero or a positive number, got {value!r}")
    return number


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    return _positive(env, name, default, int, "a positive whole number")


def _positive(env: Mapping[str, str], name: str, default, parse, what: str):
    value = env.get(name)
    if not value:
        return default
    try:
        number = parse(value)
    except ValueError:
        number = -1
    if number <= 0:
        raise UserFacingError(f"{name} must be {what}, got {value!r}")
    return number


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    value = (env.get(name) or choices[0]).strip().lower()
    if value not in choices:
        raise UserFacingError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _cron(env: Mapping[str, str], name: str, default: str) -> str:
    value = (env.get(name) or default).strip()
    if len(value.split()) != 5:
        raise UserFacingError(f"{name} must be a cron expression of five fields (minute hour day month weekday), got {value!r}")
    return value


def _files_url(env: Mapping[str, str], name: str) -> str | None:
    value = (env.get(name) or "").strip()
    if not value:
        return None
    bucket = value.removeprefix("s3://").split("/", 1)[0]
    if not value.startswith("s3://") or not bucket:
        raise UserFacingError(f"{name} must be an S3 URL, s3://bucket or s3://bucket/prefix, got {value!r} "
                              "(unset it to keep files in the folder BONEAGE_FILES_DIR)")
    return value


def _queue_name(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name) or default
    # The filesystem transport keys message files on the queue name, so keep it plain.
    if not value.replace("-", "").replace("_", "").isalnum():
        raise UserFacingError(f"{name} may contain only letters, digits, '-' and '_', got {value!r}")
    return value
