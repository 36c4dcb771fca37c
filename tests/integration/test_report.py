"""Evaluation metrics and the report writer (training.metrics, training.report).

Numbers are checked against independent computations: scikit-learn called directly,
numpy formulas written out, and small examples worked by hand.
"""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
from PIL import Image
from sklearn import metrics as skm

from training.metrics import (
    AGE_BANDS_MONTHS,
    all_metrics,
    metrics_by_age_band,
    metrics_by_sex,
    regression_metrics,
    stage_classification,
)
from training.report import write_ablation_table, write_report
from core.stages import STAGES


def _reject_nan(token: str):
    raise AssertionError(f"JSON contains {token}")


def strict_json_loads(text: str):
    return json.loads(text, parse_constant=_reject_nan)


@pytest.fixture
def fixed_predictions():
    """200 images over the RSNA age range, with noise and a mild bias, both sexes."""
    rng = np.random.default_rng(20251203)
    y_true = rng.uniform(1, 228, size=200).round(1)
    y_pred = y_true + rng.normal(2.0, 12.0, size=200)
    sexes = rng.choice(["M", "F"], size=200).tolist()
    return y_true, y_pred, sexes


# -- regression numbers -----------------------------------------------------------


def test_regression_metrics_match_sklearn_and_numpy_formulas(fixed_predictions):
    y_true, y_pred, _ = fixed_predictions
    result = regression_metrics(y_true, y_pred)

    error = y_pred - y_true
    hand_mae = np.mean(np.abs(error))
    hand_rmse = np.sqrt(np.mean(error**2))
    hand_r2 = 1 - np.sum(error**2) / np.sum((y_true - y_true.mean()) ** 2)

    assert result["n"] == 200
    assert result["mae"] == pytest.approx(skm.mean_absolute_error(y_true, y_pred), rel=1e-12)
    assert result["mae"] == pytest.approx(hand_mae, rel=1e-12)
    assert result["rmse"] == pytest.approx(math.sqrt(skm.mean_squared_error(y_true, y_pred)), rel=1e-12)
    assert result["rmse"] == pytest.approx(hand_rmse, rel=1e-12)
    assert result["r2"] == pytest.approx(skm.r2_score(y_true, y_pred), rel=1e-12)
    assert result["r2"] == pytest.approx(hand_r2, rel=1e-12)
    assert result["mean_signed_error"] == pytest.approx(np.mean(error), rel=1e-12)


def test_hand_worked_four_images():
    # errors (pred - true): +10, -5, 0, -10
    y_true = [100, 120, 150, 200]
    y_pred = [110, 115, 150, 190]
    sexes = ["M", "F", "M", "F"]

    overall = regression_metrics(y_true, y_pred)
    assert overall["mae"] == pytest.approx(25 / 4)  # 6.25
    assert overall["rmse"] == pytest.approx(7.5)  # sqrt((100 + 25 + 0 + 100) / 4)
    assert overall["mean_signed_error"] == pytest.approx(-1.25)
    # mean 142.5; SS_tot = 42.5² + 22.5² + 7.5² + 57.5² = 5675; SS_res = 225
    assert overall["r2"] == pytest.approx(1 - 225 / 5675)

    by_sex = metrics_by_sex(y_true, y_pred, sexes)
    assert by_sex["M"]["mae"] == pytest.approx(5.0)  # |+10|, |0|
    assert by_sex["F"]["mae"] == pytest.approx(7.5)  # |-5|, |-10|
    assert by_sex["gap_mae"] == pytest.approx(-2.5)
    assert by_sex["M"]["n"] == by_sex["F"]["n"] == 2


def test_metrics_by_sex_match_hand_computation(fixed_predictions):
    y_true, y_pred, sexes = fixed_predictions
    sex_array = np.array(sexes)
    result = metrics_by_sex(y_true, y_pred, sexes)

    for sex in ("M", "F"):
        chosen = sex_array == sex
        assert result[sex]["n"] == int(chosen.sum())
        assert result[sex]["mae"] == pytest.approx(np.mean(np.abs(y_pred[chosen] - y_true[chosen])))
    male_mae = np.mean(np.abs(y_pred[sex_array == "M"] - y_true[sex_array == "M"]))
    female_mae = np.mean(np.abs(y_pred[sex_array == "F"] - y_true[sex_array == "F"]))
    assert result["gap_mae"] == pytest.approx(male_mae - female_mae)


