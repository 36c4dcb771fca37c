"""Per-image loss weights against the pull to the mean age (issue 12).

"lds": label-distribution smoothing (Yang et al., "Delving into Deep Imbalanced Regression",
ICML 2021): the training ages' histogram smoothed with a Gaussian kernel estimates the
effective density of each age; each image is weighted by its inverse square root, so the few
youngest and oldest children count for more. Weights are scaled to a mean of 1 on the
training set, so the learning rate means what it did.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

LDS_BIN_MONTHS = 6.0  # histogram bin width
LDS_SIGMA_BINS = 2.0  # the kernel's standard deviation, in bins (Yang et al.: 2)
LDS_MAX_WEIGHT = 5.0  # cap before normalising, so a lone extreme image cannot dominate a batch


def sample_weights(ages_months: np.ndarray, method: str) -> np.ndarray:
    """float32 weights, one per training age, mean 1."""
    ages = np.asarray(ages_months, dtype=np.float64)
    if method == "none" or ages.size == 0:
        return np.ones(ages.shape, dtype=np.float32)
    if method != "lds":
        raise ValueError(f"unknown sample weighting {method!r}; choose none or lds")
    bins = np.floor(ages / LDS_BIN_MONTHS).astype(int)
    bins -= bins.min()
    counts = np.bincount(bins).astype(np.float64)
    density = gaussian_filter1d(counts, LDS_SIGMA_BINS, mode="constant")
    weights = 1.0 / np.sqrt(np.maximum(density[bins], 1e-6))
    weights = np.minimum(weights / weights.min(), LDS_MAX_WEIGHT)
    return (weights / weights.mean()).astype(np.float32)
