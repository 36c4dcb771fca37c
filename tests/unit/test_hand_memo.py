"""core.hand_memo: the image checks, the orientation and a crop="hand" model's preprocessing
share one hand location per decoded film, and the answer is locate_hand's own."""

from __future__ import annotations

import gc

import numpy as np

import core.hand_memo as memo
from core.hand import locate_hand
from core.image_checks import check_pixels
from training.orientation import upright
import training.preprocess as preprocessing
from training.preprocess import Preprocessing, crop_region, hand_in_input, preprocess


def _film(seed: int = 0) -> np.ndarray:
    """A bright hand-like blob on a dark film, fingers up, the forearm leaving at the bottom."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:400, 0:300]
    palm = np.exp(-(((xx - 150) / 60.0) ** 2 + ((yy - 220) / 80.0) ** 2))
    arm = ((np.abs(xx - 150) < 40) & (yy > 250)) * 0.7
    fingers = sum(((np.abs(xx - x) < 9) & (yy > 60) & (yy < 180)) * 0.6 for x in (95, 130, 165, 200))
    image = 0.05 + 0.8 * np.clip(palm + arm + fingers, 0, 1) + rng.normal(0, 0.01, (400, 300))
    return np.clip(image, 0, 1).astype(np.float32)


def test_the_checks_and_the_orientation_locate_the_hand_once(monkeypatch):
    calls = []

    def counting(image):
        calls.append(id(image))
        return locate_hand(image)

    monkeypatch.setattr(memo, "locate_hand", counting)
    film = _film()
    check_pixels(film)
    (result,) = upright([film])
    assert len(calls) == 1
    assert memo.hand_location(film) == locate_hand(film)
    assert result.rotation_degrees == (locate_hand(film).rotation_degrees or 0)


def test_another_array_is_located_again_and_entries_go_with_their_images(monkeypatch):
    calls = []
    monkeypatch.setattr(memo, "locate_hand", lambda image: calls.append(1) or locate_hand(image))
    first = _film(1)
    memo.hand_location(first)
    memo.hand_location(first.copy())  # same pixels, another object
    assert len(calls) == 2
    before = len(memo._located)
    del first
    gc.collect()
    assert len(memo._located) < before


def test_the_hand_crop_reuses_the_location_of_the_checks(monkeypatch):
    calls = []

    def counting(image):
        calls.append(id(image))
        return locate_hand(image)

    monkeypatch.setattr(memo, "locate_hand", counting)
    # a direct call from the preprocessing (bypassing the memo) would be counted too
    monkeypatch.setattr(preprocessing, "locate_hand", counting, raising=False)
    film = _film(2)
    check_pixels(film)
    (result,) = upright([film])
    config = Preprocessing(64, "letterbox", "clahe", "hand")
    preprocess(result.image, config)  # the Predictor's square
    hand_in_input(result.image, config)  # the result's hand box
    assert crop_region(result.image, config) is not None
    assert len(calls) == 1
