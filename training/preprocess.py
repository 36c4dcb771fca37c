"""Geometry and intensity preprocessing shared by training, evaluation and prediction.

Each image is decoded and preprocessed once into a uint8 square of the recipe's size;
augmentation then works on batches of those squares.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

# torchvision's Resize(256) + CenterCrop(224): resize the shorter side to size * 256/224.
RESIZE_CROP_RATIO = 256 / 224


@dataclass(frozen=True)
class Preprocessing:
    image_size: int
    resize_mode: str  # "letterbox" | "resize_crop"
    intensity: str  # "percentile" | "raw"

    @classmethod
    def from_recipe(cls, recipe) -> "Preprocessing":
        return cls(recipe.image_size, recipe.resize_mode, recipe.intensity)


def preprocess(gray: np.ndarray, config: Preprocessing) -> np.ndarray:
    """Decoded float image in [0, 1] → uint8 (size, size)."""
    if config.intensity == "percentile":
        sample = gray[:: max(1, gray.shape[0] // 256), :: max(1, gray.shape[1] // 256)]
        lo, hi = np.percentile(sample, (1, 99))
        gray = np.clip((gray - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    image = Image.fromarray(np.round(gray * 255).astype(np.uint8), mode="L")
    return np.asarray(_fit(image, config, Image.Resampling.BILINEAR))


def preprocess_mask(mask: np.ndarray, config: Preprocessing) -> np.ndarray:
    """A region mask moved through the same geometry as its image → float (size, size) in {0, 1}."""
    image = Image.fromarray((mask > 0).astype(np.uint8) * 255, mode="L")
    return (np.asarray(_fit(image, config, Image.Resampling.NEAREST)) > 127).astype(np.float32)


def _fit(image: Image.Image, config: Preprocessing, resample) -> Image.Image:
    size = config.image_size
    width, height = image.size
    if config.resize_mode == "resize_crop":
        shorter = round(size * RESIZE_CROP_RATIO)
        scale = shorter / min(width, height)
        resized = image.resize((max(size, round(width * scale)), max(size, round(height * scale))), resample)
        left = (resized.width - size) // 2
        top = (resized.height - size) // 2
        return resized.crop((left, top, left + size, top + size))
    if config.resize_mode == "letterbox":
        scale = size / max(width, height)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        canvas = Image.new("L", (size, size), 0)
        canvas.paste(image.resize((new_w, new_h), resample), ((size - new_w) // 2, (size - new_h) // 2))
        return canvas
    raise ValueError(f"unknown resize mode {config.resize_mode!r}")
