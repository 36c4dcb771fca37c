"""Rounding for what people read (pages, API, reports)."""

from __future__ import annotations


def round_or_none(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(float(value), digits)
