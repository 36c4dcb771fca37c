"""Training job use cases: queue, run (in the training worker), cancel, resume, and
detect crashed jobs.

The database is the only record of a job. The worker claims a job as a new attempt
and, while it trains, a heartbeat thread writes `heartbeat_at` every few seconds and
reads the status back: a job whose status became `cancelling` stops at the next batch
boundary (the training callback raises TrainingStopped), ends `cancelled`, registers
nothing and keeps its last.pt. A job whose heartbeat is older than the stale limit
is marked `crashed` (mark_crashed, called by every reader of the job list) and may be
resumed: it is queued again and continues from its last.pt.

On success the job evaluates its model on the dataset's test split (the report's
Markdown, JSON and figures stay in the job's folder), compares it with the model that
serves on the same held-out studies, and registers it, not active.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Protocol

from core.errors import Conflict, NotFound, UserFacingError
from core.training_status import TrainingStatus
from db.models import TrainingEpoch, TrainingJob

log = logging.getLogger(__name__)

INITS = ("random", "imagenet")
LIMITS = {"epochs": (1, 500), "image_size": (32, 1024), "time_budget_s": (1.0, 7 * 24 * 3600.0), "seed": (0, 2**31 - 1)}
MISSING = "missing"


class TrainingQueue(Protocol):
    def enqueue_training(self, job_id: str) -> None: ...


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class TrainingRequest:
    """What a person asks for; validated by queue_training_job."""

    dataset: str
    recipe: str
    epochs: int | None = None
    image_size: int | None = None
    time_budget_s: float | None = None
    init: str | None = None  # "random" | "imagenet" | a registered model's name (fine-tune it)
    seed: int | None = None
    queued_by: str | None = None


class InvalidTrainingRequest(UserFacingError):
    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


def _number(errors: dict, name: str, value, kind):
    if value is None or value == "":
        return None
    try:
        number = kind(value)
    except (TypeError, ValueError):
        errors[name] = f"{value!r} is not a number"
        return None
    if isinstance(number, float) and not math.isfinite(number):
        errors[name] = "must be a finite number"
        return None
    low, high = LIMITS[name]
    if not low <= number <= high:
        errors[name] = f"must be between {low:g} and {high:g}, got {number:g}"
        return None
    return number


def queue_training_job(request: TrainingRequest, *, uow, queue: TrainingQueue, data_root: Path) -> str:
    """Validate, commit the job, queue it; returns its id. Nothing is stored or queued
    when the request is invalid (InvalidTrainingRequest / NotFound)."""
    from training.recipes import RECIPES  # torch-free; the recipe names

    errors: dict[str, str] = {}
    if request.recipe not in RECIPES:
        errors["recipe"] = f"unknown recipe {request.recipe!r}; choose one of {', '.join(RECIPES)}"
    overrides = {
        "epochs": _number(errors, "epochs", request.epochs, int),
        "image_size": _number(errors, "image_size", request.image_size, int),
        "time_budget_s": _number(errors, "time_budget_s", request.time_budget_s, float),
        "seed": _number(errors, "seed", request.seed, int),
    }
    init = (request.init or "").strip() or None
    with uow() as work:
        dataset = work.datasets.get_by_name((request.dataset or "").strip())
        if dataset is None:
            known = ", ".join(d.name for d in work.datasets.all()) or "none; register one first"
            errors["dataset"] = f"no dataset named {request.dataset!r} is registered (registered: {known})"
        else:
            folder = (Path(data_root).resolve() / dataset.path).resolve()
            if Path(data_root).resolve() not in folder.parents or not folder.is_dir():
                errors["dataset"] = f"the folder of dataset {dataset.name!r} ({dataset.path}) is gone from the data root"
        init_model = None
        if init is not None and init not in INITS:
            init_model = work.models.get_by_name(init)
            if init_model is None:
                errors["init"] = (f"{init!r} is neither {' nor '.join(INITS)} nor a registered model "
                                  f"(registered: {', '.join(m.name for m in work.models.all()) or 'none'})")
            elif not Path(init_model.checkpoint_path).is_file():
                errors["init"] = f"the checkpoint of model {init!r} is missing ({init_model.checkpoint_path})"
        if errors:
            raise InvalidTrainingRequest(errors)
        overrides["init"] = init
        job = TrainingJob(dataset_id=dataset.id, recipe=request.recipe,
                          overrides={k: v for k, v in overrides.items() if v is not None},
                          init_model_id=init_model.id if init_model else None,
                          queued_by=request.queued_by, out_dir="")
        job.out_dir = f"training/{job.id}"
        work.training_jobs.add(job)
        work.commit()
        job_id = job.id
    _enqueue(job_id, uow=uow, queue=queue)
    return job_id


def _enqueue(job_id: str, *, uow, queue: TrainingQueue) -> None:
    try:
        queue.enqueue_training(job_id)
    except Exception as exc:  # noqa: BLE001 - any broker failure: record it on the job
        log.exception("could not queue training job %s", job_id)
        with uow() as work:
            work.training_jobs.transition(job_id, TrainingStatus.FAILED, finished_at=utcnow(),
                                          error=f"The job could not be queued: the task queue is unavailable "
                                                f"({type(exc).__name__}). Queue it again later.")
            work.commit()


def cancel_training_job(job_id: str, *, uow, clock: Callable[[], datetime] = utcnow) -> str:
    """Queued: cancelled at once (the worker drops its message). Running: cancelling,
    until the worker stops at the next batch. Anything else: Conflict."""
    with uow() as work:
        job = _get(work, job_id)
        if job.status is TrainingStatus.QUEUED and work.training_jobs.transition(
                job_id, TrainingStatus.CANCELLED, finished_at=clock(), error=None):
            work.commit()
            return str(TrainingStatus.CANCELLED)
        if job.status is TrainingStatus.RUNNING and work.training_jobs.transition(
                job_id, TrainingStatus.CANCELLING):
            work.commit()
            return str(TrainingStatus.CANCELLING)
        if job.status is TrainingStatus.CANCELLING:
            return str(job.status)
        current = work.training_jobs.get(job_id).status
        raise Conflict(f"training job {job_id} is {current}: only a queued or running job can be cancelled")


def resume_training_job(job_id: str, *, uow, queue: TrainingQueue) -> str:
    """A crashed or cancelled job is queued again; it continues from its last.pt."""
    with uow() as work:
        job = _get(work, job_id)
        if not work.training_jobs.transition(job_id, TrainingStatus.QUEUED, finished_at=None, error=None):
            raise Conflict(f"training job {job_id} is {job.status}: only a crashed or cancelled job can be resumed")
        work.commit()
    _enqueue(job_id, uow=uow, queue=queue)
    return str(TrainingStatus.QUEUED)


def mark_crashed(*, uow, stale_s: float, clock: Callable[[], datetime] = utcnow) -> list[str]:
    """Jobs whose heartbeat is older than `stale_s` seconds are marked crashed."""
    now = clock()
    with uow() as work:
        crashed = work.training_jobs.mark_stale_crashed(now=now, stale_before=now - timedelta(seconds=stale_s))
        work.commit()
    for job_id in crashed:
        log.warning("training job %s: no heartbeat for %.0f s; marked crashed", job_id, stale_s)
    return crashed


def _get(work, job_id: str) -> TrainingJob:
    job = work.training_jobs.get(job_id) if len(job_id) <= 32 else None
    if job is None:
        raise NotFound(f"there is no training job with id {job_id[:40]!r}")
    return job


# ------------------------------------------------------------------ the worker side


class Heartbeat:
    """A thread that writes the job's heartbeat every `period` seconds and reads its
    status: `cancel` is set when it became cancelling, `lost` when the job is no longer
    this attempt's (marked crashed, or taken over)."""

    def __init__(self, job_id: str, attempt: int, *, uow, period: float, clock):
        self.job_id, self.attempt, self.uow, self.period, self.clock = job_id, attempt, uow, period, clock
        self.cancel = threading.Event()
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id[:8]}", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=max(5.0, self.period * 2))

    def beat(self) -> None:
        try:
            with self.uow() as work:
                status = work.training_jobs.heartbeat(self.job_id, self.attempt, self.clock())
                work.commit()
        except Exception:  # noqa: BLE001 - a database hiccup: try again next period
            log.exception("training job %s: heartbeat failed", self.job_id)
            return
        if status is None:
            self.lost.set()
        elif status is TrainingStatus.CANCELLING:
            self.cancel.set()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.beat()


