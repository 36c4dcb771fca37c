"""JSON API of training (issue 7): datasets, training jobs, the model registry,
promotion, rollback and the activation history, under /api/v1 and in the OpenAPI
document. Administrator-only endpoints carry web.access.admin_required, the slot for
the access-control work."""

from __future__ import annotations

from flask import request
from flask_smorest import Blueprint

from core.dates import parse_when
from core.errors import Conflict, NotFound, UserFacingError
from core.status import refused_by_queue
from services.datasets import list_datasets, register_dataset
from services.promotion import activation_history, promote_model, rollback_model, served_between
from services.training_jobs import (
    InvalidTrainingRequest,
    TrainingRequest,
    cancel_training_job,
    mark_crashed,
    queue_training_job,
    resume_training_job,
)
from web.access import admin_required, current_user
from web.dependencies import deps
from web.schemas import ErrorSchema
from web.training_presenters import activation_json, dataset_json, job_json, model_version_json
from web.training_schemas import (
    ActivateRequestSchema,
    ActivationHistorySchema,
    DatasetListSchema,
    DatasetRequestSchema,
    DatasetSchema,
    ModelVersionListSchema,
    ModelVersionSchema,
    TrainingJobListSchema,
    TrainingJobSchema,
    TrainingRequestSchema,
)

bp = Blueprint("training_api", __name__, url_prefix="/api/v1", description="Training jobs and the model registry")

BAD = {"schema": ErrorSchema, "description": "Invalid input; nothing was queued or changed."}
MISSING = {"schema": ErrorSchema, "description": "No such job, dataset or model."}
CONFLICT = {"schema": ErrorSchema, "description": "Not possible in the current state; nothing was changed."}


def _json_body(*names: str) -> dict:
    body = request.get_json(silent=True)
    if body is None and request.form:
        body = request.form.to_dict()
    if not isinstance(body, dict):
        raise UserFacingError("send a JSON object (Content-Type: application/json)")
    return body


def error_response(exc: UserFacingError):
    status = 404 if isinstance(exc, NotFound) else 409 if isinstance(exc, Conflict) else 400
    body = {"error": str(exc)}
    if isinstance(exc, InvalidTrainingRequest):
        body["field_messages"] = exc.errors
    return ErrorSchema().dump(body), status


bp.register_error_handler(UserFacingError, error_response)


def training_request(body, by: str) -> TrainingRequest:
    def get(name):
        value = body.get(name)
        return None if value in (None, "") else value

    return TrainingRequest(dataset=str(body.get("dataset") or ""), recipe=str(body.get("recipe") or ""),
                           epochs=get("epochs"), image_size=get("image_size"), time_budget_s=get("time_budget_s"),
                           init=get("init"), seed=get("seed"), queued_by=by)


def _refresh_crashed() -> None:
    d = deps()
    mark_crashed(uow=d.uow, stale_s=d.settings.training_stale_s)


def _job_body(job_id: str) -> dict:
    with deps().uow() as work:
        job = work.training_jobs.get(job_id) if len(job_id) <= 32 else None
        if job is None:
            raise NotFound(f"there is no training job with id {job_id[:40]!r}")
        return job_json(job, work.training_jobs.epochs(job_id))


# ------------------------------------------------------------------ datasets


@bp.get("/datasets")
@bp.doc(summary="Registered datasets", operationId="listDatasets")
@bp.response(200, DatasetListSchema)
def list_dataset_route():
    return {"datasets": [dataset_json(d) for d in list_datasets(uow=deps().uow)]}


@bp.post("/datasets")
@bp.doc(summary="Register a dataset folder under the data root (validated by the loader)",
        operationId="registerDataset",
        requestBody={"required": True, "content": {"application/json": {"schema": DatasetRequestSchema}}})
@bp.response(201, DatasetSchema, description="Registered (or already registered).")
@bp.alt_response(400, **BAD)
@bp.alt_response(409, **CONFLICT)
@admin_required
def register_dataset_route():
    body = _json_body()
    d = deps()
    dataset = register_dataset(str(body.get("path") or ""), uow=d.uow, data_root=d.settings.datasets_dir,
                               name=body.get("name"), by=current_user())
    return dataset_json(dataset), 201


# -------------------------------------------------------------- training jobs


@bp.post("/training-jobs")
@bp.doc(summary="Queue a training job", operationId="createTrainingJob",
        requestBody={"required": True, "content": {"application/json": {"schema": TrainingRequestSchema}}})
@bp.response(202, TrainingJobSchema, description="Queued; poll `url`.")
@bp.alt_response(400, **BAD)
@bp.alt_response(503, schema=TrainingJobSchema, description="Stored but could not be queued; the job is failed.")
@admin_required
def create_training_job():
    d = deps()
    job_id = queue_training_job(training_request(_json_body(), current_user()), uow=d.uow, queue=d.queue,
                                data_root=d.settings.datasets_dir)
    body = _job_body(job_id)
    return body, 503 if refused_by_queue(body["status"], body["started_at"]) else 202


