"""Balanced MSE: a regression loss that does not reward shrinking towards the common ages (issue 12).

Ren et al., "Balanced MSE for Imbalanced Visual Regression" (CVPR 2022), the GAI form with the
training set's own ages as the label prior: for a prediction p of target y,

    loss = (p - y)² / 2σ² + log Σ_j exp(-(p - y_j)² / 2σ²)        (y_j: every training target)

The first term is MSE. The second is the log of the likelihood of p under the training label
distribution: it is large where many training ages lie, so a prediction is pushed away from the
crowded middle by as much as that crowd would otherwise pull it. Plain MSE on an imbalanced set
learns p(y | x) · p_train(y); this loss learns the balanced p(y | x). The loss is scaled by 2σ²
so that its first term is MSE and the learning rate keeps its meaning.
σ is the assumed noise of the label in the same units as the targets (here z-scores).
"""

from __future__ import annotations

import torch


def balanced_mse(predicted: torch.Tensor, target: torch.Tensor, prior_targets: torch.Tensor,
                 sigma: float) -> torch.Tensor:
    """Per-example loss (B,). predicted, target: (B,); prior_targets: (N,) the training targets."""
    if sigma <= 0:
        raise ValueError(f"balanced MSE needs a positive noise sigma, not {sigma}")
    two_var = 2.0 * sigma * sigma
    fit = (predicted - target) ** 2 / two_var
    crowd = torch.logsumexp(-((predicted.unsqueeze(1) - prior_targets.unsqueeze(0)) ** 2) / two_var, dim=1)
    return (fit + crowd) * two_var