@dataclass
class JobCallback:
    """training.train.TrainingCallback for one attempt: epoch rows and the epoch counter
    as they happen; stops at a batch boundary when cancelled or lost."""

    job_id: str
    attempt: int
    uow: Callable
    heartbeat: Heartbeat
    clock: Callable[[], datetime]
    stopped_error: type = Exception
    epochs_seen: list = field(default_factory=list)

    def on_start(self, *, epoch: int, total_epochs: int, history: list[dict]) -> None:
        with self.uow() as work:
            work.training_jobs.heartbeat(self.job_id, self.attempt, self.clock(), epoch=epoch,
                                         total_epochs=total_epochs)
            work.commit()

    def on_batch(self, *, epoch: int, batch: int, batches: int) -> None:
        if self.heartbeat.cancel.is_set() or self.heartbeat.lost.is_set():
            raise self.stopped_error(f"stopped in epoch {epoch}, before batch {batch + 1} of {batches}")

    def on_epoch(self, entry: dict, *, total_epochs: int) -> None:
        self.epochs_seen.append(entry["epoch"])
        with self.uow() as work:
            if work.training_jobs.heartbeat(self.job_id, self.attempt, self.clock(), epoch=entry["epoch"],
                                            total_epochs=total_epochs) is None:
                self.heartbeat.lost.set()
                return
            work.training_jobs.record_epoch(TrainingEpoch(
                job_id=self.job_id, epoch=entry["epoch"], train_loss=_finite(entry.get("train_loss")),
                val_mae=_finite(entry.get("val_mae")), lr=_finite(entry.get("lr")),
                seconds=_finite(entry.get("seconds")), images_per_second=_finite(entry.get("images_per_second")),
                recorded_at=self.clock()))
            work.commit()


