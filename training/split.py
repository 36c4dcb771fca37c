"""A seeded train/validation/test split, stratified by age band and sex."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from training.rsna import Record

SPLIT_NAMES = ("train", "val", "test")
STRATUM_WIDTH_MONTHS = 24


def _stratum(record: Record) -> tuple[int, bool]:
    return int((record.bone_age_months or 0) // STRATUM_WIDTH_MONTHS), record.male


def stratified_split(
    records: Sequence[Record], fractions: Sequence[float] = (0.70, 0.15, 0.15), seed: int = 0
) -> dict[str, list[str]]:
    """Ids per split. Each stratum is shuffled and cut by cumulative rounding, so every
    split receives its share of each age band and sex, and small strata still add up."""
    if len(fractions) != 3 or not math.isclose(sum(fractions), 1.0) or min(fractions) < 0:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    strata: dict[tuple[int, bool], list[str]] = defaultdict(list)
    for record in sorted(records, key=lambda r: r.id):
        strata[_stratum(record)].append(record.id)
    rng = np.random.default_rng(seed)
    split: dict[str, list[str]] = {name: [] for name in SPLIT_NAMES}
    carry = np.zeros(3)
    for key in sorted(strata):
        ids = list(strata[key])
        rng.shuffle(ids)
        # Largest-remainder allocation with a carry across strata keeps the global shares exact.
        wanted = np.asarray(fractions) * len(ids) + carry
        counts = np.floor(wanted).astype(int)
        short = len(ids) - counts.sum()
        for i in np.argsort(-(wanted - counts))[:short]:
            counts[i] += 1
        carry = wanted - counts
        start = 0
        for name, count in zip(SPLIT_NAMES, counts):
            split[name].extend(ids[start : start + count])
            start += count
    return {name: sorted(ids) for name, ids in split.items()}