def test_metrics_by_sex_accepts_rsna_spellings():
    result = metrics_by_sex([10, 20, 30], [12, 20, 27], ["True", "false", "M"])
    assert result["M"]["n"] == 2 and result["F"]["n"] == 1
    assert result["M"]["mae"] == pytest.approx(2.5)
    assert result["F"]["mae"] == pytest.approx(0.0)


def test_age_bands_show_over_and_under_estimation():
    y_true = [30, 40, 200, 210]
    y_pred = [40, 46, 190, 196]
    bands = {row["band"]: row for row in metrics_by_age_band(y_true, y_pred)}

    assert list(bands) == ["0-4 y", "4-8 y", "8-12 y", "12-15 y", "15+ y"]
    assert bands["0-4 y"]["n"] == 2
    assert bands["0-4 y"]["mae"] == pytest.approx(8.0)
    assert bands["0-4 y"]["mean_signed_error"] == pytest.approx(8.0)  # over-estimation
    assert bands["15+ y"]["mae"] == pytest.approx(12.0)
    assert bands["15+ y"]["mean_signed_error"] == pytest.approx(-12.0)  # under-estimation
    assert bands["8-12 y"] == {**bands["8-12 y"], "n": 0, "mae": None, "mean_signed_error": None}


def test_age_bands_cover_every_image_once(fixed_predictions):
    y_true, y_pred, _ = fixed_predictions
    rows = metrics_by_age_band(y_true, y_pred)
    assert len(rows) == len(AGE_BANDS_MONTHS)
    assert sum(row["n"] for row in rows) == len(y_true)


# -- stage classification ---------------------------------------------------------


def _hand_stage(months: float) -> str:
    # the seed report's limits, written out independently of core.stages
    if months < 144:
        return "Child"
    return "Adolescent" if months < 216 else "Adult"


def test_stage_confusion_matrix_matches_sklearn(fixed_predictions):
    y_true, y_pred, _ = fixed_predictions
    true_stages = [_hand_stage(m) for m in y_true]
    pred_stages = [_hand_stage(m) for m in y_pred]
    result = stage_classification(y_true, y_pred)

    expected = skm.confusion_matrix(true_stages, pred_stages, labels=list(STAGES))
    assert result["labels"] == list(STAGES)
    assert result["confusion_matrix"]["matrix"] == expected.tolist()
    assert result["accuracy"] == pytest.approx(skm.accuracy_score(true_stages, pred_stages))
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        true_stages, pred_stages, labels=list(STAGES), zero_division=0
    )
    for index, stage in enumerate(STAGES):
        scores = result["per_class"][stage]
        assert scores["precision"] == pytest.approx(precision[index])
        assert scores["recall"] == pytest.approx(recall[index])
        assert scores["f1"] == pytest.approx(f1[index])
        assert scores["support"] == support[index]


def test_stage_classification_hand_worked():
    # true: Child, Child, Adolescent, Adult; predicted: Child, Adolescent, Adolescent, Adolescent
    result = stage_classification([100, 140, 150, 220], [110, 150, 150, 210])
    assert result["confusion_matrix"]["matrix"] == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]
    assert result["accuracy"] == pytest.approx(0.5)
    assert result["per_class"]["Adolescent"]["precision"] == pytest.approx(1 / 3)
    assert result["per_class"]["Adolescent"]["recall"] == pytest.approx(1.0)
    assert result["per_class"]["Child"]["recall"] == pytest.approx(0.5)
    assert result["per_class"]["Adult"]["support"] == 1


# -- edge cases ------------------------------------------------------------------


def test_absent_sex_and_stage_do_not_crash_and_stay_valid_json():
    # all female, no adult: "M" and "Adult" are absent
    metrics = all_metrics([30, 100, 150], [35, 90, 160], ["F", "F", "F"])

    assert metrics["by_sex"]["M"] == {"n": 0, "mae": None, "rmse": None, "r2": None, "mean_signed_error": None}
    assert metrics["by_sex"]["gap_mae"] is None
    assert metrics["by_sex"]["F"]["mae"] == pytest.approx(25 / 3)
    adult = metrics["stage_classification"]["per_class"]["Adult"]
    assert adult["support"] == 0
    assert metrics["stage_classification"]["confusion_matrix"]["matrix"][2] == [0, 0, 0]

    text = json.dumps(metrics, allow_nan=False)  # raises if any NaN slipped through
    assert strict_json_loads(text) == metrics


