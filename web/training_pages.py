"""HTML pages of training (issue 7): the training page (queue a job, register a
dataset, the jobs list), a job's live page (curve, ETA, cancel, report) and the model
registry (metrics side by side, promote, roll back, activation history)."""

from __future__ import annotations

import io
import re

from flask import Blueprint, Response, abort, redirect, render_template, request, send_file, url_for

from core.errors import Conflict, NotFound, UserFacingError
from services.datasets import list_datasets, register_dataset
from services.promotion import activation_history, promote_model, rollback_model, served_between
from services.training_jobs import (
    InvalidTrainingRequest,
    cancel_training_job,
    mark_crashed,
    queue_training_job,
    recipe_names,
    resume_training_job,
)
from web.access import admin_required, current_user
from web.curve import learning_curve_svg
from web.dependencies import deps
from web.training_api import models_body, parse_when, training_request
from web.training_presenters import activation_json, dataset_json, job_json

bp = Blueprint("training_pages", __name__)

REPORT_FILE = re.compile(r"^[A-Za-z0-9_.-]+\.(png|md|json)$")
MIME = {"png": "image/png", "md": "text/markdown; charset=utf-8", "json": "application/json"}


def render_training(errors: dict | None = None, status: int = 200, message: str | None = None):
    d = deps()
    mark_crashed(uow=d.uow, stale_s=d.settings.training_stale_s)
    with d.uow() as work:
        jobs = [job_json(job) for job in work.training_jobs.recent(50)]
        models = [m.name for m in work.models.all()]
    form = request.form if request.method == "POST" else {}
    return render_template("training.html", jobs=jobs, datasets=[dataset_json(x) for x in list_datasets(uow=d.uow)],
                           recipes=recipe_names(), models=models, errors=errors or {}, form=form,
                           message=message, data_root=str(d.settings.datasets_dir)), status


@bp.get("/training")
def training():
    return render_training(message=request.args.get("message"))


@bp.post("/training/jobs")
@admin_required
def queue_job():
    d = deps()
    try:
        job_id = queue_training_job(training_request(request.form, current_user()), uow=d.uow, queue=d.queue,
                                    data_root=d.settings.datasets_dir)
    except InvalidTrainingRequest as exc:
        return render_training(exc.errors, 400)
    return redirect(url_for("training_pages.job_page", job_id=job_id), code=303)


@bp.post("/training/datasets")
@admin_required
def register_dataset_page():
    d = deps()
    try:
        dataset = register_dataset(request.form.get("path", ""), uow=d.uow, data_root=d.settings.datasets_dir,
                                   name=request.form.get("name"), by=current_user())
    except UserFacingError as exc:
        return render_training({"dataset_path": str(exc)}, 409 if isinstance(exc, Conflict) else 400)
    s = dataset.summary
    message = (f"Registered dataset {dataset.name}: {dataset.n_records} studies ({s['male']} M, {s['female']} F), "
               f"bone age {s['age_months_min']}-{s['age_months_max']} months"
               + (", SYNTHETIC (not for clinical use)" if dataset.synthetic else ""))
    return redirect(url_for("training_pages.training", message=message), code=303)


def _job(job_id: str):
    d = deps()
    mark_crashed(uow=d.uow, stale_s=d.settings.training_stale_s)
    with d.uow() as work:
        job = work.training_jobs.get(job_id) if len(job_id) <= 32 else None
        if job is None:
            abort(404, description="There is no training job with this id.")
        epochs = work.training_jobs.epochs(job_id)
        return job_json(job, epochs), job


@bp.get("/training/jobs/<job_id>")
def job_page(job_id: str):
    data, _ = _job(job_id)
    return render_template("training_job.html", job=data,
                           curve=learning_curve_svg(data["epochs"], data["total_epochs"]))


@bp.get("/training/jobs/<job_id>/curve.svg")
def curve(job_id: str):
    data, _ = _job(job_id)
    return Response(learning_curve_svg(data["epochs"], data["total_epochs"]), mimetype="image/svg+xml",
                    headers={"Cache-Control": "no-store"})


@bp.get("/training/jobs/<job_id>/report/<name>")
def report_file(job_id: str, name: str):
    if not REPORT_FILE.match(name):
        abort(404)
    _, job = _job(job_id)
    try:
        data = deps().files.read(f"{job.out_dir}/report/{name}")
    except FileNotFoundError:
        abort(404, description="This report file does not exist (yet).")
    return send_file(io.BytesIO(data), mimetype=MIME[name.rsplit(".", 1)[1]], max_age=60)


@bp.post("/training/jobs/<job_id>/cancel")
@admin_required
def cancel(job_id: str):
    try:
        cancel_training_job(job_id, uow=deps().uow)
    except NotFound:
        abort(404, description="There is no training job with this id.")
    except Conflict as exc:
        abort(409, description=str(exc))
    return redirect(url_for("training_pages.job_page", job_id=job_id), code=303)


@bp.post("/training/jobs/<job_id>/resume")
@admin_required
def resume(job_id: str):
    d = deps()
    try:
        resume_training_job(job_id, uow=d.uow, queue=d.queue)
    except NotFound:
        abort(404, description="There is no training job with this id.")
    except Conflict as exc:
        abort(409, description=str(exc))
    return redirect(url_for("training_pages.job_page", job_id=job_id), code=303)


def render_models(error: str | None = None, status: int = 200):
    since = until = None
    served = None
    try:
        since = parse_when(request.args.get("since"), "since")
        until = parse_when(request.args.get("until"), "until")
        if since is not None:
            served = served_between(uow=deps().uow, since=since, until=until)
    except UserFacingError as exc:
        error, status = str(exc), 400
    history = [activation_json(a) for a in activation_history(uow=deps().uow)]
    return render_template("models.html", models=models_body(), history=history, served=served, error=error,
                           since=request.args.get("since", ""), until=request.args.get("until", "")), status


@bp.get("/models")
def models():
    return render_models()


@bp.post("/models/<name>/activate")
@admin_required
def activate(name: str):
    try:
        promote_model(name, uow=deps().uow, by=current_user(), note=request.form.get("note"),
                      force=request.form.get("force") == "on")
    except UserFacingError as exc:
        return render_models(str(exc), 404 if isinstance(exc, NotFound) else 409 if isinstance(exc, Conflict) else 400)
    return redirect(url_for("training_pages.models"), code=303)


@bp.post("/models/rollback")
@admin_required
def rollback():
    try:
        rollback_model(uow=deps().uow, by=current_user(), note=request.form.get("note"))
    except UserFacingError as exc:
        return render_models(str(exc), 409)
    return redirect(url_for("training_pages.models"), code=303)
