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

from core.hand import HandLocation
from core.hand_memo import hand_location

# torchvision's Resize(256) + CenterCrop(224): resize the shorter side to size * 256/224.
RESIZE_CROP_RATIO = 256 / 224
CLAHE_CLIP_LIMIT = 2.0  # intensity="clahe": OpenCV's contrast limit ...
CLAHE_TILES = 8  # ... and tiles per side of the square


@dataclass(frozen=True)
class Preprocessing:
    image_size: int
    resize_mode: str  # "letterbox" | "resize_crop"
    intensity: str  # "percentile" | "raw" | "clahe" (the percentile stretch, then CLAHE on the square)
    crop: str = "none"  # "none" | "hand"; checkpoints from before the crop mean "none"

    @classmethod
    def from_recipe(cls, recipe) -> "Preprocessing":
        return cls(recipe.image_size, recipe.resize_mode, recipe.intensity, recipe.crop)


def hand_square(gray: np.ndarray) -> tuple[int, int, int, int] | None:
    """The square (left, top, right, bottom) around the located hand with its margin, which may
    reach past the film's edges; None when no hand is found. The location is the one the image
    checks and the orientation already found on this film (core.hand_memo)."""
    return square_around(hand_location(gray))


def square_around(location: HandLocation) -> tuple[int, int, int, int] | None:
    """hand_square from a location already found."""
    if not location.found:
        return None
    left, top, right, bottom = location.crop_box
    side = max(right - left, bottom - top)
    left -= (side - (right - left)) // 2
    top -= (side - (bottom - top)) // 2
    return left, top, left + side, top + side


def hand_in_input(gray: np.ndarray, config: Preprocessing) -> tuple[float, float, float, float] | None:
    """The located hand's box (core.hand_memo: found once per decoded film) as shares of the
    model's input square (box_in_square); None when no hand is found."""
    location = hand_location(gray)
    if not location.found:
        return None
    region = square_around(location) if config.crop == "hand" else None
    return box_in_square(location.box, np.shape(gray), config, region)


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
    if config.intensity in ("percentile", "clahe"):
        sample = gray[:: max(1, gray.shape[0] // 256), :: max(1, gray.shape[1] // 256)]
        lo, hi = np.percentile(sample, (1, 99))
        gray = np.clip((gray - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    elif config.intensity != "raw":
        raise ValueError(f"unknown intensity {config.intensity!r}")
    image = Image.fromarray(np.round(gray * 255).astype(np.uint8), mode="L")
    square = np.asarray(_fit(image, config, Image.Resampling.BILINEAR))
    if config.intensity == "clahe":
        square = _clahe(square)
    return square


def _clahe(square: np.ndarray) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation on the input square (OpenCV), in tiles of
    a fixed share of the square so that every input size gets the same local contrast: bone edges
    stand out against soft tissue however the film was exposed. The zero letterbox stays zero."""
    import cv2

    tiles = CLAHE_TILES
    out = cv2.createCLAHE(clipLimit=CLAHE_CLIP_LIMIT, tileGridSize=(tiles, tiles)).apply(np.ascontiguousarray(square))
    return np.where(square == 0, 0, out).astype(np.uint8)


def preprocess_mask(mask: np.ndarray, config: Preprocessing, region=None) -> np.ndarray:
    """A region mask moved through the same geometry as its image → float (size, size) in {0, 1}.
    region: its image's crop_region (None for crop="none")."""
    image = Image.fromarray(_cut((mask > 0).astype(np.uint8), region) * 255, mode="L")
    return (np.asarray(_fit(image, config, Image.Resampling.NEAREST)) > 127).astype(np.float32)


def box_in_square(box: tuple[int, int, int, int], image_shape: tuple[int, int], config: Preprocessing,
                  region=None) -> tuple[float, float, float, float] | None:
    """A box (left, top, right, bottom) in the film's pixels moved through the same geometry as
    the film (crop, then resize) → the same box as shares (0-1) of the model's input square,
    clipped to it; None when none of it is inside. region: the film's crop_region. The box that
    preprocess_mask would give a filled box, without resampling a film-sized mask."""
    left, top, right, bottom = (float(v) for v in box)
    height, width = image_shape
    if region is not None:
        left, top, right, bottom = left - region[0], top - region[1], right - region[0], bottom - region[1]
        width, height = region[2] - region[0], region[3] - region[1]
    size = config.image_size
    if config.resize_mode == "resize_crop":
        shorter = round(size * RESIZE_CROP_RATIO)
        scale = shorter / min(width, height)
        new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
        offset_x, offset_y = -((new_w - size) // 2), -((new_h - size) // 2)
    elif config.resize_mode == "letterbox":
        scale = size / max(width, height)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        offset_x, offset_y = (size - new_w) // 2, (size - new_h) // 2
    else:
        raise ValueError(f"unknown resize mode {config.resize_mode!r}")
    sx, sy = new_w / width, new_h / height
    out = [min(max((v * s + o) / size, 0.0), 1.0) for v, s, o in
           ((left, sx, offset_x), (top, sy, offset_y), (right, sx, offset_x), (bottom, sy, offset_y))]
    if out[2] <= out[0] or out[3] <= out[1]:
        return None
    return out[0], out[1], out[2], out[3]


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
