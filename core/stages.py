"""Developmental stage from a bone age, sex spellings and how ages are written.

Stage limits follow the seed report (recovered from its support counts on RSNA,
see shared/reference/README.md): Child < 144 months, Adolescent 144-215, Adult >= 216.
"""

from __future__ import annotations

STAGES = ("Child", "Adolescent", "Adult")
CHILD_UPPER_MONTHS = 144
ADOLESCENT_UPPER_MONTHS = 216


def stage_for(bone_age_months: float) -> str:
    if bone_age_months < CHILD_UPPER_MONTHS:
        return "Child"
    if bone_age_months < ADOLESCENT_UPPER_MONTHS:
        return "Adolescent"
    return "Adult"


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
