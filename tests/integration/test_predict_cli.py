"""`boneage predict` without --model: the active model, or a message that says why not."""

from __future__ import annotations

import pytest

import migrations
from boneage.cli import main
from core.errors import UserFacingError
from helpers import make_png, make_settings, register


def use(monkeypatch, settings):
    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)


def test_an_unreachable_database_is_reported_as_such_not_as_no_model(monkeypatch, tmp_path):
    use(monkeypatch, make_settings(tmp_path, DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/none"))
    (tmp_path / "hand.png").write_bytes(make_png())
    from boneage.model_cli import _default_model

    with pytest.raises(UserFacingError, match="could not be read from the database.*Fix DATABASE_URL"):
        _default_model()


def test_no_active_model_says_what_to_do(monkeypatch, tmp_path):
    settings = make_settings(tmp_path)
    migrations.upgrade(settings.database_url)
    use(monkeypatch, settings)
    from boneage.model_cli import _default_model

    with pytest.raises(UserFacingError, match="no active model is registered: pass --model PATH"):
        _default_model()


@pytest.mark.slow
def test_predict_uses_the_active_model(monkeypatch, tmp_path, tiny_model, capsys):
    settings = make_settings(tmp_path)
    migrations.upgrade(settings.database_url)
    model = register(settings, tiny_model)
    use(monkeypatch, settings)
    image = tmp_path / "hand.png"
    image.write_bytes(make_png(size=128))
    assert main(["predict", str(image), "--sex", "female", "--chronological-age", "120"]) == 0
    out = capsys.readouterr().out
    assert f"model:    {model.name}" in out and "not for clinical use" in out
    assert (tmp_path / "hand.heatmap.png").is_file()