def _finite(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


@dataclass(frozen=True)
class TrainingTools:
    """What run_training_job calls (the real ones by default; fakes in unit tests)."""

    train: Callable
    evaluate: Callable
    compare: Callable
    stopped: type

    @classmethod
    def real(cls) -> "TrainingTools":
        from training.compare import compare_models
        from training.evaluate import evaluate
        from training.train import TrainingStopped, train

        return cls(train=train, evaluate=evaluate, compare=compare_models, stopped=TrainingStopped)


def run_training_job(job_id: str, *, uow, files, files_dir: Path, data_root: Path, model_dir: Path,
                     heartbeat_s: float, stale_s: float, clock: Callable[[], datetime] = utcnow,
                     tools: TrainingTools | None = None, threads: int | None = None) -> str:
    """Run one training job in this worker; returns its status afterwards. It trains in
    files_dir/<job's out_dir> on this machine's disk; the evaluation report is then published
    to `files`, the file store the web reads (db.files: nothing to copy when that is the
    same folder)."""
    tools = tools or TrainingTools.real()  # imports torch: before the claim starts the heartbeat clock
    now = clock()
    with uow() as work:
        job = work.training_jobs.get(job_id)
        if job is None:
            log.warning("training job %s does not exist; dropping the task", job_id)
            return MISSING
        if job.status is not TrainingStatus.QUEUED and job.status is not TrainingStatus.RUNNING:
            log.info("training job %s is %s; nothing to do", job_id, job.status)
            return str(job.status)
        attempt = work.training_jobs.claim(job, now=now, stale_before=now - timedelta(seconds=stale_s))
        if attempt is None:
            log.info("training job %s is being run by another delivery; leaving it", job_id)
            return str(work.training_jobs.get(job_id).status)
        work.commit()
        recipe, overrides = job.recipe, dict(job.overrides or {})
        data_dir = (Path(data_root).resolve() / job.dataset.path).resolve()
        dataset_name, synthetic = job.dataset.name, job.dataset.synthetic
        init_path = job.init_model.checkpoint_path if job.init_model is not None else None
        job_out_dir = job.out_dir
        out_dir = Path(files_dir) / job_out_dir

    init = init_path or overrides.get("init")
    resume = (out_dir / "last.pt").is_file()
    with Heartbeat(job_id, attempt, uow=uow, period=heartbeat_s, clock=clock) as heartbeat:
        callback = JobCallback(job_id, attempt, uow, heartbeat, clock, stopped_error=tools.stopped)
        try:
            checkpoint = tools.train(data_dir, recipe, out_dir, seed=overrides.get("seed", 0),
                                     epochs=overrides.get("epochs"), image_size=overrides.get("image_size"),
                                     time_budget_s=overrides.get("time_budget_s"), init=init, resume=resume,
                                     progress=False, callback=callback, threads=threads)
        except tools.stopped:
            return _stopped(job_id, attempt, uow=uow, heartbeat=heartbeat, clock=clock)
        except UserFacingError as exc:
            return _fail(job_id, attempt, str(exc), uow=uow, clock=clock)
        except Exception as exc:  # noqa: BLE001
            log.exception("training job %s failed", job_id)
            return _fail(job_id, attempt, f"Training failed because of an internal error ({type(exc).__name__}: "
                                          f"{exc}). It was logged for the administrators.", uow=uow, clock=clock)
        if heartbeat.cancel.is_set() or _status(uow, job_id) is TrainingStatus.CANCELLING:
            return _stopped(job_id, attempt, uow=uow, heartbeat=heartbeat, clock=clock)
        try:
            return _finish(job_id, attempt, Path(checkpoint), data_dir, out_dir, dataset_name, synthetic,
                           uow=uow, model_dir=model_dir, tools=tools, clock=clock, files=files,
                           report_path=f"{job_out_dir}/report")
        except Exception as exc:  # noqa: BLE001
            log.exception("training job %s: evaluation or registration failed", job_id)
            return _fail(job_id, attempt, f"The model was trained but could not be evaluated or registered "
                                          f"({type(exc).__name__}: {exc}).", uow=uow, clock=clock)


def _finish(job_id, attempt, checkpoint: Path, data_dir: Path, out_dir: Path, dataset_name: str, synthetic: bool,
            *, uow, model_dir, tools: TrainingTools, clock, files, report_path: str) -> str:
    from services.model_registry import register_model

    report = tools.evaluate(checkpoint, data_dir, out_dir / "report", progress=False)
    files.publish_dir(out_dir / "report", report_path)  # before the job succeeds: its page shows the report
    with uow() as work:
        serving = work.models.active()
        serving = (serving.name, serving.checkpoint_path) if serving is not None else None
    comparisons = {}
    if serving is not None and Path(serving[1]).is_file():
        comparison = tools.compare(checkpoint, serving[1], data_dir)
        comparisons[serving[0]] = {**comparison, "baseline": serving[0], "compared_at": clock().isoformat()}
    registered = register_model(checkpoint, uow=uow, model_dir=model_dir, activate=False)
    with uow() as work:
        model = work.models.get(registered.id)
        metrics = dict(model.metrics or {})
        metrics.update(evaluation=report, comparisons={**metrics.get("comparisons", {}), **comparisons},
                       training={"job_id": job_id, "dataset": dataset_name, "synthetic": synthetic})
        model.metrics = metrics
        won = work.training_jobs.transition(
            job_id, TrainingStatus.SUCCEEDED, attempt=attempt, finished_at=clock(), model_version_id=model.id,
            report={"evaluation": report, "comparisons": comparisons, "report_dir": "report"}, error=None)
        work.commit()
    if not won:
        log.warning("training job %s attempt %d: the job changed meanwhile; its model %s stays registered",
                    job_id, attempt, registered.name)
        return str(_status(uow, job_id))
    log.info("training job %s succeeded: registered %s (test MAE %s)", job_id, registered.name,
             (report.get("regression") or {}).get("mae"))
    return str(TrainingStatus.SUCCEEDED)


def _stopped(job_id, attempt, *, uow, heartbeat: Heartbeat, clock) -> str:
    if heartbeat.lost.is_set():
        log.warning("training job %s attempt %d: no longer this attempt's job; stopping", job_id, attempt)
        return str(_status(uow, job_id))
    with uow() as work:
        work.training_jobs.transition(job_id, TrainingStatus.CANCELLED, attempt=attempt, finished_at=clock(),
                                      error=None)
        work.commit()
    log.info("training job %s cancelled; its last checkpoint is kept for resume", job_id)
    return str(_status(uow, job_id))


def _fail(job_id, attempt, reason: str, *, uow, clock) -> str:
    log.warning("training job %s failed: %s", job_id, reason)
    with uow() as work:
        work.training_jobs.transition(job_id, TrainingStatus.FAILED, attempt=attempt, finished_at=clock(),
                                      error=reason)
        work.commit()
    return str(_status(uow, job_id))


def _status(uow, job_id: str) -> TrainingStatus:
    with uow() as work:
        return work.training_jobs.get(job_id).status


def recipe_names() -> list[str]:
    from training.recipes import RECIPES  # torch-free

    return list(RECIPES)
