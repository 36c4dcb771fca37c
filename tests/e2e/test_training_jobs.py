"""Training jobs through the service with real parts (issue 7): a real `training` worker
process (`boneage worker --queues training`) beside a real inference worker, never
eager, on PostgreSQL + Redis and in embedded mode (SQLite + filesystem transport), and
once with the file store in an S3 bucket (moto's server, started by the tests).

- a short job goes queued -> running -> succeeded; its epoch rows are read while it
  still runs; the report is stored; a version is registered, not active;
- activating it makes the next assessment use it; rolling back, the previous one; the
  history lists both changes;
- cancelling a running job ends it cancelled, registers nothing, keeps last.pt, and a
  resumed job continues from it; an assessment submitted meanwhile finishes while the
  training job still runs;
- killing the training worker mid-job: the job is shown crashed, then resumed to the end.
"""

from __future__ import annotations

import os
import signal
import time
import uuid

import pytest

import migrations
from db.session import unit_of_work_factory
from helpers import S3Server, authed_client, WorkerProcess, fresh_postgres_schema, make_png, make_settings, register, wait_until_finished
from integration.openapi_contract import contract_checked
from web import create_app

pytestmark = pytest.mark.slow

WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class TrainingStack:
    def __init__(self, settings, workers):
        self.settings = settings
        self.workers = workers
        self.client = authed_client(contract_checked(create_app(settings)))
        self.uow = unit_of_work_factory(settings.database_url)

    def job(self, job_id: str) -> dict:
        response = self.client.get(f"/api/v1/training-jobs/{job_id}")
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def wait(self, job_id: str, condition, what: str, timeout: float = 240) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            body = self.job(job_id)
            if condition(body):
                return body
            if time.monotonic() > deadline:
                logs = "\n".join(w.log()[-3000:] for w in self.workers)
                raise AssertionError(f"training job never {what}; last seen {body['status']} "
                                     f"epoch {body['epoch']}: {body['error']}\n{logs}")
            time.sleep(0.1)

    def queue(self, **request) -> str:
        response = self.client.post("/api/v1/training-jobs", json=request)
        assert response.status_code == 202, response.get_json()
        return response.get_json()["id"]

    def assess(self) -> dict:
        response = self.client.post("/api/v1/assessments",
                                    data={"image": (__import__("io").BytesIO(make_png(96)), "hand.png"), "sex": "F"},
                                    content_type="multipart/form-data")
        assert response.status_code == 202, response.get_json()
        return wait_until_finished(self.client, response.get_json()["id"])


def _settings(request, root, **env):
    if request.param == "embedded":
        return make_settings(root, **env)
    postgres_url = request.getfixturevalue("training_postgres_url")
    redis_url = request.getfixturevalue("redis_url")
    suffix = uuid.uuid4().hex[:8]
    if request.param.endswith("+s3"):  # the file store in a bucket (the training scratch stays local)
        server = request.getfixturevalue("s3_server")
        env.update(BONEAGE_FILES_URL=server.new_bucket(), BONEAGE_S3_ENDPOINT_URL=server.endpoint_url)
    return make_settings(root, DATABASE_URL=postgres_url, BROKER_URL=redis_url,
                         BONEAGE_INFERENCE_QUEUE=f"inference_{suffix}", BONEAGE_CPU_QUEUE=f"cpu_{suffix}",
                         BONEAGE_TRAINING_QUEUE=f"training_{suffix}", **env)


@pytest.fixture
def training_postgres_url(postgres_server_url):
    with fresh_postgres_schema(postgres_server_url, "boneage_training") as url:
        yield url


