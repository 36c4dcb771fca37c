"""The embedded mode's queue writes whole message files only (services.filesystem_broker)."""

from __future__ import annotations

import json

from kombu import Connection

from core.settings import Settings
from services.filesystem_broker import TRANSPORT, Channel
from services.queue import celery_config


def _connection(folder):
    return Connection(
        "filesystem://",
        transport=TRANSPORT,
        transport_options={"data_folder_in": str(folder), "data_folder_out": str(folder),
                           "processed_folder": str(folder / "processed"), "store_processed": False},
    )


def test_a_message_is_written_whole_and_read_back(tmp_path):
    with _connection(tmp_path) as connection:
        channel = connection.default_channel
        assert isinstance(channel, Channel)
        channel._put("inference", {"body": "hello"})
        files = [p for p in tmp_path.iterdir() if p.is_file()]
        assert [p.name.endswith(".inference.msg") for p in files] == [True]
        assert json.loads(files[0].read_text()) == {"body": "hello"}
        assert channel._get("inference") == {"body": "hello"}
        assert not any(p.is_file() for p in tmp_path.iterdir())


def test_a_partial_file_is_never_taken_for_a_message(tmp_path):
    """What kombu's own transport left visible while writing: the reader must skip it."""
    (tmp_path / ".123_abc.inference.msg.part").write_bytes(b"")
    with _connection(tmp_path) as connection:
        channel = connection.default_channel
        channel._put("inference", {"n": 1})
        assert channel._get("inference") == {"n": 1}
    assert (tmp_path / ".123_abc.inference.msg.part").exists()


def test_the_embedded_celery_configuration_uses_it(tmp_path):
    settings = Settings.from_env({"BONEAGE_VAR_DIR": str(tmp_path / "var")})
    assert settings.embedded
    assert celery_config(settings)["broker_transport"] == TRANSPORT
    services = Settings.from_env({"BONEAGE_VAR_DIR": str(tmp_path / "var"), "BROKER_URL": "redis://127.0.0.1:6379/0",
                                  "DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1/test"})
    assert "broker_transport" not in celery_config(services)
