"""Grad-CAM on the last residual block (layer4[-1]) with pytorch-grad-cam.

Batched, with one regression target per image: the model's single output, so the
heatmap shows the regions that raised the predicted bone age.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from training.augment import to_float
from training.model import BoneAgeNet


class _ImageOnly(nn.Module):
    """pytorch-grad-cam calls model(images); the sex of each image rides along here."""

    def __init__(self, model: BoneAgeNet):
        super().__init__()
        self.model = model
        self.male: torch.Tensor | None = None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images, self.male).unsqueeze(1)  # (B, 1): one "class", the age


class GradCamExplainer:
    """Build once per model; call for each batch."""

    def __init__(self, model: BoneAgeNet):
        self._wrapper = _ImageOnly(model).eval()
        self._cam = GradCAM(model=self._wrapper, target_layers=[model.gradcam_layer])

    def heatmaps(self, images_uint8: np.ndarray, male: np.ndarray) -> np.ndarray:
        """(N, H, W) float32 in [0, 1] for preprocessed uint8 squares (N, H, W)."""
        device = next(self._wrapper.parameters()).device
        x = to_float(torch.as_tensor(images_uint8)).to(device)
        self._wrapper.male = torch.as_tensor(male, dtype=torch.float32, device=device)
        targets = [ClassifierOutputTarget(0) for _ in range(len(x))]
        with torch.enable_grad():
            cams = self._cam(input_tensor=x, targets=targets)
        return cams.astype(np.float32)


def overlay_png(image_uint8: np.ndarray, heatmap: np.ndarray, display_size: int = 448) -> bytes:
    """The heatmap in the jet colour map over the radiograph, as PNG bytes."""
    rgb = np.repeat(image_uint8[..., None], 3, axis=2).astype(np.float32) / 255.0
    blended = show_cam_on_image(rgb, heatmap, use_rgb=True, image_weight=0.6)
    picture = Image.fromarray(blended)
    if display_size and picture.width < display_size:
        picture = picture.resize((display_size, display_size), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def mass_in_mask(heatmap: np.ndarray, mask: np.ndarray) -> float:
    """Share of the heatmap's mass inside a region mask (both (H, W)); the chance level
    is the mask's share of the image."""
    total = float(heatmap.sum())
    return float((heatmap * mask).sum()) / total if total > 0 else 0.0
