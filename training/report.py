"""Evaluation report: metrics.json, report.md and PNG figures, as in the seed report.

write_report reproduces the seed report's analyses for one set of predictions:
regression metrics, MAE by sex and the gap, error by age band (over-estimation in
early childhood, under-estimation in late adolescence), stage classification with its
confusion matrix, and Grad-CAM examples. write_ablation_table writes the ablation study.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: training runs and workers have no display

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402

from training.metrics import SEXES, all_metrics, json_ready  # noqa: E402
from core.stages import normalise_sex  # noqa: E402

FIGURE_DPI = 110
SEX_NAMES = {"M": "Male", "F": "Female"}
SEX_COLOURS = {"M": "tab:blue", "F": "tab:red"}


# -- evaluation report --------------------------------------------------------


def write_report(
    out_dir,
    y_true,
    y_pred,
    sexes,
    *,
    title: str,
    model_info: dict,
    gradcam_examples: Sequence[tuple[str, bytes]] = (),
    notes: Sequence[str] = (),
) -> dict:
    """Write metrics.json, report.md and the figures into out_dir; return all_metrics().

    gradcam_examples: (caption, PNG bytes of an overlay) pairs; each is saved as
    gradcam_<i>.png (i from 0) and all are composed into gradcam_examples.png.
    notes: warnings shown at the top of report.md (e.g. "data is SYNTHETIC").
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    true = np.asarray(y_true, dtype=float).reshape(-1)
    pred = np.asarray(y_pred, dtype=float).reshape(-1)
    sex_codes = [normalise_sex(sex) for sex in sexes]
    metrics = all_metrics(true, pred, sex_codes)

    figures = {
        "Predicted vs true bone age": _plot_scatter(out / "scatter.png", true, pred, sex_codes),
        "Absolute error by sex": _plot_error_by_sex(out / "error_by_sex.png", true, pred, sex_codes),
        "Error by age band": _plot_error_by_age_band(out / "error_by_age_band.png", metrics),
        "Stage confusion matrix": _plot_confusion_matrix(out / "confusion_matrix.png", metrics),
    }
    if gradcam_examples:
        figures["Grad-CAM examples"] = _write_gradcam_examples(out, gradcam_examples)

    document = {
        "title": title,
        "model_info": json_ready(dict(model_info)),
        "notes": list(notes),
        **metrics,
        "figures": {caption: path.name for caption, path in figures.items()},
        "predictions": _prediction_rows(true, pred, sex_codes),
    }
    _write_json(out / "metrics.json", document)
    (out / "report.md").write_text(
        _report_markdown(title, document["model_info"], metrics, figures, notes), encoding="utf-8"
    )
    return metrics


def _prediction_rows(true: np.ndarray, pred: np.ndarray, sexes: list[str]) -> list[dict]:
    return [
        {"true": float(t), "pred": float(p), "sex": sex} for t, p, sex in zip(true, pred, sexes)
    ]


