"""Developmental stage and Greulich-Pyle comparison derived from a bone age.

Stage limits follow the seed report (recovered from its support counts on RSNA,
see shared/reference/README.md): Child < 144 months, Adolescent 144-215, Adult >= 216.
The comparison with chronological age uses the Brush Foundation table (mean
skeletal age and SD per sex and chronological age) and the ACR/RSNA RDES14 reading.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

STAGES = ("Child", "Adolescent", "Adult")
CHILD_UPPER_MONTHS = 144
ADOLESCENT_UPPER_MONTHS = 216


def stage_for(bone_age_months: float) -> str:
    if bone_age_months < CHILD_UPPER_MONTHS:
        return "Child"
    if bone_age_months < ADOLESCENT_UPPER_MONTHS:
        return "Adolescent"
    return "Adult"


@dataclass(frozen=True)
class MaturityComparison:
    """Bone age against chronological age, in SD units of the Brush reference."""

    chronological_age_months: float
    expected_bone_age_months: float | None
    sd_months: float | None
    z_score: float | None
    reading: str  # delayed / normal / advanced / indeterminate (RDES14)


@lru_cache(maxsize=1)
def _brush_table() -> dict[str, list[tuple[float, float, float]]]:
    table: dict[str, list[tuple[float, float, float]]] = {"M": [], "F": []}
    with resources.files("training").joinpath("brush_skeletal_age.csv").open() as fh:
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


def compare_with_chronological_age(
    bone_age_months: float, chronological_age_months: float, sex: str
) -> MaturityComparison:
    """Interpolate the Brush table at the chronological age; outside it: indeterminate."""
    rows = _brush_table()[normalise_sex(sex)]
    ages = [r[0] for r in rows]
    if not ages[0] <= chronological_age_months <= ages[-1]:
        return MaturityComparison(chronological_age_months, None, None, None, "indeterminate")
    for (a0, m0, s0), (a1, m1, s1) in zip(rows, rows[1:]):
        if a0 <= chronological_age_months <= a1:
            t = 0.0 if a1 == a0 else (chronological_age_months - a0) / (a1 - a0)
            mean = m0 + t * (m1 - m0)
            sd = s0 + t * (s1 - s0)
            break
    z = (bone_age_months - mean) / sd
    reading = "delayed" if z < -2 else "advanced" if z > 2 else "normal"
    return MaturityComparison(chronological_age_months, mean, sd, z, reading)


def normalise_sex(value: str | bool) -> str:
    """'M'/'F' from the spellings the RSNA files and users use; ValueError otherwise."""
    if isinstance(value, bool):
        return "M" if value else "F"
    text = str(value).strip().lower()
    if text in {"m", "male", "true", "1", "boy"}:
        return "M"
    if text in {"f", "female", "false", "0", "girl"}:
        return "F"
    raise ValueError(f"sex must be M or F, got {value!r}")


def format_years_months(months: float) -> str:
    total = int(round(months))
    years, rest = divmod(total, 12)
    return f"{years} y {rest} m"
