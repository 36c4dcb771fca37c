"""Bone age against chronological age: the Greulich-Pyle comparison.

Uses the Brush Foundation table (mean skeletal age and SD per sex and chronological
age, shared/reference) and the ACR/RSNA RDES14 reading: more than 2 SD below the
mean for age is delayed, more than 2 SD above is advanced.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from core.stages import normalise_sex

@dataclass(frozen=True)
class MaturityComparison:
    """Bone age against chronological age, in SD units of the Brush reference."""

    chronological_age_months: float
    expected_bone_age_months: float | None
    sd_months: float | None
    z_score: float | None
    reading: str  # delayed / normal / advanced / indeterminate (RDES14)
    # Why "indeterminate": "outside_table" (the age is outside the Brush table) or
    # "interval_straddles_limit" (the bone age's prediction interval crosses -2 or +2 SD).
    indeterminate_reason: str | None = None
    # The prediction interval in SD units, when one was given.
    z_low: float | None = None
    z_high: float | None = None


@lru_cache(maxsize=1)
def _brush_table() -> dict[str, list[tuple[float, float, float]]]:
    table: dict[str, list[tuple[float, float, float]]] = {"M": [], "F": []}
    with resources.files("core").joinpath("brush_skeletal_age.csv").open() as fh:
        for row in csv.DictReader(fh):
            table[row["sex"]].append(
                (
                    float(row["chronological_age_months"]),
                    float(row["mean_skeletal_age_months"]),
                    float(row["sd_months"]),
                )
            )
    for rows in table.values():
        rows.sort()
    return table


def reference_rows(sex: str) -> list[tuple[float, float, float]]:
    """The Brush table for a sex: (chronological age, mean skeletal age, SD) in months,
    youngest first (the growth chart draws its mean and ±2 SD band from these)."""
    return list(_brush_table()[normalise_sex(sex)])


def compare_with_chronological_age(
    bone_age_months: float, chronological_age_months: float, sex: str,
    interval: tuple[float, float] | None = None,
) -> MaturityComparison:
    """Interpolate the Brush table at the chronological age; outside it: indeterminate.
    With the bone age's prediction interval (low, high months), a reading the interval does
    not settle - it holds values on both sides of -2 SD or of +2 SD - is indeterminate too."""
    rows = _brush_table()[normalise_sex(sex)]
    ages = [r[0] for r in rows]
    if not ages[0] <= chronological_age_months <= ages[-1]:
        return MaturityComparison(chronological_age_months, None, None, None, "indeterminate", "outside_table")
    for (a0, m0, s0), (a1, m1, s1) in zip(rows, rows[1:]):
        if a0 <= chronological_age_months <= a1:
            t = 0.0 if a1 == a0 else (chronological_age_months - a0) / (a1 - a0)
            mean = m0 + t * (m1 - m0)
            sd = s0 + t * (s1 - s0)
            break
    z = (bone_age_months - mean) / sd
    reading = "delayed" if z < -2 else "advanced" if z > 2 else "normal"
    if interval is None:
        return MaturityComparison(chronological_age_months, mean, sd, z, reading)
    z_low, z_high = ((value - mean) / sd for value in interval)
    # the same limits as the reading: below -2 is delayed, above +2 advanced, exactly 2 normal
    if (z_low < -2 <= z_high) or (z_low <= 2 < z_high):
        return MaturityComparison(chronological_age_months, mean, sd, z, "indeterminate",
                                  "interval_straddles_limit", z_low, z_high)
    return MaturityComparison(chronological_age_months, mean, sd, z, reading, None, z_low, z_high)