def _report_markdown(
    title: str, model_info: dict, metrics: dict, figures: dict[str, Path], notes: Iterable[str]
) -> str:
    sections = [
        f"# {title}",
        _notes_section(notes),
        _model_info_section(model_info),
        _regression_section(metrics["regression"]),
        _sex_section(metrics["by_sex"]),
        _age_band_section(metrics["by_age_band"]),
        _stage_section(metrics["stage_classification"]),
        _figures_section(figures),
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def _notes_section(notes: Iterable[str]) -> str:
    return "\n".join(f"> **Note:** {note}" for note in notes)


def _model_info_section(model_info: dict) -> str:
    rows = [[str(key), _plain(value)] for key, value in model_info.items()]
    return "## Model\n\n" + (_markdown_table(["Item", "Value"], rows) if rows else "(none given)")


def _regression_section(regression: dict) -> str:
    rows = [
        ["Images", str(regression["n"])],
        ["MAE", _months(regression["mae"])],
        ["RMSE", _months(regression["rmse"])],
        ["R²", _number(regression["r2"], digits=3)],
        ["Mean signed error (pred - true)", _months(regression["mean_signed_error"], signed=True)],
    ]
    return "## Regression metrics\n\n" + _markdown_table(["Metric", "Value"], rows)


def _sex_section(by_sex: dict) -> str:
    rows = [
        [
            SEX_NAMES[sex],
            str(by_sex[sex]["n"]),
            _number(by_sex[sex]["mae"]),
            _number(by_sex[sex]["rmse"]),
            _number(by_sex[sex]["mean_signed_error"], signed=True),
        ]
        for sex in SEXES
    ]
    table = _markdown_table(["Sex", "n", "MAE (months)", "RMSE (months)", "Signed error (months)"], rows)
    gap = f"Gap (MAE male - MAE female): {_months(by_sex['gap_mae'], signed=True)}"
    return "## MAE by sex\n\n" + table + "\n\n" + gap


def _age_band_section(bands: list[dict]) -> str:
    rows = [
        [band["band"], str(band["n"]), _number(band["mae"]), _number(band["mean_signed_error"], signed=True)]
        for band in bands
    ]
    table = _markdown_table(["True age band", "n", "MAE (months)", "Signed error (months)"], rows)
    explanation = "Signed error is prediction - truth: positive = over-estimation, negative = under-estimation."
    return "## Error by age band\n\n" + table + "\n\n" + explanation


def _stage_section(stages: dict) -> str:
    labels = stages["labels"]
    header = ["Stage", "Precision", "Recall", "F1", "Support"]
    rows = [_scores_row(stage, stages["per_class"][stage]) for stage in labels]
    rows.append(["Macro avg", *_scores_row("", stages["macro_avg"])[1:]])
    rows.append(["Weighted avg", *_scores_row("", stages["weighted_avg"])[1:]])
    report = _markdown_table(header, rows)
    accuracy = f"Accuracy: {_number(stages['accuracy'], digits=4)} ({stages['n']} images)"
    matrix = stages["confusion_matrix"]["matrix"]
    confusion = _markdown_table(
        ["True \\ Predicted", *labels],
        [[label, *(str(count) for count in row)] for label, row in zip(labels, matrix)],
    )
    return (
        "## Developmental stage classification\n\n"
        + report
        + "\n\n"
        + accuracy
        + "\n\n### Confusion matrix (rows: true stage, columns: predicted stage)\n\n"
        + confusion
    )


def _scores_row(name: str, scores: dict) -> list[str]:
    return [
        name,
        _number(scores["precision"]),
        _number(scores["recall"]),
        _number(scores["f1"]),
        str(scores["support"]),
    ]


def _figures_section(figures: dict[str, Path]) -> str:
    links = "\n\n".join(f"![{caption}]({path.name})" for caption, path in figures.items())
    return "## Figures\n\n" + links


# -- figures -------------------------------------------------------------------


def _plot_scatter(path: Path, true: np.ndarray, pred: np.ndarray, sexes: list[str]) -> Path:
    figure = Figure(figsize=(6, 6))
    axes = figure.subplots()
    sex_array = np.asarray(sexes)
    for sex in SEXES:
        chosen = sex_array == sex
        if chosen.any():
            axes.scatter(true[chosen], pred[chosen], s=10, alpha=0.6, color=SEX_COLOURS[sex], label=SEX_NAMES[sex])
    low = float(min(true.min(), pred.min(), 0.0))
    high = float(max(true.max(), pred.max()))
    axes.plot([low, high], [low, high], "k--", linewidth=1, label="identity")
    axes.set(xlabel="True bone age (months)", ylabel="Predicted bone age (months)", title="Predicted vs true")
    axes.set_aspect("equal", adjustable="datalim")
    axes.legend(loc="upper left")
    return _save(figure, path)


def _plot_error_by_sex(path: Path, true: np.ndarray, pred: np.ndarray, sexes: list[str]) -> Path:
    figure = Figure(figsize=(5, 4))
    axes = figure.subplots()
    absolute_error = np.abs(pred - true)
    sex_array = np.asarray(sexes)
    present = [sex for sex in SEXES if (sex_array == sex).any()]
    axes.boxplot([absolute_error[sex_array == sex] for sex in present], showmeans=True)
    axes.set_xticks(
        range(1, len(present) + 1),
        [f"{SEX_NAMES[sex]} (n={(sex_array == sex).sum()})" for sex in present],
    )
    axes.set(ylabel="Absolute error (months)", title="Absolute error by sex (triangle = MAE)")
    return _save(figure, path)


def _plot_error_by_age_band(path: Path, metrics: dict) -> Path:
    bands = metrics["by_age_band"]
    labels = [f"{band['band']}\n(n={band['n']})" for band in bands]
    positions = np.arange(len(bands))
    figure = Figure(figsize=(8, 6))
    mae_axes, signed_axes = figure.subplots(2, 1, sharex=True)
    mae_axes.bar(positions, [_zero_if_none(band["mae"]) for band in bands], color="tab:gray")
    mae_axes.set(ylabel="MAE (months)", title="Error by true age band")
    signed = [_zero_if_none(band["mean_signed_error"]) for band in bands]
    signed_axes.bar(positions, signed, color=["tab:orange" if value > 0 else "tab:blue" for value in signed])
    signed_axes.axhline(0, color="black", linewidth=0.8)
    signed_axes.set(ylabel="Mean signed error (months)\n+ over / - under")
    signed_axes.set_xticks(positions, labels)
    return _save(figure, path)


def _plot_confusion_matrix(path: Path, metrics: dict) -> Path:
    confusion = metrics["stage_classification"]["confusion_matrix"]
    figure = Figure(figsize=(5, 4.5))
    axes = figure.subplots()
    display = ConfusionMatrixDisplay(np.array(confusion["matrix"]), display_labels=confusion["labels"])
    display.plot(ax=axes, cmap="Blues", colorbar=False, values_format="d")
    axes.set(title="Developmental stage", xlabel="Predicted stage", ylabel="True stage")
    return _save(figure, path)


def _write_gradcam_examples(out: Path, examples: Sequence[tuple[str, bytes]]) -> Path:
    columns = min(4, len(examples))
    rows = math.ceil(len(examples) / columns)
    figure = Figure(figsize=(3 * columns, 3.3 * rows))
    grid = figure.subplots(rows, columns, squeeze=False).reshape(-1)
    for index, (caption, png_bytes) in enumerate(examples):
        (out / f"gradcam_{index}.png").write_bytes(png_bytes)
        with Image.open(io.BytesIO(png_bytes)) as overlay:
            grid[index].imshow(np.asarray(overlay.convert("RGB")))
        grid[index].set_title(caption, fontsize=9, wrap=True)
    for axes in grid:
        axes.axis("off")
    return _save(figure, out / "gradcam_examples.png")


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=FIGURE_DPI)
    return path


