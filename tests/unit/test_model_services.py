"""register_model, activate_model and ensure_demo_model with fakes (the audit: test_audit_services.py)."""

from __future__ import annotations

import json

import pytest

from core.errors import UserFacingError
from core.hashing import file_sha256
from core.model_identity import SYNTHETIC_LABEL, model_label, model_name
from services.demo_model import ensure_demo_model
from services.model_registry import activate_model, list_models, register_model

from fakes import FakeUnitOfWork


def write_checkpoint(folder, *, synthetic=True, recipe="demo", content=b"weights") -> "Path":
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.pt").write_bytes(content)
    (folder / "model.json").write_text(json.dumps({"recipe": {"name": recipe}, "synthetic": synthetic,
                                                   "metrics": {"test_mae": 9.5}}))
    return folder / "model.pt"


def test_register_copies_the_checkpoint_names_it_by_hash_and_activates(tmp_path):
    uow = FakeUnitOfWork()
    checkpoint = write_checkpoint(tmp_path / "run", synthetic=False, recipe="default")
    model = register_model(checkpoint, uow=uow, model_dir=tmp_path / "models", activate=True)
    assert model.name == model_name("default", file_sha256(checkpoint)) == f"default-{file_sha256(checkpoint)[:8]}"
    assert model.created and model.is_active and model.trained_on == "real" and model.label is None
    assert model.checkpoint_path == tmp_path / "models" / model.name / "model.pt"
    assert model.checkpoint_path.read_bytes() == b"weights"
    assert uow.models.active().metrics == {"test_mae": 9.5}


def test_a_synthetic_model_keeps_its_warning_whatever_label_is_given(tmp_path):
    uow = FakeUnitOfWork()
    checkpoint = write_checkpoint(tmp_path / "run")
    model = register_model(checkpoint, uow=uow, model_dir=tmp_path / "models", label="research use only")
    assert model.label == f"{SYNTHETIC_LABEL}; research use only"
    assert register_model(checkpoint, uow=uow, model_dir=tmp_path / "models").label == model.label


def test_registering_again_with_another_label_updates_it_and_says_so(tmp_path):
    uow = FakeUnitOfWork()
    checkpoint = write_checkpoint(tmp_path / "run", synthetic=False)
    register_model(checkpoint, uow=uow, model_dir=tmp_path / "models", label="first")
    again = register_model(checkpoint, uow=uow, model_dir=tmp_path / "models", label="second")
    assert not again.created and again.label_changed and again.label == "second"
    same = register_model(checkpoint, uow=uow, model_dir=tmp_path / "models", label="second")
    assert not same.label_changed and len(uow.models.all()) == 1


def test_register_explains_a_missing_checkpoint_or_sidecar(tmp_path):
    with pytest.raises(UserFacingError, match="no checkpoint"):
        register_model(tmp_path / "nope.pt", uow=FakeUnitOfWork(), model_dir=tmp_path)
    (tmp_path / "model.pt").write_bytes(b"x")
    with pytest.raises(UserFacingError, match="model.json is missing"):
        register_model(tmp_path / "model.pt", uow=FakeUnitOfWork(), model_dir=tmp_path / "models")


def test_activate_switches_the_one_active_model(tmp_path):
    uow = FakeUnitOfWork()
    first = register_model(write_checkpoint(tmp_path / "a", content=b"a"), uow=uow, model_dir=tmp_path / "m",
                           activate=True)
    second = register_model(write_checkpoint(tmp_path / "b", content=b"b"), uow=uow, model_dir=tmp_path / "m")
    activate_model(second.name, uow=uow)
    assert [(m.name, m.is_active) for m in list_models(uow=uow)] == [(first.name, False), (second.name, True)]
    with pytest.raises(UserFacingError, match="no registered model is named 'nope'"):
        activate_model("nope", uow=uow)


def test_model_label_rule():
    assert model_label(None, synthetic=False) is None
    assert model_label("  ", synthetic=True) == SYNTHETIC_LABEL
    assert model_label(SYNTHETIC_LABEL, synthetic=True) == SYNTHETIC_LABEL
    assert model_label("validated on site data", synthetic=False) == "validated on site data"


def test_the_demo_model_is_trained_on_synthetic_data_once_and_activated(tmp_path):
    uow, calls = FakeUnitOfWork(), []

    def generate(out, n, **kw):
        calls.append(("generate", n))
        out.mkdir(parents=True)
        (out / "boneage-training-dataset.csv").write_text("id,boneage,male\n")

    def train(data_dir, recipe, out, **kw):
        calls.append(("train", recipe, kw["time_budget_s"]))
        return write_checkpoint(out)

    model = ensure_demo_model(uow=uow, var_dir=tmp_path, model_dir=tmp_path / "models", generate=generate,
                              train=train, say=lambda _: None)
    assert calls == [("generate", 300), ("train", "demo", 300)]
    assert model.is_active and model.trained_on == "synthetic" and model.label == SYNTHETIC_LABEL
    assert ensure_demo_model(uow=uow, var_dir=tmp_path, model_dir=tmp_path / "models", generate=generate,
                             train=train, say=lambda _: None) is None
    assert len(calls) == 2


def test_register_a_folder_reads_its_model_pt_and_does_not_activate_by_default(tmp_path):
    uow = FakeUnitOfWork()
    checkpoint = write_checkpoint(tmp_path / "run", recipe="seed", synthetic=False)
    model = register_model(tmp_path / "run", uow=uow, model_dir=tmp_path / "models")
    stored = uow.models.get_by_name(model.name)
    assert not model.is_active and not stored.is_active and uow.models.active() is None
    assert (stored.recipe, stored.checkpoint_sha256) == ("seed", file_sha256(checkpoint))
    assert (tmp_path / "models" / model.name / "model.json").is_file()


def test_a_checkpoint_already_in_the_model_directory_is_not_copied(tmp_path):
    uow = FakeUnitOfWork()
    checkpoint = write_checkpoint(tmp_path / "models" / "mine")
    model = register_model(checkpoint, uow=uow, model_dir=tmp_path / "models")
    assert model.checkpoint_path == checkpoint and len(list((tmp_path / "models").iterdir())) == 1
