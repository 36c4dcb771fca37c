from __future__ import annotations

from collections import Counter
from pathlib import Path

from training.rsna import Record
from training.split import STRATUM_WIDTH_MONTHS, stratified_split


def _records(n: int) -> list[Record]:
    return [Record(str(i), Path(f"{i}.png"), float((i * 37) % 228), i % 3 != 0) for i in range(n)]


def test_split_is_seeded_disjoint_and_complete():
    records = _records(500)
    first = stratified_split(records, seed=3)
    assert first == stratified_split(list(reversed(records)), seed=3)
    assert first != stratified_split(records, seed=4)
    ids = [i for part in first.values() for i in part]
    assert sorted(ids) == sorted(r.id for r in records) and len(set(ids)) == len(ids)


def test_split_shares_and_strata():
    records = _records(1000)
    split = stratified_split(records, (0.7, 0.15, 0.15), seed=0)
    assert [len(split[name]) for name in ("train", "val", "test")] == [700, 150, 150]
    by_id = {r.id: r for r in records}

    def strata(ids):
        return Counter((int(by_id[i].bone_age_months // STRATUM_WIDTH_MONTHS), by_id[i].male) for i in ids)

    everything, test = strata(by_id), strata(split["test"])
    for stratum, count in everything.items():
        # each stratum's share of the test split is within one study of 15%
        assert abs(test[stratum] - 0.15 * count) <= 1.5, stratum
