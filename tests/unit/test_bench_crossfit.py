"""benchmarks/bench_crossfit.py pools the folds' held-out studies and judges the pooled coverage
by issue 11's targets."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def bench():
    sys.path.insert(0, str(BENCHMARKS))  # the script imports its sibling benchmarks by name
    try:
        spec = importlib.util.spec_from_file_location("bench_crossfit", BENCHMARKS / "bench_crossfit.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


def fold(rng, n, miss_share, half_width=20.0):
    ages = rng.uniform(10, 220, n)
    predictions = ages + rng.normal(0, 5, n)
    low, high = predictions - half_width, predictions + half_width
    missed = rng.random(n) < miss_share
    low[missed] = ages[missed] + 1.0  # the interval stops just above the true age
    return {"predictions": predictions, "ages": ages, "male": (rng.random(n) < 0.5).astype(np.float32),
            "low": low, "high": high, "confidence": 0.9,
            "method": "test", "epochs": 3, "cpu_seconds": 10.0, "n_train": 400, "dropped": 0}


def test_pooled_coverage_of_every_fold(capsys):
    rng = np.random.default_rng(0)
    folds = [fold(rng, 150, 0.10) for _ in range(6)]
    bench().print_report(folds)
    out = capsys.readouterr().out
    covered = np.concatenate([(f["ages"] >= f["low"]) & (f["ages"] <= f["high"]) for f in folds])
    assert "pooled over 6 folds: n=900" in out
    assert f"| all | all | 900 | {covered.mean():.1%} |" in out
    assert "the pooled figures meet" in out


def test_pooled_under_coverage_fails(capsys):
    rng = np.random.default_rng(1)
    bench().print_report([fold(rng, 150, 0.25) for _ in range(6)])
    assert "the pooled figures do NOT meet" in capsys.readouterr().out
