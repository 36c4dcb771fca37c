"""A DICOM study with a patient's name, id and birth date goes through the real service
(the API, a real Celery worker process, PostgreSQL + Redis and embedded SQLite + file
queue), and afterwards not one stored byte and not one log line carries them: the files
directory and everything else under the service's var directory, every row of every
table, the queued and result messages, and the web and worker logs (issue 11)."""

from __future__ import annotations

import io
import logging
import uuid

import pytest

import migrations
from helpers import (authed_client, database_rows, fresh_postgres_schema, make_dicom, make_settings, register,
                     stored_files)
from web import create_app

pytestmark = pytest.mark.slow

NAME, PATIENT_ID, BIRTH_DATE = "Doe^Jane", "MRN-4711-XYZ", "20140327"
IDENTIFYING = [b"Doe", b"Jane", PATIENT_ID.encode(), BIRTH_DATE.encode(), b"2014-03-27", b"ACC-99887766",
               b"St Example Childrens Hospital", b"House^Gregory", b"XRAY-ROOM-7"]


@pytest.fixture(scope="module")
def postgres_dicom_url(postgres_server_url):
    with fresh_postgres_schema(postgres_server_url, "boneage_dicom") as url:
        yield url


@pytest.fixture(scope="module", params=["postgres+redis", "embedded"])
def service(request, tmp_path_factory, tiny_model, start_worker):
    root = tmp_path_factory.mktemp("dicom-" + request.param.replace("+", "-"))
    if request.param == "embedded":
        settings = make_settings(root)
    else:
        suffix = uuid.uuid4().hex[:8]
        settings = make_settings(root, DATABASE_URL=request.getfixturevalue("postgres_dicom_url"),
                                 BROKER_URL=request.getfixturevalue("redis_url"),
                                 BONEAGE_INFERENCE_QUEUE=f"inference_{suffix}", BONEAGE_CPU_QUEUE=f"cpu_{suffix}")
    migrations.upgrade(settings.database_url)
    register(settings, tiny_model)
    worker = start_worker(settings, "dicom-worker")
    yield settings, worker
    worker.stop()


def _phi_dicom() -> bytes:
    original_uid = "1.2.826.0.1.3680043.8.498.4711"
    return make_dicom(photometric="MONOCHROME1", modality="CR", BodyPartExamined="HAND",
                      PatientName=NAME, PatientID=PATIENT_ID, PatientBirthDate=BIRTH_DATE, PatientSex="F",
                      PatientAge="Jane Doe 10y",  # malformed: pydicom would echo it into the logs
                      StudyDate="20241103", AccessionNumber="ACC-99887766",
                      InstitutionName="St Example Childrens Hospital", ReferringPhysicianName="House^Gregory",
                      StationName="XRAY-ROOM-7", StudyInstanceUID=original_uid + ".1",
                      SeriesInstanceUID=original_uid + ".2", WindowCenter=2048, WindowWidth=4096)


def _searched(where: str, data: bytes) -> list[bytes]:
    """What to look for in one stored thing. A PNG's pixels are deflate-compressed and a
    checkpoint's weights are raw floats: in either, any three given bytes turn up by chance
    (about three times in a 45 MB model). There, the readable parts (a PNG's text chunks, a
    checkpoint's pickled metadata and member names) are searched for everything and the
    whole file for the values of 8 characters or more."""
    if data.startswith(b"PK\x03\x04"):  # a torch checkpoint (a zip archive)
        import zipfile

        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            readable = b"\n".join([name.encode() for name in archive.namelist()]
                                  + [archive.read(name) for name in archive.namelist() if name.endswith(".pkl")])
        assert not any(what in readable for what in IDENTIFYING), f"identifying text in {where}'s metadata"
        return [what for what in IDENTIFYING if len(what) >= 8]
    if not data.startswith(b"\x89PNG"):
        return IDENTIFYING
    from PIL import Image

    chunks = repr(Image.open(io.BytesIO(data)).info).encode()
    assert not any(what in chunks for what in IDENTIFYING), f"identifying text in {where}'s metadata"
    return [what for what in IDENTIFYING if len(what) >= 8]


def _redis_values(settings) -> list[bytes]:
    import redis

    client = redis.Redis.from_url(settings.broker_url)
    values = list(client.lrange(settings.inference_queue, 0, -1))
    for key in client.scan_iter("celery-task-meta-*"):
        values.append(client.get(key) or b"")
    return values


def test_no_stored_byte_and_no_log_line_names_the_patient(service, caplog, wait_finished):
    settings, worker = service
    upload = _phi_dicom()
    assert NAME.encode() in upload  # the test's own premise
    caplog.clear()  # pydicom may have warned about the malformed age while the test built the file
    caplog.set_level(logging.DEBUG)
    client = authed_client(create_app(settings), "submitter")

    # What the form does first: read the header (nothing stored), then submit.
    tags = client.post("/api/v1/dicom/tags", data={"image": (io.BytesIO(upload), "IM000001")},
                       content_type="multipart/form-data").get_json()
    assert tags["sex"] == "F" and tags["chronological_age_months"] == pytest.approx(127.28)
    response = client.post("/api/v1/assessments", content_type="multipart/form-data",
                           data={"image": (io.BytesIO(upload), "Doe_Jane.dcm"), "sex": tags["sex"],
                                 "birth_date": tags["birth_date"], "study_date": tags["study_date"]})
    assert response.status_code == 202, response.get_json()
    body = wait_finished(client, response.get_json()["id"])
    assert body["status"] == "succeeded", body["error"]
    assert body["chronological_age_months"] == pytest.approx(127.28)
    assert client.get(body["image_url"]).status_code == 200  # the stored, de-identified DICOM still shows

    stored = {f"file {path}": data for path, data in stored_files(settings.var_dir).items()}
    stored.update({f"table {table}": "\n".join(rows).encode()
                   for table, rows in database_rows(settings.database_url).items()})
    if not settings.embedded:
        stored.update({f"redis {i}": value for i, value in enumerate(_redis_values(settings))})
    stored["worker log"] = worker.log().encode()
    stored["web log"] = "\n".join(record.getMessage() for record in caplog.records).encode()
    assert any(path.startswith("file files/uploads/") and path.endswith(".dcm") for path in stored)
    assert any(b"127.28" in text for name, text in stored.items() if name == "table assessments")
    found = [f"{what!r} in {where}" for where, data in stored.items() for what in _searched(where, data)
             if what in data]
    assert not found, "identifying values were stored or logged:\n" + "\n".join(found)
    assert not any(b"1.2.826.0.1.3680043.8.498.4711" in data for data in stored.values())  # UIDs replaced
