"""Turning training jobs, datasets, model versions and activations into what the pages
and the API show (web.training_schemas describes them)."""

from __future__ import annotations

from datetime import datetime

from flask import url_for

from core.training_status import TrainingStatus
from db.models import TrainingJob
from web.presenters import model_json


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def dataset_json(d) -> dict:
    return {"id": d.id, "name": d.name, "path": d.path, "source": d.source, "synthetic": d.synthetic,
            "n_records": d.n_records, "summary": d.summary, "registered_by": d.registered_by,
            "created_at": iso(d.created_at)}


def epoch_json(e) -> dict:
    return {"epoch": e.epoch, "train_loss": e.train_loss, "val_mae": e.val_mae, "lr": e.lr, "seconds": e.seconds,
            "images_per_second": e.images_per_second, "recorded_at": iso(e.recorded_at)}


def eta_seconds(job: TrainingJob, epochs: list) -> float | None:
    """Remaining training time from the mean epoch time so far (evaluation not included)."""
    if job.status not in (TrainingStatus.RUNNING, TrainingStatus.CANCELLING) or not epochs or not job.total_epochs:
        return None
    last = epochs[-1]
    if not last.seconds:
        return None
    per_epoch = last.seconds / last.epoch
    return round(max(0, job.total_epochs - last.epoch) * per_epoch, 1)


def job_json(job: TrainingJob, epochs: list | None = None) -> dict:
    epochs = epochs or []
    model = job.model_version
    evaluation = (job.report or {}).get("evaluation") or {}
    return {
        "id": job.id,
        "status": str(job.status),
        "url": url_for("training_api.get_training_job", job_id=job.id),
        "page_url": url_for("training_pages.job_page", job_id=job.id),
        "dataset": job.dataset.name,
        "recipe": job.recipe,
        "overrides": dict(job.overrides or {}),
        "queued_by": job.queued_by,
        "attempts": job.attempts,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "heartbeat_at": iso(job.heartbeat_at),
        "epoch": job.epoch,
        "total_epochs": job.total_epochs,
        "eta_seconds": eta_seconds(job, epochs),
        "error": job.error,
        "epochs": [epoch_json(e) for e in epochs],
        "report": {
            "metrics": evaluation or None,
            "comparisons": (job.report or {}).get("comparisons") or {},
            "markdown_url": url_for("training_pages.report_file", job_id=job.id, name="report.md"),
        } if job.report else None,
        "model": model.name if model is not None else None,
        "can_cancel": job.status in (TrainingStatus.QUEUED, TrainingStatus.RUNNING),
        "can_resume": job.status.resumable,
    }


def _regression(metrics: dict) -> dict:
    evaluation = metrics.get("evaluation") or {}
    regression = evaluation.get("regression") or {}
    by_sex = evaluation.get("by_sex") or {}
    return {
        "mae": regression.get("mae", metrics.get("test_mae")),
        "rmse": regression.get("rmse", metrics.get("test_rmse")),
        "r2": regression.get("r2", metrics.get("test_r2")),
        "mae_male": (by_sex.get("M") or {}).get("mae"),
        "mae_female": (by_sex.get("F") or {}).get("mae"),
        "mae_sex_gap": by_sex.get("gap_mae"),
        "mae_by_age_band": {band["band"]: band.get("mae") for band in evaluation.get("by_age_band") or []},
        "n": regression.get("n", metrics.get("test_n")),
    }


def model_version_json(model, job_id: str | None = None) -> dict:
    metrics = model.metrics or {}
    return {
        **model_json(model),
        "is_active": model.is_active,
        "created_at": iso(model.created_at),
        "metrics": _regression(metrics),
        "comparisons": metrics.get("comparisons") or {},
        "dataset": (metrics.get("training") or {}).get("dataset"),
        "training_job": job_id or (metrics.get("training") or {}).get("job_id"),
        "activate_url": url_for("training_api.activate_model_version", name=model.name),
    }


def activation_json(a) -> dict:
    return {"id": a.id, "model": a.model, "previous_model": a.previous_model, "action": a.action,
            "activated_by": a.activated_by, "note": a.note, "forced": a.forced, "comparison": a.comparison,
            "activated_at": iso(a.activated_at)}
