"""The training CLI without a worker: register a dataset, refuse bad jobs (exit 2,
nothing queued), queue one (its message waits on the training queue), cancel it, and
`models activate|rollback|history`."""

from __future__ import annotations

import shutil

from boneage.cli import main
from helpers import read_queued_tasks, register


def _cli(monkeypatch, settings, capsys, *argv):
    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


def test_training_cli(monkeypatch, capsys, embedded_settings, synthetic_dataset, tiny_model):
    s = embedded_settings
    shutil.copytree(synthetic_dataset, s.datasets_dir / "synth")
    serving = register(s, tiny_model)

    code, out = _cli(monkeypatch, s, capsys, "datasets", "register", "synth")
    assert code == 0 and "registered dataset synth" in out and "SYNTHETIC" in out
    code, out = _cli(monkeypatch, s, capsys, "datasets", "register", "/etc")
    assert code == 2 and "outside the data root" in out

    code, out = _cli(monkeypatch, s, capsys, "train-job", "queue", "--dataset", "synth", "--recipe", "nope",
                     "--time-budget", "-3")
    assert code == 2 and "nothing was queued" in out and "--recipe" in out and "--time-budget" in out
    assert read_queued_tasks(s, s.training_queue) == []

    code, out = _cli(monkeypatch, s, capsys, "train-job", "queue", "--dataset", "synth", "--recipe", "demo",
                     "--epochs", "1")
    assert code == 0
    job_id = out.split("queued training job ")[1].split()[0]
    assert read_queued_tasks(s, s.training_queue) == [("boneage.train", [job_id])]
    code, out = _cli(monkeypatch, s, capsys, "train-job", "cancel", job_id)
    assert code == 0 and "cancelled" in out
    code, out = _cli(monkeypatch, s, capsys, "train-job", "cancel", job_id)
    assert code == 2 and "only a queued or running job" in out

    code, out = _cli(monkeypatch, s, capsys, "models")
    assert code == 0 and f"* {serving.name}" in out
    code, out = _cli(monkeypatch, s, capsys, "models", "rollback")
    assert code == 2 and "no previous model" in out
    code, out = _cli(monkeypatch, s, capsys, "models", "activate", serving.name)
    assert code == 0 and "already serves" in out
    code, out = _cli(monkeypatch, s, capsys, "models", "history", "--since", "2000-01-01")
    assert code == 0 and serving.name in out and "activate" in out
