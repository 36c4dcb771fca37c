import pytest

from core.hashing import sha256_hex
from db.files import FileStore


def test_uploads_are_stored_once_by_content_hash(tmp_path):
    store = FileStore(tmp_path)
    data = b"\x89PNG\r\n\x1a\n" + b"x" * 10
    digest, relative = store.put_upload(data)
    assert digest == sha256_hex(data)
    assert relative == f"uploads/{digest[:2]}/{digest}.png"
    assert store.read(relative) == data
    assert store.put_upload(data) == (digest, relative)
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [f"{digest}.png"]


def test_paths_cannot_escape_the_store(tmp_path):
    with pytest.raises(ValueError):
        FileStore(tmp_path / "files").path("../secret")
