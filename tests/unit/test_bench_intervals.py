"""benchmarks/bench_intervals.py's calibration draws: disjoint, equal-sized; and the issue's
coverage targets as the benchmark judges them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np


def bench():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_intervals.py"
    spec = importlib.util.spec_from_file_location("bench_intervals", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_calibration_draws_are_disjoint_equal_and_seeded():
    b = bench()
    draws = b.disjoint_draws(1003, 5, seed=7)
    assert [len(d) for d in draws] == [200] * 5
    joined = np.concatenate(draws)
    assert len(set(joined.tolist())) == 1000 and joined.max() < 1003
    assert all(np.array_equal(x, y) for x, y in zip(draws, b.disjoint_draws(1003, 5, seed=7)))
    assert len(b.disjoint_draws(10, 1, seed=0)[0]) == 10  # one draw: every study


def test_targets_overall_three_points_every_band_with_30_studies_six():
    b = bench()

    def rows(overall, band, n_band=40):
        return [{"group": "all", "value": "all", "n": 500, "coverage": overall},
                {"group": "band (true age)", "value": "0-4 y", "n": n_band, "coverage": band},
                {"group": "sex", "value": "F", "n": 250, "coverage": 0.80}]  # sex is reported, not judged

    assert b.meets_targets(rows(0.92, 0.85), 0.9)
    assert not b.meets_targets(rows(0.935, 0.90), 0.9)
    assert not b.meets_targets(rows(0.90, 0.838), 0.9)
    assert b.meets_targets(rows(0.90, 0.70, n_band=29), 0.9)  # under 30 studies: not judged


def test_redraws_partition_validation_and_test_into_calibration_and_measured():
    b = bench()
    splits = b.redraw_splits(273, 137, 20, seed=3)
    assert len(splits) == 20
    for calibration, measured in splits:
        assert len(calibration) == 137 and len(measured) == 136
        assert not set(calibration.tolist()) & set(measured.tolist())
        assert sorted(calibration.tolist() + measured.tolist()) == list(range(273))
    assert not np.array_equal(splits[0][0], splits[1][0])  # each re-draw differs
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(splits, b.redraw_splits(273, 137, 20, seed=3)))
