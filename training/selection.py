"""Which epoch becomes the model: the rule is torch-free so it can be tested on its own."""

from __future__ import annotations

import math


def is_new_best(val_mae: float, best_mae: float | None) -> bool:
    """True when `val_mae` is finite and strictly below the best so far (None: no best yet).

    A non-finite MAE (NaN or inf: a diverged epoch, or one whose predictions overflowed)
    is never best, however the comparison with the previous best would come out."""
    if not math.isfinite(val_mae):
        return False
    return best_mae is None or val_mae < best_mae
