"""Batched forward passes shared by validation, evaluation and the predictor."""

from __future__ import annotations

import numpy as np
import torch

from training.augment import hflip, to_float
from training.model import BoneAgeNet


@torch.inference_mode()
def predict_months(
    model: BoneAgeNet,
    images_uint8: np.ndarray | torch.Tensor,
    male: np.ndarray | torch.Tensor,
    *,
    tta: bool,
    batch_size: int = 64,
    device: torch.device | None = None,
) -> np.ndarray:
    """Bone age in months for preprocessed uint8 squares (N, H, W); flip TTA averages
    the prediction with that of the mirrored image."""
    device = device or next(model.parameters()).device
    images_uint8 = torch.as_tensor(images_uint8)
    male = torch.as_tensor(male, dtype=torch.float32)
    was_training = model.training
    model.eval()
    outputs = []
    for start in range(0, len(images_uint8), batch_size):
        x = to_float(images_uint8[start : start + batch_size]).to(device)
        m = male[start : start + batch_size].to(device)
        y = model(x, m)
        if tta:
            y = (y + model(hflip(x), m)) / 2
        outputs.append(y.float().cpu())
    model.train(was_training)
    return torch.cat(outputs).numpy() if outputs else np.zeros(0, dtype=np.float32)