def test_single_image_has_no_r2():
    result = regression_metrics([100.0], [90.0])
    assert result["mae"] == pytest.approx(10.0)
    assert result["r2"] is None


def test_mismatched_lengths_are_rejected():
    with pytest.raises(ValueError):
        regression_metrics([1, 2, 3], [1, 2])
    with pytest.raises(ValueError):
        metrics_by_sex([1, 2], [1, 2], ["M"])


# -- report writer ----------------------------------------------------------------


def _overlay_png(colour: tuple[int, int, int]) -> bytes:
    image = Image.new("RGB", (64, 64), colour)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


REPORT_FIGURES = ("scatter.png", "error_by_sex.png", "error_by_age_band.png", "confusion_matrix.png")


def test_write_report_writes_every_file(tmp_path, fixed_predictions):
    y_true, y_pred, sexes = fixed_predictions
    overlays = [("Child, 5 y", _overlay_png((200, 30, 30))), ("Adolescent, 14 y", _overlay_png((30, 30, 200)))]

    returned = write_report(
        tmp_path / "report",
        y_true,
        y_pred,
        sexes,
        title="Test evaluation",
        model_info={"architecture": "resnet18", "epochs": 5, "val_loss": float("nan")},
        gradcam_examples=overlays,
        notes=["data is SYNTHETIC: these numbers say nothing about real radiographs"],
    )
    out = tmp_path / "report"

    for name in (*REPORT_FIGURES, "gradcam_examples.png", "gradcam_0.png", "gradcam_1.png"):
        path = out / name
        assert path.is_file(), name
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            assert image.format == "PNG"
        if name in REPORT_FIGURES or name == "gradcam_examples.png":
            assert path.stat().st_size > 5_000, name
    assert (out / "gradcam_1.png").read_bytes() == overlays[1][1]

    document = strict_json_loads((out / "metrics.json").read_text())
    for key, value in returned.items():
        assert document[key] == value
    assert document["regression"]["mae"] == pytest.approx(skm.mean_absolute_error(y_true, y_pred))
    assert document["model_info"] == {"architecture": "resnet18", "epochs": 5, "val_loss": None}
    assert len(document["predictions"]) == len(y_true)
    assert document["predictions"][0] == {"true": y_true[0], "pred": y_pred[0], "sex": sexes[0]}

    markdown = (out / "report.md").read_text()
    assert markdown.startswith("# Test evaluation")
    assert f"{returned['regression']['mae']:.2f}" in markdown
    assert "SYNTHETIC" in markdown
    assert "(confusion_matrix.png)" in markdown and "(gradcam_examples.png)" in markdown


def test_write_report_without_gradcam_or_one_sex(tmp_path):
    write_report(tmp_path, [20, 80, 150], [25, 70, 160], ["F", "F", "F"], title="t", model_info={})
    assert (tmp_path / "confusion_matrix.png").is_file()
    assert not (tmp_path / "gradcam_examples.png").exists()
    assert strict_json_loads((tmp_path / "metrics.json").read_text())["by_sex"]["gap_mae"] is None


# -- ablation ---------------------------------------------------------------------


def test_write_ablation_table(tmp_path):
    rows = [
        {"name": "full recipe", "mae": 11.33, "rmse": 14.48, "r2": 0.87, "epochs": 5, "train_seconds": 600.0},
        {"name": "no augmentation", "mae": 13.10, "rmse": 16.2, "r2": 0.81, "epochs": 5, "train_seconds": 580.0},
        {"name": "frozen backbone", "mae": 14.82, "r2": 0.79},
    ]
    write_ablation_table(tmp_path, rows)

    markdown = (tmp_path / "ablation.md").read_text()
    for row in rows:
        assert row["name"] in markdown
    assert "| no augmentation | 13.10 | +1.77 |" in markdown
    assert "| frozen backbone | 14.82 | +3.49 | - | 0.790 | - | - |" in markdown

    document = strict_json_loads((tmp_path / "ablation.json").read_text())
    assert document["reference"] == "full recipe"
    assert [row["name"] for row in document["rows"]] == [row["name"] for row in rows]
    assert [row["delta_mae"] for row in document["rows"]] == pytest.approx([0.0, 1.77, 3.49])

    with Image.open(tmp_path / "ablation.png") as image:
        image.verify()
    assert (tmp_path / "ablation.png").stat().st_size > 5_000
