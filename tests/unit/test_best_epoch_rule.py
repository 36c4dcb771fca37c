"""The best-epoch rule (training/selection.py): a non-finite validation MAE is never best."""

from __future__ import annotations

import math

import pytest

from training.selection import is_new_best


def test_the_first_finite_epoch_is_best_and_later_ones_must_improve():
    assert is_new_best(7.5, None)
    assert is_new_best(7.4, 7.5)
    assert not is_new_best(7.5, 7.5)  # a tie keeps the earlier epoch
    assert not is_new_best(8.0, 7.5)


@pytest.mark.parametrize("diverged", [math.nan, math.inf, -math.inf])
def test_a_non_finite_mae_is_never_best(diverged):
    assert not is_new_best(diverged, None)  # not even as the first epoch
    assert not is_new_best(diverged, 7.5)
    assert not is_new_best(diverged, 1e9)


def test_a_finite_epoch_after_diverged_ones_becomes_best():
    best = None
    for epoch, mae in enumerate([math.nan, math.inf, 12.0, math.nan, 9.0, 10.0], start=1):
        if is_new_best(mae, best):
            best, best_epoch = mae, epoch
    assert (best, best_epoch) == (9.0, 5)