@bp.get("/training-jobs")
@bp.doc(summary="Training jobs, newest first", operationId="listTrainingJobs")
@bp.response(200, TrainingJobListSchema)
def list_training_jobs():
    _refresh_crashed()
    limit = min(max(request.args.get("limit", 50, type=int), 1), 200)
    with deps().uow() as work:
        return {"training_jobs": [job_json(job) for job in work.training_jobs.recent(limit)]}


@bp.get("/training-jobs/<job_id>")
@bp.doc(summary="A training job with its metric history and, at the end, its report", operationId="getTrainingJob")
@bp.response(200, TrainingJobSchema)
@bp.alt_response(404, **MISSING)
def get_training_job(job_id: str):
    _refresh_crashed()
    return _job_body(job_id)


@bp.post("/training-jobs/<job_id>/cancel")
@bp.doc(summary="Cancel: a queued job at once, a running one at its next batch", operationId="cancelTrainingJob")
@bp.response(202, TrainingJobSchema)
@bp.alt_response(404, **MISSING)
@bp.alt_response(409, **CONFLICT)
@admin_required
def cancel_training_job_route(job_id: str):
    cancel_training_job(job_id, uow=deps().uow)
    return _job_body(job_id), 202


@bp.post("/training-jobs/<job_id>/resume")
@bp.doc(summary="Queue a crashed or cancelled job again; it continues from its last checkpoint",
        operationId="resumeTrainingJob")
@bp.response(202, TrainingJobSchema)
@bp.alt_response(404, **MISSING)
@bp.alt_response(409, **CONFLICT)
@admin_required
def resume_training_job_route(job_id: str):
    d = deps()
    resume_training_job(job_id, uow=d.uow, queue=d.queue)
    return _job_body(job_id), 202


# ------------------------------------------------------------------ registry


def models_body() -> list[dict]:
    with deps().uow() as work:
        jobs = {job.model_version_id: job.id for job in work.training_jobs.recent(500) if job.model_version_id}
        return [model_version_json(m, jobs.get(m.id)) for m in reversed(work.models.all())]


@bp.get("/models")
@bp.doc(summary="Registered model versions with their metrics (newest first)", operationId="listModels")
@bp.response(200, ModelVersionListSchema)
def list_models_route():
    return {"models": models_body()}


@bp.post("/models/<name>/activate")
@bp.doc(summary="Promote a model version to serving (compared with the serving one first)",
        operationId="activateModel",
        requestBody={"required": False, "content": {"application/json": {"schema": ActivateRequestSchema}}})
@bp.response(200, ModelVersionSchema)
@bp.alt_response(400, **BAD)
@bp.alt_response(404, **MISSING)
@bp.alt_response(409, **CONFLICT)
@admin_required
def activate_model_version(name: str):
    body = request.get_json(silent=True) or request.form.to_dict() or {}
    if not isinstance(body, dict):
        raise UserFacingError("send a JSON object")
    force = body.get("force") in (True, "true", "1", "on", 1)
    promote_model(name, uow=deps().uow, by=current_user(), note=body.get("note"), force=force)
    return _model_body(name)


@bp.post("/models/rollback")
@bp.doc(summary="Serve again the model that served before the current one", operationId="rollbackModel",
        requestBody={"required": False, "content": {"application/json": {"schema": ActivateRequestSchema}}})
@bp.response(200, ModelVersionSchema)
@bp.alt_response(409, **CONFLICT)
@admin_required
def rollback_model_route():
    body = request.get_json(silent=True) or request.form.to_dict() or {}
    activation = rollback_model(uow=deps().uow, by=current_user(), note=(body or {}).get("note"))
    return _model_body(activation.model)


def _model_body(name: str) -> dict:
    with deps().uow() as work:
        return model_version_json(work.models.get_by_name(name))


@bp.get("/model-activations")
@bp.doc(summary="Activation history: who activated which model when and why; with `since` (and `until`), "
                "which models served in that period", operationId="listModelActivations",
        parameters=[{"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                    {"name": "until", "in": "query", "schema": {"type": "string", "format": "date-time"}}])
@bp.response(200, ActivationHistorySchema)
@bp.alt_response(400, **BAD)
def model_activations():
    since = parse_when(request.args.get("since"), "since")
    until = parse_when(request.args.get("until"), "until")
    uow = deps().uow
    served = None
    if since is not None:
        served = [{"model": p.model, "since": p.since.isoformat(), "until": p.until.isoformat() if p.until else None}
                  for p in served_between(uow=uow, since=since, until=until)]
    return {"activations": [activation_json(a) for a in activation_history(uow=uow, since=since, until=until)],
            "served": served}