@pytest.fixture
def stack(request, tmp_path, tiny_model):
    """Web client + an inference worker + a training worker, with the tiny model serving
    and a 60-image synthetic dataset registered as "tiny"."""
    from training.synth import generate_dataset

    settings = _settings(request, tmp_path, BONEAGE_TRAINING_HEARTBEAT_S="0.5", BONEAGE_TRAINING_STALE_S="4")
    migrations.upgrade(settings.database_url)
    register(settings, tiny_model)
    generate_dataset(settings.datasets_dir / "tiny", 60, size=64, seed=1, progress=False)
    workers = [WorkerProcess(settings, "inference", env=WORKER_ENV),
               WorkerProcess(settings, "training", queues=settings.training_queue, env=WORKER_ENV)]
    try:
        for worker in workers:
            worker.start()
        s = TrainingStack(settings, workers)
        response = s.client.post("/api/v1/datasets", json={"path": "tiny"})
        assert response.status_code == 201, response.get_json()
        assert response.get_json()["synthetic"] is True and response.get_json()["n_records"] == 60
        yield s
    finally:
        for worker in workers:
            worker.stop()
        if not settings.embedded:
            import redis

            redis.Redis.from_url(settings.broker_url).delete(
                settings.inference_queue, settings.cpu_queue, settings.training_queue)


def _model_name_of(assessment: dict) -> str:
    assert assessment["status"] == "succeeded", assessment["error"]
    return assessment["result"]["model"]["name"]


