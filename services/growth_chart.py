"""The growth chart: bone age against chronological age for one child (issue 11).

What is drawn comes from `growth_chart`, which tests can check without pixels: the
Greulich-Pyle (Brush Foundation) mean and ±2 SD band for the child's sex, and the
child's succeeded studies with the same pseudonymous reference and sex, oldest first,
ending with this one, each as a point (chronological age, bone age) with its prediction
interval. Only studies the caller may see are joined (`submitted_by`: a submitter sees
only their own). `render_chart` draws it with matplotlib (Agg) as SVG or PNG.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime

from core.greulich_pyle import reference_rows
from core.status import JobStatus
from db.models import Assessment

REFERENCE_STANDARD = "Greulich-Pyle (Brush Foundation standard)"
NO_AGE_NOTE = "No chronological age was given, so this assessment's point cannot be placed on the chart."


@dataclass(frozen=True)
class BandRow:
    """The reference at one chronological age (months): mean skeletal age and mean ± 2 SD."""

    age_months: float
    mean_months: float
    low_months: float
    high_months: float


@dataclass(frozen=True)
class ChartPoint:
    """One study of the child: chronological age and bone age (months), with the interval."""

    assessment_id: str
    created_at: datetime
    chronological_age_months: float
    bone_age_months: float
    low_months: float | None
    high_months: float | None
    current: bool


@dataclass(frozen=True)
class GrowthChart:
    assessment_id: str
    sex: str
    reference: str | None
    band: list[BandRow]
    points: list[ChartPoint]  # oldest first; the last is this study when it has an age
    not_placed: int  # earlier studies of the series without a chronological age
    note: str | None  # why this study has no point, when it has none
    interval_level: str | None  # e.g. "90%", this study's interval

    @property
    def current(self) -> ChartPoint | None:
        return next((p for p in self.points if p.current), None)

    @property
    def earlier(self) -> list[ChartPoint]:
        return [p for p in self.points if not p.current]


def reference_band(sex: str) -> list[BandRow]:
    return [BandRow(age, mean, mean - 2 * sd, mean + 2 * sd) for age, mean, sd in reference_rows(sex)]


def build_chart(assessment: Assessment, series: list[Assessment]) -> GrowthChart:
    """The chart of `assessment` (succeeded) with `series`: its earlier studies, oldest first."""
    studies = [s for s in series if s.id != assessment.id] + [assessment]
    points, not_placed = [], 0
    for study in studies:
        if study.chronological_age_months is None or study.bone_age_months is None:
            if study is not assessment:
                not_placed += 1
            continue
        points.append(ChartPoint(
            assessment_id=study.id, created_at=study.created_at,
            chronological_age_months=study.chronological_age_months, bone_age_months=study.bone_age_months,
            low_months=study.bone_age_low_months, high_months=study.bone_age_high_months,
            current=study is assessment,
        ))
    level = f"{assessment.interval_confidence * 100:g}%" if assessment.interval_confidence is not None else None
    return GrowthChart(
        assessment_id=assessment.id, sex=assessment.sex, reference=assessment.reference,
        band=reference_band(assessment.sex), points=points, not_placed=not_placed,
        note=NO_AGE_NOTE if assessment.chronological_age_months is None else None, interval_level=level,
    )


def growth_chart(assessment_id: str, *, uow, submitted_by: int | None = None) -> GrowthChart | None:
    """The chart for a succeeded study the caller may see; None otherwise. `submitted_by`
    is the caller's user id when they see only their own studies (web.access.owner_filter)."""
    with uow() as work:
        assessment = work.assessments.get(assessment_id)
        if assessment is None or assessment.status != JobStatus.SUCCEEDED:
            return None
        if submitted_by is not None and assessment.submitted_by_id != submitted_by:
            return None
        series = []
        if assessment.reference:
            series = work.assessments.series(assessment.reference, assessment.sex,
                                             created_up_to=assessment.created_at, submitted_by=submitted_by)
        return build_chart(assessment, series)


# ------------------------------------------------------------------ drawing

BAND_COLOUR = "#9fb8df"
MEAN_COLOUR = "#2457a6"
SERIES_COLOUR = "#555555"
CURRENT_COLOUR = "#c0392b"


