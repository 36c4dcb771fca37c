"""Bad input to the training and registry endpoints (issue 7): each gets a clear 4xx,
and nothing is queued, stored or changed. Every /api/ response is checked against the
OpenAPI document."""

from __future__ import annotations

import shutil

import pytest

from db.models import TrainingJob
from core.training_status import TrainingStatus
from db.session import unit_of_work_factory
from helpers import authed_client, read_queued_tasks, register
from openapi_contract import contract_checked
from web import create_app


@pytest.fixture
def app_and_settings(embedded_settings, synthetic_dataset, tiny_model):
    shutil.copytree(synthetic_dataset, embedded_settings.datasets_dir / "synth")
    register(embedded_settings, tiny_model)
    client = authed_client(contract_checked(create_app(embedded_settings)))
    assert client.post("/api/v1/datasets", json={"path": "synth"}).status_code == 201
    return client, embedded_settings


def _nothing_changed(client, settings, models_before):
    assert read_queued_tasks(settings, settings.training_queue) == []
    assert client.get("/api/v1/training-jobs").get_json()["training_jobs"] == []
    assert client.get("/api/v1/models").get_json()["models"] == models_before


GOOD = {"dataset": "synth", "recipe": "demo", "epochs": 1}


@pytest.mark.parametrize("change, field", [
    ({"recipe": "resnet-9000"}, "recipe"),
    ({"dataset": "nope"}, "dataset"),
    ({"time_budget_s": -5}, "time_budget_s"),
    ({"time_budget_s": 1e12}, "time_budget_s"),
    ({"time_budget_s": "soon"}, "time_budget_s"),
    ({"epochs": 0}, "epochs"),
    ({"epochs": 10**6}, "epochs"),
    ({"image_size": 4096}, "image_size"),
    ({"init": "demo-00000000"}, "init"),
])
def test_a_bad_training_request_is_refused_and_nothing_is_queued(app_and_settings, change, field):
    client, settings = app_and_settings
    models = client.get("/api/v1/models").get_json()["models"]
    response = client.post("/api/v1/training-jobs", json={**GOOD, **change})
    assert response.status_code == 400
    body = response.get_json()
    assert set(body["fields"]) == {field} and body["fields"][field] in body["error"]
    _nothing_changed(client, settings, models)


def test_the_page_form_shows_the_same_messages(app_and_settings):
    client, settings = app_and_settings
    response = client.post("/training/jobs", data={**GOOD, "recipe": "resnet-9000", "time_budget_s": "-1"})
    assert response.status_code == 400
    assert b"unknown recipe" in response.data and b"must be between" in response.data
    assert read_queued_tasks(settings, settings.training_queue) == []


@pytest.mark.parametrize("path", ["../", "/etc", "synth/../../..", "", "not-there"])
def test_dataset_outside_the_data_root_or_missing_is_refused(app_and_settings, path):
    client, _ = app_and_settings
    response = client.post("/api/v1/datasets", json={"path": path})
    assert response.status_code == 400
    assert "data root" in response.get_json()["error"] or "give the dataset" in response.get_json()["error"]
    assert [d["name"] for d in client.get("/api/v1/datasets").get_json()["datasets"]] == ["synth"]


def test_a_symlink_out_of_the_data_root_is_refused(app_and_settings, tmp_path):
    client, settings = app_and_settings
    (settings.datasets_dir / "escape").symlink_to(tmp_path)
    response = client.post("/api/v1/datasets", json={"path": "escape"})
    assert response.status_code == 400 and "outside the data root" in response.get_json()["error"]


def test_a_dataset_with_a_bad_row_names_the_file_and_row(app_and_settings):
    client, settings = app_and_settings
    broken = settings.datasets_dir / "broken"
    shutil.copytree(settings.datasets_dir / "synth", broken)
    labels = broken / "boneage-training-dataset.csv"
    lines = labels.read_text().splitlines()
    lines[3] = lines[3].split(",")[0] + ",abc," + lines[3].split(",")[2]
    labels.write_text("\n".join(lines) + "\n")
    response = client.post("/api/v1/datasets", json={"path": "broken"})
    assert response.status_code == 400
    assert "boneage-training-dataset.csv, row 4" in response.get_json()["error"]
    page = client.post("/training/datasets", data={"path": "broken"})
    assert page.status_code == 400 and b"row 4" in page.data


def test_cancelling_a_finished_or_unknown_job_is_refused(app_and_settings):
    client, settings = app_and_settings
    uow = unit_of_work_factory(settings.database_url)
    with uow() as work:
        dataset = work.datasets.get_by_name("synth")
        job = work.training_jobs.add(TrainingJob(dataset_id=dataset.id, recipe="demo", out_dir="training/x",
                                                 status=TrainingStatus.SUCCEEDED))
        work.commit()
    response = client.post(f"/api/v1/training-jobs/{job.id}/cancel")
    assert response.status_code == 409 and "succeeded" in response.get_json()["error"]
    assert client.get(f"/api/v1/training-jobs/{job.id}").get_json()["status"] == "succeeded"
    assert client.post(f"/api/v1/training-jobs/{job.id}/resume").status_code == 409
    assert client.post("/api/v1/training-jobs/0123456789abcdef/cancel").status_code == 404
    assert read_queued_tasks(settings, settings.training_queue) == []


def test_activation_refusals_change_nothing(app_and_settings, tiny_model, tmp_path):
    client, settings = app_and_settings
    # a second model, registered by the CLI path: never compared with the serving one
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(tiny_model, other / "model.pt")
    import json
    meta = json.loads(tiny_model.with_suffix(".json").read_text())
    meta["recipe"]["name"] = "seed"
    (other / "model.json").write_text(json.dumps(meta))
    with open(other / "model.pt", "ab") as fh:
        fh.write(b"\0")  # a different file, so a different name
    candidate = register(settings, other / "model.pt", activate=False)
    before = client.get("/api/v1/models").get_json()["models"]
    history = client.get("/api/v1/model-activations").get_json()["activations"]

    assert client.post("/api/v1/models/nope-123/activate").status_code == 404
    response = client.post(f"/api/v1/models/{candidate.name}/activate", json={"note": "try"})
    assert response.status_code == 409 and "never compared" in response.get_json()["error"]
    response = client.post(f"/api/v1/models/{candidate.name}/activate", json={"force": True})
    assert response.status_code == 400 and "note" in response.get_json()["error"]
    # a missing checkpoint cannot serve, forced or not
    candidate.checkpoint_path.unlink()
    response = client.post(f"/api/v1/models/{candidate.name}/activate", json={"force": True, "note": "x"})
    assert response.status_code == 409 and "missing" in response.get_json()["error"]
    # nothing to roll back to: the serving model was the first one
    assert client.post("/api/v1/models/rollback").status_code == 409
    assert client.get("/api/v1/model-activations", query_string={"since": "yesterday"}).status_code == 400

    assert client.get("/api/v1/models").get_json()["models"] == before
    assert client.get("/api/v1/model-activations").get_json()["activations"] == history