# -- ablation --------------------------------------------------------------------

ABLATION_COLUMNS = (
    ("mae", "MAE (months)"),
    ("delta_mae", "Δ MAE vs full"),
    ("rmse", "RMSE (months)"),
    ("r2", "R²"),
    ("epochs", "Epochs"),
    ("train_seconds", "Train time (s)"),
)


def write_ablation_table(out_dir, rows: list[dict]) -> None:
    """Write ablation.md, ablation.json and ablation.png; rows[0] is the full recipe.

    Each row: name, mae, and optionally rmse, r2, epochs, train_seconds (missing or
    None shows as "-"). delta_mae = row MAE - full-recipe MAE is added to every row.
    """
    if not rows:
        raise ValueError("the ablation table needs at least the full-recipe row")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    reference_mae = rows[0]["mae"]
    table_rows = [json_ready({**row, "delta_mae": row["mae"] - reference_mae}) for row in rows]
    _write_json(out / "ablation.json", {"reference": rows[0]["name"], "rows": table_rows})
    (out / "ablation.md").write_text(_ablation_markdown(table_rows), encoding="utf-8")
    _plot_ablation(out / "ablation.png", table_rows)


def _ablation_markdown(rows: list[dict]) -> str:
    header = ["Experiment", *(title for _, title in ABLATION_COLUMNS)]
    body = [[str(row["name"]), *(_ablation_cell(key, row.get(key)) for key, _ in ABLATION_COLUMNS)] for row in rows]
    intro = f"Δ MAE is against the first row ({rows[0]['name']}), the full recipe; positive = worse."
    return "# Ablation study\n\n" + _markdown_table(header, body) + "\n\n" + intro + "\n"


def _ablation_cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key == "delta_mae":
        return _number(value, signed=True)
    if key == "r2":
        return _number(value, digits=3)
    if key == "epochs":
        return str(int(value))
    if key == "train_seconds":
        return _number(value, digits=0)
    return _number(value)


def _plot_ablation(path: Path, rows: list[dict]) -> Path:
    figure = Figure(figsize=(max(5, 1.4 * len(rows)), 4))
    axes = figure.subplots()
    positions = np.arange(len(rows))
    maes = [row["mae"] for row in rows]
    colours = ["tab:green"] + ["tab:gray"] * (len(rows) - 1)
    bars = axes.bar(positions, maes, color=colours)
    axes.bar_label(bars, fmt="%.2f")
    axes.margins(y=0.12)  # room for the labels above the bars
    axes.set_xticks(positions, [str(row["name"]) for row in rows], rotation=20, ha="right")
    axes.set(ylabel="MAE (months)", title="Ablation (green = full recipe)")
    return _save(figure, path)


# -- formatting helpers -----------------------------------------------------------


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _number(value: float | None, digits: int = 2, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _months(value: float | None, signed: bool = False) -> str:
    return "n/a" if value is None else f"{_number(value, signed=signed)} months"


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _zero_if_none(value: float | None) -> float:
    return 0.0 if value is None else value


def _write_json(path: Path, document: Any) -> None:
    text = json.dumps(document, indent=2, allow_nan=False, default=str)
    path.write_text(text + "\n", encoding="utf-8")
