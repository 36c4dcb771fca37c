"""The file store's two backends (db/files.py) behave alike: a folder, and an S3 bucket
on a real S3 server of the tests' own (moto's server mode, over HTTP)."""

import pytest

from core.hashing import sha256_hex
from db.files import LocalFileStore, S3FileStore, open_file_store
from helpers import make_settings

PNG = b"\x89PNG\r\n\x1a\n" + b"x" * 10


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalFileStore(tmp_path / "files")
    server = request.getfixturevalue("s3_server")
    return S3FileStore(server.new_bucket(), endpoint_url=server.endpoint_url)


def test_uploads_are_stored_once_by_content_hash(store):
    digest, relative = store.put_upload(PNG)
    assert digest == sha256_hex(PNG)
    assert relative == f"uploads/{digest[:2]}/{digest}.png"
    assert store.read(relative) == PNG
    assert store.put_upload(PNG) == (digest, relative)


def test_read_exists_delete(store):
    relative = store.put_heatmap("abc-1", PNG)
    assert relative == "heatmaps/abc-1.png"
    assert store.exists(relative) and store.read(relative) == PNG
    store.delete(relative)
    assert not store.exists(relative)
    with pytest.raises(FileNotFoundError):
        store.read(relative)
    store.delete(relative)  # deleting what is not there is not an error


def test_paths_cannot_escape_the_store(store):
    for bad in ("../secret", "/etc/passwd", "uploads/../../x", ""):
        with pytest.raises(ValueError):
            store.write(bad, b"x")
        with pytest.raises(ValueError):
            store.read(bad)


def test_a_report_folder_is_published_into_the_store(store, tmp_path):
    report = tmp_path / "scratch" / "report"
    (report / "figures").mkdir(parents=True)
    (report / "report.md").write_text("# report")
    (report / "figures" / "scatter.png").write_bytes(PNG)
    store.publish_dir(report, "training/job1/report")
    assert store.read("training/job1/report/report.md") == b"# report"
    assert store.read("training/job1/report/figures/scatter.png") == PNG


def test_a_local_report_written_in_place_is_left_alone(tmp_path):
    store = LocalFileStore(tmp_path / "files")
    report = tmp_path / "files" / "training" / "job1" / "report"
    report.mkdir(parents=True)
    (report / "report.md").write_text("# report")
    store.publish_dir(report, "training/job1/report")
    assert store.read("training/job1/report/report.md") == b"# report"


def test_the_setting_picks_the_backend(tmp_path, s3_server):
    local = open_file_store(make_settings(tmp_path / "a"))
    assert isinstance(local, LocalFileStore) and local.root == tmp_path / "a" / "var" / "files"
    url = s3_server.new_bucket()
    bucket = open_file_store(make_settings(tmp_path / "b", BONEAGE_FILES_URL=url,
                                           BONEAGE_S3_ENDPOINT_URL=s3_server.endpoint_url))
    assert isinstance(bucket, S3FileStore) and bucket.prefix == "files"
    bucket.put_heatmap("x-1", PNG)
    assert s3_server.objects(url) == {"heatmaps/x-1.png": PNG}
    # one client per process and configuration
    assert open_file_store(make_settings(tmp_path / "c", BONEAGE_FILES_URL=url,
                                         BONEAGE_S3_ENDPOINT_URL=s3_server.endpoint_url)) is bucket


@pytest.mark.parametrize("value", ["bucket/prefix", "s3://", "http://minio:9000/bucket", "file:///tmp/x"])
def test_a_files_url_that_is_not_s3_is_refused_with_what_to_do(tmp_path, value):
    from core.errors import UserFacingError

    with pytest.raises(UserFacingError, match="s3://bucket"):
        make_settings(tmp_path, BONEAGE_FILES_URL=value)
