"""Batched forward passes shared by validation, evaluation and the predictor."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from training.augment import hflip, to_float
from training.model import BoneAgeNet
from training.precision import Precision
from training.recalibration import apply as recalibrated


def _eval_batches(model: BoneAgeNet, images_uint8, male, *, batch_size: int, device, precision: Precision):
    """(x, m) batches on the device in the configured layout, with the model in eval mode
    for the loop (its training flag is restored afterwards)."""
    images_uint8 = torch.as_tensor(images_uint8)
    male = torch.as_tensor(male, dtype=torch.float32)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(images_uint8), batch_size):
            x = precision.layout(to_float(images_uint8[start : start + batch_size]).to(device))
            yield x, male[start : start + batch_size].to(device)
    finally:
        model.train(was_training)


def _months_and_feature_map(model: BoneAgeNet, x: torch.Tensor, m: torch.Tensor, *, device,
                            precision: Precision) -> tuple[torch.Tensor, torch.Tensor]:
    """Bone age in months (B,) and the float32 layer-4 activations: the backbone in the configured
    precision, the pooling and the head in float32 (a bfloat16 head would round the months to
    about half a month)."""
    with precision.autocast(device):
        feature_map = model.feature_map(x)
    feature_map = feature_map.float()
    return model.months_from_feature_map(feature_map, m), feature_map


@torch.inference_mode()
def predict_months(
    model: BoneAgeNet,
    images_uint8: np.ndarray | torch.Tensor,
    male: np.ndarray | torch.Tensor,
    *,
    tta: bool,
    batch_size: int = 64,
    device: torch.device | None = None,
    precision: Precision | None = None,
) -> np.ndarray:
    """Bone age in months for preprocessed uint8 squares (N, H, W); flip TTA averages
    the prediction with that of the mirrored image."""
    device = device or next(model.parameters()).device
    precision = precision or Precision()
    outputs = []
    for x, m in _eval_batches(model, images_uint8, male, batch_size=batch_size, device=device, precision=precision):
        y = _months_and_feature_map(model, x, m, device=device, precision=precision)[0]
        if tta:
            y = (y + _months_and_feature_map(model, hflip(x), m, device=device, precision=precision)[0]) / 2
        outputs.append(y.cpu())
    if not outputs:
        return np.zeros(0, dtype=np.float32)
    # the checkpoint's post-hoc map to months (training/recalibration.py), after the TTA average
    return recalibrated(getattr(model, "recalibration", None), torch.cat(outputs).numpy(),
                        torch.as_tensor(male).cpu().numpy())


@dataclass
class ForwardPass:
    """What one forward pass of the backbone per image (plus its mirror under TTA) gives."""

    months: np.ndarray  # (N,) the prediction, TTA-averaged as the recipe says
    features: np.ndarray  # (N, 512) float32: pooled backbone features of the image as given (not mirrored)
    feature_maps: torch.Tensor  # (N, 512, h, w) float32 layer-4 activations of the image as given, on the device


@torch.no_grad()
def forward_with_features(
    model: BoneAgeNet,
    images_uint8: np.ndarray | torch.Tensor,
    male: np.ndarray | torch.Tensor,
    *,
    tta: bool,
    batch_size: int = 64,
    device: torch.device | None = None,
    precision: Precision | None = None,
) -> ForwardPass:
    """predict_months that also keeps the layer-4 activations and pooled features of
    the un-mirrored image, for Grad-CAM from the head (training.gradcam.HeadGradCam) and
    for feature-space scores. Same numbers as predict_months."""
    device = device or next(model.parameters()).device
    precision = precision or Precision()
    months, features, maps = [], [], []
    for x, m in _eval_batches(model, images_uint8, male, batch_size=batch_size, device=device, precision=precision):
        y, feature_map = _months_and_feature_map(model, x, m, device=device, precision=precision)
        if tta:
            y = (y + _months_and_feature_map(model, hflip(x), m, device=device, precision=precision)[0]) / 2
        months.append(y.cpu())
        features.append(model.pooled(feature_map).cpu())
        maps.append(feature_map)
    if not months:
        return ForwardPass(np.zeros(0, np.float32), np.zeros((0, 512), np.float32), torch.zeros(0, 512, 1, 1))
    months = recalibrated(getattr(model, "recalibration", None), torch.cat(months).numpy(),
                          torch.as_tensor(male).cpu().numpy())  # as predict_months
    return ForwardPass(months, torch.cat(features).numpy(), torch.cat(maps))
