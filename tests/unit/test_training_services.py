"""The training, dataset and promotion services with fakes (no database, broker or torch):
queueing validates and stores nothing on bad input; a run writes epoch rows as it goes,
evaluates, compares and registers (not active); a cancel stops at a batch boundary and
registers nothing; a stale heartbeat is crashed and resumable; promotion refuses a
worse candidate unless forced with a note; rollback and the history."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from core.errors import Conflict, NotFound, UserFacingError
from core.training_status import TrainingStatus, can_transition
from db.models import Dataset, ModelVersion
from fakes import FakeFiles, FakeQueue, FakeUnitOfWork
from services.promotion import activation_history, promote_model, rollback_model, served_between
from services.training_jobs import (
    InvalidTrainingRequest,
    TrainingRequest,
    TrainingTools,
    cancel_training_job,
    mark_crashed,
    queue_training_job,
    resume_training_job,
    run_training_job,
)


class Stopped(Exception):
    pass


@pytest.fixture
def uow():
    return FakeUnitOfWork()


@pytest.fixture
def data_root(tmp_path, uow):
    root = tmp_path / "datasets"
    (root / "tiny").mkdir(parents=True)
    uow.datasets.add(Dataset(name="tiny", path="tiny", synthetic=True, n_records=10))
    return root


def _checkpoint(folder: Path, content: bytes = b"weights") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.pt").write_bytes(content)
    (folder / "model.json").write_text(json.dumps({"recipe": {"name": "demo"}, "synthetic": True,
                                                   "metrics": {"test_mae": 9.0}}))
    return folder / "model.pt"


def _serving(uow, tmp_path) -> ModelVersion:
    model = uow.models.add(ModelVersion(name="demo-serving", recipe="demo", trained_on="synthetic",
                                        checkpoint_path=str(_checkpoint(tmp_path / "serving", b"old")),
                                        checkpoint_sha256="0" * 64))
    uow.models.activate(model, by="setup")
    return model


def test_the_status_machine():
    assert can_transition("queued", "cancelled") and can_transition("running", "cancelling")
    assert can_transition("crashed", "queued") and can_transition("cancelled", "queued")
    assert not can_transition("succeeded", "queued") and not can_transition("failed", "running")
    assert not can_transition("queued", "succeeded") and not can_transition("cancelling", "succeeded")


def test_queue_stores_and_sends_a_valid_job(uow, data_root):
    queue = FakeQueue()
    job_id = queue_training_job(TrainingRequest(dataset="tiny", recipe="demo", epochs="3", time_budget_s=60,
                                                queued_by="ana"), uow=uow, queue=queue, data_root=data_root)
    job = uow.training_jobs.get(job_id)
    assert queue.sent == [job_id] and job.status is TrainingStatus.QUEUED
    assert job.overrides == {"epochs": 3, "time_budget_s": 60.0} and job.queued_by == "ana"


@pytest.mark.parametrize("request_, field", [
    (dict(recipe="nope"), "recipe"), (dict(dataset="other"), "dataset"), (dict(epochs=-1), "epochs"),
    (dict(time_budget_s=float("inf")), "time_budget_s"), (dict(image_size="big"), "image_size"),
    (dict(init="demo-missing"), "init"),
])
def test_a_bad_request_stores_and_sends_nothing(uow, data_root, request_, field):
    queue = FakeQueue()
    with pytest.raises(InvalidTrainingRequest) as refused:
        queue_training_job(TrainingRequest(**{"dataset": "tiny", "recipe": "demo", **request_}), uow=uow,
                           queue=queue, data_root=data_root)
    assert set(refused.value.errors) == {field}
    assert queue.sent == [] and uow.training_jobs.rows == {}


def test_a_refusing_queue_fails_the_job(uow, data_root):
    job_id = queue_training_job(TrainingRequest(dataset="tiny", recipe="demo"), uow=uow,
                                queue=FakeQueue(error=ConnectionError("down")), data_root=data_root)
    job = uow.training_jobs.get(job_id)
    assert job.status is TrainingStatus.FAILED and "queue is unavailable" in job.error


def _tools(on_batch_hook=None, epochs=3, checkpoint_dir=None):
    calls = {}

    def train(data_dir, recipe, out_dir, *, callback, resume, **options):
        calls.update(options, resume=resume, data_dir=data_dir)
        callback.on_start(epoch=0, total_epochs=epochs, history=[])
        for epoch in range(1, epochs + 1):
            callback.on_batch(epoch=epoch, batch=0, batches=1)
            if on_batch_hook:
                on_batch_hook(epoch, callback)
            callback.on_epoch({"epoch": epoch, "train_loss": 1.0 / epoch, "val_mae": 20.0 - epoch, "lr": 1e-3,
                               "seconds": float(epoch), "images_per_second": 50.0}, total_epochs=epochs)
        return _checkpoint(Path(out_dir), b"new weights")

    def evaluate(checkpoint, data_dir, out_dir, progress):
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "report.md").write_text("# evaluation")
        return {"n": 5, "regression": {"mae": 12.5, "rmse": 14.0, "r2": 0.5}}

    def compare(candidate, baseline, data_dir):
        return {"n": 5, "data": "tiny", "candidate_mae": 12.5, "baseline_mae": 15.0}

    return TrainingTools(train=train, evaluate=evaluate, compare=compare, stopped=Stopped), calls


def _run(uow, job_id, tmp_path, data_root, tools, files=None):
    return run_training_job(job_id, uow=uow, files=files or FakeFiles(), files_dir=tmp_path / "files",
                            data_root=data_root, model_dir=tmp_path / "models", heartbeat_s=60, stale_s=300,
                            tools=tools)


def test_a_run_records_epochs_evaluates_compares_and_registers_not_active(uow, data_root, tmp_path):
    serving = _serving(uow, tmp_path)
    job_id = queue_training_job(TrainingRequest(dataset="tiny", recipe="demo", epochs=3), uow=uow,
                                queue=FakeQueue(), data_root=data_root)
    tools, calls = _tools()
    files = FakeFiles()
    assert _run(uow, job_id, tmp_path, data_root, tools, files) == "succeeded"
    job = uow.training_jobs.get(job_id)
    # the report written on the worker's disk is published into the store the web reads
    assert files.blobs == {f"{job.out_dir}/report/report.md": b"# evaluation"}
    assert [e.epoch for e in uow.training_jobs.epochs(job_id)] == [1, 2, 3]
    assert job.epoch == 3 and job.total_epochs == 3 and job.attempts == 1
    assert calls["epochs"] == 3 and calls["resume"] is False and calls["data_dir"] == (data_root / "tiny").resolve()
    model = job.model_version
    assert model is not None and not model.is_active and serving.is_active
    assert model.metrics["comparisons"]["demo-serving"]["candidate_mae"] == 12.5
    assert model.metrics["training"] == {"job_id": job_id, "dataset": "tiny", "synthetic": True}
    assert job.report["evaluation"]["regression"]["mae"] == 12.5
    # a second delivery of the finished job changes nothing
    assert _run(uow, job_id, tmp_path, data_root, tools) == "succeeded" and job.attempts == 1


def test_cancel_stops_at_the_next_batch_and_registers_nothing(uow, data_root, tmp_path):
    job_id = queue_training_job(TrainingRequest(dataset="tiny", recipe="demo"), uow=uow, queue=FakeQueue(),
                                data_root=data_root)

    def cancel_after_first_epoch(epoch, callback):
        if epoch == 2:
            assert cancel_training_job(job_id, uow=uow) == "cancelling"
            callback.heartbeat.beat()  # what the heartbeat thread does every period
            callback.on_batch(epoch=2, batch=1, batches=2)

    tools, _ = _tools(cancel_after_first_epoch)
    assert _run(uow, job_id, tmp_path, data_root, tools) == "cancelled"
    job = uow.training_jobs.get(job_id)
    assert job.model_version_id is None and uow.models.rows == []
    assert [e.epoch for e in uow.training_jobs.epochs(job_id)] == [1]
    with pytest.raises(Conflict):
        cancel_training_job(job_id, uow=uow)
    queue = FakeQueue()
    assert resume_training_job(job_id, uow=uow, queue=queue) == "queued" and queue.sent == [job_id]


def test_a_queued_job_is_cancelled_at_once_and_its_message_dropped(uow, data_root, tmp_path):
    job_id = queue_training_job(TrainingRequest(dataset="tiny", recipe="demo"), uow=uow, queue=FakeQueue(),
                                data_root=data_root)
    assert cancel_training_job(job_id, uow=uow) == "cancelled"
    tools, calls = _tools()
    assert _run(uow, job_id, tmp_path, data_root, tools) == "cancelled" and calls == {}
    with pytest.raises(NotFound):
        cancel_training_job("f" * 32, uow=uow)


def test_a_stale_heartbeat_is_crashed_and_resumable(uow, data_root):
    job_id = queue_training_job(TrainingRequest(dataset="tiny", recipe="demo"), uow=uow, queue=FakeQueue(),
                                data_root=data_root)
    now = datetime.now(timezone.utc)
    job = uow.training_jobs.get(job_id)
    uow.training_jobs.claim(job, now=now - timedelta(seconds=120), stale_before=now)
    assert mark_crashed(uow=uow, stale_s=300, clock=lambda: now) == []
    assert mark_crashed(uow=uow, stale_s=60, clock=lambda: now) == [job_id]
    assert job.status is TrainingStatus.CRASHED
    assert resume_training_job(job_id, uow=uow, queue=FakeQueue()) == "queued"


def _candidate(uow, tmp_path, name, candidate_mae, baseline="demo-serving"):
    metrics = {"comparisons": {baseline: {"n": 5, "candidate_mae": candidate_mae, "baseline_mae": 10.0}}}
    return uow.models.add(ModelVersion(name=name, recipe="demo", trained_on="synthetic", metrics=metrics,
                                       checkpoint_path=str(_checkpoint(tmp_path / name, name.encode())),
                                       checkpoint_sha256="1" * 64))


def test_promotion_refuses_a_worse_candidate_unless_forced_with_a_note(uow, tmp_path):
    _serving(uow, tmp_path)
    worse = _candidate(uow, tmp_path, "demo-worse", 11.0)
    with pytest.raises(Conflict, match="worse"):
        promote_model("demo-worse", uow=uow, by="ana")
    with pytest.raises(UserFacingError, match="note"):
        promote_model("demo-worse", uow=uow, by="ana", force=True)
    assert not worse.is_active
    activation = promote_model("demo-worse", uow=uow, by="ana", note="needed for the demo", force=True)
    assert activation.forced and activation.previous_model == "demo-serving" and worse.is_active
    with pytest.raises(NotFound):
        promote_model("demo-nope", uow=uow)


def test_better_candidate_promotes_then_rollback_and_history(uow, tmp_path):
    _serving(uow, tmp_path)
    better = _candidate(uow, tmp_path, "demo-better", 8.0)
    start = datetime.now(timezone.utc)
    activation = promote_model("demo-better", uow=uow, by="ana", note="better on held-out")
    assert not activation.forced and better.is_active and activation.comparison["candidate_mae"] == 8.0
    back = rollback_model(uow=uow, by="bo", note="complaints")
    assert back.model == "demo-serving" and back.action == "rollback" and not better.is_active
    history = activation_history(uow=uow)
    assert [(a.action, a.model, a.activated_by) for a in history] == [
        ("rollback", "demo-serving", "bo"), ("activate", "demo-better", "ana"), ("activate", "demo-serving", "setup")]
    assert [p.model for p in served_between(uow=uow, since=start)] == ["demo-serving", "demo-better", "demo-serving"]
    with pytest.raises(Conflict, match="no previous model"):
        rollback_model(uow=uow)
