"""`boneage evaluate` and `boneage ablate` end to end on synthetic data."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from training.ablate import ablation_variants, run_ablation
from training.evaluate import evaluate

pytestmark = pytest.mark.slow


def test_evaluate_uses_the_held_out_split_and_writes_the_report(tiny_model, synthetic_dataset, tmp_path):
    metrics = evaluate(tiny_model, synthetic_dataset, tmp_path, progress=False)
    metadata = json.loads(tiny_model.with_suffix(".json").read_text())
    assert metrics["regression"]["n"] == len(metadata["split"]["test"])
    assert metrics["regression"]["mae"] == pytest.approx(metadata["metrics"]["test_mae"], rel=1e-4)
    for name in ("report.md", "metrics.json", "scatter.png", "error_by_sex.png", "error_by_age_band.png",
                 "confusion_matrix.png", "gradcam_examples.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    stored = json.loads((tmp_path / "metrics.json").read_text())
    info = stored["model_info"]
    assert 0 <= info["gradcam_mass_in_age_regions"] <= 1 and 0 < info["age_region_area_share"] < 1
    report = (tmp_path / "report.md").read_text()
    assert "SYNTHETIC" in report and "not for clinical use" in report


def test_evaluate_command_on_unseen_data_uses_all_of_it(tiny_model, tmp_path):
    from training.synth import generate_dataset

    unseen = generate_dataset(tmp_path / "unseen", 12, size=96, seed=99, progress=False)
    result = subprocess.run([sys.executable, "-m", "boneage.cli", "evaluate", str(tiny_model), "--data", str(unseen),
                             "--out", str(tmp_path / "report")], capture_output=True, text=True, check=True)
    assert "on 12 held-out studies" in result.stdout


def test_ablation_rows_and_table(synthetic_dataset, tmp_path):
    assert [name for name, _ in ablation_variants("seed", None)] == [
        "full recipe", "without augmentation", "frozen backbone", "random initialisation",
        "reduced image size (128 px)"]
    # without ImageNet weights the full recipe already starts from random weights
    assert "random initialisation" not in [name for name, _ in ablation_variants("seed", "random")]
    rows = run_ablation(synthetic_dataset, tmp_path, recipe="demo", epochs=1, limit=24, progress=False)
    assert [row["name"] for row in rows] == ["full recipe", "without augmentation", "frozen backbone",
                                             "reduced image size (128 px)"]
    assert all(row["mae"] >= 0 for row in rows)
    assert "frozen backbone" in (tmp_path / "ablation.md").read_text()
