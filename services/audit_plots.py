"""The audits page's trend plots across stored runs, as PNG bytes (matplotlib, Agg).

Each plot takes the succeeded runs oldest first (one point per run and model version).
"""

from __future__ import annotations

import io
from typing import Any

PLOTS = {
    "mae_by_sex": "MAE by sex with its 95% interval",
    "signed_error_by_age_band": "Signed error by age band",
    "disagreement": "Clinically significant disagreement rate",
    "drift": "Drift: two-sample test p-values",
}


def trend_png(name: str, runs: list[dict[str, Any]]) -> bytes:
    if name not in PLOTS:
        raise KeyError(name)
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 3.2), dpi=100)
    axes = figure.add_subplot()
    {"mae_by_sex": _mae_by_sex, "signed_error_by_age_band": _signed_by_band,
     "disagreement": _disagreement, "drift": _drift}[name](axes, runs)
    axes.set_title(PLOTS[name], fontsize=10)
    axes.tick_params(labelsize=8)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=7, loc="best")
    if not runs:
        axes.text(0.5, 0.5, "no audit runs yet", ha="center", va="center", transform=axes.transAxes)
    figure.autofmt_xdate()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _points(runs, pick):
    """{series label: ([window end], [value], [low], [high])} over runs and versions."""
    series: dict[str, tuple[list, list, list, list]] = {}
    from datetime import datetime

    for run in runs:
        end = datetime.fromisoformat(run["window_end"])
        for version in run["results"].get("versions", []):
            if version.get("too_few"):
                continue
            for label, value, low, high in pick(version):
                if value is None:
                    continue
                key = f"{label} ({version['model_name']})" if len({v['model_name'] for r in runs for v in r['results'].get('versions', [])}) > 1 else label
                xs, ys, lo, hi = series.setdefault(key, ([], [], [], []))
                xs.append(end), ys.append(value), lo.append(low if low is not None else value), hi.append(high if high is not None else value)
    return series


def _mae_by_sex(axes, runs):
    def pick(version):
        for sex, metrics in (version.get("by_sex") or {}).items():
            if not metrics.get("too_few"):
                ci = metrics.get("mae_ci") or [None, None]
                yield ("girls" if sex == "F" else "boys"), metrics["mae"], ci[0], ci[1]
    for label, (xs, ys, lo, hi) in _points(runs, pick).items():
        axes.plot(xs, ys, marker="o", label=label)
        axes.fill_between(xs, lo, hi, alpha=0.2)
    axes.set_ylabel("MAE (months)", fontsize=8)


def _signed_by_band(axes, runs):
    def pick(version):
        for band, metrics in (version.get("by_age_band") or {}).items():
            if not metrics.get("too_few"):
                yield band, metrics["mean_signed_error"], None, None
    for label, (xs, ys, _, _) in _points(runs, pick).items():
        axes.plot(xs, ys, marker="o", label=label)
    axes.axhline(0, color="grey", linewidth=0.8)
    axes.set_ylabel("prediction - reading (months)", fontsize=8)


def _disagreement(axes, runs):
    def pick(version):
        yield "all", (version.get("overall") or {}).get("disagreement_rate"), None, None
    for label, (xs, ys, _, _) in _points(runs, pick).items():
        axes.plot(xs, [100 * y for y in ys], marker="o", label=label)
    axes.set_ylabel("% G-P reading differs", fontsize=8)


def _drift(axes, runs):
    from datetime import datetime

    series: dict[str, tuple[list, list]] = {}
    for run in runs:
        for name, test in ((run["results"].get("monitoring") or {}).get("drift") or {}).items():
            if test.get("p_value") is not None:
                xs, ys = series.setdefault(test["label"], ([], []))
                xs.append(datetime.fromisoformat(run["window_end"])), ys.append(max(test["p_value"], 1e-12))
    for label, (xs, ys) in series.items():
        axes.plot(xs, ys, marker="o", label=label)
    threshold = runs[-1]["parameters"].get("drift_p_value") if runs else None
    if threshold:
        axes.axhline(threshold, color="red", linewidth=0.8, linestyle="--")
    axes.set_yscale("log")
    axes.set_ylabel("p-value (log)", fontsize=8)
