"""Geometry and intensity preprocessing shared by training, evaluation and prediction.

Each image is decoded and preprocessed once into a uint8 square of the recipe's size;
augmentation then works on batches of those squares.

crop="hand" first cuts the film down to the hand (core.hand.locate_hand: its box with a
margin, widened to a square around its centre, zero outside the film), so the model's pixels
go to the hand rather than the film's background, the marker and the plate. A film on which
no hand is found keeps its whole area. The choice is stored in the checkpoint's metadata, so
training, evaluation, the workers and the CLI crop identically.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from core.hand import locate_hand

# torchvision's Resize(256) + CenterCrop(224): resize the shorter side to size * 256/224.
RESIZE_CROP_RATIO = 256 / 224


@dataclass(frozen=True)
class Preprocessing:
    image_size: int
    resize_mode: str  # "letterbox" | "resize_crop"
    intensity: str  # "percentile" | "raw"
    crop: str = "none"  # "none" | "hand"; checkpoints from before the crop mean "none"

    @classmethod
    def from_recipe(cls, recipe) -> "Preprocessing":
        return cls(recipe.image_size, recipe.resize_mode, recipe.intensity, recipe.crop)


def hand_square(gray: np.ndarray) -> tuple[int, int, int, int] | None:
    """The square (left, top, right, bottom) around the located hand with its margin, which may
    reach past the film's edges; None when no hand is found."""
    location = locate_hand(gray)
    if not location.found:
        return None
    left, top, right, bottom = location.crop_box
    side = max(right - left, bottom - top)
    left -= (side - (right - left)) // 2
    top -= (side - (bottom - top)) // 2
    return left, top, left + side, top + side


def crop_region(gray: np.ndarray, config: Preprocessing) -> tuple[int, int, int, int] | None:
    """The part of the film the preprocessing keeps (None: all of it)."""
    if config.crop == "none":
        return None
    if config.crop == "hand":
        return hand_square(gray)
    raise ValueError(f"unknown crop {config.crop!r}")


def _cut(array: np.ndarray, region: tuple[int, int, int, int] | None) -> np.ndarray:
    """array[top:bottom, left:right], zero where the region reaches past the array."""
    if region is None:
        return array
    left, top, right, bottom = region
    out = np.zeros((bottom - top, right - left), dtype=array.dtype)
    height, width = array.shape
    src_top, src_left = max(0, top), max(0, left)
    src_bottom, src_right = min(height, bottom), min(width, right)
    out[src_top - top : src_bottom - top, src_left - left : src_right - left] = array[src_top:src_bottom, src_left:src_right]
    return out


def preprocess(gray: np.ndarray, config: Preprocessing) -> np.ndarray:
    """Decoded float image in [0, 1] → uint8 (size, size)."""
    return preprocess_region(gray, config, crop_region(gray, config))


def preprocess_region(gray: np.ndarray, config: Preprocessing, region) -> np.ndarray:
    """preprocess() with the crop region already known (crop_region)."""
    gray = _cut(np.asarray(gray), region)
    if config.intensity == "percentile":
        sample = gray[:: max(1, gray.shape[0] // 256), :: max(1, gray.shape[1] // 256)]
        lo, hi = np.percentile(sample, (1, 99))
        gray = np.clip((gray - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    image = Image.fromarray(np.round(gray * 255).astype(np.uint8), mode="L")
    return np.asarray(_fit(image, config, Image.Resampling.BILINEAR))


def preprocess_mask(mask: np.ndarray, config: Preprocessing, region=None) -> np.ndarray:
    """A region mask moved through the same geometry as its image → float (size, size) in {0, 1}.
    region: its image's crop_region (None for crop="none")."""
    image = Image.fromarray(_cut((mask > 0).astype(np.uint8), region) * 255, mode="L")
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