def _years(months: float) -> float:
    return months / 12.0


def render_chart(chart: GrowthChart, fmt: str = "svg") -> bytes:
    """The chart as SVG or PNG bytes."""
    if fmt not in ("svg", "png"):
        raise ValueError(f"unknown format {fmt!r}")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.2, 4.9), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    ages = [_years(r.age_months) for r in chart.band]
    axes.fill_between(ages, [_years(r.low_months) for r in chart.band], [_years(r.high_months) for r in chart.band],
                      color=BAND_COLOUR, alpha=0.45, linewidth=0, label="Greulich-Pyle (Brush) mean ± 2 SD")
    axes.plot(ages, [_years(r.mean_months) for r in chart.band], color=MEAN_COLOUR, linewidth=1.6,
              label="Greulich-Pyle (Brush) mean for age")
    top = max(ages[-1], max(_years(r.high_months) for r in chart.band))
    axes.plot([0, ages[-1]], [0, ages[-1]], color="#999999", linewidth=0.8, linestyle=":", label="bone age = age")

    earlier = chart.earlier
    if earlier:
        _errorbars(axes, earlier, SERIES_COLOUR)
        label = "earlier assessment" if len(earlier) == 1 else f"earlier assessments ({len(earlier)})"
        xs = [_years(p.chronological_age_months) for p in chart.points]
        ys = [_years(p.bone_age_months) for p in chart.points]
        axes.plot(xs, ys, color=SERIES_COLOUR, linewidth=1.2, marker="o", markersize=5, label=label, zorder=3)
    current = chart.current
    if current is not None:
        interval = f" ({chart.interval_level} interval)" if current.low_months is not None else ""
        _errorbars(axes, [current], CURRENT_COLOUR)
        axes.plot([_years(current.chronological_age_months)], [_years(current.bone_age_months)], linestyle="none",
                  marker="D", markersize=7, color=CURRENT_COLOUR, label=f"this assessment{interval}", zorder=4)
        top = max(top, _years(current.high_months or current.bone_age_months))
    for p in earlier:
        top = max(top, _years(p.high_months or p.bone_age_months))
    if chart.note:
        axes.text(0.5, 0.55, "No chronological age given:\nthe child's point cannot be placed.",
                  transform=axes.transAxes, ha="center", va="center", fontsize=11, color=CURRENT_COLOUR,
                  bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": CURRENT_COLOUR})
    if chart.not_placed:
        axes.text(0.99, 0.02, f"{chart.not_placed} earlier assessment{'s' if chart.not_placed > 1 else ''} "
                  "without a chronological age not shown", transform=axes.transAxes, ha="right", va="bottom",
                  fontsize=8, color=SERIES_COLOUR)

    sex = "girls" if chart.sex == "F" else "boys"
    axes.set_title(f"Bone age against age ({sex})", fontsize=11)  # the reference is beside the chart
    axes.set_xlabel("chronological age (years)", fontsize=10.5)
    axes.set_ylabel("bone age (years)", fontsize=10.5)
    limit = float(int(top) + 1)
    axes.set_xlim(0, limit)
    axes.set_ylim(0, limit)
    axes.set_xticks(range(0, int(limit) + 1, 2))
    axes.set_yticks(range(0, int(limit) + 1, 2))
    axes.tick_params(labelsize=10)
    axes.grid(True, color="#e4e7ec", linewidth=0.6)
    # below the axes, where it never hides a point or a bar
    figure.legend(*axes.get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    buffer = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else {}
    figure.savefig(buffer, format=fmt, metadata=metadata)
    return buffer.getvalue()


def _errorbars(axes, points: list[ChartPoint], colour: str) -> None:
    with_interval = [p for p in points if p.low_months is not None and p.high_months is not None]
    if not with_interval:
        return
    # drawn from low to high around the interval's middle, so it does not depend on the point inside it
    xs = [_years(p.chronological_age_months) for p in with_interval]
    middles = [_years((p.low_months + p.high_months) / 2) for p in with_interval]
    halves = [_years(abs(p.high_months - p.low_months) / 2) for p in with_interval]
    axes.errorbar(xs, middles, yerr=halves, fmt="none", ecolor=colour, elinewidth=1.4, capsize=4, zorder=3)
