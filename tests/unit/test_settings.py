from pathlib import Path

import pytest

from core.errors import UserFacingError
from core.settings import Settings


def test_defaults_are_the_embedded_single_machine_mode(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({})
    var = tmp_path.resolve() / "var"
    assert settings.var_dir == var
    assert settings.database_url == f"sqlite:///{var / 'boneage.db'}"
    assert settings.broker_url == "filesystem://"
    assert settings.embedded
    assert settings.files_dir == var / "files"
    assert settings.model_dir == var / "models"
    assert settings.queue_dir == var / "queue"
    assert settings.inference_queue == "inference"
    assert settings.max_upload_bytes == 20 * 1024 * 1024
    # `boneage up`'s first-start demo model: 300 synthetic images of 256 px, 300 CPU seconds
    assert (settings.demo_images, settings.demo_image_size, settings.demo_time_budget_s) == (300, 256, 300.0)


def test_environment_selects_postgres_and_redis(tmp_path):
    env = {
        "DATABASE_URL": "postgresql+psycopg://u@db/boneage",
        "BROKER_URL": "redis://redis:6379/0",
        "BONEAGE_VAR_DIR": str(tmp_path),
        "BONEAGE_FILES_DIR": str(tmp_path / "f"),
        "BONEAGE_MODEL_DIR": str(tmp_path / "m"),
        "BONEAGE_MAX_UPLOAD_MB": "2.5",
        "BONEAGE_DEVICE": "cuda:1",
    }
    settings = Settings.from_env(env)
    assert settings.database_url == env["DATABASE_URL"]
    assert settings.broker_url == env["BROKER_URL"]
    assert not settings.embedded
    assert settings.files_dir == tmp_path / "f"
    assert settings.model_dir == tmp_path / "m"
    assert settings.max_upload_bytes == int(2.5 * 1024 * 1024)
    assert settings.device == "cuda:1"


def test_demo_model_size_and_budget_come_from_the_environment(tmp_path):
    settings = Settings.from_env({"BONEAGE_VAR_DIR": str(tmp_path), "BONEAGE_DEMO_IMAGES": "24",
                                  "BONEAGE_DEMO_IMAGE_SIZE": "96", "BONEAGE_DEMO_TIME_BUDGET": "2.5"})
    assert (settings.demo_images, settings.demo_image_size, settings.demo_time_budget_s) == (24, 96, 2.5)


def test_round_trip_through_the_environment(tmp_path):
    settings = Settings.from_env({"BONEAGE_VAR_DIR": str(tmp_path), "BONEAGE_INFERENCE_QUEUE": "gpu_a",
                                  "BONEAGE_DEMO_IMAGES": "24", "BONEAGE_DEMO_TIME_BUDGET": "2.5"})
    assert Settings.from_env(settings.to_env()) == settings


@pytest.mark.parametrize(
    "name, value",
    [
        ("BONEAGE_MAX_UPLOAD_MB", "-1"),
        ("BONEAGE_MAX_UPLOAD_MB", "lots"),
        ("BONEAGE_INFERENCE_QUEUE", "a.b"),
        ("BONEAGE_DEMO_IMAGES", "0"),
        ("BONEAGE_DEMO_IMAGES", "2.5"),
        ("BONEAGE_DEMO_IMAGE_SIZE", "big"),
        ("BONEAGE_DEMO_TIME_BUDGET", "-3"),
    ],
)
def test_bad_values_are_explained(name, value, tmp_path):
    with pytest.raises(UserFacingError, match=name):
        Settings.from_env({"BONEAGE_VAR_DIR": str(tmp_path), name: value})


def test_ensure_dirs_creates_the_embedded_layout(tmp_path):
    settings = Settings.from_env({"BONEAGE_VAR_DIR": str(tmp_path / "var")})
    settings.ensure_dirs()
    for path in (settings.files_dir, settings.model_dir, settings.queue_messages_dir, Path(settings.var_dir)):
        assert path.is_dir()
