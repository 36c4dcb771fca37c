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
    return dict(zip(SPLIT_NAMES, _allocate(records, fractions, seed)))


def cross_fitting_split(records: Sequence[Record], folds: int, fold: int, seed: int = 0) -> dict[str, list[str]]:
    """Fold `fold` of `folds` stratified folds as the test split, the next fold as the
    validation split and the rest as training. Over fold = 0..folds-1 every study is in
    exactly one test split, so the folds' test predictions pool into a held-out set as large
    as the dataset (benchmarks/bench_crossfit.py)."""
    if folds < 3 or not 0 <= fold < folds:
        raise ValueError(f"need folds >= 3 and 0 <= fold < folds, got fold {fold} of {folds}")
    parts = _allocate(records, [1.0 / folds] * folds, seed)
    validation = (fold + 1) % folds
    train = sorted(i for k, part in enumerate(parts) if k not in (fold, validation) for i in part)
    return {"train": train, "val": parts[validation], "test": parts[fold]}


def _allocate(records: Sequence[Record], fractions: Sequence[float], seed: int) -> list[list[str]]:
    """The ids cut into len(fractions) parts of those shares, within every stratum."""
    strata: dict[tuple[int, bool], list[str]] = defaultdict(list)
    for record in sorted(records, key=lambda r: r.id):
        strata[_stratum(record)].append(record.id)
    rng = np.random.default_rng(seed)
    parts: list[list[str]] = [[] for _ in fractions]
    carry = np.zeros(len(fractions))
    for key in sorted(strata):
        ids = list(strata[key])
        rng.shuffle(ids)
        # Largest-remainder allocation with a carry across strata keeps the global shares exact.
        wanted = np.asarray(fractions) * len(ids) + carry
        counts = np.floor(wanted).astype(int)
        short = len(ids) - counts.sum()
        for i in np.argsort(-(wanted - counts))[:short]:
            counts[i] += 1
        # A negative carry can leave a part's count at -1 (with many parts and small strata),
        # which would hand one study to two parts: take it from the most over-served part.
        while (counts < 0).any():
            over = np.where(counts > 0, counts - wanted, -np.inf)
            counts[np.argmin(counts)] += 1
            counts[np.argmax(over)] -= 1
        carry = wanted - counts
        start = 0
        for part, count in zip(parts, counts):
            part.extend(ids[start : start + count])
            start += count
    return [sorted(part) for part in parts]
