"""A budgeted run schedules by the share of its CPU budget spent (issue 12): a slow first
epoch (the one-off cache build, another process on the core) no longer ends it early."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from training.recipes import get_recipe  # noqa: E402
from training.rsna import Record  # noqa: E402
from training.train import Trainer, TrainingCallback, TrainingData  # noqa: E402

TRAIN, VAL, BATCH = 48, 8, 8
STEPS_PER_EPOCH = TRAIN // BATCH


class FakeCpu(TrainingCallback):
    """The trainer's CPU clock: each batch costs `slow` units in the first epoch and 1 after."""

    def __init__(self, slow: float):
        self.now, self.slow = 0.0, slow

    def __call__(self) -> float:
        return self.now

    def on_batch(self, *, epoch: int, batch: int, batches: int) -> None:
        self.now += self.slow if epoch == 1 else 1.0


def _data(n: int = TRAIN + 2 * VAL) -> TrainingData:
    rng = np.random.default_rng(0)
    records = [Record(f"{i}", Path(f"{i}.png"), float(rng.uniform(12, 200)), bool(i % 2)) for i in range(n)]
    ids = [r.id for r in records]
    split = {"train": ids[:TRAIN], "val": ids[TRAIN : TRAIN + VAL], "test": ids[TRAIN + VAL :]}
    return TrainingData(records, split, rng.integers(0, 255, size=(n, 32, 32), dtype=np.uint8))


def _trainer(tmp_path, budget: float, clock: FakeCpu, epochs: int = 1000, **overrides) -> Trainer:
    recipe = get_recipe("demo").with_overrides(image_size=32, batch_size=BATCH, epochs=epochs, precise_bn=False,
                                               **overrides)
    trainer = Trainer(recipe, _data(), tmp_path, seed=0, time_budget_s=budget, progress=False,
                      data_dir=str(tmp_path), callback=clock)
    trainer.cpu_clock = clock
    return trainer


def test_a_slow_first_epoch_does_not_cut_the_budgeted_run_short(tmp_path, one_thread):
    # The first epoch costs 4 x what the later ones do: fitting the epoch count after it
    # (budget // first epoch = 1 epoch) would have used 24 / 40 = 60% of the budget.
    clock = FakeCpu(slow=4.0)
    trainer = _trainer(tmp_path, budget=40.0, clock=clock)
    trainer.run()
    used = trainer.train_cpu_seconds / 40.0
    assert 0.9 <= used <= 1.0, f"used {used:.0%} of the budget"
    assert trainer.epoch == 4  # 24 units, then 6 + 6 and a last epoch shortened at the budget
    assert trainer.step == STEPS_PER_EPOCH * 3 + 3  # the clock charges a batch before it runs
    # the schedule ended with the budget: the last learning rate is the cosine's floor
    assert trainer.history[-1]["lr"] == pytest.approx(0.01 * trainer.recipe.lr, rel=1e-6)
    assert trainer.total_epochs == trainer.epoch


def test_the_learning_rate_follows_the_share_of_the_budget_spent(tmp_path):
    clock = FakeCpu(slow=1.0)
    trainer = _trainer(tmp_path, budget=100.0, clock=clock)
    trainer._epoch_cpu_start = 0.0
    rates = []
    for spent in (1.0, 5.0, 50.0, 99.0):
        clock.now = spent
        rates.append(trainer.learning_rate())
    lr = trainer.recipe.lr
    assert rates[0] == pytest.approx(lr * 0.01 / 0.05)  # warm-up: 1% of 5%
    assert rates[1] == pytest.approx(lr)  # the end of the warm-up
    assert rates[2] == pytest.approx(lr * (0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * 0.45 / 0.95))))
    assert rates[3] < 0.02 * lr


def test_the_epoch_cap_still_holds_under_a_large_budget(tmp_path, one_thread):
    """A recipe's epoch count is an upper bound: `seed` as written stops at its epochs."""
    clock = FakeCpu(slow=1.0)
    trainer = _trainer(tmp_path, budget=1e6, clock=clock, epochs=2)
    trainer.run()
    assert trainer.epoch == 2 and trainer.history[-1]["lr"] == pytest.approx(0.01 * trainer.recipe.lr, rel=1e-6)


def test_validate_from_skips_the_early_validations_but_never_the_first_or_the_last(tmp_path, one_thread):
    clock = FakeCpu(slow=1.0)
    trainer = _trainer(tmp_path, budget=1e6, clock=clock, epochs=8, validate_from=0.5)
    trainer.run()
    validated = [row["epoch"] for row in trainer.history if row["val_mae"] is not None]
    assert validated == [1, 4, 5, 6, 7, 8]  # after epoch k, k/8 of the schedule is spent
    assert trainer.best["epoch"] in validated and trainer.best["val_mae"] is not None
