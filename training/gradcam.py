"""Grad-CAM on the last residual block (layer4[-1]) with pytorch-grad-cam.

Batched, with one regression target per image: the model's single output, so the
heatmap shows the regions that raised the predicted bone age.

Two explainers give the same map (tests/integration/test_gradcam_one_pass.py, to 1e-5):
- GradCamExplainer runs pytorch-grad-cam over the whole network (a forward and a full
  backward pass per batch);
- HeadGradCam starts from layer-4 activations already computed by the prediction's own
  forward pass. The network global-average-pools layer 4, so the Grad-CAM weights (the
  spatial mean of d output / d activations) only need the head's gradient: pytorch-grad-cam
  runs on a small module (identity target layer -> pooling -> sex branch -> head), and the
  map is upsampled to the input size as pytorch-grad-cam does for the full network.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from PIL import Image
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from core.working_image import DISPLAY_PNG, encode_png
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


class _HeadFromFeatureMap(nn.Module):
    """pytorch-grad-cam's "model" for the one-pass map: saved layer-4 activations in, the
    bone age in months out (B, 1), through an identity layer Grad-CAM can hook."""

    def __init__(self, model: BoneAgeNet):
        super().__init__()
        self.model = model
        self.target_layer = nn.Identity()
        self.male: torch.Tensor | None = None

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        return self.model.months_from_feature_map(self.target_layer(feature_map), self.male).unsqueeze(1)


class _GradCamAtSize(GradCAM):
    """GradCAM whose maps are upsampled to the network's input size rather than to the
    size of the tensor it was given (here: the feature map)."""

    image_size: tuple[int, int] = (0, 0)  # (width, height)

    def get_target_width_height(self, input_tensor: torch.Tensor) -> tuple[int, int]:
        return self.image_size


class HeadGradCam:
    """Grad-CAM from saved layer-4 activations: one backward pass through the head only.
    Build once per model; call with the feature maps of a batch (BoneAgeNet.feature_map)."""

    def __init__(self, model: BoneAgeNet):
        self._head = _HeadFromFeatureMap(model).eval()
        self._cam = _GradCamAtSize(model=self._head, target_layers=[self._head.target_layer])

    def heatmaps(self, feature_maps: torch.Tensor, male: np.ndarray | torch.Tensor, image_size: int) -> np.ndarray:
        """(N, image_size, image_size) float32 in [0, 1] for feature maps (N, 512, h, w)."""
        device = next(self._head.parameters()).device
        maps = feature_maps.detach().to(device=device, dtype=torch.float32).contiguous().requires_grad_(True)
        self._head.male = torch.as_tensor(male, dtype=torch.float32, device=device)
        self._cam.image_size = (image_size, image_size)
        targets = [ClassifierOutputTarget(0) for _ in range(len(maps))]
        with torch.enable_grad():
            cams = self._cam(input_tensor=maps, targets=targets)
        return cams.astype(np.float32)


def overlay_png(image_uint8: np.ndarray, heatmap: np.ndarray, display_size: int = 448) -> bytes:
    """The heatmap in the jet colour map over the radiograph, as PNG bytes."""
    rgb = np.repeat(image_uint8[..., None], 3, axis=2).astype(np.float32) / 255.0
    blended = show_cam_on_image(rgb, heatmap, use_rgb=True, image_weight=0.6)
    picture = Image.fromarray(blended)
    if display_size and picture.width < display_size:
        picture = picture.resize((display_size, display_size), Image.Resampling.BICUBIC)
    # written as the display copy is: the same pixels in a third of Pillow's level-1 time
    return encode_png(cv2.cvtColor(np.asarray(picture), cv2.COLOR_RGB2BGR), DISPLAY_PNG)


def mass_in_box(heatmap: np.ndarray, box: tuple[float, float, float, float]) -> float:
    """Share of the heatmap's mass inside a box given as (left, top, right, bottom) shares of it."""
    height, width = heatmap.shape
    left, top = int(round(box[0] * width)), int(round(box[1] * height))
    right, bottom = int(round(box[2] * width)), int(round(box[3] * height))
    mask = np.zeros(heatmap.shape, dtype=np.float32)
    mask[top:bottom, left:right] = 1.0
    return mass_in_mask(heatmap, mask)


def mass_in_mask(heatmap: np.ndarray, mask: np.ndarray) -> float:
    """Share of the heatmap's mass inside a region mask (both (H, W)); the chance level
    is the mask's share of the image."""
    total = float(heatmap.sum())
    return float((heatmap * mask).sum()) / total if total > 0 else 0.0
