"""The seed recipe's preprocessing: torchvision's Resize(256) + CenterCrop(224) with raw intensity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from training.preprocess import Preprocessing, box_in_square, preprocess, preprocess_mask
from training.recipes import get_recipe


def _low_contrast_portrait(width: int = 300, height: int = 400) -> np.ndarray:
    """uint8 values in [60, 160] with structure along both axes, so a percentile stretch, a
    letterbox or an off-centre crop would each change the result."""
    y, x = np.mgrid[0:height, 0:width]
    pixels = 60 + 50 * (x / width) + 40 * (y / height) + 10 * np.sin(x / 7.0) * np.cos(y / 11.0)
    return np.round(pixels).astype(np.uint8)


def test_seed_recipe_preprocessing_is_resize_256_center_crop_224_raw():
    config = Preprocessing.from_recipe(get_recipe("seed"))
    assert config == Preprocessing(image_size=224, resize_mode="resize_crop", intensity="raw")

    pixels = _low_contrast_portrait()
    out = preprocess(pixels.astype(np.float64) / 255.0, config)  # decode_image's float in [0, 1]

    # Independently: shorter side (300) to 256, the other in proportion (400 * 256/300 = 341.3 -> 341),
    # bilinear; then the central 224 x 224: left (256-224)//2 = 16, top (341-224)//2 = 58.
    expected = Image.fromarray(pixels, mode="L").resize((256, 341), Image.Resampling.BILINEAR)
    expected = np.asarray(expected.crop((16, 58, 16 + 224, 58 + 224)))
    assert out.dtype == np.uint8 and out.shape == (224, 224)
    np.testing.assert_array_equal(out, expected)
    # raw intensity: the file's value range is kept, not stretched to 0-255
    assert 55 <= out.min() and out.max() <= 165


def test_seed_preprocessing_differs_from_the_default_recipe():
    """A guard on the test above: letterbox + percentile stretch give a different square."""
    pixels = _low_contrast_portrait().astype(np.float64) / 255.0
    seed = preprocess(pixels, Preprocessing.from_recipe(get_recipe("seed")))
    other = preprocess(pixels, Preprocessing(224, "letterbox", "percentile"))
    assert not np.array_equal(seed, other)
    assert other.max() == 255  # the stretch


@pytest.mark.parametrize("size", [64, 128])
def test_resize_crop_scales_with_the_image_size(size):
    """At other sizes the seed geometry keeps the 256/224 ratio: shorter side to size * 256/224."""
    pixels = _low_contrast_portrait()
    out = preprocess(pixels / 255.0, Preprocessing(size, "resize_crop", "raw"))
    shorter = round(size * 256 / 224)
    longer = round(400 * shorter / 300)
    resized = Image.fromarray(pixels, mode="L").resize((shorter, longer), Image.Resampling.BILINEAR)
    left, top = (shorter - size) // 2, (longer - size) // 2
    np.testing.assert_array_equal(out, np.asarray(resized.crop((left, top, left + size, top + size))))


@settings(max_examples=150, deadline=None)
@given(width=st.integers(40, 400), height=st.integers(40, 400), mode=st.sampled_from(["letterbox", "resize_crop"]),
       size=st.sampled_from([32, 64, 160]), data=st.data())
def test_box_in_square_is_where_the_preprocessing_puts_the_box(width, height, mode, size, data):
    """The analytic box (training.preprocess.box_in_square) against a filled box moved through the
    image geometry itself (preprocess_mask): the same square within a pixel of resampling."""
    left = data.draw(st.integers(0, width - 8))
    top = data.draw(st.integers(0, height - 8))
    right = data.draw(st.integers(left + 8, width))
    bottom = data.draw(st.integers(top + 8, height))
    use_region = data.draw(st.booleans())
    region = None
    if use_region:  # a crop region reaching past the film on some sides, as hand_square's may
        region = (left - 5, top - 7, right + 9, bottom + 3)
    config = Preprocessing(size, mode, "percentile")
    mask = np.zeros((height, width), dtype=bool)
    mask[top:bottom, left:right] = True
    moved = preprocess_mask(mask, config, region)
    shares = box_in_square((left, top, right, bottom), (height, width), config, region)
    if not moved.any():
        assert shares is None or min(shares[2] - shares[0], shares[3] - shares[1]) * size < 1.5
        return
    rows, cols = np.nonzero(moved)
    expected = np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]) / size
    assert shares is not None
    np.testing.assert_allclose(shares, expected, atol=1.01 / size)


def test_clahe_raises_local_contrast_and_keeps_the_letterbox_black():
    """intensity="clahe": the percentile-stretched square, then adaptive equalisation; a portrait
    image letterboxed into the square keeps its black side bands, and its faint structure gains
    local contrast (the mean absolute difference between neighbouring pixels grows)."""
    pixels = _low_contrast_portrait().astype(np.float64) / 255.0
    stretched = preprocess(pixels, Preprocessing(160, "letterbox", "percentile"))
    equalised = preprocess(pixels, Preprocessing(160, "letterbox", "clahe"))
    assert equalised.dtype == np.uint8 and equalised.shape == (160, 160)
    bands = stretched == 0
    assert bands[:, :10].all() and (equalised[bands] == 0).all()
    inside = equalised[:, 25:135].astype(int), stretched[:, 25:135].astype(int)
    neighbour_contrast = [np.abs(np.diff(part, axis=1)).mean() for part in inside]
    assert neighbour_contrast[0] > 1.2 * neighbour_contrast[1]
    with pytest.raises(ValueError, match="unknown intensity"):
        preprocess(pixels, Preprocessing(160, "letterbox", "gamma"))