@pytest.mark.parametrize("stack", ["postgres+redis", "embedded", "postgres+redis+s3"], indirect=True)
def test_training_job_succeeds_registers_and_is_promoted_then_rolled_back(stack):
    serving = stack.client.get("/api/v1/models").get_json()["models"][0]["name"]
    job_id = stack.queue(dataset="tiny", recipe="demo", epochs=3, image_size=64)
    assert stack.job(job_id)["status"] in ("queued", "running")

    # epoch rows are readable while the job still runs (evaluation follows the last epoch)
    live = stack.wait(job_id, lambda j: j["epochs"] or j["status"] not in ("queued", "running"), "wrote an epoch")
    assert live["status"] == "running" and live["epochs"][0]["epoch"] == 1, live
    assert live["epochs"][0]["train_loss"] is not None and live["total_epochs"] == 3

    done = stack.wait(job_id, lambda j: j["status"] not in ("queued", "running"), "finished")
    assert done["status"] == "succeeded", done["error"]
    assert [e["epoch"] for e in done["epochs"]] == [1, 2, 3]
    assert done["report"]["metrics"]["regression"]["mae"] > 0
    comparison = done["report"]["comparisons"][serving]
    assert comparison["n"] > 0 and comparison["candidate_mae"] > 0 and comparison["baseline_mae"] > 0
    report_dir = stack.settings.training_runs_dir / job_id / "report"
    assert (report_dir / "report.md").is_file() and (report_dir / "metrics.json").is_file()
    if stack.settings.files_url:  # published into the bucket, where the web reads it
        objects = S3Server.objects_at(stack.settings.files_url, stack.settings.s3_endpoint_url)
        assert objects[f"training/{job_id}/report/report.md"] == (report_dir / "report.md").read_bytes()
    scatter = stack.client.get(f"/training/jobs/{job_id}/report/scatter.png")
    assert scatter.status_code == 200 and scatter.data == (report_dir / "scatter.png").read_bytes()
    assert (stack.settings.training_runs_dir / job_id / "last.pt").is_file()

    candidate = done["model"]
    models = {m["name"]: m for m in stack.client.get("/api/v1/models").get_json()["models"]}
    assert models[candidate]["is_active"] is False and models[serving]["is_active"] is True
    assert models[candidate]["training_job"] == job_id and models[candidate]["dataset"] == "tiny"
    assert models[candidate]["not_for_clinical_use"] is True
    assert models[candidate]["metrics"]["mae"] == done["report"]["metrics"]["regression"]["mae"]

    # promote: refused when it compared worse, unless forced with a note
    worse = comparison["candidate_mae"] > comparison["baseline_mae"]
    response = stack.client.post(f"/api/v1/models/{candidate}/activate", json={"note": "tiny run"})
    if worse:
        assert response.status_code == 409 and "worse" in response.get_json()["error"]
        assert stack.client.post(f"/api/v1/models/{candidate}/activate", json={"force": True}).status_code == 400
        response = stack.client.post(f"/api/v1/models/{candidate}/activate",
                                     json={"force": True, "note": "tiny run, forced for the test"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["is_active"] is True
    assert _model_name_of(stack.assess()) == candidate

    response = stack.client.post("/api/v1/models/rollback", json={"note": "back to the demo model"})
    assert response.status_code == 200 and response.get_json()["name"] == serving
    assert _model_name_of(stack.assess()) == serving

    history = stack.client.get("/api/v1/model-activations").get_json()["activations"]
    assert [(a["action"], a["model"], a["previous_model"]) for a in history[:2]] == [
        ("rollback", serving, candidate), ("activate", candidate, serving)]
    assert history[0]["note"] == "back to the demo model" and history[1]["forced"] is worse
    since = history[1]["activated_at"]
    served = stack.client.get("/api/v1/model-activations", query_string={"since": since}).get_json()["served"]
    assert [p["model"] for p in served] == [candidate, serving]


@pytest.mark.parametrize("stack", ["postgres+redis"], indirect=True)
def test_cancel_running_job_keeps_checkpoint_resumes_and_assessments_are_not_blocked(stack):
    job_id = stack.queue(dataset="tiny", recipe="demo", epochs=200, image_size=64)
    stack.wait(job_id, lambda j: j["epochs"], "wrote an epoch")

    # an assessment submitted while the training job runs is finished by the inference worker
    assert _model_name_of(stack.assess())
    assert stack.job(job_id)["status"] == "running"

    response = stack.client.post(f"/api/v1/training-jobs/{job_id}/cancel")
    assert response.status_code == 202 and response.get_json()["status"] in ("cancelling", "cancelled")
    cancelled = stack.wait(job_id, lambda j: j["status"] != "cancelling" and j["status"] != "running", "stopped")
    assert cancelled["status"] == "cancelled", cancelled["error"]
    assert cancelled["model"] is None and len(stack.client.get("/api/v1/models").get_json()["models"]) == 1
    assert (stack.settings.training_runs_dir / job_id / "last.pt").is_file()
    stopped_at = cancelled["epochs"][-1]["epoch"]
    assert cancelled["epoch"] == stopped_at < 200
    # cancelling a stopped job is refused and changes nothing
    assert stack.client.post(f"/api/v1/training-jobs/{job_id}/cancel").status_code == 409

    response = stack.client.post(f"/api/v1/training-jobs/{job_id}/resume")
    assert response.status_code == 202 and response.get_json()["status"] == "queued"
    resumed = stack.wait(job_id, lambda j: j["status"] == "running" and j["epoch"] > stopped_at, "continued")
    assert [e["epoch"] for e in resumed["epochs"]][: stopped_at + 1] == list(range(1, stopped_at + 2))
    assert resumed["attempts"] == 2
    # the resumed run did not start over: the epochs before the checkpoint kept their rows
    assert resumed["epochs"][0]["recorded_at"] == cancelled["epochs"][0]["recorded_at"]
    stack.client.post(f"/api/v1/training-jobs/{job_id}/cancel")
    assert stack.wait(job_id, lambda j: j["status"] not in ("running", "cancelling"), "stopped")["status"] == "cancelled"


@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
def test_killed_training_worker_leaves_a_crashed_job_that_resumes_to_the_end(stack):
    job_id = stack.queue(dataset="tiny", recipe="demo", epochs=6, image_size=64)
    stack.wait(job_id, lambda j: j["epochs"], "wrote an epoch")
    training_worker = stack.workers[1]
    os.killpg(training_worker.process.pid, signal.SIGKILL)  # our own worker, by its process group
    training_worker.process.wait()

    crashed = stack.wait(job_id, lambda j: j["status"] != "running", "was detected as crashed", timeout=60)
    assert crashed["status"] == "crashed" and "heartbeat" in crashed["error"]
    assert crashed["can_resume"] is True
    done_before = crashed["epoch"]
    assert done_before < 6

    assert stack.client.post(f"/api/v1/training-jobs/{job_id}/resume").status_code == 202
    stack.workers.append(WorkerProcess(stack.settings, "training-2", queues=stack.settings.training_queue,
                                       env=WORKER_ENV).start())
    done = stack.wait(job_id, lambda j: j["status"] not in ("queued", "running"), "finished")
    assert done["status"] == "succeeded", done["error"]
    assert [e["epoch"] for e in done["epochs"]] == [1, 2, 3, 4, 5, 6]
    assert done["attempts"] == 2 and done["model"]
