"""Batching across jobs with a real worker on PostgreSQL + Redis: studies queued while no
worker runs are claimed by the first message's run (FOR UPDATE SKIP LOCKED) and predicted as
one batch; the results equal those of a worker that runs one study at a time (to 0.01
months); a job taken into a batch is run once (its own message finds it finished); a
rejected image in the batch fails alone."""

from __future__ import annotations

import io
import re
import time

import numpy as np
import pytest
from PIL import Image

from db.session import unit_of_work_factory
from helpers import WorkerProcess, authed_client, make_png, register
from web import create_app

pytestmark = pytest.mark.slow

SEEDS = range(6)


def _blank_png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((200, 160), np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _submit(client, image: bytes, sex: str) -> str:
    response = client.post("/api/v1/assessments", data={"image": (io.BytesIO(image), "hand.png"), "sex": sex},
                           content_type="multipart/form-data")
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.get_json()["id"]


def _run_with_worker(settings, client, wait_finished, batch_size: int, name: str):
    """Queue every study first, then start a worker with this batch size; returns the
    finished rows and the worker's log."""
    images = [(make_png(size=160, seed=seed), "MF"[seed % 2]) for seed in SEEDS] + [(_blank_png(), "F")]
    ids = [_submit(client, image, sex) for image, sex in images]
    worker = WorkerProcess(settings, name, env={"BONEAGE_BATCH_SIZE": str(batch_size)}).start()
    try:
        bodies = [wait_finished(client, assessment_id, timeout=180) for assessment_id in ids]
        _wait_for_every_message(worker, len(ids))
    finally:
        worker.stop()
    with unit_of_work_factory(settings.database_url)() as uow:
        rows = {i: uow.assessments.get(i) for i in ids}
        for row in rows.values():
            uow.session.expunge(row)
    return ids, bodies, rows, worker.log()


def _wait_for_every_message(worker, count: int, timeout: float = 60) -> None:
    """Each study's own message has been handled (done or found finished)."""
    deadline = time.monotonic() + timeout
    while len(re.findall(r"Task boneage\.assess\[[^\]]+\] succeeded", worker.log())) < count:
        assert time.monotonic() < deadline, worker.log()[-3000:]
        time.sleep(0.2)


def test_a_batch_of_queued_studies_gives_the_results_of_one_at_a_time(service_settings, tiny_model, wait_finished):
    settings = service_settings
    register(settings, tiny_model)
    client = authed_client(create_app(settings))

    one_ids, one_bodies, one_rows, one_log = _run_with_worker(settings, client, wait_finished, 1, "one-at-a-time")
    ids, bodies, rows, log = _run_with_worker(settings, client, wait_finished, 16, "batching")

    # The batching worker took every queued study in the first message's run.
    assert f"assessment {ids[0]} runs in a batch of {len(ids)}" in log, log[-3000:]
    assert "runs in a batch" not in one_log

    for body in (bodies, one_bodies):
        assert [b["status"] for b in body] == ["succeeded"] * len(SEEDS) + ["failed"]
        assert body[-1]["error"].startswith("The image was not assessed: The image is blank")
    batched = [rows[i].bone_age_months for i in ids[:-1]]
    alone = [one_rows[i].bone_age_months for i in one_ids[:-1]]
    assert np.allclose(batched, alone, rtol=0, atol=0.01), (batched, alone)
    assert len(set(np.round(batched, 3))) > 1  # different images, different answers

    # Each job ran once: one attempt, one heatmap, and its own message found it finished.
    heatmaps = sorted(p.name for p in (settings.files_dir / "heatmaps").iterdir())
    for assessment_id in ids[:-1]:
        assert rows[assessment_id].attempts == 1
        assert [h for h in heatmaps if h.startswith(assessment_id)] == [f"{assessment_id}-1.png"]
    assert rows[ids[-1]].attempts == 1 and rows[ids[-1]].heatmap_path is None
    for assessment_id in ids[1:]:
        assert f"assessment {assessment_id} is already" in log, log[-3000:]
